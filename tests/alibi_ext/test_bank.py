"""The bank of free generator samples that starts in-painting searches (alibi_ext/_bank.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from alibi_ext import GANInpainter, QuickshiftSegmentation
from alibi_ext._bank import GeneratorBank
from captum_latent.core import MaskedReconstruction


@pytest.fixture(scope="module")
def inpainter(digits_gan):
    return GANInpainter(digits_gan.generator, xi=0.01)


@pytest.fixture(scope="module")
def bank(inpainter):
    return GeneratorBank(inpainter.search, 1024, seed=0)


def _masks(image, n, p_sample, seed, anchor=(2, 7)):
    seg = torch.as_tensor(QuickshiftSegmentation(15)(image.permute(1, 2, 0).numpy()))
    rows = torch.as_tensor(np.random.default_rng(seed).random((n, 15)) >= p_sample)
    rows[:, list(anchor)] = True
    return rows[:, seg].unsqueeze(1)


def test_masked_errors_match_the_objective_the_search_minimises(bank, digits_data):
    x = digits_data.test.images[4]
    masks = _masks(x, 12, 0.5, seed=0)
    errors = bank.session(x).masked_errors(masks)
    codes = bank.codes[:5]
    images = bank.search.generate(codes)
    for i in range(len(masks)):  # the objective on the bank's own images gives the same numbers
        expected = MaskedReconstruction(x[None], masks[i:i + 1].float())(
            images, codes, torch.zeros(5, dtype=torch.long))
        torch.testing.assert_close(errors[i, :5], expected, rtol=1e-4, atol=1e-6)


def test_bank_inpaintings_meet_their_thresholds_and_keep_the_pixels(inpainter, bank, digits_data):
    x = digits_data.test.images[6]
    for p_sample in (0.5, 1.0):
        masks = _masks(x, 60, p_sample, seed=1)
        out = inpainter.inpaint(x, masks, seed=0, bank=bank.session(x))
        assert bool(out.converged.all())
        assert bool((out.errors <= out.thresholds + 1e-6).all())
        assert bool((out.thresholds <= 0.01).all())
        kept = masks.expand_as(out.images)
        assert torch.equal(out.images[kept], x.expand_as(out.images)[kept])


def test_bank_starts_are_cheaper_than_random_starts(inpainter, digits_data):
    """The point of the bank: fewer gradient steps per in-painting (here on 4 digits)."""
    bank = GeneratorBank(inpainter.search, 4096, seed=0)
    with_bank, without = [], []
    for i in (5, 17, 42, 77):
        x = digits_data.test.images[i]
        masks = _masks(x, 40, 0.5, seed=i)
        with_bank.append(inpainter.inpaint(x, masks, seed=0, bank=bank.session(x))
                         .iterations.float().mean())
        without.append(inpainter.inpaint(x, masks, seed=0).iterations.float().mean())
    assert float(torch.stack(with_bank).mean()) < 0.5 * float(torch.stack(without).mean())


def test_one_mask_asked_again_gets_distinct_starts(bank, digits_data):
    """An anchor alone (one mask, requested again and again) does not share a handful of
    starts: after its first request every start is a nearest code plus noise."""
    x = digits_data.test.images[6]
    masks = _masks(x, 1, 1.0, seed=0, anchor=(3,)).expand(30, -1, -1, -1)
    session = bank.session(x)
    gen = torch.Generator().manual_seed(0)
    codes = torch.cat([session.starts(masks, gen), session.starts(masks, gen)])
    assert len(torch.unique(codes, dim=0)) == len(codes)


def test_session_rejects_an_image_the_generator_cannot_make(bank):
    with pytest.raises(ValueError, match="shape"):
        bank.session(torch.zeros(3, 28, 28))
    with pytest.raises(ValueError, match="NaN"):
        bank.session(torch.full((1, 28, 28), float("nan")))
    with pytest.raises(TypeError, match="LatentSearch"):
        GeneratorBank(object(), 16)


def test_bank_size_is_capped_by_memory(inpainter):
    assert GeneratorBank(inpainter.search, 10**9).size < 10**9
    with pytest.raises(ValueError, match="bank size"):
        GeneratorBank(inpainter.search, 0)


def test_inpaint_refuses_a_bank_of_another_generator(inpainter, digits_data):
    other = torch.nn.Sequential(torch.nn.Linear(5, 784), torch.nn.Sigmoid(),
                                torch.nn.Unflatten(1, (1, 28, 28)))
    bank = GeneratorBank(GANInpainter(other, xi=0.01, latent_dim=5).search, 64)
    x = digits_data.test.images[0]
    with pytest.raises(ValueError, match="another generator"):
        inpainter.inpaint(x, _masks(x, 4, 0.5, seed=0), bank=bank.session(x))


class _Dark(torch.nn.Module):  # images near 0: a bright superpixel is out of reach
    latent_dim = 4

    def forward(self, z):
        return 0.01 * torch.sigmoid(z.sum(1)).reshape(-1, 1, 1, 1).expand(-1, 1, 28, 28)


def _dark_sampler(**kwargs):
    from alibi_ext import GANInpaintingSampler

    image = np.ones((28, 28, 1), dtype=np.float32)
    dark = _Dark()
    bank = GeneratorBank(GANInpainter(dark, xi=0.01).search, 64)
    return image, GANInpaintingSampler(
        lambda x: np.zeros(len(x), dtype=np.int64), lambda _: np.arange(784).reshape(28, 28) // 196,
        True, image, dark, seed=0, bank=bank, max_iterations=5, p_sample=1.0, **kwargs)


def test_strict_xi_fails_clearly_after_growing_requests():
    """A generator that cannot match the kept pixels: the sampler asks for more masks after each
    empty search (1, then 16, then 32), then, with strict_xi=True, says what failed."""
    _, sampler = _dark_sampler(strict_xi=True)
    with pytest.raises(RuntimeError, match="no in-painting of anchor"):
        sampler.perturbation((1,), 1)
    assert sampler.stats["searches"] == 3 and sampler.stats["dropped"] == 1 + 16 + 32
    assert sampler.stats["over_threshold"] == 0


def test_unreachable_anchor_is_served_its_closest_inpaintings_with_a_warning():
    """By default the explanation goes on: after the same three empty searches, the closest
    in-paintings of the last one are served (closest first), counted and warned about once;
    later requests for that anchor take whatever its searches make, without more warnings."""
    image, sampler = _dark_sampler()
    with pytest.warns(RuntimeWarning, match="closest in-paintings above it"):
        images, masks = sampler.perturbation((1,), 20)
    assert images.shape == (20, 28, 28, 1) and masks[:, 1].all()
    # searches of 20, 20 and 40 masks (doubling after the first empty one); the last one's served
    assert sampler.stats["searches"] == 3 and sampler.stats["over_threshold"] == 40
    assert sampler.relaxed_anchors == [(1,)]
    kept = np.arange(784).reshape(28, 28) // 196 == 1
    np.testing.assert_array_equal(images[:, kept, 0], 1.0)  # kept pixels stay the image's
    # the generator's flat grey g is closer to the kept white the larger it is: closest first
    grey = images[:, ~kept, 0][:, 0]
    assert np.all(np.diff(grey) <= 1e-7) and grey[0] > grey[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        more, _ = sampler.perturbation((1,), 30)  # 20 left + one search of 10, all served
    assert len(more) == 30 and sampler.stats["searches"] == 4
    assert sampler.stats["over_threshold"] == 40 + 10
    assert sampler.stats["served"] == 50


def test_searches_from_the_bank_have_their_own_step_budget(digits_gan, bank, digits_data):
    """A search started from the bank is dropped after bank_max_iterations (its successes come
    early); searches from N(0, I) keep max_iterations."""
    x = digits_data.test.images[3]
    masks = _masks(x, 6, 0.5, seed=1)
    tight = GANInpainter(digits_gan.generator, xi=1e-7, max_iterations=40,
                         bank_max_iterations=7, restart_patience=None)
    from_bank = tight.inpaint(x, masks, seed=0, bank=bank.session(x))
    assert not from_bank.converged.any() and from_bank.iterations.max() == 7
    fresh = tight.inpaint(x, masks, seed=0)
    assert not fresh.converged.any() and fresh.iterations.max() == 40
    # never more than max_iterations, and None means max_iterations
    assert GANInpainter(digits_gan.generator, xi=1e-7, max_iterations=5,
                        bank_max_iterations=None).inpaint(
        x, masks, seed=0, bank=bank.session(x)).iterations.max() == 5
    for bad in (0, 2.5, True):
        with pytest.raises((ValueError, TypeError), match="bank_max_iterations"):
            GANInpainter(digits_gan.generator, xi=0.01, bank_max_iterations=bad)
