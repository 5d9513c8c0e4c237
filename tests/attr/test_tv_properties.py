"""Property-based checks (hypothesis) of the LEG-TV solvers' certificates.

For random structured programs ``min ||D g||_1  s.t.  ||c - s2 D g||_inf <= L`` on small grids:
the fast solver's certificate is honest (its objective is the TV of the maps it returns, those
maps are feasible, its dual bound is below the exact LP optimum from cvxpy, the gap is
non-negative), and the solution is mean-zero and zero exactly when ``L >= L_max``.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from captum_latent.attr import CvxpyTVSolver, FastTVSolver, StructuredTVProblem
from captum_latent.attr._grid import _diff

problems = st.fixed_dictionaries({
    "h": st.integers(2, 7),
    "w": st.integers(2, 7),
    "batch": st.integers(1, 3),
    "sigma2": st.floats(0.01, 1.0),
    "k_l": st.floats(0.0, 1.2),
    "seed": st.integers(0, 2**31 - 1),
})

_SETTINGS = dict(max_examples=25, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def _problem(p: dict) -> StructuredTVProblem:
    b = torch.randn(p["batch"], p["h"], p["w"], dtype=torch.float64,
                    generator=torch.Generator().manual_seed(p["seed"]))
    return StructuredTVProblem.from_moments(b, p["sigma2"], k_l=p["k_l"])


def _tv_and_violation(problem: StructuredTVProblem, maps: torch.Tensor):
    dg = _diff(maps)
    tv = dg.abs().sum(1)
    violation = ((problem.c - problem.sigma2 * dg).abs().amax(1) - problem.bound).clamp_min(0)
    return tv, violation


@settings(**_SETTINGS)
@given(p=problems)
def test_fast_certificate_is_honest(p) -> None:
    problem = _problem(p)
    sol = FastTVSolver(tol=1e-6).solve(problem)
    cert = sol.certificate
    tv, violation = _tv_and_violation(problem, sol.maps)
    scale = problem.c.abs().amax(1).clamp_min(1e-12)
    assert torch.allclose(cert.objective, tv, rtol=1e-9, atol=1e-9)
    assert bool((violation <= 1e-7 * scale).all())
    assert bool((cert.feasibility_violation <= 1e-7 * scale).all())
    assert bool((cert.duality_gap >= -1e-9 * tv.clamp_min(1)).all())
    assert torch.allclose(sol.maps.flatten(1).mean(1), torch.zeros(p["batch"], dtype=torch.float64),
                          atol=1e-9)
    zero = problem.bound >= problem.l_max
    assert bool((tv[zero] <= 1e-9).all())  # L >= L_max: g = 0 is optimal


@settings(**{**_SETTINGS, "max_examples": 12})
@given(p=problems.filter(lambda p: p["h"] * p["w"] <= 30 and p["batch"] == 1))
def test_fast_dual_bound_is_below_the_exact_optimum(p) -> None:
    problem = _problem(p)
    fast = FastTVSolver(tol=1e-6).solve(problem).certificate
    exact = CvxpyTVSolver().solve(problem).certificate
    slack = 1e-6 * exact.objective.abs().clamp_min(1e-6) + 1e-8
    assert bool((fast.dual_objective <= exact.objective + slack).all())
    if bool(fast.converged.all()):
        assert torch.allclose(fast.objective, exact.objective, rtol=1e-4, atol=1e-7)
