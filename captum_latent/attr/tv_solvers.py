"""Solvers for the LEG-TV linear program, behind one interface: ``solver.solve(problem)``.

* :class:`CvxpyTVSolver` -- the exact LP through cvxpy (CLARABEL by default), the reference.
  Structured problems use the sparse constraint ``|c - s2 D g| <= L``; general problems the
  sparse Laplacian form of ``D^{+T}``. Nothing dense of size ``p x p`` is built (except the
  user's own covariance).
* :class:`FastTVSolver` -- a first-order solver in torch (CPU or CUDA, batched) for the
  structured problem: over-relaxed ADMM on ``w = D g`` whose ``g``-step is one DCT Laplacian
  solve and whose ``w``-step is an exact soft-threshold-and-clip. Every ``check_every``
  iterations it builds a certificate: a primal point made exactly feasible (convex combination
  with the empirical LEG, which is strictly feasible), the value of the ADMM dual projected
  exactly onto ``{y : D^T y = 0}`` (a valid lower bound) and their gap; an exact finishing
  step (``_face_polish``) reads an optimal primal point off the dual; it stops when the
  relative gap is below ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from captum_latent.attr._face_polish import _face_point
from captum_latent.attr._grid import (
    _diff,
    _diff_adjoint,
    _diff_matrix,
    _GridLaplacian,
)
from captum_latent.attr.tv_problem import (
    Certificate,
    GeneralTVProblem,
    StructuredTVProblem,
    TVSolution,
)

TVProblem = Union[StructuredTVProblem, GeneralTVProblem]


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
                sig = problem.covariance.detach().cpu().double().numpy()
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
            maps.append(val - val.mean())
            objective.append(float(np.abs(dmat @ val).sum()))
        dev = problem.bound.device
        dtype = problem.bound.dtype
        out = torch.tensor(np.stack(maps), dtype=dtype, device=dev).reshape(batch, *shape)
        obj = torch.tensor(objective, dtype=dtype, device=dev)
        if isinstance(problem, StructuredTVProblem):
            viol = _violation(problem, out)
        else:
            viol = torch.full_like(obj, float("nan"))
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

    Parameters
    ----------
    tol : float, default 1e-4
        Stop when ``(objective - dual_objective) / objective <= tol`` for every problem.
    max_iter : int, default 20000
        Iteration cap (the certificate says whether ``tol`` was met).
    check_every : int, default 25
        Iterations between certificate evaluations (each costs about three iterations).
    alpha : float, default 1.6
        Over-relaxation parameter in ``(0, 2)``.
    rho : float or None
        ADMM penalty, relative: ``rho = rho / ||c / s2||_inf`` (default 32, scale-free).
    adaptive : bool, default False
        Residual balancing of ``rho`` at each check (off: on these LPs it slowed convergence).
    polish : bool, default True
        Try the exact finishing step (a point of the optimal face identified by the dual
        iterate, see ``_face_polish``) after ``polish_every`` checks and then at every
        doubling of the iteration count; it runs on the host (scipy shortest paths).
    polish_every : int, default 4
        Checks before the first polish attempt.
    polish_max_pixels : int, default 2304
        Largest grid (``h * w``) polished (the shortest-path step is slow above ~48x48).
    cpu_threads : int or None
        Torch intra-op threads while solving on the CPU. Default: 1 for grids up to 64x64
        (threads only add synchronisation at these sizes; the previous setting is restored
        afterwards), unchanged above.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.attr import FastTVSolver, StructuredTVProblem
    >>> b = torch.randn(2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> sol = FastTVSolver(tol=1e-6).solve(StructuredTVProblem.from_moments(b, 0.1, k_l=0.1))
    >>> bool((sol.certificate.relative_gap <= 1e-6).all())
    True
    """

    def __init__(
        self,
        tol: float = 1e-4,
        max_iter: int = 20000,
        check_every: int = 25,
        alpha: float = 1.6,
        rho: Optional[float] = None,
        adaptive: bool = False,
        polish: bool = True,
        polish_every: int = 4,
        polish_max_pixels: int = 48 * 48,
        cpu_threads: Optional[int] = None,
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
        self.tol = float(tol)
        self.max_iter = max_iter
        self.check_every = check_every
        self.alpha = float(alpha)
        self.rho = rho
        self.adaptive = adaptive
        if not (isinstance(polish_every, int) and polish_every >= 1):
            raise ValueError(f"polish_every must be a positive int, got {polish_every!r}")
        self.polish = bool(polish)
        self.polish_every = polish_every
        self.polish_max_pixels = int(polish_max_pixels)
        if cpu_threads is not None and not (isinstance(cpu_threads, int) and cpu_threads >= 1):
            raise ValueError(f"cpu_threads must be None or a positive int, got {cpu_threads!r}")
        self.cpu_threads = cpu_threads

    def solve(
        self, problem: TVProblem, warm_start: Optional[_ADMMState] = None
    ) -> TVSolution:
        """Solve a batch of structured problems (see the class docstring)."""
        threads = self.cpu_threads
        if threads is None and isinstance(problem, StructuredTVProblem):
            small = problem.shape[0] * problem.shape[1] <= 64 * 64
            threads = 1 if (small and problem.c.device.type == "cpu") else None
        if threads is None:
            return self._solve(problem, warm_start)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return self._solve(problem, warm_start)
        finally:
            torch.set_num_threads(previous)

    def _solve(
        self, problem: TVProblem, warm_start: Optional[_ADMMState] = None
    ) -> TVSolution:
        if isinstance(problem, GeneralTVProblem):
            raise TypeError(
                "FastTVSolver handles the structured problem of the paper's TV covariance; "
                "use CvxpyTVSolver for a general covariance"
            )
        if not isinstance(problem, StructuredTVProblem):
            raise TypeError(f"problem must be a TV problem, got {type(problem).__name__}")
        c = problem.c
        if not c.is_floating_point():
            raise TypeError("problem.c must be a floating-point tensor")
        shape, s2 = problem.shape, problem.sigma2
        lap = _GridLaplacian(shape, c.dtype, c.device)
        bound = problem.bound.to(c.dtype).unsqueeze(1)
        k = c / s2
        r = bound / s2
        lo, hi = k - r, k + r
        # empirical LEG (mean-zero): D centre = k, strictly feasible when L > 0
        centre = lap.solve(_diff_adjoint(k, shape))
        trivial = (problem.l_max.unsqueeze(1) <= bound).squeeze(1)
        degenerate = (bound == 0).squeeze(1) & ~trivial

        if warm_start is not None:
            w = torch.clamp(warm_start.w, lo, hi)
            u = warm_start.u.clone()
            rho = warm_start.rho.clone()
        else:
            w = torch.clamp(torch.zeros_like(c), lo, hi)
            u = torch.zeros_like(c)
            scale = k.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
            rho = (self.rho if self.rho is not None else 32.0) / scale
        alpha = self.alpha
        it = 0
        best_maps = torch.zeros((c.shape[0], *shape), dtype=c.dtype, device=c.device)
        best_obj = torch.full((c.shape[0],), float("inf"), dtype=c.dtype, device=c.device)
        best_dual = torch.full_like(best_obj, -float("inf"))
        while True:
            w_prev = w
            for _ in range(self.check_every):
                v = _diff(lap.solve(_diff_adjoint(w - u, shape)))
                vh = alpha * v + (1.0 - alpha) * w
                q = vh + u
                w_prev = w
                w = torch.clamp(torch.sign(q) * (q.abs() - 1.0 / rho).clamp_min(0.0), lo, hi)
                u = u + vh - w
            it += self.check_every
            maps, obj = self._restore(w, centre, k, r, lap, shape)
            y = rho * u
            y = y - _diff(lap.solve(_diff_adjoint(y, shape)))
            dual = -_conjugate(y, lo, hi).sum(dim=1)
            checks = it // self.check_every
            if (
                self.polish
                and shape[0] * shape[1] <= self.polish_max_pixels
                and checks >= self.polish_every
                and (checks & (checks - 1)) == 0
            ):
                pol_maps, pol_obj = self._polish(y, lo, hi, centre, k, r, lap, shape, dual, obj)
                use = pol_obj < obj
                obj = torch.where(use, pol_obj, obj)
                maps = torch.where(use[:, None, None], pol_maps, maps)
            better = obj < best_obj
            best_obj = torch.where(better, obj, best_obj)
            best_maps = torch.where(better[:, None, None], maps, best_maps)
            best_dual = torch.maximum(best_dual, dual)
            best_obj = torch.where(trivial, torch.zeros_like(best_obj), best_obj)
            best_maps = torch.where(trivial[:, None, None], torch.zeros_like(best_maps), best_maps)
            best_dual = torch.where(trivial, torch.zeros_like(best_dual), best_dual)
            # L = 0: the feasible set is {centre + const}; its value is exact
            pinned = k.abs().sum(dim=1)
            best_obj = torch.where(degenerate, pinned, best_obj)
            best_maps = torch.where(degenerate[:, None, None], centre, best_maps)
            best_dual = torch.where(degenerate, pinned, best_dual)
            gap = (best_obj - best_dual).clamp_min(0.0)
            done = gap <= self.tol * best_obj.abs().clamp_min(1e-12)
            if bool(done.all()) or it >= self.max_iter:
                break
            if self.adaptive:
                prim = (v - w).norm(dim=1, keepdim=True)
                dres = rho * (w - w_prev).norm(dim=1, keepdim=True)
                up = prim > 5.0 * dres
                down = dres > 5.0 * prim
                factor = torch.where(up, 2.0, torch.where(down, 0.5, 1.0)).to(c.dtype)
                rho = rho * factor
                u = u / factor
        cert = Certificate(
            objective=best_obj,
            dual_objective=best_dual,
            duality_gap=gap,
            feasibility_violation=_violation(problem, best_maps),
            iterations=it,
            converged=done,
        )
        return TVSolution(maps=best_maps, certificate=cert, state=_ADMMState(w, u, rho))

    def _polish(
        self,
        y: Tensor,
        lo: Tensor,
        hi: Tensor,
        centre: Tensor,
        k: Tensor,
        r: Tensor,
        lap: _GridLaplacian,
        shape: tuple[int, int],
        dual: Tensor,
        obj: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Optimal-face points read off the dual (host-side shortest paths), made feasible."""
        maps = torch.zeros((y.shape[0], *shape), dtype=y.dtype, device=y.device)
        found = torch.zeros(y.shape[0], dtype=torch.bool, device=y.device)
        gap = (obj - dual) / obj.abs().clamp_min(1e-12)
        y_np = y.detach().cpu().double().numpy()
        lo_np = lo.detach().cpu().double().numpy()
        hi_np = hi.detach().cpu().double().numpy()
        for i in range(y.shape[0]):
            if not float(gap[i]) > self.tol:
                continue
            for tau in (1e-2, 1e-1):
                g = _face_point(y_np[i], lo_np[i], hi_np[i], shape, tau)
                if g is not None:
                    maps[i] = torch.as_tensor(g.reshape(shape), dtype=y.dtype, device=y.device)
                    found[i] = True
                    break
        maps = maps - maps.mean(dim=(1, 2), keepdim=True)
        maps, pol_obj = self._restore_maps(maps, centre, k, r)
        return maps, torch.where(found, pol_obj, torch.full_like(pol_obj, float("inf")))

    @staticmethod
    def _restore_maps(
        g: Tensor, centre: Tensor, k: Tensor, r: Tensor
    ) -> tuple[Tensor, Tensor]:
        s = _diff(g)
        dev = ((s - k).abs() / r.clamp_min(1e-300)).amax(dim=1, keepdim=True)
        theta = (1.0 - (1.0 - 1e-12) / dev).clamp(0.0, 1.0)
        s = (1.0 - theta) * s + theta * k
        maps = (1.0 - theta.unsqueeze(2)) * g + theta.unsqueeze(2) * centre
        return maps, s.abs().sum(dim=1)

    @staticmethod
    def _restore(
        w: Tensor, centre: Tensor, k: Tensor, r: Tensor, lap: _GridLaplacian, shape: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """Map the ADMM iterate to an exactly feasible point and its objective."""
        g = lap.solve(_diff_adjoint(w, shape))
        return FastTVSolver._restore_maps(g, centre, k, r)
