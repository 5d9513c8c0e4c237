"""Grid difference operator, DCT Laplacian solves and perturbation samplers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_latent.attr import CovarianceGaussian, IndependentGaussian, TVGaussian
from captum_latent.attr._grid import (
    _diff,
    _diff_adjoint,
    _diff_matrix,
    _GridLaplacian,
    _n_edges,
    _pinv_l1_norm,
    _pinv_transpose,
)

shapes = st.tuples(st.integers(2, 9), st.integers(2, 9))


def _dense_d(shape):
    return torch.from_numpy(_diff_matrix(shape).toarray())


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_diff_matches_sparse_matrix_and_adjoint(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(2, *shape, generator=gen, dtype=torch.float64)
    y = torch.randn(2, _n_edges(shape), generator=gen, dtype=torch.float64)
    d = _dense_d(shape)
    assert torch.allclose(_diff(g), g.reshape(2, -1) @ d.T)
    # <D g, y> == <g, D^T y>
    lhs = (_diff(g) * y).sum()
    rhs = (g * _diff_adjoint(y, shape)).sum()
    assert torch.allclose(lhs, rhs)


@settings(max_examples=12, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_laplacian_solve_is_pseudo_inverse(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    b = torch.randn(3, *shape, generator=gen, dtype=torch.float64)
    lap = _GridLaplacian(shape, torch.float64, "cpu")
    d = _dense_d(shape)
    dense = torch.linalg.pinv(d.T @ d)
    expected = (b.reshape(3, -1) @ dense.T).reshape(b.shape)
    assert torch.allclose(lap.solve(b), expected, atol=1e-10)
    assert torch.allclose(lap.apply(b), (b.reshape(3, -1) @ (d.T @ d).T).reshape(b.shape))
    # D^{+T} b == pinv(D)^T b
    assert torch.allclose(
        _pinv_transpose(b, lap), b.reshape(3, -1) @ torch.linalg.pinv(d), atol=1e-10
    )
    x = lap.solve_shifted(b, 2.0, 0.5)
    assert torch.allclose(2.0 * lap.apply(x) + 0.5 * x, b, atol=1e-10)


def test_structure_identity_pinv_sigma_equals_s2_d():
    """pinv(D)^T Sigma = s2 D for the paper's covariance (DESIGN.md's claim, checked)."""
    shape, s2 = (5, 7), 0.3
    d = _dense_d(shape)
    sigma = TVGaussian().covariance(shape, s2)
    assert torch.allclose(torch.linalg.pinv(d).T @ sigma, s2 * d, atol=1e-10)


@pytest.mark.parametrize(
    "scheme", [TVGaussian(), IndependentGaussian(), CovarianceGaussian(torch.eye(12) + 0.3)]
)
def test_sampler_covariance_and_solve(scheme):
    shape, s2, n = (3, 4), 0.2, 200_000
    z = scheme.sample(n, shape, s2, generator=torch.Generator().manual_seed(0))
    flat = z.reshape(n, -1)
    emp = flat.T @ flat / n
    sigma = scheme.covariance(shape, s2)
    assert (emp - sigma).abs().max() < 0.03 * sigma.abs().max() + 0.01
    assert flat.mean(0).abs().max() < 0.01
    b = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = scheme.solve(b, s2).reshape(2, -1)
    assert torch.allclose(x @ sigma.T, b.reshape(2, -1), atol=1e-9)


def test_sampler_is_reproducible_by_generator():
    a = TVGaussian().sample(5, (4, 4), 0.1, generator=torch.Generator().manual_seed(3))
    b = TVGaussian().sample(5, (4, 4), 0.1, generator=torch.Generator().manual_seed(3))
    c = TVGaussian().sample(5, (4, 4), 0.1, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_pinv_l1_norm_subset_matches_exhaustive():
    for shape in [(10, 10), (9, 14), (16, 16)]:
        exact = _pinv_l1_norm(shape)
        subset = _pinv_l1_norm(shape, max_exact_pixels=0)
        assert math.isclose(exact, subset, rel_tol=1e-12)
        d = _dense_d(shape)
        assert math.isclose(exact, float(torch.linalg.pinv(d).abs().sum(0).max()), rel_tol=1e-8)


def test_covariance_gaussian_rejects_bad_matrices():
    with pytest.raises(ValueError, match="symmetric"):
        CovarianceGaussian(torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive definite"):
        CovarianceGaussian(torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(TypeError, match="matrix"):
        CovarianceGaussian([[1.0]])
    with pytest.raises(ValueError, match="sigma2"):
        TVGaussian().sample(2, (3, 3), -1.0)
