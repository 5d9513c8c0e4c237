from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from captum_latent.inverse import (
    PRESETS,
    MimicGAN,
    MimicGANConfig,
    ShallowSurrogate,
    corruptions,
)

FAST = MimicGANConfig(lr_surrogate=3e-3, lr_codes=0.05, outer_iterations=4, surrogate_steps=3,
                      code_steps=15)


def _psnr(a, b):
    return float((10 * torch.log10(1 / ((a - b) ** 2).flatten(1).mean(1))).mean())


def test_pgd_recovers_generated_images(digits_gan):
    with torch.no_grad():
        target = digits_gan.generator(torch.randn(32, digits_gan.latent_dim,
                                                  generator=torch.Generator().manual_seed(0)))
    cfg = MimicGANConfig(lr_codes=0.05, outer_iterations=10, code_steps=30, code_range=None)
    before = [(p.requires_grad, p.grad) for p in digits_gan.generator.parameters()]
    result = MimicGAN.pgd(digits_gan.generator, config=cfg).recover(target, seed=0)
    assert _psnr(result.images, target) > 20
    assert result.history[-1] < result.history[0]
    with torch.no_grad():
        assert torch.allclose(digits_gan.generator(result.codes), result.images, atol=1e-5)
    # the user's generator is left as it was (its trainable flags and gradients)
    assert [(p.requires_grad, p.grad) for p in digits_gan.generator.parameters()] == before


def test_surrogate_is_fitted_and_codes_are_clipped(digits_gan, digits_data):
    observed = corruptions.blur_negative(digits_data.test.images[:32])
    template = ShallowSurrogate((1, 28, 28))
    before = [p.clone() for p in template.parameters()]
    model = MimicGAN(digits_gan.generator, surrogate=template, config=FAST)
    result = model.recover(observed, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, template.parameters()))  # copied
    assert any(not torch.equal(a, b) for a, b in zip(before, result.surrogate.parameters()))
    low, high = FAST.code_range
    assert float(result.codes.min()) >= low and float(result.codes.max()) <= high
    # the surrogate learned the sign flip: it mimics the negative observations better than G(z)
    assert (result.mimicked - observed).abs().mean() < (result.images - observed).abs().mean()


def test_same_seed_same_recovery(digits_gan, digits_data):
    observed = corruptions.drop_pixels(digits_data.test.images[:25], seed=0)
    model = MimicGAN(digits_gan.generator, config=FAST)
    a, b = model.recover(observed, seed=1), model.recover(observed, seed=1)
    assert torch.equal(a.images, b.images)


def test_cowboy_uses_the_discriminator(digits_gan, digits_data):
    observed = digits_data.test.images[:25]
    cfg = MimicGANConfig(lr_codes=0.05, outer_iterations=2, code_steps=10)
    plain = MimicGAN.pgd(digits_gan.generator, config=cfg).recover(observed, seed=0)
    cowboy = MimicGAN.cowboy(digits_gan.generator, digits_gan.discriminator, config=cfg,
                             lambda_adv=0.5).recover(observed, seed=0)
    assert not torch.equal(plain.codes, cowboy.codes)


@pytest.mark.parametrize(
    ("observations", "error", "match"),
    [
        (torch.rand(30, 28, 28, 1), ValueError, "channel-last"),
        (torch.full((30, 1, 28, 28), float("nan")), ValueError, "NaN"),
        (torch.ones(30, 1, 28, 28, dtype=torch.long), TypeError, "floating"),
        (torch.rand(5, 1, 28, 28), ValueError, "min_observations"),
        (np.zeros((30, 1, 28, 28)), TypeError, "torch.Tensor"),
        (torch.full((30, 1, 28, 28), 255.0), ValueError, "outside the range"),
    ],
)
def test_recover_rejects_bad_observations(digits_gan, observations, error, match):
    with pytest.raises(error, match=match):
        MimicGAN(digits_gan.generator, config=FAST).recover(observations)


def test_constructor_checks(digits_gan):
    with pytest.raises(ValueError, match="discriminator"):
        MimicGAN(digits_gan.generator, config="negative")  # lambda_adv > 0
    with pytest.raises(ValueError, match="preset"):
        MimicGAN(digits_gan.generator, config="nope")
    with pytest.raises(ValueError, match="surrogate"):
        MimicGAN(digits_gan.generator, surrogate="deep")
    with pytest.raises(ValueError, match="code_range"):
        MimicGANConfig(code_range=(1.0, -1.0))
    assert set(PRESETS) >= {"gray_blur", "stylize", "negative", "stuck_pixels", "occlusion",
                            "inpainting"}
    # the default (unknown corruption) preset: L2 for dropped pixels, surrogate restarts
    generic = PRESETS["digits"]
    assert generic.observation_loss == "l2" and generic.restarts > 1
    assert MimicGAN(digits_gan.generator).config is generic


