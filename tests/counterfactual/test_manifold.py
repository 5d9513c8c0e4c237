from __future__ import annotations

import pytest
import torch

from captum_latent.counterfactual import (
    DEPClassifier,
    DEPConsistency,
    DISCGenerator,
    DUQConsistency,
    FixedSchedule,
    TVL2Prior,
    ranking_loss,
)


def test_ranking_loss_by_hand():
    s = torch.tensor([3.0, 1.0, 0.0, 2.0])  # pairs (3, 0): s_i > s_j; (1, 2): s_i < s_j
    s_hat = torch.tensor([0.5, 0.0, 0.0, 2.5])
    # pair 1: -(+1)(0.5 - 0) + 1 = 0.5 ; pair 2: -(-1)(0 - 2.5) + 1 = -1.5 -> 0
    assert ranking_loss(s_hat, s).item() == pytest.approx(0.25)
    assert ranking_loss(s_hat, s, margin=0.0).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="two samples"):
        ranking_loss(torch.zeros(1), torch.zeros(1))


def test_dep_term_is_eq8():
    class Const(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1).sum(1)

    term = DEPConsistency(Const(), target_loss=1.0)
    x = torch.tensor([0.0, 0.5, 3.0]).view(3, 1, 1, 1)
    assert term(x, None, None).tolist() == [1.0, 0.5, 2.0]


def test_duq_term_is_eq9():
    kernels = torch.tensor([[0.9, 0.1], [0.2, 0.95], [0.5, 0.7]])
    term = DUQConsistency(lambda x: kernels, margin=0.5)
    out = term(torch.zeros(3, 1, 1, 1), torch.tensor([0, 0, 0]), torch.tensor([1, 1, 1]))
    torch.testing.assert_close(out, torch.tensor([1.3, 0.0, 0.3]))


def test_joint_training_learns_to_rank_losses(small_dep_model, digits_data):
    model, metrics = small_dep_model
    assert isinstance(model, DEPClassifier) and not model.training
    assert metrics["test_accuracy"] >= 0.8
    # the loss predictor orders test losses better than chance
    assert metrics["test_loss_spearman"] > 0.2
    scores = model.predict_loss(digits_data.train.images)
    assert float((scores <= model.low_loss_score).float().mean()) == pytest.approx(0.1, abs=0.01)


def test_dep_term_pulls_the_predicted_loss_to_the_target(small_dep_model, digits_data):
    model, _ = small_dep_model
    x = digits_data.test.images[digits_data.test.labels == 3][:6]
    target = float(model.low_loss_score)
    term = DEPConsistency(model.loss_predictor(), target_loss=target)
    kwargs = {"prior": TVL2Prior(), "schedule": FixedSchedule(60), "lambda_semantic": 1.0}
    plain = DISCGenerator(model, manifold=None, **kwargs).generate(x, 8)
    with_dep = DISCGenerator(model, manifold=term, lambda_manifold=1.0, **kwargs).generate(x, 8)
    with torch.no_grad():
        gap_plain = term(plain.counterfactuals, None, None).mean()
        gap_dep = term(with_dep.counterfactuals, None, None).mean()
    assert gap_dep < gap_plain
    assert with_dep.validity >= 0.8


def test_default_manifold_is_the_classifiers_own_dep_term(small_dep_model, digits_classifier,
                                                          digits_gan):
    """manifold="auto" (the default): a calibrated DEPClassifier brings its own DEP term
    (per-class s*), any other classifier none; a GeneratorPrior takes none."""
    from captum_latent.counterfactual import GeneratorPrior

    model, _ = small_dep_model
    auto = DISCGenerator(model).manifold
    assert isinstance(auto, DEPConsistency)
    assert torch.equal(torch.as_tensor(auto.target_loss), model.class_loss_scores.cpu())
    assert DISCGenerator(model, manifold=None).manifold is None
    assert DISCGenerator(digits_classifier).manifold is None
    assert DISCGenerator(model, prior=GeneratorPrior(digits_gan.generator)).manifold is None
    with pytest.raises(ValueError, match="'auto'"):
        DISCGenerator(model, manifold="dep")


def test_alibi_disc_resolves_auto_again_for_another_classifier(small_dep_model,
                                                               digits_classifier):
    from alibi_ext import DISC

    model, _ = small_dep_model
    explainer = DISC(digits_classifier, shape=(28, 28, 1))
    assert explainer.generator.manifold is None
    explainer.reset_predictor(model)
    assert isinstance(explainer.generator.manifold, DEPConsistency)


