from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from captum_latent.inverse import MimicGAN, MimicGANConfig, MimicGANDefense, corruptions

QUICK = MimicGANConfig(lr_surrogate=1e-3, lr_codes=2e-2, outer_iterations=4, surrogate_steps=10,
                       code_steps=20, observation_loss="l2")


def _accuracy(classifier, images, labels):
    with torch.no_grad():
        return float((classifier(images).argmax(1) == labels).float().mean())


def test_defense_runs_under_captum_and_alibi(digits_gan, digits_classifier, digits_data):
    from alibi.explainers import AnchorImage
    from captum.attr import Saliency

    cfg = MimicGANConfig(lr_surrogate=3e-3, lr_codes=0.05, outer_iterations=2,
                         surrogate_steps=2, code_steps=5)
    defended = MimicGANDefense(digits_classifier, MimicGAN(digits_gan.generator, config=cfg))
    x = corruptions.drop_pixels(digits_data.test.images[:30], seed=0)
    defended.fit(x)
    attribution = Saliency(defended).attribute(x[:4], target=digits_data.test.labels[:4])
    assert attribution.shape == x[:4].shape and float(attribution.abs().sum()) > 0

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(defended(torch.as_tensor(batch).permute(0, 3, 1, 2)), 1).numpy()

    explainer = AnchorImage(predict, (28, 28, 1), segmentation_fn="slic",
                            segmentation_kwargs={"n_segments": 6, "start_label": 0})
    explanation = explainer.explain(x[0].permute(1, 2, 0).numpy(), threshold=0.8,
                                    max_anchor_size=2, coverage_samples=50, batch_size=20)
    assert 0 <= float(np.mean(explanation.precision)) <= 1


def test_defense_before_fit_on_a_small_batch_warns_and_uses_pgd(digits_gan, digits_classifier,
                                                                 digits_data):
    cfg = MimicGANConfig(outer_iterations=1, code_steps=3, surrogate_steps=1)
    defended = MimicGANDefense(digits_classifier, MimicGAN(digits_gan.generator, config=cfg))
    with pytest.warns(UserWarning, match="PGD"):
        out = defended(digits_data.test.images[:2])
    assert out.shape == (2, 10)


def test_outcome_is_assembled_from_the_two_recoveries_and_stats_add_up(
        digits_gan, digits_classifier, digits_data):
    x = corruptions.blur_negative(digits_data.test.images[:40])
    defended = MimicGANDefense(digits_classifier, MimicGAN(digits_gan.generator, config=QUICK))
    defended.fit(x[:32])
    assert defended.error_threshold > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        outcome = defended.defend(x[32:])
    n = 8
    for name in ("observation_errors", "identity_errors", "typicality", "explained", "trusted",
                 "passed_through", "repaired"):
        assert getattr(outcome, name).shape == (n,)
    e = outcome.explained
    assert torch.equal(e, (outcome.observation_errors
                           <= 0.75 * outcome.identity_errors)
                       & (outcome.observation_errors <= defended.error_threshold))
    p = outcome.passed_through
    assert torch.equal(p, ~outcome.trusted)  # on_untrusted="pass"
    assert not (p & ~e).any()  # only MimicGAN's recoveries can be distrusted
    assert torch.equal(outcome.images[e & ~p], outcome.recovered[e & ~p])
    r = outcome.repaired
    assert not (r & e).any()  # only PGD's recoveries are repaired
    assert torch.equal(outcome.images[~e & ~r], outcome.identity_recovered[~e & ~r])
    assert torch.equal(outcome.images[p], x[32:][p])
    s = defended.stats
    assert s["images"] == n
    assert s["surrogate_used"] + s["identity_used"] + s["passed_through"] == n
    assert s["repaired"] == int(r.sum()) <= s["identity_used"]
    # blur + negative is what the surrogate learned: it explains most of the batch
    assert s["surrogate_used"] + s["passed_through"] >= 6


def test_a_mixed_batch_gets_mimicgan_only_for_the_corruption_it_learned(
        digits_gan, digits_classifier, digits_data):
    clean = digits_data.test.images[:64]
    defended = MimicGANDefense(digits_classifier, MimicGAN(digits_gan.generator, config=QUICK))
    defended.fit(corruptions.blur_negative(clean[:32]))
    learned = corruptions.blur_negative(clean[32:48])
    odd = clean[48:]  # not corrupted at all: the surrogate's sign flip does not explain them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        outcome = defended.defend(torch.cat([learned, odd]))
    assert float(outcome.explained[:16].float().mean()) >= 0.75
    assert float(outcome.explained[16:].float().mean()) <= 0.125
    # the odd ones are cleaned by PGD, which leaves clean digits readable
    labels = digits_data.test.labels[48:64]
    assert _accuracy(digits_classifier, outcome.images[16:], labels) >= \
        _accuracy(digits_classifier, odd, labels) - 0.07


class _Reading:
    """Stands in for the classifier's reading of the recoveries, then of the observations."""

    def __init__(self, labels, confidences):
        self.calls = iter(zip(labels, confidences))

    def __call__(self, images):
        label, confidence = next(self.calls)
        return torch.tensor(label), torch.tensor(confidence)


