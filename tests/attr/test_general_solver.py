"""The fast solver on general covariances (``GeneralTVProblem``) against the cvxpy reference."""

from __future__ import annotations

import math

import pytest
import torch

from captum_latent import LEGTV
from captum_latent.attr import (
    CovarianceGaussian,
    CvxpyTVSolver,
    FastTVSolver,
    GeneralTVProblem,
    IndependentGaussian,
    StructuredTVProblem,
    TVGaussian,
)
from captum_latent.attr._general import _dual_bound, _factorise
from captum_latent.attr._grid import _diff, _GridLaplacian


def _spd(size: int, seed: int, kind: str) -> torch.Tensor:
    """Random SPD covariances: a Wishart matrix, or a smooth (squared-exponential) kernel on
    the grid with a random length scale plus a nugget (badly conditioned, image-like)."""
    p = size * size
    gen = torch.Generator().manual_seed(seed)
    if kind == "wishart":
        q = torch.randn(p, p, generator=gen, dtype=torch.float64)
        return 0.1 * (q @ q.T / p + 0.1 * torch.eye(p, dtype=torch.float64))
    ell = 1.0 + 2.0 * float(torch.rand(1, generator=gen))
    ij = torch.cartesian_prod(torch.arange(size), torch.arange(size)).double()
    d2 = ((ij[:, None] - ij[None]) ** 2).sum(-1)
    return 0.1 * (torch.exp(-d2 / (2 * ell**2)) + 0.05 * torch.eye(p, dtype=torch.float64))