def test_dep_models_are_cached_by_config(tmp_path, monkeypatch):
    from captum_latent.zoo._cache import cache_path
    from captum_latent.zoo.dep import DEPConfig, _cached

    monkeypatch.setenv("CAPTUM_LATENT_CACHE", str(tmp_path))  # cold, even with a dev cache
    config = DEPConfig(dataset="faces", epochs=1, width=4, hidden=8, loss_hidden=8)
    assert not cache_path("faces_dep_classifier", config).exists()
    first = _cached(config, progress=False)
    assert cache_path("faces_dep_classifier", config).exists()
    second = _cached(config, progress=False)
    assert first is not second
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert first.zoo_metrics == second.zoo_metrics
    assert set(first.zoo_metrics) >= {"test_accuracy", "test_loss_spearman"}


def test_dep_term_takes_one_target_per_class():
    class Const(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1).sum(1)

    term = DEPConsistency(Const(), target_loss=torch.tensor([0.0, -1.0, 2.0]))
    x = torch.tensor([1.0, 1.0, 1.0]).view(3, 1, 1, 1)
    out = term(x, torch.zeros(3, dtype=torch.long), torch.tensor([0, 1, 2]))
    assert out.tolist() == [1.0, 2.0, 1.0]  # |1 - s*[target]|
    assert DEPConsistency(Const(), target_loss=[0.5]).target_loss.tolist() == [0.5]
    with pytest.raises(ValueError, match="out of range"):
        term(x, torch.zeros(3, dtype=torch.long), torch.tensor([0, 1, 3]))
    for bad in (float("nan"), [1.0, float("inf")], [[1.0]], []):
        with pytest.raises(ValueError, match="target_loss"):
            DEPConsistency(Const(), target_loss=bad)
    with pytest.raises(TypeError, match="target_loss"):
        DEPConsistency(Const(), target_loss="low")


def test_calibration_stores_each_class_median_score(small_dep_model, digits_data):
    model, _ = small_dep_model
    x, y = digits_data.train.images, digits_data.train.labels
    with torch.no_grad():
        logits, s_hat = model.forward_with_loss(x)
    ok = logits.argmax(1) == y
    for k in (0, 3, 8):
        expected = s_hat[(y == k) & ok].median()
        assert float(model.class_loss_scores[k]) == pytest.approx(float(expected), abs=1e-5)
    # classes differ in their typical score: one global s* cannot suit every target class
    assert float(model.class_loss_scores.max() - model.class_loss_scores.min()) > 0.1
    with pytest.raises(ValueError, match="labels"):
        model.calibrate(x[:4], y[:3])


def test_presets_use_the_target_class_score_by_default(small_dep_model):
    from captum_latent.counterfactual.presets import table1_generator

    model, _ = small_dep_model
    gen = table1_generator("LSO + INR + DEP", model)
    torch.testing.assert_close(gen.manifold.target_loss, model.class_loss_scores)
    low = table1_generator("LSO + INR + DEP", model, dep_target="low")
    assert low.manifold.target_loss == float(model.low_loss_score)
    with pytest.raises(ValueError, match="dep_target"):
        table1_generator("LSO + INR + DEP", model, dep_target="median")
    with pytest.raises(ValueError, match="duq_model"):
        table1_generator("LSO + INR + DUQ", model)
    duq = table1_generator("LSO + INR + DUQ", model, duq_model=lambda x: x)
    assert isinstance(duq.manifold, DUQConsistency) and duq.manifold.margin == 0.5


def test_older_cache_entries_get_their_class_targets_on_load(tmp_path, monkeypatch):
    from captum_latent.zoo._cache import cache_path, load_entry, save_entry
    from captum_latent.zoo.dep import DEPConfig, _cached

    monkeypatch.setenv("CAPTUM_LATENT_CACHE", str(tmp_path))
    config = DEPConfig(dataset="faces", epochs=1, width=4, hidden=8, loss_hidden=8)
    fresh = _cached(config, progress=False)
    path = cache_path("faces_dep_classifier", config)
    entry = load_entry(path)
    del entry["state_dict"]["class_loss_scores"]  # as cached before the per-class targets
    save_entry(path, entry)
    migrated = _cached(config, progress=False)
    torch.testing.assert_close(migrated.class_loss_scores, fresh.class_loss_scores)
    assert "class_loss_scores" in load_entry(path)["state_dict"]  # rewritten once