def test_untrusted_recoveries_are_passed_through_or_only_warned(
        digits_gan, digits_classifier, digits_data, monkeypatch):
    x = corruptions.blur_negative(digits_data.test.images[:32])
    # image 0: MimicGAN reads 3, the observation 5 and more surely -> untrusted
    # image 1: MimicGAN reads 3, the observation 5 less surely, 3 is clear -> trusted
    # image 2: MimicGAN reads 3, the observation 5 less surely, 3 is unclear -> untrusted
    # image 3: MimicGAN reads what the observation reads -> trusted
    readings = ([[3, 3, 3, 3], [5, 5, 5, 3]], [[0.6, 0.8, 0.6, 0.1], [0.9, 0.5, 0.5, 0.9]])
    for mode in ("pass", "warn"):
        defended = MimicGANDefense(digits_classifier, MimicGAN(digits_gan.generator,
                                                               config=QUICK),
                                   on_untrusted=mode, error_spread=math.inf, explain_ratio=1.0)
        assert 0.5 < defended.clear_confidence <= 1.0  # the zoo classifier reads its GAN well
        defended.clear_confidence = 0.7
        defended.fit(x)
        monkeypatch.setattr(defended, "_read", _Reading(*readings))
        with pytest.warns(RuntimeWarning, match="of 4 MimicGAN recoveries cannot be trusted"):
            outcome = defended.defend(x[:4])
        e = outcome.explained.tolist()
        assert outcome.trusted.tolist() == [not e[0], True, not e[2], True]
        if mode == "pass":
            assert torch.equal(outcome.passed_through, ~outcome.trusted)
            assert torch.equal(outcome.images[~outcome.trusted], x[:4][~outcome.trusted])
        else:
            assert not outcome.passed_through.any()
            assert defended.stats["passed_through"] == 0
            assert defended.stats["untrusted"] == int((~outcome.trusted).sum())


def test_a_pgd_cleaner_runs_once_and_never_distrusts(digits_gan, digits_classifier, digits_data,
                                                     monkeypatch):
    pgd = MimicGAN.pgd(digits_gan.generator, config=QUICK)
    defended = MimicGANDefense(digits_classifier, pgd)
    calls = []
    original = MimicGAN.recover

    def counting(self, *args, **kwargs):
        calls.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MimicGAN, "recover", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all
        outcome = defended.defend(digits_data.test.images[:6])
    assert calls == [pgd]
    assert not outcome.explained.any() and outcome.trusted.all()
    kept = ~outcome.repaired
    assert torch.equal(outcome.images[kept], outcome.identity_recovered[kept])
    assert defended.stats["identity_used"] == 6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(on_untrusted="raise"), "on_untrusted"),
        (dict(explain_ratio=0.0), "explain_ratio"),
        (dict(explain_ratio=1.5), "explain_ratio"),
        (dict(error_spread=0), "error_spread"),
        (dict(min_typicality=1.0), "min_typicality"),
        (dict(min_typicality=True), "min_typicality"),
        (dict(occlusions=0.3), "occlusions"),
    ],
)
def test_defence_options_are_checked(digits_gan, digits_classifier, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MimicGANDefense(digits_classifier, MimicGAN(digits_gan.generator), **kwargs)


def test_min_typicality_keeps_atypical_codes_from_mimicgan(digits_gan, digits_classifier,
                                                           digits_data):
    x = corruptions.blur_negative(digits_data.test.images[:32])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        strict = MimicGANDefense(digits_classifier, MimicGAN(digits_gan.generator, config=QUICK),
                                 min_typicality=0.5, error_spread=math.inf)
        outcome = strict.defend(x)
    assert not (outcome.explained & (outcome.typicality < 0.5)).any()


def _noise_cross_and_noise(x):
    noisy = corruptions.gaussian_noise(x, sigma=0.5, seed=3).clamp(0, 1)
    return corruptions.PANEL["occlusion"](x, seed=0), noisy


def test_occlusions_are_reconstructed_around_and_noise_is_not(digits_gan, digits_classifier,
                                                              digits_data):
    """Issue #19: on the paper's noise cross PGD is worse than the occluded digits themselves
    (zoo digits 200-359: 0.375 against 0.519); reconstructed around the cross they are read
    better than either (0.719). Diffuse noise, where PGD helps, is left to PGD."""
    x, y = digits_data.test.images[100:148], digits_data.test.labels[100:148]
    crossed, noisy = _noise_cross_and_noise(x)
    pgd = MimicGAN.pgd(digits_gan.generator, config="digits")
    defended = MimicGANDefense(digits_classifier, pgd)
    plain = MimicGANDefense(digits_classifier, pgd, occlusions=None)
    outcome = defended.defend(crossed)
    assert outcome.repaired.float().mean() >= 0.8
    assert defended.stats["repaired"] == int(outcome.repaired.sum())
    observed = _accuracy(digits_classifier, crossed, y)
    pgd_accuracy = _accuracy(digits_classifier, outcome.identity_recovered, y)
    defended_accuracy = _accuracy(digits_classifier, outcome.images, y)
    assert defended_accuracy >= max(observed, pgd_accuracy) + 0.05
    # outside the grown cross the classifier sees the observation itself
    ring = (crossed - outcome.images).abs().amax(1) == 0
    assert float(ring[outcome.repaired].float().mean()) > 0.3
    without = plain.defend(crossed)
    assert not without.repaired.any()
    assert torch.equal(without.images, without.identity_recovered)
    assert torch.equal(without.identity_recovered, outcome.identity_recovered)
    noise = defended.defend(noisy)
    assert noise.repaired.float().mean() <= 0.05
