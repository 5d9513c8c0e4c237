from __future__ import annotations

import pytest
import torch

from captum_latent.core import StandardNormal, UniformPrior


def test_standard_normal_moments_scale_and_seed() -> None:
    problems = torch.zeros(50_000, dtype=torch.long)
    z = StandardNormal(4, scale=0.5).sample(problems, torch.Generator().manual_seed(0))
    assert z.shape == (50_000, 4)
    assert torch.allclose(z.std(0), torch.full((4,), 0.5), atol=0.01)
    again = StandardNormal(4, scale=0.5).sample(problems, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)


def test_uniform_prior_range() -> None:
    z = UniformPrior(3, low=-2.0, high=1.0).sample(torch.arange(10_000),
                                                    torch.Generator().manual_seed(1))
    assert float(z.min()) >= -2.0 and float(z.max()) <= 1.0
    assert abs(float(z.mean()) + 0.5) < 0.05


def test_prior_validation() -> None:
    with pytest.raises(ValueError, match="latent_dim"):
        StandardNormal(0)
    with pytest.raises(ValueError, match="scale"):
        StandardNormal(2, scale=0.0)
    with pytest.raises(ValueError, match="high"):
        UniformPrior(2, low=1.0, high=1.0)
    with pytest.raises(TypeError, match="generator"):
        StandardNormal(2).sample(torch.arange(3), 0)
