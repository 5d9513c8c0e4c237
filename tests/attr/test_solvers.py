"""LEG-TV LP solvers: the fast solver against the cvxpy reference, and its certificate."""

from __future__ import annotations

import math

import pytest
import torch

from captum_latent.attr import (
    CvxpyTVSolver,
    FastTVSolver,
    GeneralTVProblem,
    StructuredTVProblem,
    TVGaussian,
)
from captum_latent.attr._grid import _diff


def _moments(shape, seed, n=400, s2=0.1):
    """Moment map of a noisy piecewise-constant linear model (a realistic LEG-TV instance)."""
    gen = torch.Generator().manual_seed(seed)
    h, w = shape
    true = torch.zeros(h, w, dtype=torch.float64)
    true[h // 4 : h // 2, w // 4 : 3 * w // 4] = 1.0
    true[h // 2 : 3 * h // 4, w // 3 : w // 2] = -0.5
    z = TVGaussian().sample(n, shape, s2, generator=gen)
    y = (z * true).sum(dim=(1, 2)) + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
    return (y[:, None, None] * z).mean(0, keepdim=True)


def _random_moments(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, *shape, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("size", [14, 28])
@pytest.mark.parametrize("kind", ["model", "random"])
def test_fast_solver_matches_cvxpy(size, kind):
    b = _moments((size, size), 0) if kind == "model" else _random_moments((size, size), 1)
    prob = StructuredTVProblem.from_moments(b, 0.1, k_l=0.05)
    ref = CvxpyTVSolver().solve(prob)
    fast = FastTVSolver(tol=1e-5).solve(prob)
    opt = ref.certificate.objective.item()
    cert = fast.certificate
    assert bool(cert.converged.all())
    assert abs(cert.objective.item() - opt) <= 1e-4 * opt
    assert cert.feasibility_violation.item() <= 1e-6 * prob.bound.item()
    # the certificate is honest: dual bound below the optimum, objective above it
    assert cert.dual_objective.item() <= opt * (1 + 1e-7)
    assert cert.objective.item() >= opt * (1 - 1e-7)
    assert cert.relative_gap.item() <= 1e-5
    # the returned objective is the objective of the returned map
    assert math.isclose(_diff(fast.maps).abs().sum().item(), cert.objective.item(), rel_tol=1e-9)


def test_general_formulation_agrees_with_structured():
    shape, s2 = (6, 7), 0.2
    b = _moments(shape, 3, s2=s2)
    prob = StructuredTVProblem.from_moments(b, s2, k_l=0.1)
    general = GeneralTVProblem(b, TVGaussian().covariance(shape, s2), prob.bound)
    a = CvxpyTVSolver().solve(prob)
    g = CvxpyTVSolver().solve(general)
    a_obj, g_obj = a.certificate.objective.item(), g.certificate.objective.item()
    assert math.isclose(a_obj, g_obj, rel_tol=1e-5)


def test_batch_and_penalty_extremes():
    b = torch.cat([_moments((10, 10), s) for s in range(3)])
    base = StructuredTVProblem.from_moments(b, 0.1, k_l=0.1)
    bound = base.bound.clone()
    bound[1] = base.l_max[1] * 1.5  # above L_max: the answer is exactly zero
    bound[2] = 0.0  # L = 0: the empirical LEG (up to a constant), Lemma 3
    prob = StructuredTVProblem(base.c, 0.1, bound, (10, 10))
    sol = FastTVSolver(tol=1e-6).solve(prob)
    assert sol.maps[1].abs().max().item() == 0.0
    leg = TVGaussian().solve(b[2:3], 0.1)[0]
    assert torch.allclose(sol.maps[2], leg - leg.mean(), atol=1e-9)
    single = FastTVSolver(tol=1e-6).solve(StructuredTVProblem.from_moments(b[:1], 0.1, k_l=0.1))
    assert math.isclose(
        sol.certificate.objective[0].item(), single.certificate.objective.item(), rel_tol=2e-6
    )


def test_warm_start_reaches_same_optimum_faster():
    b = _moments((14, 14), 5)
    solver = FastTVSolver(tol=1e-5)
    first = solver.solve(StructuredTVProblem.from_moments(b, 0.1, k_l=0.10))
    cold = solver.solve(StructuredTVProblem.from_moments(b, 0.1, k_l=0.09))
    warm = solver.solve(StructuredTVProblem.from_moments(b, 0.1, k_l=0.09), warm_start=first.state)
    assert math.isclose(
        cold.certificate.objective.item(), warm.certificate.objective.item(), rel_tol=2e-5
    )
    assert warm.certificate.iterations <= cold.certificate.iterations


def test_solver_input_validation():
    with pytest.raises(ValueError, match="tol"):
        FastTVSolver(tol=0)
    with pytest.raises(ValueError, match="alpha"):
        FastTVSolver(alpha=2.5)
    with pytest.raises(ValueError, match="max_iter"):
        FastTVSolver(max_iter=0)
    with pytest.raises(TypeError, match="TV problem"):
        FastTVSolver().solve(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="edges"):
        StructuredTVProblem(torch.zeros(1, 5), 0.1, torch.ones(1), (3, 3))
    with pytest.raises(ValueError, match="sigma2"):
        StructuredTVProblem(torch.zeros(1, 12), 0.0, torch.ones(1), (3, 3))
    with pytest.raises(ValueError, match="bound"):
        StructuredTVProblem(torch.zeros(1, 12), 0.1, -torch.ones(1), (3, 3))


def test_float32_problem_matches_float64():
    """Single precision (e.g. on a GPU): same optimum to the tolerance, still feasible."""
    b = torch.cat([_moments((12, 12), s) for s in range(2)])
    p64 = StructuredTVProblem.from_moments(b, 0.1, k_l=0.05)
    p32 = StructuredTVProblem.from_moments(b.float(), 0.1, k_l=0.05)
    s64 = FastTVSolver().solve(p64).certificate
    s32 = FastTVSolver().solve(p32).certificate
    assert s32.objective.dtype == torch.float32 and bool(s32.converged.all())
    assert torch.allclose(s32.objective.double(), s64.objective, rtol=3e-4)
    assert bool((s32.feasibility_violation <= 1e-6 * p32.bound).all())


def test_iterate_averaging_is_optional():
    b = _moments((14, 14), 2)
    prob = StructuredTVProblem.from_moments(b, 0.1, k_l=0.05)
    ref = CvxpyTVSolver().solve(prob).certificate.objective.item()
    for every in (0, 1, 5, 7):
        cert = FastTVSolver(tol=1e-4, average_every=every).solve(prob).certificate
        assert bool(cert.converged.all())
        assert abs(cert.objective.item() - ref) <= 1e-4 * ref
    with pytest.raises(ValueError, match="average_every"):
        FastTVSolver(average_every=-1)
    with pytest.raises(ValueError, match="warm_start"):
        FastTVSolver().solve(
            StructuredTVProblem.from_moments(torch.cat([b, b]), 0.1, k_l=0.05),
            warm_start=FastTVSolver().solve(prob).state,
        )
