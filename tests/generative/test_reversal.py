from __future__ import annotations

import pytest
import torch

from captum_latent.core import Adam, StandardNormal
from captum_latent.generative import GeneratorReversal


def test_reverses_generated_images_of_any_module(toy_generator) -> None:
    codes = torch.randn(16, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        images = toy_generator(codes)
    reversal = GeneratorReversal(toy_generator, tolerance=1e-6, max_iterations=1500,
                                 restart_patience=200)
    result = reversal.reverse(images, seed=0)
    assert result.codes.shape == (16, 6) and result.reconstructions.shape == images.shape
    assert float(result.converged.float().mean()) >= 0.9
    with torch.no_grad():
        again = toy_generator(result.codes)
    mse = (again - images).square().flatten(1).mean(1)
    assert torch.allclose(mse, result.mse, atol=1e-7)
    assert bool((mse[result.converged] <= 1e-6).all())


def test_paper_initialisation_and_single_image(toy_generator) -> None:
    with torch.no_grad():
        image = toy_generator(torch.randn(2, 6, generator=torch.Generator().manual_seed(4)))[0]
    reversal = GeneratorReversal(toy_generator, prior=StandardNormal(6, scale=1e-4),
                                 tolerance=1e-5, max_iterations=1500, restart_patience=None)
    result = reversal.reverse(image, seed=1)
    assert result.codes.shape == (1, 6) and int(result.restarts) == 0
    assert float(result.mse) <= 1e-3


def test_validation(toy_generator) -> None:
    reversal = GeneratorReversal(toy_generator, max_iterations=2)
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        reversal.reverse(torch.zeros(2, 1, 9, 8))
    with pytest.raises(TypeError, match="images"):
        reversal.reverse([0.0])
    with pytest.raises(ValueError, match="tolerance"):
        GeneratorReversal(toy_generator, tolerance=-1.0)


def test_zoo_gan_reversal_of_generated_images() -> None:
    """Done-criterion: per-image MSE < 1e-3 for >= 95% of 256 images x = G(z*)."""
    from captum_latent import zoo

    generator = zoo.digits_gan(progress=False).generator
    z_star = torch.randn(256, generator.latent_dim, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        images = generator(z_star)
    reversal = GeneratorReversal(generator, optimizer=Adam(lr=0.1), tolerance=5e-4,
                                 max_iterations=400, restart_patience=150)
    result = reversal.reverse(images, seed=0)
    with torch.no_grad():  # the zoo generator is in eval mode: codes alone reproduce images
        mse = (generator(result.codes) - images).square().flatten(1).mean(1)
    assert float((mse < 1e-3).float().mean()) >= 0.95
    assert torch.allclose(mse, result.mse, atol=1e-6)
