from __future__ import annotations

import pytest
import torch

from captum_latent.counterfactual import (
    DISCGenerator,
    FeatureSemantics,
    FixedSchedule,
    INRPrior,
    PixelSemantics,
    ProgressiveSchedule,
    TVL2Prior,
)


@pytest.mark.parametrize("prior, schedule", [
    (TVL2Prior(), FixedSchedule(100)),
    (INRPrior(fit_steps=100), ProgressiveSchedule(steps_per_stage=40)),
])
def test_counterfactuals_reach_the_target_class(digits_classifier, threes, prior, schedule):
    gen = DISCGenerator(digits_classifier, prior=prior, schedule=schedule)
    result = gen.generate(threes, 8, seed=0)
    assert result.counterfactuals.shape == threes.shape
    assert result.validity >= 0.95  # the bar; 8/8 measured
    assert bool((result.counterfactuals >= 0).all() and (result.counterfactuals <= 1).all())
    with torch.no_grad():
        again = digits_classifier(result.counterfactuals).argmax(1)
    torch.testing.assert_close(again, result.predicted)
    assert result.source.tolist() == [3] * len(threes)
    assert result.loss_history[-1] < result.loss_history[0]


def test_classifier_is_left_untouched(digits_classifier, threes):
    before = {k: v.clone() for k, v in digits_classifier.state_dict().items()}
    gen = DISCGenerator(digits_classifier, prior=TVL2Prior(), schedule=FixedSchedule(5))
    gen.generate(threes[:2], 8)
    assert all(p.grad is None for p in digits_classifier.parameters())
    assert not digits_classifier.training
    assert all(torch.equal(before[k], v) for k, v in digits_classifier.state_dict().items())
    assert sum(len(m._forward_hooks) for m in digits_classifier.modules()) == 0


def test_same_seed_same_counterfactuals(digits_classifier, threes):
    gen = DISCGenerator(digits_classifier, prior=INRPrior(n_frequencies=32, hidden=16,
                                                          fit_steps=10),
                        schedule=ProgressiveSchedule(steps_per_stage=3))
    a = gen.generate(threes[:2], 8, seed=3)
    b = gen.generate(threes[:2], 8, generator=torch.Generator().manual_seed(3))
    c = gen.generate(threes[:2], 8, seed=4)
    torch.testing.assert_close(a.counterfactuals, b.counterfactuals)
    assert not torch.equal(a.counterfactuals, c.counterfactuals)


def test_lso_changes_less_than_iso_in_feature_space(digits_classifier, threes):
    """LSO penalises feature changes, so its counterfactuals stay closer in feature space."""
    x = threes[:4]
    results = {}
    for name, sem in (("iso", PixelSemantics()), ("lso", FeatureSemantics())):
        gen = DISCGenerator(digits_classifier, prior=TVL2Prior(tv_weight=0, l2_weight=0),
                            semantics=sem, schedule=FixedSchedule(60), lambda_semantic=50.0)
        results[name] = gen.generate(x, 8).counterfactuals
    with FeatureSemantics().bind(digits_classifier, x) as evaluate:
        d_iso = evaluate(results["iso"])[1].mean()
        d_lso = evaluate(results["lso"])[1].mean()
    assert d_lso < d_iso


def test_target_other_is_the_runner_up(digits_classifier, threes):
    gen = DISCGenerator(digits_classifier, prior=TVL2Prior(), schedule=FixedSchedule(2))
    result = gen.generate(threes[:3], "other")
    with torch.no_grad():
        runner_up = digits_classifier(threes[:3]).topk(2, 1).indices[:, 1]
    assert result.target.tolist() == runner_up.tolist()


def test_inputs_are_validated(digits_classifier, threes):
    gen = DISCGenerator(digits_classifier, prior=TVL2Prior(), schedule=FixedSchedule(2))
    with pytest.raises(ValueError, match="target"):
        gen.generate(threes[:2], 10)
    with pytest.raises(ValueError, match="target has 3 entries"):
        gen.generate(threes[:2], [1, 2, 3])
    with pytest.raises(ValueError, match="'other'"):
        gen.generate(threes[:2], "another")
    with pytest.raises(ValueError, match="queries"):
        gen.generate(threes[0], 8)
    with pytest.raises(TypeError, match="queries"):
        gen.generate(threes.numpy(), 8)
    with pytest.raises(TypeError, match="prior"):
        DISCGenerator(digits_classifier, prior="inr")
    with pytest.raises(ValueError, match="lambda_target"):
        DISCGenerator(digits_classifier, lambda_target=-1.0)
    with pytest.raises(ValueError, match="not found"):
        DISCGenerator(digits_classifier, semantics=FeatureSemantics(layers=["x"]))


@pytest.mark.gpu
def test_runs_on_cuda(digits_classifier, threes):
    model = digits_classifier.to("cuda")
    gen = DISCGenerator(model, prior=INRPrior(fit_steps=50), device="cuda",
                        schedule=ProgressiveSchedule(20))
    result = gen.generate(threes[:4], 8)
    assert result.counterfactuals.device.type == "cuda"
    digits_classifier.to("cpu")


def test_defaults_make_changes_an_independent_judge_believes(digits_classifier, digits_data):
    """Issue #21: with the paper's lambda1 = 1 and an INR prior (the former defaults) an
    independent classifier almost never sees the target class in DISC's counterfactuals; the
    defaults (DIP, lambda1 = 0.01) let the target class show, at a mean change <= 0.15."""
    from captum_latent import zoo
    from captum_latent.counterfactual import INRPrior
    from captum_latent.metrics import judge_agreement, mean_absolute_change

    judge = zoo.digits_judge(progress=False)
    xs, ts = [], []
    for source, target in ((1, 7), (4, 9), (3, 8)):
        x = digits_data.test.images[digits_data.test.labels == source][:4]
        xs.append(x)
        ts += [target] * len(x)
    x, t = torch.cat(xs), torch.tensor(ts)
    new = DISCGenerator(digits_classifier).generate(x, t, seed=0)
    old = DISCGenerator(digits_classifier, prior=INRPrior(), manifold=None,
                        lambda_semantic=1.0, target_probability=None).generate(x, t, seed=0)
    assert new.validity >= 0.9
    with torch.no_grad():  # each query stopped once the classifier was that sure
        p = torch.softmax(digits_classifier(new.counterfactuals), 1)[torch.arange(len(t)), t]
    assert float((p >= 0.999 - 1e-4).float().mean()) >= 0.9
    ours, before = judge_agreement(judge, new.counterfactuals, t), \
        judge_agreement(judge, old.counterfactuals, t)
    print("judge agreement: defaults", ours, "former defaults", before)
    assert ours >= before + 0.25, (ours, before)
    assert float(mean_absolute_change(x, new.counterfactuals).mean()) <= 0.15
