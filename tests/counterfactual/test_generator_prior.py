"""DISC with a generator: counterfactuals searched in the zoo GAN's latent space
(captum_latent/counterfactual/generator_prior.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from captum_latent.counterfactual import (
    DEPConsistency,
    DISCGenerator,
    GeneratorPrior,
    TVL2Prior,
    pixel_counterfactuals,
)
from captum_latent.metrics import judge_agreement, mean_absolute_change

PAIRS = ((1, 7), (4, 9), (3, 8))


@pytest.fixture(scope="module")
def queries(digits_data, digits_classifier):
    """Four correctly classified test digits of each source class, with their targets."""
    xs, ts = [], []
    for source, target in PAIRS:
        x = digits_data.test.images[digits_data.test.labels == source][:12]
        with torch.no_grad():
            x = x[digits_classifier(x).argmax(1) == source][:4]
        xs.append(x)
        ts += [target] * len(x)
    return torch.cat(xs), torch.tensor(ts)


@pytest.fixture(scope="module")
def found(digits_gan, digits_classifier, queries):
    x, t = queries
    # 0.999 rather than the default 0.9999: on some retrained zoos the image shown (the query
    # where little changed) rarely reaches 0.9999, and these tests check that searches stop
    prior = GeneratorPrior(digits_gan.generator, reversal_steps=100, target_probability=0.999)
    return prior, prior.counterfactuals(digits_classifier, x, t, torch.Generator().manual_seed(0))


def test_searches_stop_once_the_counterfactual_shown_reaches_the_target_probability(
        found, digits_classifier, queries):
    prior, out = found
    x, t = queries
    with torch.no_grad():
        p = torch.softmax(digits_classifier(out.images), 1)[torch.arange(len(t)), t]
    assert float((p > 0.5).float().mean()) >= 0.75  # valid: the target is the likeliest class
    assert bool(out.reached.any())
    assert bool((p[out.reached] >= prior.target_probability - 1e-5).all())
    assert bool((out.steps[out.reached] < prior.max_steps).all())


def test_counterfactuals_keep_the_query_where_the_search_changed_little(found, queries):
    prior, out = found
    x, _ = queries
    keep = out.keep_thresholds.view(-1, 1, 1, 1)
    assert bool((keep <= prior.keep_threshold).all()) and bool((keep >= 0).all())
    kept = (out.generated - out.reversals).abs() <= keep
    assert torch.equal(out.images[kept], x[kept])
    assert torch.equal(out.images[~kept], out.generated[~kept])
    assert float(out.reversal_errors.mean()) < 0.01  # the reversals reproduce the queries


def _shown(out, x, keep):
    return torch.where((out.generated - out.reversals).abs() > keep, out.generated, x)


def test_fewer_query_pixels_are_given_back_only_where_they_cost_the_target_probability(
        found, digits_classifier, queries):
    """The rule of ``min_probability``, checked against the classifier: each image keeps the
    largest threshold (of the levels from ``keep_threshold`` down to 0) whose image reaches it,
    or the level the classifier is surest of where none does."""
    prior, out = found
    x, t = queries
    levels = torch.linspace(prior.keep_threshold, 0, 15)
    with torch.no_grad():
        p = torch.stack([torch.softmax(digits_classifier(_shown(out, x, k)), 1)[
            torch.arange(len(t)), t] for k in levels], 1)  # (queries, levels)
    enough = p >= prior.min_probability
    expected = torch.where(enough.any(1), levels[enough.float().argmax(1)],
                           levels[p.argmax(1)])
    torch.testing.assert_close(out.keep_thresholds, expected)
    assert bool((out.keep_thresholds < prior.keep_threshold).any())  # the rule was exercised
    assert bool((out.keep_thresholds == prior.keep_threshold).any())


def test_an_independent_judge_believes_them_more_often_than_at_one_fixed_threshold(
        found, queries):
    """What ``min_probability`` is for: the queries whose image shown (the query's pixels
    given back at ``keep_threshold``) the classifier doubts are those an independent judge most
    often disagrees with; giving back fewer pixels there wins the judge's agreement (zoo
    seeds 0-2, 160 queries each, the same searches at keep 0.28: +5 / +18 / +14 queries against
    -1 / 0 / 0, mean change +0.007 to +0.010: docs/benchmarks.md). On these 12 queries: 0.92 /
    1.00 / 1.00 / 0.92 against 0.92 / 0.75 / 1.00 / 0.75 on zoo seeds 0-3; the margin of one
    query allows the rare loss (1 of 480 queries measured) on a zoo where nothing is won."""
    from captum_latent import zoo

    prior, out = found
    x, t = queries
    judge = zoo.digits_judge(progress=False)
    fixed = _shown(out, x, prior.keep_threshold)
    assert judge_agreement(judge, out.images, t) >= judge_agreement(judge, fixed, t) - 1 / len(t)
    assert float(mean_absolute_change(x, out.images).mean()) <= \
        float(mean_absolute_change(x, fixed).mean()) + 0.03


def test_an_independent_judge_believes_them_where_pixel_counterfactuals_fool_only_the_model(
        found, queries, digits_classifier, digits_data):
    """The issue's claim: a pixel-space counterfactual (Adam on pixels, stopped when valid) is
    valid for the explained model, but the judge (another architecture) rarely agrees; the
    generator's counterfactuals it believes far more often."""
    from captum_latent import zoo

    judge = zoo.digits_judge(progress=False)
    _, out = found
    x, t = queries
    pixel = pixel_counterfactuals(digits_classifier, x, t)
    with torch.no_grad():
        assert bool((digits_classifier(pixel).argmax(1) == t).all())
    ours = judge_agreement(judge, out.images, t)
    assert ours >= 0.5 and ours >= judge_agreement(judge, pixel, t) + 0.3, ours
    assert float(mean_absolute_change(x, out.images).mean()) <= 0.2