def test_observation_loss_is_validated_and_used(digits_gan, digits_data):
    with pytest.raises(ValueError, match="observation_loss"):
        MimicGANConfig(observation_loss="l3")
    observed = corruptions.drop_pixels(digits_data.test.images[:25], seed=0)
    l1 = MimicGAN(digits_gan.generator, config=FAST).recover(observed, seed=0)
    l2 = MimicGAN(digits_gan.generator, config=replace(FAST, observation_loss="l2")).recover(
        observed, seed=0)
    assert not torch.equal(l1.codes, l2.codes)
    # the history holds the mean loss: squared errors of [0, 1] images are below absolute ones
    assert l2.history[-1] < l1.history[-1]


def test_l1_mimic_of_mostly_dropped_pixels_is_the_fill_value():
    """Why ``digits_dropped_pixels`` uses the L2 loss: with 70% of the pixels replaced by 0.5,
    the constant 0.5 is the L1-best prediction of every pixel whatever the image (the median),
    so an L1 surrogate has no reason to depend on G(z); the L2-best one is the conditional mean
    ``0.3 x + 0.35``, which does."""
    x = torch.rand(4000, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    y = corruptions.drop_pixels(x, 0.7, seed=1)
    grid = torch.linspace(0, 1, 101)
    for value in (0.1, 0.9):  # pixels whose clean value is near `value`
        near = y[(x - value).abs() < 0.05]
        l1 = (near[:, None] - grid).abs().mean(0)
        l2 = (near[:, None] - grid).square().mean(0)
        assert abs(float(grid[l1.argmin()]) - 0.5) < 0.02
        assert abs(float(grid[l2.argmin()]) - (0.3 * value + 0.35)) < 0.03


@pytest.mark.slow
def test_mimicgan_beats_raw_and_pgd_on_dropped_pixels(digits_gan, digits_classifier, digits_data):
    """Paper Fig. 3b, qualitatively: on 70%-dropped pixels the classifier is more accurate on
    MimicGAN-cleaned digits than on the raw corrupted ones and on PGD-cleaned ones (128 test
    digits, seeded; ~1 minute on one CPU thread)."""
    x, y = digits_data.test.images[:128], digits_data.test.labels[:128]
    observed = corruptions.drop_pixels(x, 0.7, seed=0)
    pgd = MimicGAN.pgd(digits_gan.generator, config="digits_dropped_pixels").recover(
        observed, seed=0)
    mimic = MimicGAN(digits_gan.generator, config="digits_dropped_pixels").recover(
        observed, seed=0)

    def accuracy(images):
        with torch.no_grad():
            return float((digits_classifier(images).argmax(1) == y).float().mean())

    raw, cleaned, baseline = accuracy(observed), accuracy(mimic.images), accuracy(pgd.images)
    assert cleaned > raw + 0.1 and cleaned > baseline + 0.1, (raw, baseline, cleaned)


# -- restarts: several surrogate initialisations, the lowest observation loss continues --------
TINY = MimicGANConfig(lr_surrogate=3e-3, lr_codes=0.05, outer_iterations=3, surrogate_steps=2,
                      code_steps=4)


def _observation_loss(result, observed):
    return float((result.mimicked - observed).abs().mean())


def test_restarts_continue_the_initialisation_with_the_lowest_observation_loss(digits_gan,
                                                                               digits_data):
    from captum_latent.inverse.mimicgan import _reinitialised

    observed = corruptions.blur_negative(digits_data.test.images[:25])
    cfg = replace(TINY, restarts=3, restart_alternations=1)
    model = MimicGAN(digits_gan.generator, config=cfg)
    chosen = model.recover(observed, seed=4)
    # by hand: each initialisation (0: the class's surrogate, k: torch seed 1000 * seed + k)
    # for one alternation, then the best one for all three
    starts = [model.surrogate_template] + [_reinitialised(model.surrogate_template, 4000 + k)
                                           for k in (1, 2)]
    short = MimicGAN(digits_gan.generator, config=replace(TINY, outer_iterations=1))
    losses = [_observation_loss(short.recover(observed, surrogate=s, seed=4), observed)
              for s in starts]
    assert len(set(losses)) == 3  # the initialisations differ
    best = starts[losses.index(min(losses))]
    full = MimicGAN(digits_gan.generator, config=TINY).recover(observed, surrogate=best, seed=4)
    assert torch.equal(chosen.images, full.images)
    assert all(torch.equal(a, b) for a, b in zip(chosen.surrogate.parameters(),
                                                 full.surrogate.parameters()))
    assert len(chosen.history) == TINY.outer_iterations
    # deterministic under a seed, and the caller's RNG is left alone
    state = torch.get_rng_state()
    again = model.recover(observed, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(again.images, chosen.images)


def test_restarts_are_skipped_without_a_fitted_surrogate(digits_gan, digits_data):
    observed = digits_data.test.images[:25]
    one = MimicGAN.pgd(digits_gan.generator, config=TINY).recover(observed, seed=0)
    many = MimicGAN.pgd(digits_gan.generator, config=replace(TINY, restarts=3)).recover(
        observed, seed=0)
    assert torch.equal(one.images, many.images)


def test_restarts_need_a_resettable_surrogate(digits_gan, digits_data):
    class Scale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.a * x

    model = MimicGAN(digits_gan.generator, surrogate=Scale(), config=replace(TINY, restarts=2))
    with pytest.raises(ValueError, match="reset_parameters"):
        model.recover(digits_data.test.images[:25], seed=0)


def test_restart_options_are_validated():
    with pytest.raises(ValueError, match="restarts"):
        MimicGANConfig(restarts=0)
    with pytest.raises(ValueError, match="restart_alternations"):
        MimicGANConfig(outer_iterations=2, restarts=2, restart_alternations=3)
    MimicGANConfig(outer_iterations=2, restarts=1, restart_alternations=3)  # unused: accepted


def test_shallow_surrogate_reset_restores_mask_and_skip():
    f = ShallowSurrogate((1, 8, 8))
    with torch.no_grad():
        f.mask.add_(1.0)
        f.skip.mul_(-1.0)
    f.reset_parameters()
    assert torch.equal(f.mask, torch.full((1, 8, 8), 0.1))
    assert torch.equal(f.skip, torch.ones(1, 1, 1))


def test_device_defaults_to_the_generators(digits_gan):
    model = MimicGAN(digits_gan.generator, config=TINY)
    assert model.device == next(digits_gan.generator.parameters()).device
    assert MimicGAN(digits_gan.generator, config=TINY, device="cpu").device.type == "cpu"
    with pytest.raises(ValueError, match="discriminator is on meta"):
        MimicGAN(digits_gan.generator, torch.nn.Linear(1, 1, device="meta"), config=TINY)


def test_results_score_each_recovery(digits_gan, digits_data):
    observed = corruptions.blur_negative(digits_data.test.images[:25])
    result = MimicGAN(digits_gan.generator, config=FAST).recover(observed, seed=0)
    expected = (observed - result.mimicked).abs().flatten(1).mean(1)  # FAST uses the L1 loss
    assert torch.allclose(result.observation_errors, expected, atol=1e-6)
    assert result.typicality.shape == (25,)
    assert float(result.typicality.min()) > 0 and float(result.typicality.max()) <= 1


def test_typicality_is_calibrated_on_the_prior(digits_gan):
    model = MimicGAN(digits_gan.generator, config="digits")
    gen = torch.Generator().manual_seed(99)  # not the calibration draws
    draws = torch.randn(4000, digits_gan.latent_dim, generator=gen).clamp(-2, 2)  # code box
    typical = model.typicality(draws)
    for level in (0.01, 0.05, 0.2):
        assert abs(float((typical < level).float().mean()) - level) < max(0.5 * level, 0.01)
    # the "average digit" at the prior's centre and a code far out are both atypical
    centre = torch.zeros(1, digits_gan.latent_dim)
    corner = torch.full((1, digits_gan.latent_dim), 2.0)
    assert float(model.typicality(centre)) < 0.001 and float(model.typicality(corner)) < 0.001
    with pytest.raises(ValueError, match="codes must be"):
        model.typicality(torch.zeros(3, digits_gan.latent_dim + 1))


def test_affine_surrogate_finds_the_shift_of_shifted_digits(digits_gan, digits_data):
    clean = digits_data.test.images[:48]
    observed = corruptions.affine_warp(clean, shift=(3.0, 0.0))
    result = MimicGAN(digits_gan.generator, surrogate="affine", config="digits").recover(
        observed, seed=0)
    shift = result.surrogate.warp.describe()["shift"]
    assert 2.0 <= shift[0] * 28 <= 4.0 and abs(shift[1] * 28) <= 1.0
    # the recoveries are the digits before the shift: closer to them than to the observations
    assert float((result.images - clean).abs().mean()) < \
        float((result.images - observed).abs().mean())
