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
from captum_latent.attr._grid import _diff, _diff_adjoint, _GridLaplacian, _n_edges
from captum_latent.attr.tv_problem import SpectralCovariance


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
    out, cert = fast.attribute(x, return_certificate=True, **kw)
    assert out.shape == x.shape
    assert bool(cert.converged.all())
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
        LEGTV(model, perturbation=CovarianceGaussian(cov),
              solver=FastTVSolver(max_dense_pixels=16)).attribute(x, **kw)
    # IndependentGaussian is DCT-diagonal: no dense matrix, so no max_dense_pixels limit
    small = LEGTV(model, perturbation=IndependentGaussian(),
                  solver=FastTVSolver(max_dense_pixels=16))
    assert torch.isfinite(small.attribute(x, **kw)).all()


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


def _independent(size: int, seed: int, n: int = 500, s2: float = 0.1) -> GeneralTVProblem:
    """IndependentGaussian's program (a SpectralCovariance) for a noisy piecewise-constant
    linear model's moment map; K_L = 0.05."""
    cov = IndependentGaussian().covariance_operator((size, size), s2)
    b = _moments(s2 * torch.eye(size * size, dtype=torch.float64), size, seed, n)
    return GeneralTVProblem(b, cov, StructuredTVProblem.from_moments(b, s2, k_l=0.05).bound)


@pytest.mark.parametrize("size, seed", [(8, 0), (14, 1)])
def test_dct_path_matches_dense_path_and_cvxpy(size, seed):
    """Sigma = s2 I through the DCT path: the dense path's iterates (same iteration count,
    same maps to rounding) and CLARABEL's objective, with an honest certificate."""
    spectral = _independent(size, seed)
    dense = GeneralTVProblem(spectral.b, spectral.covariance.dense(), spectral.bound)
    assert torch.allclose(dense.covariance, 0.1 * torch.eye(size * size, dtype=torch.float64))
    sol = FastTVSolver(tol=1e-5).solve(spectral)
    sol_d = FastTVSolver(tol=1e-5).solve(dense)
    ref = CvxpyTVSolver().solve(spectral)  # s2 I as a sparse matrix
    opt = ref.certificate.objective.item()
    cert = sol.certificate
    assert bool(cert.converged.all()) and cert.iterations == sol_d.certificate.iterations
    assert torch.allclose(sol.maps, sol_d.maps, rtol=0, atol=1e-8 * sol.maps.abs().max().item())
    assert abs(cert.objective.item() - opt) <= 1e-4 * opt
    assert abs(cert.objective.item() - sol_d.certificate.objective.item()) <= 1e-9 * opt
    bound = spectral.bound.item()
    assert cert.feasibility_violation.item() <= 1e-6 * bound
    assert _residual(dense, sol.maps).abs().max().item() <= bound * (1 + 1e-6)
    assert cert.duality_gap.item() >= 0.0
    assert cert.dual_objective.item() <= opt * (1 + 1e-6)
    assert ref.certificate.feasibility_violation.item() <= 1e-6 * bound
    # every shift is feasible (Sigma 1 = s2 1): the solver returns mean zero
    assert abs(sol.maps.mean().item()) <= 1e-12 * sol.maps.abs().max().item()


def test_spectral_factor_operators_equal_dense_ones():
    """Each operation of the DCT factor against the dense factor of the same matrix, for
    s2 I and for a non-constant spectrum (Sigma = s2 (I + D^T D)^{-1}, a spectral function
    of the Laplacian): Sigma, Sigma^{-1}, A, A^T, the g-step and the constants."""
    shape = (6, 7)
    p, m = 42, _n_edges(shape)
    lap = _GridLaplacian(shape, torch.float64, "cpu")
    gen = torch.Generator().manual_seed(0)
    for spec in (torch.full(shape, 0.1, dtype=torch.float64), 0.1 / (1.0 + lap.eig)):
        cov = SpectralCovariance(spec)
        fs, fd = _factorise(cov, shape), _factorise(cov.dense(), shape)
        assert fs.d_free and fd.d_free
        assert math.isclose(fs.kappa, fd.kappa, rel_tol=1e-12) and fs.mu == fd.mu
        g = torch.randn(3, p, generator=gen, dtype=torch.float64)
        z = torch.randn(3, m, generator=gen, dtype=torch.float64)
        for a, b in [(fs.sigma(g), fd.sigma(g)), (fs.sigma_solve(g), fd.sigma_solve(g)),
                     (fs.apply_a(g), fd.apply_a(g)), (fs.apply_at(z), fd.apply_at(z))]:
            assert torch.allclose(a, b, rtol=0, atol=1e-12 * b.abs().max().item())
        x = _diff_adjoint(torch.randn(6, m, generator=gen, dtype=torch.float64), shape)
        mean = torch.randn(3, 1, generator=gen, dtype=torch.float64)
        (gs, ps), (gd, pd) = fs.g_step(x, mean), fd.g_step(x, mean)
        assert torch.allclose(gs, gd, rtol=0, atol=1e-12 * gd.abs().max().item())
        assert torch.allclose(ps, pd, rtol=0, atol=1e-12 * pd.abs().max().item())
        assert torch.allclose(gs.mean(dim=1, keepdim=True), mean, atol=1e-12)
    # a non-constant spectrum solves the same LP either way (square grid for _moments)
    cov = SpectralCovariance(0.1 / (1.0 + _GridLaplacian((7, 7), torch.float64, "cpu").eig))
    b = _moments(cov.dense(), 7, 0)
    bound = StructuredTVProblem.from_moments(b, 0.1, k_l=0.05).bound
    obj_s = FastTVSolver(tol=1e-6).solve(GeneralTVProblem(b, cov, bound)).certificate
    obj_d = FastTVSolver(tol=1e-6).solve(GeneralTVProblem(b, cov.dense(), bound)).certificate
    assert bool(obj_s.converged.all()) and bool(obj_d.converged.all())
    assert math.isclose(obj_s.objective.item(), obj_d.objective.item(), rel_tol=1e-6)