def test_disc_generator_and_alibi_disc_take_it_as_prior(digits_gan, digits_classifier, queries):
    from alibi_ext import DISC

    x, t = queries
    prior = GeneratorPrior(digits_gan.generator, reversal_steps=50, starts=2, max_steps=100)
    result = DISCGenerator(digits_classifier, prior=prior).generate(x[:3], t[:3], seed=0)
    assert result.counterfactuals.shape == x[:3].shape and result.validity >= 2 / 3
    explainer = DISC(digits_classifier, shape=(28, 28, 1), prior=prior, seed=0)
    explanation = explainer.explain(x[:3].permute(0, 2, 3, 1).numpy(), target_class=t[:3].tolist())
    np.testing.assert_allclose(explanation.cf["X"], result.counterfactuals.permute(0, 2, 3, 1),
                               atol=1e-6)
    assert "GeneratorPrior" in explainer.meta["params"]["prior"]


def test_pickled_prior_gives_the_same_counterfactuals(digits_gan, digits_classifier, queries):
    x, t = queries
    prior = GeneratorPrior(digits_gan.generator, reversal_steps=30, starts=1, max_steps=40)
    again = pickle.loads(pickle.dumps(prior))
    a = prior.counterfactuals(digits_classifier, x[:2], t[:2], torch.Generator().manual_seed(3))
    b = again.counterfactuals(digits_classifier, x[:2], t[:2], torch.Generator().manual_seed(3))
    assert torch.equal(a.images, b.images)
    assert repr(again) == repr(prior)


def test_without_min_probability_every_image_is_made_at_keep_threshold(
        digits_gan, digits_classifier, queries):
    """``min_probability=None`` is the behaviour before it existed, and a prior pickled then
    (no ``min_probability`` in its state) loads with it."""
    x, t = queries
    prior = GeneratorPrior(digits_gan.generator, min_probability=None, reversal_steps=30,
                           starts=1, max_steps=40)
    out = prior.counterfactuals(digits_classifier, x[:4], t[:4], torch.Generator().manual_seed(3))
    assert bool((out.keep_thresholds == prior.keep_threshold).all())
    assert torch.equal(out.images, _shown(out, x[:4], prior.keep_threshold))
    state = GeneratorPrior(digits_gan.generator).__getstate__()
    del state["min_probability"]
    old = GeneratorPrior.__new__(GeneratorPrior)
    old.__setstate__(state)
    assert old.min_probability is None


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(target_probability=1.0), ValueError, "target_probability"),
    (dict(min_probability=0.0), ValueError, "min_probability"),
    (dict(min_probability=True), ValueError, "min_probability"),
    (dict(keep_threshold=-0.1), ValueError, "keep_threshold"),
    (dict(starts=5, reversal_codes=4), ValueError, "starts=5"),
    (dict(max_steps=0), ValueError, "max_steps"),
    (dict(lr=0), ValueError, "lr"),
])
def test_bad_settings_are_refused(digits_gan, kwargs, error, match):
    with pytest.raises(error, match=match):
        GeneratorPrior(digits_gan.generator, **kwargs)


def test_bad_uses_are_refused(digits_gan, digits_classifier, queries):
    x, t = queries
    with pytest.raises(TypeError, match="torch.nn.Module"):
        GeneratorPrior(lambda z: z)
    prior = GeneratorPrior(digits_gan.generator)
    with pytest.raises(ValueError, match="no manifold term"):
        DISCGenerator(digits_classifier, prior=prior,
                      manifold=DEPConsistency(lambda x: x.sum((1, 2, 3)), 0.0))
    with pytest.raises(ValueError, match=r"queries must have shape \(N, 1, 28, 28\)"):
        prior.counterfactuals(digits_classifier, torch.zeros(2, 1, 14, 14), t[:2],
                              torch.Generator())
    nan = x[:2].clone()
    nan[0, 0, 0, 0] = float("nan")
    for queries, targets, error, match in [
            (nan, t[:2], ValueError, "NaN"),
            (x[:2].numpy(), t[:2], TypeError, "torch.Tensor"),
            (x[:2], t[:2].float(), TypeError, "integer"),
            (x[:2], t[:1], ValueError, r"shape \(2,\)"),
            (x[:2], torch.tensor([3, 10]), ValueError, r"\[0, 10\)"),
            (x[:2], torch.tensor([-1, 3]), ValueError, r"\[0, 10\)")]:
        with pytest.raises(error, match=match):
            prior.counterfactuals(digits_classifier, queries, targets, torch.Generator())
    with pytest.raises(TypeError, match="torch.Generator"):
        prior.counterfactuals(digits_classifier, x[:2], t[:2], 0)
    with pytest.raises(TypeError, match="ImagePrior or a GeneratorPrior"):
        DISCGenerator(digits_classifier, prior=digits_gan.generator)
    assert isinstance(DISCGenerator(digits_classifier, prior=TVL2Prior()).prior, TVL2Prior)
