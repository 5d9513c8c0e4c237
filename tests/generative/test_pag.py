from __future__ import annotations

import math

import pytest
import torch

from captum_latent.generative import pag_score


def _closed_form(eigenvalues: torch.Tensor, sigma: float = 1.0) -> float:
    r = eigenvalues.double() / sigma**2
    return float(0.5 * (r - r.log() - 1).sum())


def test_exact_on_codes_with_known_singular_values() -> None:
    gen = torch.Generator().manual_seed(0)
    n, d = 500, 6
    q, _ = torch.linalg.qr(torch.randn(n, d, generator=gen, dtype=torch.float64))
    rot, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    nu = torch.tensor([0.2, 0.5, 1.0, 1.5, 3.0, 0.9], dtype=torch.float64)
    codes = math.sqrt(n) * q @ torch.diag(nu) @ rot.T  # Z^T Z / n = R diag(nu^2) R^T
    for sigma in (1.0, 0.7):
        assert pag_score(codes, sigma=sigma) == pytest.approx(_closed_form(nu**2, sigma), rel=1e-10)
    isotropic = torch.eye(d, dtype=torch.float64) * 0.49
    assert pag_score(codes, reference_covariance=isotropic) == pytest.approx(
        _closed_form(nu**2, 0.7), rel=1e-8
    )


def test_estimates_kl_for_gaussian_codes_with_known_covariance() -> None:
    gen = torch.Generator().manual_seed(1)
    d = 8
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    cov = a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)
    chol = torch.linalg.cholesky(cov)
    codes = torch.randn(400_000, d, generator=gen, dtype=torch.float64) @ chol.T
    expected = _closed_form(torch.linalg.eigvalsh(cov))
    assert pag_score(codes) == pytest.approx(expected, rel=1e-2)
    # against a non-isotropic prior: KL(N(0, C) || N(0, C)) = 0
    assert abs(pag_score(codes, reference_covariance=cov)) < 1e-3
    # N(0, I) codes agree with the N(0, I) prior
    assert pag_score(torch.randn(400_000, d, generator=gen)) < 1e-3


def test_validation() -> None:
    with pytest.raises(ValueError, match="n >= d"):
        pag_score(torch.randn(3, 5))
    with pytest.raises(ValueError, match="sigma"):
        pag_score(torch.randn(10, 2), sigma=0)
    with pytest.raises(ValueError, match="rank-deficient"):
        pag_score(torch.zeros(10, 2))
    with pytest.raises(ValueError, match="reference_covariance"):
        pag_score(torch.randn(10, 2), reference_covariance=torch.eye(3))
