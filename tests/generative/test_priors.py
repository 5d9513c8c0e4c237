from __future__ import annotations

import pytest
import torch

from captum_latent.core import LatentSearch, Reconstruction
from captum_latent.generative import GaussianPrior, PGANConfig, PGANPrior


def _draw(prior, n: int, seed: int = 0) -> torch.Tensor:
    return prior.sample(torch.zeros(n, dtype=torch.long), torch.Generator().manual_seed(seed))


def _correlated_codes(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(4, 4, generator=gen)
    cov = a @ a.T + 0.2 * torch.eye(4)
    mean = torch.tensor([1.0, -2.0, 0.0, 0.5])
    codes = mean + torch.randn(n, 4, generator=gen) @ torch.linalg.cholesky(cov).T
    return codes, mean, cov


def test_gaussian_prior_recovers_mean_and_full_covariance() -> None:
    codes, mean, cov = _correlated_codes(50_000)
    prior = GaussianPrior.fit(codes)
    assert torch.allclose(prior.mean, mean, atol=0.05)
    assert torch.allclose(prior.covariance, cov, atol=0.1 * float(cov.abs().max()))
    z = _draw(prior, 50_000, seed=1)
    assert torch.allclose(torch.cov(z.T), cov, atol=0.1 * float(cov.abs().max()))
    assert torch.equal(z, _draw(prior, 50_000, seed=1))


def test_gaussian_prior_validation() -> None:
    with pytest.raises(ValueError, match="positive definite"):
        GaussianPrior(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="covariance"):
        GaussianPrior(torch.zeros(2), torch.eye(3))
    with pytest.raises(ValueError, match="codes"):
        GaussianPrior.fit(torch.zeros(1, 3))


def test_pgan_learns_a_bimodal_code_distribution() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])
    which = torch.randint(0, 2, (2000,), generator=gen)
    codes = centres[which] + 0.2 * torch.randn(2000, 2, generator=gen)
    prior = PGANPrior.fit(codes, config=PGANConfig(hidden=64, steps=1500), seed=0)
    z = _draw(prior, 4000)
    near = torch.cdist(z, centres).min(1).values
    # most PGAN draws land near a mode; a Gaussian fit puts most mass between the modes
    gauss = _draw(GaussianPrior.fit(codes), 4000)
    assert float((near < 0.6).float().mean()) > 0.7
    assert float((torch.cdist(gauss, centres).min(1).values < 0.6).float().mean()) < 0.4
    both = (z[:, 0] > 0).float().mean()
    assert 0.2 < float(both) < 0.8  # both modes are used
    assert len(prior.losses) > 0


def test_priors_plug_into_the_engine(toy_generator) -> None:
    codes, _, _ = _correlated_codes(500)
    codes = torch.cat([codes, codes[:, :2]], 1)  # 6-dimensional like the toy generator
    with torch.no_grad():
        images = toy_generator(codes[:3])
    for prior in (GaussianPrior.fit(codes),
                  PGANPrior.fit(codes, config=PGANConfig(hidden=16, steps=50), seed=0)):
        result = LatentSearch(toy_generator, prior=prior, max_iterations=3).search(
            Reconstruction(images), samples_per_problem=2, seed=0
        )
        assert result.codes.shape == (3, 2, 6)
    with pytest.raises(ValueError, match="latent_dim"):
        LatentSearch(toy_generator, prior=GaussianPrior.fit(codes[:, :4]))


def test_pgan_config_validation() -> None:
    with pytest.raises(ValueError, match="layers"):
        PGANConfig(layers=1)
    with pytest.raises(ValueError, match="steps"):
        PGANConfig(steps=0)


@pytest.mark.slow
def test_zoo_learned_priors_against_standard_normal() -> None:
    """Done-criterion: PGAN codes give more confident digits and a lower PAG than N(0, I)."""
    from captum_latent import zoo
    from captum_latent.core import StandardNormal
    from captum_latent.generative import GeneratorReversal, pag_score

    generator = zoo.digits_gan(progress=False).generator
    classifier = zoo.digits_classifier(progress=False)
    images = zoo.digits().train.images[:600]
    reversal = GeneratorReversal(generator, prior=StandardNormal(32, scale=1e-4),
                                 tolerance=2e-3, max_iterations=300, restart_patience=None)
    codes = reversal.reverse(images, seed=0).codes

    def confidence(z: torch.Tensor) -> float:
        with torch.no_grad():
            return float(classifier(generator(z)).softmax(1).amax(1).mean())

    def pag_against(z: torch.Tensor) -> float:
        second_moment = z.T.double() @ z.double() / len(z)
        return pag_score(codes, reference_covariance=second_moment)

    n = 3000
    normal = torch.randn(n, 32, generator=torch.Generator().manual_seed(5))
    pgan = _draw(PGANPrior.fit(codes, seed=0), n, seed=5)
    gauss = _draw(GaussianPrior.fit(codes), n, seed=5)
    assert confidence(pgan) > confidence(normal)
    assert pag_against(pgan) < pag_score(codes)  # pag_score(codes) is PAG against N(0, I)
    assert pag_against(gauss) < pag_score(codes)