def test_spectral_covariance_validation():
    with pytest.raises(ValueError, match="> 0"):
        SpectralCovariance(torch.zeros(3, 3, dtype=torch.float64))
    for bad in (float("nan"), float("inf")):
        spec = torch.ones(3, 3, dtype=torch.float64)
        spec[1, 1] = bad
        with pytest.raises(ValueError, match="finite"):
            SpectralCovariance(spec)
    with pytest.raises(TypeError, match="spectrum"):
        SpectralCovariance(torch.ones(9, dtype=torch.float64))
    with pytest.raises(ValueError, match="grid's shape"):
        GeneralTVProblem(torch.zeros(1, 3, 3, dtype=torch.float64),
                         SpectralCovariance.scaled_identity((3, 4), 0.1), torch.ones(1))


def test_legtv_independent_above_the_dense_limit():
    """80x80 (6400 pixels, above max_dense_pixels = 4096): IndependentGaussian goes through
    the DCT path, feasible to the last bit and certified (tol 1e-3: at 1e-4 the default
    20,000 iterations are not enough on this noise-dominated instance, see the docs)."""
    size = 80
    truth = torch.zeros(1, 1, size, size)
    truth[..., 20:40, 20:60] = 1.0
    model = lambda x: (x * truth).sum(dim=(1, 2, 3)).unsqueeze(1)  # noqa: E731
    x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    explainer = LEGTV(model, perturbation=IndependentGaussian(), solver=FastTVSolver(tol=1e-3))
    out, cert = explainer.attribute(x, target=0, n_samples=300, seed=0, k_l=0.05,
                                    perturbations_per_eval=300, grid_size=(size, size),
                                    return_certificate=True)
    assert out.shape == x.shape and bool(cert.converged.all())
    assert cert.duality_gap.item() >= 0.0
    assert cert.feasibility_violation.item() <= 1e-6 * cert.penalty.item()
    assert float(out[..., 20:40, 20:60].mean() - out.mean()) > 0  # finds the model's support
    # LEGTV's default for IndependentGaussian is the fast solver, on the CPU too
    assert isinstance(LEGTV(model, perturbation=IndependentGaussian())._solver_for(x),
                      FastTVSolver)


def test_dct_path_runs_on_the_problem_device(device):
    """The DCT path batched over maps on the tensors' device (CUDA when present), float64 and
    float32, against the float64 CPU solve."""
    prob = _independent(8, 0)
    b = torch.cat([prob.b, 0.5 * prob.b])
    bound = torch.cat([prob.bound, 0.5 * prob.bound])
    ref = FastTVSolver(tol=1e-6).solve(GeneralTVProblem(b, prob.covariance, bound)).certificate
    for dtype, tol in ((torch.float64, 1e-6), (torch.float32, 1e-4)):
        moved = GeneralTVProblem(b.to(device, dtype), prob.covariance.to(device, dtype),
                                 bound.to(device, dtype))
        sol = FastTVSolver(tol=tol).solve(moved)
        cert = sol.certificate
        assert sol.maps.device.type == device.type and cert.objective.dtype == dtype
        assert bool(cert.converged.all())
        assert torch.allclose(cert.objective.double().cpu(), ref.objective, rtol=10 * tol)
        assert bool((cert.feasibility_violation <= 1e-5 * moved.bound).all())
