"""GAN in-painting samplers: kept superpixels exact, masked error under xi, coverage is free."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alibi_ext import GANInpainter, GANInpaintingSampler, QuickshiftSegmentation
from alibi_ext.samplers import DEFAULT_XI, DiverseEncoderSampler


class _CountingGenerator(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.latent_dim = inner.latent_dim
        self.calls = 0

    def forward(self, z):
        self.calls += 1
        return self.inner(z)


@pytest.fixture(scope="module")
def setup(digits_gan, digits_classifier, digits_data):
    def predict(x):
        with torch.no_grad():
            return digits_classifier(torch.as_tensor(x).permute(0, 3, 1, 2)).argmax(1).numpy()

    image = digits_data.test.images[3].permute(1, 2, 0).numpy()
    return predict, image, digits_gan.generator


def _sampler(setup, **kwargs):
    predict, image, generator = setup
    return GANInpaintingSampler(predict, QuickshiftSegmentation(15), True, image,
                                _CountingGenerator(generator), **kwargs)


def test_inpaintings_keep_superpixels_exactly_and_fill_the_rest(setup):
    sampler = _sampler(setup, seed=0, pool_size=64)
    image = setup[1]
    anchor = (2, 7)
    covered_true, covered_false, labels, rows, _, order = sampler((5, anchor), 40)
    images, _ = sampler.examples[anchor]
    assert order == 5 and rows.shape == (40, 15) and labels.shape == (40,)
    assert rows[:, list(anchor)].all() and set(np.unique(rows)) <= {0, 1}
    # every served example keeps exactly the pixels of its row's superpixels
    for img, row in zip(images, rows[: len(images)]):
        kept = row[sampler.segments].astype(bool)
        assert np.array_equal(img[kept], image[kept])
        if (~kept).any():
            assert not np.allclose(img[~kept], image[~kept])  # in-painted, not copied
    assert len(covered_true) + len(covered_false) <= 2 * sampler.n_covered_ex


def test_masked_error_is_below_the_drawn_thresholds_and_xi(setup, digits_gan, digits_data):
    inpainter = GANInpainter(digits_gan.generator, xi=DEFAULT_XI)
    x = digits_data.test.images[5]
    rows = torch.as_tensor(np.random.default_rng(1).random((32, 15)) >= 0.5)
    seg = torch.as_tensor(QuickshiftSegmentation(15)(x.permute(1, 2, 0).numpy()))
    masks = rows[:, seg].unsqueeze(1)
    out = inpainter.inpaint(x, masks, seed=0)
    assert out.converged.float().mean() >= 0.9
    ok = out.converged
    assert bool((out.errors[ok] <= out.thresholds[ok] + 1e-7).all())
    assert bool((out.thresholds <= DEFAULT_XI).all() and (out.thresholds >= 0).all())
    # the reported error is the generator's masked MSE; recompute it from the codes
    with torch.no_grad():
        regenerated = digits_gan.generator(out.codes[ok])
    m = masks[ok].float()
    mse = ((regenerated - x) ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    assert torch.allclose(mse, out.errors[ok], atol=1e-5)


def test_one_shared_mask_uses_sort_and_match(setup, digits_gan, digits_data):
    inpainter = GANInpainter(digits_gan.generator, xi=DEFAULT_XI)
    masks = torch.zeros(16, 1, 28, 28, dtype=torch.bool)
    masks[:, :, 6:22, 6:22] = True
    out = inpainter.inpaint(digits_data.test.images[0], masks, seed=0)
    ok = out.converged
    assert ok.all()
    assert bool((out.errors <= out.thresholds + 1e-7).all())
    assert torch.equal(out.images[:, :, 6:22, 6:22],
                       digits_data.test.images[0][None, :, 6:22, 6:22].expand(16, -1, -1, -1))


def test_masks_keeping_nothing_get_free_generator_samples(digits_gan, digits_data):
    """A sampled perturbation may keep no superpixel: any G(z) is then a valid in-painting."""
    inpainter = GANInpainter(digits_gan.generator, xi=DEFAULT_XI, max_iterations=200)
    x = digits_data.test.images[0]
    masks = torch.zeros(6, 1, 28, 28, dtype=torch.bool)
    masks[1, :, 4:14, 4:14] = True
    masks[4, :, 10:20, 8:24] = True
    out = inpainter.inpaint(x, masks, seed=0)
    empty = torch.tensor([True, False, True, True, False, True])
    assert bool(out.converged[empty].all()) and bool((out.errors[empty] == 0).all())
    with torch.no_grad():
        regenerated = digits_gan.generator.eval()(out.codes[empty])
    assert torch.allclose(regenerated, out.images[empty], atol=1e-6)
    for i in (1, 4):  # the non-empty masks are in-painted as usual
        m = masks[i].expand_as(x)
        assert torch.equal(out.images[i][m], x[m])
        assert float(out.errors[i]) <= DEFAULT_XI or not bool(out.converged[i])
    assert len({tuple(c.tolist()) for c in out.codes[empty]}) == 4  # independent draws
    all_empty = inpainter.inpaint(x, torch.zeros(3, 1, 28, 28, dtype=torch.bool), seed=1)
    assert all_empty.images.shape == (3, 1, 28, 28) and bool(all_empty.converged.all())


def test_coverage_samples_never_call_the_generator(setup):
    sampler = _sampler(setup, seed=0)
    calls = sampler.inpainter.search.generator.calls
    [masks] = sampler((0, ()), 5000, compute_labels=False)
    assert masks.shape == (5000, 15)
    assert sampler.inpainter.search.generator.calls == calls
    assert sampler.stats["searches"] == 0


def test_prefetch_serves_a_whole_round_from_one_search(setup):
    sampler = _sampler(setup, seed=0, pool_size=64)
    anchors = [(1,), (4,), (1, 9)]
    sampler.prefetch(anchors, 20)
    assert sampler.stats["searches"] == 1
    for anchor in anchors:
        sampler((0, anchor), 20)
    assert sampler.stats["searches"] == 1 and sampler.stats["served"] == 60


def test_same_seed_same_samples(setup):
    a = _sampler(setup, seed=3, pool_size=32)((0, (0,)), 16)
    b = _sampler(setup, seed=3, pool_size=32)((0, (0,)), 16)
    assert np.array_equal(a[3], b[3]) and np.array_equal(a[2], b[2])


def test_diverse_encoder_sampler(setup, digits_gan, digits_data):
    from captum_latent.generative.diverse_encoder import (
        DiverseEncoderConfig,
        train_diverse_encoder,
    )

    encoder = train_diverse_encoder(digits_gan.generator, digits_data.train.images[:256],
                                    config=DiverseEncoderConfig(steps=30), seed=0)
    predict, image, generator = setup
    sampler = DiverseEncoderSampler(predict, QuickshiftSegmentation(15), True, image,
                                    generator, encoder=encoder, seed=0, pool_size=32)
    _, _, labels, rows, _, _ = sampler((0, (3,)), 24)
    images, _ = sampler.examples[(3,)]
    for img, row in zip(images, rows):
        kept = row[sampler.segments].astype(bool)
        assert np.array_equal(img[kept], image[kept])
    with pytest.raises(TypeError, match="DiverseEncoder"):
        DiverseEncoderSampler(predict, QuickshiftSegmentation(15), True, image, generator,
                              encoder=torch.nn.Linear(2, 2))


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda img: img.transpose(2, 0, 1), ValueError, "channel-last"),
        (lambda img: img[..., 0], ValueError, "channel-last"),
        (lambda img: np.where(img > 0.5, np.nan, img), ValueError, "NaN"),
    ],
)
def test_sampler_rejects_bad_images(setup, change, error, match):
    predict, image, generator = setup
    with pytest.raises(error, match=match):
        GANInpaintingSampler(predict, QuickshiftSegmentation(15), True, change(image), generator)


def test_inpainter_rejects_bad_masks(digits_gan, digits_data):
    inpainter = GANInpainter(digits_gan.generator, xi=0.01)
    x = digits_data.test.images[0]
    with pytest.raises(TypeError, match="boolean"):
        inpainter.inpaint(x, torch.ones(2, 1, 28, 28))
    with pytest.raises(ValueError, match="empty"):
        inpainter.inpaint(x, torch.ones(0, 1, 28, 28, dtype=torch.bool))
    with pytest.raises(ValueError, match="generator's output"):
        inpainter.inpaint(x[:, :20], torch.ones(2, 1, 28, 28, dtype=torch.bool))
    with pytest.raises(ValueError, match="xi"):
        GANInpainter(digits_gan.generator, xi=0)
