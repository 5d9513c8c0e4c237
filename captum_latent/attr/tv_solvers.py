"""Solvers for the LEG-TV linear program, behind one interface: ``solver.solve(problem)``.

* :class:`CvxpyTVSolver` -- the exact LP through cvxpy (CLARABEL by default), the reference.
  Structured problems use the sparse constraint ``|c - s2 D g| <= L``; general problems the
  sparse Laplacian form of ``D^{+T}``. Nothing dense of size ``p x p`` is built (except the
  user's own covariance).
* :class:`FastTVSolver` -- a first-order solver in torch (CPU or CUDA, batched over maps).
  For the structured problem: over-relaxed ADMM on ``w = D g`` whose ``g``-step is one DCT
  Laplacian solve and whose ``w``-step is an exact soft-threshold-and-clip, written as ~18
  in-place tensor operations per iteration (``_admm``). Every ``check_every`` iterations it
  builds a certificate from the iterates averaged over the block: a primal point made exactly
  feasible (the greatest feasible map below the averaged ADMM map, found by min-plus scans),
  the value of the averaged ADMM dual projected exactly onto ``{y : D^T y = 0}`` (a valid
  lower bound) and their gap; an optional exact finishing step (``_face_polish``) reads a point
  of the optimal face off the dual. For a general covariance (``GeneralTVProblem``, grids up to
  ``max_dense_pixels``): ADMM with the two splits ``w = D g`` and ``t = kappa D^{+T} Sigma g``,
  whose ``g``-step uses a dense inverse computed once per covariance (``_general``), with the
  same kind of certificate and an exact finishing step on the face the iterate identifies;
  a DCT-diagonal covariance (``SpectralCovariance``, e.g. ``IndependentGaussian``'s ``s2 I``)
  takes the same iterations with DCTs only, at any grid size.
  It stops when the relative gap is below ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
import torch
from torch import Tensor

from captum_latent.attr._admm import _DifferenceScans, _PaddedGrid
from captum_latent.attr._face_polish import _face_bounds
from captum_latent.attr._general import _MAX_DENSE_PIXELS, _feasible_general, _solve_general
from captum_latent.attr._grid import _diff, _diff_matrix
from captum_latent.attr.tv_problem import (
    Certificate,
    GeneralTVProblem,
    SpectralCovariance,
    StructuredTVProblem,
    TVSolution,
)

TVProblem = Union[StructuredTVProblem, GeneralTVProblem]


def _covariance_matrix(cov: Tensor | SpectralCovariance) -> object:
    """A general problem's covariance for cvxpy: ``s I`` as a sparse matrix, any other
    spectral covariance as its dense matrix, a dense one as it is (numpy, float64)."""
    import scipy.sparse as sp

    if isinstance(cov, SpectralCovariance):
        spec = cov.spectrum.detach().cpu().double()
        if bool((spec == spec.flatten()[0]).all()):
            return float(spec.flatten()[0]) * sp.identity(spec.numel(), format="csr")
        return cov.dense().detach().cpu().double().numpy()
    return cov.detach().cpu().double().numpy()


def _violation(problem: StructuredTVProblem, maps: Tensor) -> Tensor:
    resid = (problem.c - problem.sigma2 * _diff(maps)).abs().amax(dim=1)
    return (resid - problem.bound).clamp_min(0.0)


class CvxpyTVSolver:
    """Reference LP solver through cvxpy.

    Parameters
    ----------
    solver : str, default "CLARABEL"
        Any cvxpy LP solver name installed (``"CLARABEL"``, ``"HIGHS"``, ...).
    **solver_options
        Passed to ``cvxpy.Problem.solve``.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.attr import CvxpyTVSolver, StructuredTVProblem
    >>> b = torch.randn(1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> sol = CvxpyTVSolver().solve(StructuredTVProblem.from_moments(b, 0.1, k_l=0.2))
    >>> bool(sol.certificate.feasibility_violation.item() < 1e-6)
    True
    """

    def __init__(self, solver: str = "CLARABEL", **solver_options: object) -> None:
        if not isinstance(solver, str):
            raise TypeError(f"solver must be a cvxpy solver name, got {type(solver).__name__}")
        self.solver = solver
        self.solver_options = dict(solver_options)

    def solve(self, problem: TVProblem, warm_start: object = None) -> TVSolution:
        """Solve every problem of the batch; ``warm_start`` is accepted and ignored."""
        import cvxpy as cp

        if isinstance(problem, StructuredTVProblem):
            shape = problem.shape
        elif isinstance(problem, GeneralTVProblem):
            shape = problem.shape
        else:
            raise TypeError(f"problem must be a TV problem, got {type(problem).__name__}")
        dmat = _diff_matrix(shape)
        p = shape[0] * shape[1]
        maps, objective, ok = [], [], []
        structured = isinstance(problem, StructuredTVProblem)
        batch = problem.c.shape[0] if structured else problem.b.shape[0]
        for i in range(batch):
            g = cp.Variable(p)
            bound = float(problem.bound[i])
            if isinstance(problem, StructuredTVProblem):
                c = problem.c[i].detach().cpu().double().numpy()
                cons = [cp.abs(c - problem.sigma2 * (dmat @ g)) <= bound]
            else:
                b = problem.b[i].detach().cpu().double().numpy().ravel()
                sig = _covariance_matrix(problem.covariance)
                lap = (dmat.T @ dmat).tocsr()
                q = cp.Variable(p)
                v = b - sig @ g
                cons = [
                    lap @ q == v - cp.sum(v) / p,
                    cp.sum(q) == 0,
                    cp.abs(dmat @ q) <= bound,
                ]
            prob = cp.Problem(cp.Minimize(cp.norm1(dmat @ g)), cons)
            prob.solve(solver=self.solver, **self.solver_options)
            ok.append(prob.status == cp.OPTIMAL)
            val = np.zeros(p) if g.value is None else np.asarray(g.value)
            maps.append(val - val.mean() if structured else val)
            objective.append(float(np.abs(dmat @ val).sum()))
        dev = problem.bound.device
        dtype = problem.bound.dtype
        out = torch.tensor(np.stack(maps), dtype=dtype, device=dev).reshape(batch, *shape)
        obj = torch.tensor(objective, dtype=dtype, device=dev)
        if isinstance(problem, StructuredTVProblem):
            viol = _violation(problem, out)
        else:  # the mean may be fixed by the constraint: keep the nearest feasible to zero
            out, viol = _feasible_general(problem, out, torch.zeros_like(obj))
        nan = torch.full_like(obj, float("nan"))
        cert = Certificate(
            objective=obj,
            dual_objective=nan,
            duality_gap=nan,
            feasibility_violation=viol,
            iterations=0,
            converged=torch.tensor(ok, device=dev),
        )
        return TVSolution(maps=out, certificate=cert)


@dataclass
class _ADMMState:
    """Warm start: the ADMM iterate (padded edge layout, see ``_admm``) and its penalty."""

    w: Tensor
    u: Tensor
    rho: Tensor


def _conjugate(y: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Convex conjugate of ``|w| + indicator([lo, hi])`` at ``y`` (elementwise)."""
    z = torch.clamp(torch.zeros_like(lo), lo, hi)
    return torch.maximum(
        torch.maximum(y * lo - lo.abs(), y * hi - hi.abs()), y * z - z.abs()
    )


class FastTVSolver:
    """First-order LEG-TV solver (ADMM + DCT Laplacian solves) with a duality-gap certificate.

    Every ``check_every`` iterations it builds a certificate from the iterates *averaged* over
    the block (over-relaxed ADMM spirals around the solution; the average is several times
    closer, at the cost of a few additions):

    * primal: the greatest map below the averaged ADMM map that meets every constraint
      (difference constraints solved by min-plus scans, ``_admm._greatest_below``), then made
      feasible to the last bit by a vanishing convex combination with the strictly feasible
      empirical LEG; its objective ``||D g||_1`` is an upper bound;
    * dual: the ADMM multipliers averaged over the last two blocks, projected exactly onto
      ``{y : D^T y = 0}``; ``-sum_e h_e^*(y_e)`` is a lower bound;
    * optionally an exact finishing step (``polish``): a point of the optimal face that the
      dual identifies.

    It stops when the relative gap is at most ``tol`` for every problem of the batch.

    A :class:`GeneralTVProblem` (any SPD covariance, e.g. from ``CovarianceGaussian`` or
    ``IndependentGaussian``) is solved by ADMM with splits ``w = D g`` and
    ``t = kappa D^{+T} Sigma g``: the ``g``-step solves ``(D^T D + kappa^2 Sigma P Sigma) g =
    rhs`` with a dense inverse computed once per covariance (``O(p^3)``; under 1 s at 28x28
    and about 7 s at 64x64 on one CPU thread) and reused for every iteration, every ``L`` of a
    path and every later call with the same covariance (the solver keeps the last one). Its
    certificate has the same three parts: a feasible primal point (the averaged map combined
    with the ``L = 0`` solution), a dual-feasible point built from the multipliers, and an
    exact finishing step on the face that the iterate identifies. Grids above
    ``max_dense_pixels`` are refused with a ``ValueError``, except for a
    :class:`~captum_latent.attr.tv_problem.SpectralCovariance` (a covariance the 2-D DCT-II
    diagonalises, e.g. ``IndependentGaussian``'s ``s2 I``): it takes the same iterations with
    DCTs in place of every dense product and inverse, nothing ``p x p``, at any grid size.

    Parameters
    ----------
    tol : float, default 1e-4
        Stop when ``(objective - dual_objective) / objective <= tol`` for every problem.
    max_iter : int, default 20000
        Iteration cap (the certificate says whether ``tol`` was met).
    check_every : int, default 25
        Iterations between certificate evaluations (each costs about ten iterations).
    alpha : float, default 1.6
        Over-relaxation parameter in ``(0, 2)``.
    rho : float or None
        ADMM penalty, relative: ``rho = rho / ||c / s2||_inf`` (default 32, scale-free).
    adaptive : bool, default False
        Residual balancing of ``rho`` at each check (off: on these LPs it slowed convergence).
    polish : bool, default True
        Try the exact finishing step (a point of the optimal face identified by the averaged
        dual, see ``_face_polish``) after ``polish_every`` checks and then at every doubling of
        the iteration count.
    polish_every : int, default 8
        Checks before the first polish attempt.
    polish_max_pixels : int, default 4096
        Largest grid (``h * w``) polished.
    cpu_threads : int or None
        Torch intra-op threads while solving on the CPU. Default: 1 for grids up to 64x64
        (threads only add synchronisation at these sizes; the previous setting is restored
        afterwards), unchanged above.
    average_every : int, default 5
        Iterations between the samples averaged for the certificate (``0``: no averaging, the
        last iterate only).
    max_dense_pixels : int, default 4096
        Largest grid (``h * w``) for a dense general covariance (a dense ``p x p`` inverse);
        a ``SpectralCovariance`` has no limit.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.attr import FastTVSolver, StructuredTVProblem
    >>> b = torch.randn(2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> sol = FastTVSolver(tol=1e-6).solve(StructuredTVProblem.from_moments(b, 0.1, k_l=0.1))
    >>> bool((sol.certificate.relative_gap <= 1e-6).all())
    True

    A user covariance (any SPD matrix) goes through the general formulation:

    >>> from captum_latent.attr import GeneralTVProblem
    >>> q = torch.randn(64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    >>> cov = 0.1 * (q @ q.T / 64 + 0.1 * torch.eye(64, dtype=torch.float64))
    >>> b = (torch.ones(1, 8, 8, dtype=torch.float64) * 0.1).tril()
    >>> prob = GeneralTVProblem(b, cov, torch.tensor([0.01], dtype=torch.float64))
    >>> cert = FastTVSolver(tol=1e-6).solve(prob).certificate
    >>> bool(cert.converged.all()), bool(cert.feasibility_violation.max() <= 1e-9)
    (True, True)
    """

    def __init__(
        self,
        tol: float = 1e-4,
        max_iter: int = 20000,
        check_every: int = 25,
        alpha: float = 1.6,
        rho: float | None = None,
        adaptive: bool = False,
        polish: bool = True,
        polish_every: int = 8,
        polish_max_pixels: int = 64 * 64,
        cpu_threads: int | None = None,
        average_every: int = 5,
        max_dense_pixels: int = _MAX_DENSE_PIXELS,
    ) -> None:
        if not tol > 0:
            raise ValueError(f"tol must be > 0, got {tol}")
        if not (isinstance(max_iter, int) and max_iter >= 1):
            raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
        if not (isinstance(check_every, int) and check_every >= 1):
            raise ValueError(f"check_every must be a positive int, got {check_every!r}")
        if not 0 < alpha < 2:
            raise ValueError(f"alpha must be in (0, 2), got {alpha}")
        if rho is not None and not rho > 0:
            raise ValueError(f"rho must be > 0, got {rho}")
        if not (isinstance(polish_every, int) and polish_every >= 1):
            raise ValueError(f"polish_every must be a positive int, got {polish_every!r}")
        if cpu_threads is not None and not (isinstance(cpu_threads, int) and cpu_threads >= 1):
            raise ValueError(f"cpu_threads must be None or a positive int, got {cpu_threads!r}")
        if not (isinstance(average_every, int) and average_every >= 0):
            raise ValueError(f"average_every must be an int >= 0, got {average_every!r}")
        if not (isinstance(max_dense_pixels, int) and max_dense_pixels >= 4):
            raise ValueError(f"max_dense_pixels must be an int >= 4, got {max_dense_pixels!r}")
        self.tol = float(tol)
        self.max_iter = max_iter
        self.check_every = check_every
        self.alpha = float(alpha)
        self.rho = rho
        self.adaptive = adaptive
        self.polish = bool(polish)
        self.polish_every = polish_every
        self.polish_max_pixels = int(polish_max_pixels)
        self.cpu_threads = cpu_threads
        self.average_every = average_every
        self.max_dense_pixels = max_dense_pixels
        self._factor = None  # the last general covariance's factorisation (reused)

    def solve(
        self, problem: TVProblem, warm_start: _ADMMState | None = None
    ) -> TVSolution:
        """Solve a batch of structured or general problems (see the class docstring)."""
        threads = self.cpu_threads
        if threads is None and isinstance(problem, (StructuredTVProblem, GeneralTVProblem)):
            small = problem.shape[0] * problem.shape[1] <= 64 * 64
            device = problem.bound.device
            threads = 1 if (small and device.type == "cpu") else None
        if threads is None:
            return self._solve(problem, warm_start)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return self._solve(problem, warm_start)
        finally:
            torch.set_num_threads(previous)

    def _solve(
        self, problem: TVProblem, warm_start: _ADMMState | None = None
    ) -> TVSolution:
        if isinstance(problem, GeneralTVProblem):
            maps, fields = _solve_general(self, problem, warm_start)
            state = fields.pop("state")
            return TVSolution(maps=maps, certificate=Certificate(**fields), state=state)
        if not isinstance(problem, StructuredTVProblem):
            raise TypeError(f"problem must be a TV problem, got {type(problem).__name__}")
        c = problem.c
        if not c.is_floating_point():
            raise TypeError("problem.c must be a floating-point tensor")
        shape, s2 = problem.shape, problem.sigma2
        batch = c.shape[0]
        grid = _PaddedGrid(shape, batch, c.dtype, c.device)
        bound = problem.bound.to(c.dtype).unsqueeze(1)
        k = grid.pad(c / s2)
        r = bound / s2
        lo, hi = k - r, k + r
        lo[grid.pads], hi[grid.pads] = 0.0, 0.0  # pads: the box [0, 0]
        # empirical LEG (mean-zero): D centre = k, strictly feasible when L > 0
        centre = grid.potential(k)
        trivial = (problem.l_max.unsqueeze(1) <= bound).squeeze(1)
        degenerate = (bound == 0).squeeze(1) & ~trivial
        pinned = k.abs().sum(dim=1)

        if warm_start is not None:
            if warm_start.w.shape != grid.w.shape:
                raise ValueError(
                    f"warm_start is for edge vectors of shape {tuple(warm_start.w.shape)}, "
                    f"this problem needs {tuple(grid.w.shape)} (same grid and batch size)"
                )
            torch.clamp(warm_start.w.to(grid.w), lo, hi, out=grid.w)
            grid.u.copy_(warm_start.u)
            rho = warm_start.rho.clone()
        else:
            torch.clamp(grid.w, lo, hi, out=grid.w)
            scale = k.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
            rho = (self.rho if self.rho is not None else 32.0) / scale
        thresh = 1.0 / rho
        neg_thresh = -thresh
        block = self.check_every
        stride = min(self.average_every, block) if self.average_every else block
        samples = block // stride
        head = block - samples * stride
        sum_w, sum_u, prev_y = torch.zeros_like(grid.w), torch.zeros_like(grid.u), None
        polish = self.polish and shape[0] * shape[1] <= self.polish_max_pixels
        it = 0
        box = _DifferenceScans(lo, hi, grid)
        # L >= L_max: g = 0 is optimal (value 0); L = 0: the feasible set is {centre + const},
        # its value exact; neither is ever improved on below
        inf = torch.full((batch,), float("inf"), dtype=c.dtype, device=c.device)
        zero = torch.zeros_like(inf)
        best_obj = torch.where(trivial, zero, torch.where(degenerate, pinned, inf))
        best_dual = torch.where(trivial, zero, torch.where(degenerate, pinned, -inf))
        best_maps = torch.where(degenerate[:, None, None], centre, torch.zeros_like(centre))
        fixed = trivial | degenerate
        while True:
            w_start = grid.w.clone() if self.adaptive else None
            sum_w.zero_()
            sum_u.zero_()
            if head:
                grid.iterate(head, lo, hi, thresh, neg_thresh, self.alpha)
            for _ in range(samples):
                grid.iterate(stride, lo, hi, thresh, neg_thresh, self.alpha)
                sum_w.add_(grid.w)
                sum_u.add_(grid.u)
            it += block
            # primal: the greatest feasible map below the block-averaged ADMM map
            g_avg = grid.potential(sum_w / samples)
            maps, obj, ok = self._repair(g_avg, box, centre, k, r, grid)
            if not bool(ok.all()):  # cannot happen for L > 0; keep a feasible fallback
                alt_maps, alt_obj = self._restore(g_avg, centre, k, r, grid)
                obj = torch.where(ok, obj, alt_obj)
                maps = torch.where(ok[:, None, None], maps, alt_maps)
            # dual: multipliers averaged over the last two blocks, projected onto null(D^T)
            y_block = rho * (sum_u / samples)
            y = y_block if prev_y is None else 0.5 * (y_block + prev_y)
            prev_y = y_block
            y = y - grid.project(y)
            dual = -_conjugate(y, lo, hi).sum(dim=1)
            checks = it // block
            if polish and checks >= self.polish_every and (checks & (checks - 1)) == 0:
                gap = (torch.minimum(obj, best_obj) - torch.maximum(dual, best_dual))
                if bool((gap > self.tol * obj.abs().clamp_min(1e-12)).any()):
                    pol_maps, pol_obj, pol_ok = self._polish(y, lo, hi, g_avg, centre, k, r, grid)
                    use = pol_ok & (pol_obj < obj)
                    obj = torch.where(use, pol_obj, obj)
                    maps = torch.where(use[:, None, None], pol_maps, maps)
            better = (obj < best_obj) & ~fixed
            best_obj = torch.where(better, obj, best_obj)
            best_maps = torch.where(better[:, None, None], maps, best_maps)
            best_dual = torch.where(fixed, best_dual, torch.maximum(best_dual, dual))
            gap = (best_obj - best_dual).clamp_min(0.0)
            done = gap <= self.tol * best_obj.abs().clamp_min(1e-12)
            if bool(done.all()) or it >= self.max_iter:
                break
            if w_start is not None:
                prim = (grid.w - grid.project(grid.w)).norm(dim=1, keepdim=True)
                dres = rho * (grid.w - w_start).norm(dim=1, keepdim=True) / block
                up = prim > 5.0 * dres
                down = dres > 5.0 * prim
                factor = torch.where(up, 2.0, torch.where(down, 0.5, 1.0)).to(c.dtype)
                rho = rho * factor
                grid.u.div_(factor)
                thresh = 1.0 / rho
                neg_thresh = -thresh
        cert = Certificate(
            objective=best_obj,
            dual_objective=best_dual,
            duality_gap=gap,
            feasibility_violation=_violation(problem, best_maps),
            iterations=it,
            converged=done,
        )
        state = _ADMMState(grid.w.clone(), grid.u.clone(), rho)
        return TVSolution(maps=best_maps, certificate=cert, state=state)

    def _repair(
        self,
        g: Tensor,
        scans: _DifferenceScans,
        centre: Tensor,
        k: Tensor,
        r: Tensor,
        grid: _PaddedGrid,
        max_passes: int = 24,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """A map below ``g`` meeting the scanned constraints (inside the box), made exactly
        feasible for the LP; its objective; whether the constraints could be met."""
        below, ok = scans.greatest_below(g, max_passes)
        below = below - below.mean(dim=(1, 2), keepdim=True)
        maps, obj = self._restore(below, centre, k, r, grid)
        return maps, torch.where(ok, obj, torch.full_like(obj, float("inf"))), ok

    def _polish(
        self,
        y: Tensor,
        lo: Tensor,
        hi: Tensor,
        g: Tensor,
        centre: Tensor,
        k: Tensor,
        r: Tensor,
        grid: _PaddedGrid,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """A point of the optimal face that the dual ``y`` identifies (``_face_polish``)."""
        lower, upper = _face_bounds(y, lo, hi, 0.1)
        return self._repair(g, _DifferenceScans(lower, upper, grid), centre, k, r, grid)

    @staticmethod
    def _restore(
        g: Tensor, centre: Tensor, k: Tensor, r: Tensor, grid: _PaddedGrid
    ) -> tuple[Tensor, Tensor]:
        """Make maps ``g`` exactly feasible (smallest convex combination with the strictly
        feasible ``centre``); return them and their objective ``||D g||_1``."""
        s = grid.diff(g)
        dev = ((s - k).abs() / r.clamp_min(1e-300)).amax(dim=1, keepdim=True)
        # aim just inside the box: a margin above the rounding of the recomputed differences
        margin = max(1e-12, 64 * torch.finfo(g.dtype).eps)
        theta = (1.0 - (1.0 - margin) / dev).clamp(0.0, 1.0)
        s = (1.0 - theta) * s + theta * k
        maps = (1.0 - theta.unsqueeze(2)) * g + theta.unsqueeze(2) * centre
        return maps, s.abs().sum(dim=1)