def _moments(cov: torch.Tensor, size: int, seed: int, n: int = 500) -> torch.Tensor:
    """Moment map of a noisy piecewise-constant linear model under N(0, cov)."""
    gen = torch.Generator().manual_seed(100 + seed)
    true = torch.zeros(size, size, dtype=torch.float64)
    true[size // 4 : size // 2, size // 4 : 3 * size // 4] = 1.0
    true[size // 2 : 3 * size // 4, size // 3 : size // 2] = -0.5
    z = torch.randn(n, size * size, generator=gen, dtype=torch.float64)
    z = z @ torch.linalg.cholesky(cov).T
    y = z @ true.reshape(-1) + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
    return (y[:, None] * z).mean(0).reshape(1, size, size)


def _problem(size: int, seed: int, kind: str, k_l: float = 0.05) -> GeneralTVProblem:
    cov = _spd(size, seed, kind)
    b = _moments(cov, size, seed)
    bound = StructuredTVProblem.from_moments(b, 0.1, k_l=k_l).bound  # L = k_l ||D^{+T} b||_inf
    return GeneralTVProblem(b, cov, bound)


def _residual(problem: GeneralTVProblem, maps: torch.Tensor) -> torch.Tensor:
    lap = _GridLaplacian(problem.shape, torch.float64, "cpu")
    sg = (maps.reshape(maps.shape[0], -1) @ problem.covariance).reshape(maps.shape)
    return _diff(lap.solve(problem.b - sg))  # D^{+T} (b - Sigma g)


@pytest.mark.parametrize(
    "size, seed, kind",
    [(8, 0, "wishart"), (8, 1, "smooth"), (14, 0, "wishart"), (14, 2, "smooth")],
)
def test_general_fast_solver_matches_cvxpy(size, seed, kind):
    prob = _problem(size, seed, kind)
    ref = CvxpyTVSolver().solve(prob)
    sol = FastTVSolver(tol=1e-5).solve(prob)
    opt = ref.certificate.objective.item()
    cert = sol.certificate
    assert bool(cert.converged.all()), cert
    assert abs(cert.objective.item() - opt) <= 1e-4 * opt
    bound = prob.bound.item()
    assert cert.feasibility_violation.item() <= 1e-6 * bound
    # the violation is that of the returned maps, recomputed here from Eq. 4 as written
    worst = _residual(prob, sol.maps).abs().max().item()
    assert worst <= bound * (1 + 1e-6)
    # the certificate is honest and tight: dual <= optimum <= objective (to CLARABEL's own
    # accuracy, ~1e-7 relative), gap >= 0 and small
    assert cert.duality_gap.item() >= 0.0
    assert cert.relative_gap.item() <= 1e-5
    assert cert.dual_objective.item() <= opt * (1 + 1e-6)
    assert cert.objective.item() >= opt * (1 - 1e-6)
    assert math.isclose(_diff(sol.maps).abs().sum().item(), cert.objective.item(), rel_tol=1e-9)
    # the reference's maps are feasible too (their mean is kept by the general constraint)
    assert ref.certificate.feasibility_violation.item() <= 1e-6 * bound
    # weak duality of the derived dual, for arbitrary multipliers (not only ADMM's)
    factor = _factorise(prob.covariance, prob.shape)
    c = _diff(factor.lap.solve(prob.b))
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(16, c.shape[1], generator=gen, dtype=torch.float64)
    z = torch.randn(16, c.shape[1], generator=gen, dtype=torch.float64)
    z = z * torch.logspace(-3, 1, 16, dtype=torch.float64)[:, None]
    bounds = _dual_bound(y, z, c.expand(16, -1), prob.bound.expand(16), factor)
    assert bool((bounds <= opt * (1 + 1e-6)).all())


def test_general_path_reproduces_structured_for_tv_covariance():
    """With Sigma = the paper's TV covariance, the general route solves the same LP as the
    structured one (same objective, same mean-zero maps up to the LP's non-uniqueness)."""
    shape, s2 = (10, 10), 0.1
    cov = TVGaussian().covariance(shape, s2)
    b = torch.cat([_moments(cov, 10, s) for s in range(2)])
    structured = StructuredTVProblem.from_moments(b, s2, k_l=0.05)
    general = GeneralTVProblem(b, cov, structured.bound)
    fast_s = FastTVSolver(tol=1e-6).solve(structured).certificate
    sol = FastTVSolver(tol=1e-6).solve(general)
    assert bool(sol.certificate.converged.all())
    assert torch.allclose(sol.certificate.objective, fast_s.objective, rtol=2e-6)
    assert bool((sol.certificate.feasibility_violation <= 1e-6 * general.bound).all())
    assert torch.allclose(sol.maps.flatten(1).mean(1), torch.zeros(2, dtype=torch.float64),
                          atol=1e-9)  # every shift is feasible: the solver returns mean zero


def test_general_batch_penalty_extremes_and_warm_start():
    prob = _problem(8, 0, "wishart")
    b = torch.cat([prob.b, prob.b, prob.b])
    l_max = StructuredTVProblem.from_moments(prob.b, 0.1, k_l=1.0).bound.item()
    bound = torch.tensor([0.05 * l_max, 1.5 * l_max, 0.0], dtype=torch.float64)
    sol = FastTVSolver(tol=1e-6).solve(GeneralTVProblem(b, prob.covariance, bound))
    cert = sol.certificate
    assert bool(cert.converged.all())
    assert sol.maps[1].abs().max().item() == 0.0  # L >= L_max: g = 0
    # L = 0: Sigma g = b + beta 1 exactly (the constraint's whole feasible set)
    assert _residual(GeneralTVProblem(b[2:], prob.covariance, bound[2:]), sol.maps[2:]).abs(
    ).max().item() <= 1e-9
    ref = CvxpyTVSolver().solve(GeneralTVProblem(b[2:], prob.covariance, bound[2:]))
    assert math.isclose(cert.objective[2].item(), ref.certificate.objective.item(), rel_tol=1e-5)
    # warm start along a path: same optimum, the covariance is factorised once
    solver = FastTVSolver(tol=1e-5)
    first = solver.solve(GeneralTVProblem(prob.b, prob.covariance, prob.bound * 2))
    factor = solver._factor
    cold = FastTVSolver(tol=1e-5).solve(prob)
    warm = solver.solve(prob, warm_start=first.state)
    assert solver._factor is factor
    assert math.isclose(warm.certificate.objective.item(), cold.certificate.objective.item(),
                        rel_tol=2e-5)


def test_general_solver_refuses_large_grids_and_bad_input():
    b = torch.zeros(1, 4, 4, dtype=torch.float64)
    prob = GeneralTVProblem(b, torch.eye(16, dtype=torch.float64), torch.ones(1))
    with pytest.raises(ValueError, match="max_dense_pixels"):
        FastTVSolver(max_dense_pixels=9).solve(prob)
    with pytest.raises(ValueError, match="max_dense_pixels"):
        FastTVSolver(max_dense_pixels=0)
    with pytest.raises(ValueError, match="warm_start"):
        structured = StructuredTVProblem.from_moments(torch.randn(1, 4, 4).double(), 0.1, k_l=0.1)
        FastTVSolver().solve(prob, warm_start=FastTVSolver().solve(structured).state)
    with pytest.raises(ValueError, match="positive definite"):
        _factorise(-torch.eye(16, dtype=torch.float64), (4, 4))


def test_legtv_with_user_covariance_end_to_end():
    """A user covariance through the fast solver agrees with cvxpy (the CPU default)."""
    size = 8
    cov = _spd(size, 3, "smooth") / 0.1
    truth = torch.zeros(1, 1, size, size)
    truth[..., 2:5, 2:6] = 1.0
    model = lambda x: (x * truth).sum(dim=(1, 2, 3)).unsqueeze(1)  # noqa: E731
    x = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(0))
    kw = dict(target=0, n_samples=300, seed=0, k_l=0.05)
    fast = LEGTV(model, perturbation=CovarianceGaussian(cov), solver=FastTVSolver())
    out = fast.attribute(x, **kw)
    assert out.shape == x.shape
    assert bool(fast.last_certificate.converged.all())
    ref = LEGTV(model, perturbation=CovarianceGaussian(cov))
    assert isinstance(ref._solver_for(x), CvxpyTVSolver)  # default on the CPU
    assert isinstance(ref._solver_for(x.to("meta")), FastTVSolver)  # default on a GPU
    out_ref = ref.attribute(x, **kw)
    tv = _diff(out[:, 0].double()).abs().sum(dim=1)
    tv_ref = _diff(out_ref[:, 0].double()).abs().sum(dim=1)
    assert torch.allclose(tv, tv_ref, rtol=1e-4)
    # the map finds the model's support: inside minus outside is positive
    inside = out[:, 0, 2:5, 2:6].mean() - out[:, 0].mean()
    assert float(inside) > 0
    # independent noise is a general covariance too, on the fast solver
    ind = LEGTV(model, perturbation=IndependentGaussian(), solver=FastTVSolver())
    assert torch.isfinite(ind.attribute(x, **kw)).all()
    with pytest.raises(ValueError, match="grid_size"):
        LEGTV(model, perturbation=IndependentGaussian(),
              solver=FastTVSolver(max_dense_pixels=16)).attribute(x, **kw)


def test_general_solver_runs_on_the_problem_device(device):
    """Batched over maps, on the tensors' device (CUDA when present), float64 and float32."""
    prob = _problem(8, 0, "wishart")
    b = torch.cat([prob.b, 0.5 * prob.b])
    bound = torch.cat([prob.bound, 0.5 * prob.bound])
    moved = GeneralTVProblem(b.to(device), prob.covariance.to(device), bound.to(device))
    sol = FastTVSolver(tol=1e-6).solve(moved)
    assert sol.maps.device.type == device.type
    cert = sol.certificate
    assert bool(cert.converged.all())
    # the second map is the first scaled by 1/2 (b and L halved): a linear program's scaling
    assert math.isclose(cert.objective[1].item(), 0.5 * cert.objective[0].item(), rel_tol=1e-5)
    single = GeneralTVProblem(b.float().to(device), prob.covariance.float().to(device),
                              bound.float().to(device))
    cert32 = FastTVSolver(tol=1e-4).solve(single).certificate
    assert cert32.objective.dtype == torch.float32
    assert torch.allclose(cert32.objective.double(), cert.objective, rtol=1e-3)
    assert bool((cert32.feasibility_violation <= 1e-5 * single.bound).all())
