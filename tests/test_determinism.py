"""The same seed gives the same explanation on the CPU, for every explainer.

Each explainer is built twice (independent instances) and called with the same seed: the
outputs are identical, bit for bit; a different seed gives a different answer (so the test
cannot pass by ignoring the seed). Cheap settings: the point is reproducibility, not quality.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alibi_ext import DISC, GANAnchorImage
from captum_latent.attr import LEG, LEGTV
from captum_latent.counterfactual import FixedSchedule, PixelSemantics, TVL2Prior
from captum_latent.generative import GeneratorReversal
from captum_latent.inverse import MimicGAN, MimicGANConfig, corruptions


@pytest.fixture(scope="module")
def images(digits_data) -> torch.Tensor:
    return digits_data.test.images[:2].clone()


@pytest.mark.parametrize("cls", [LEG, LEGTV])
def test_leg_and_legtv(cls, digits_classifier, images) -> None:
    def run(seed):
        return cls(digits_classifier).attribute(images, target=[3, 5], n_samples=60, seed=seed)

    first, again, other = run(11), run(11), run(12)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def _quadrants(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return (2 * (np.arange(h)[:, None] >= h // 2) + (np.arange(w)[None, :] >= w // 2)).astype(int)


def test_gan_anchor_image(digits_classifier, digits_gan, images) -> None:
    def predict(x):
        with torch.no_grad():
            images = torch.as_tensor(x).permute(0, 3, 1, 2)
            return torch.softmax(digits_classifier(images), 1).numpy()

    image = images[0].permute(1, 2, 0).numpy()

    def run(seed):
        explainer = GANAnchorImage(predict, (28, 28, 1), digits_gan.generator, seed=seed,
                                   segmentation_fn=_quadrants, pool_size=40, max_iterations=20,
                                   xi=0.05)
        return explainer.explain(image, threshold=0.8, max_anchor_size=1, stop_on_first=True,
                                 coverage_samples=100, batch_size=20, min_samples_start=20)

    first, again = run(5), run(5)  # (seeds that differ: tests/alibi_ext/test_samplers.py)
    assert first.raw["feature"] == again.raw["feature"]
    assert float(first.precision) == float(again.precision)
    assert np.array_equal(first.data["gan_samples"]["images"], again.data["gan_samples"]["images"])


def test_mimicgan(digits_gan, digits_data) -> None:
    clean = digits_data.test.images[:25]
    observed = corruptions.drop_pixels(clean, seed=0)
    config = MimicGANConfig(outer_iterations=2, surrogate_steps=2, code_steps=5)

    def run(seed):
        return MimicGAN(digits_gan.generator, config=config).recover(observed, seed=seed)

    first, again = run(1), run(1)
    assert torch.equal(first.images, again.images) and torch.equal(first.codes, again.codes)
    assert torch.equal(first.mimicked, again.mimicked) and first.history == again.history


def test_generator_reversal(digits_gan, images) -> None:
    def run(seed):
        return GeneratorReversal(digits_gan.generator, max_iterations=30).reverse(images, seed=seed)

    first, again, other = run(4), run(4), run(5)
    assert torch.equal(first.codes, again.codes)
    assert not torch.equal(first.codes, other.codes)


def test_disc(digits_classifier, images) -> None:
    x = images.permute(0, 2, 3, 1).numpy()

    def run(seed):
        explainer = DISC(digits_classifier, shape=(28, 28, 1), prior=TVL2Prior(),
                         semantics=PixelSemantics(), schedule=FixedSchedule(15), seed=seed)
        return explainer.explain(x, target_class=[1, 2]).cf["X"]

    first, again = run(3), run(3)
    assert np.array_equal(first, again)
