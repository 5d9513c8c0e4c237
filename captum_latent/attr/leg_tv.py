"""LEG-TV: the TV-penalised LEG estimate (paper Eq. 4) as a Captum attribution."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Union

import torch
from captum._utils.typing import TargetType
from torch import Tensor

from captum_latent.adapters import register_adapter
from captum_latent.attr._attribute import _Call, _with_common_parameters
from captum_latent.attr._dataset import LEGTVDatasetAdapter
from captum_latent.attr._general import _feasible_general
from captum_latent.attr._grid import _pinv_l1_norm
from captum_latent.attr._inputs import _Layout
from captum_latent.attr._moments import _finish
from captum_latent.attr.leg import LEG, _Collected
from captum_latent.attr.perturbations import IndependentGaussian, PerturbationScheme
from captum_latent.attr.tv_problem import (
    GeneralTVProblem,
    StructuredTVProblem,
    TVSolution,
)
from captum_latent.attr.tv_solvers import CvxpyTVSolver, FastTVSolver

TVSolver = Union[FastTVSolver, CvxpyTVSolver]


def theoretical_bound(shape: tuple[int, int], n_samples: int, epsilon: float = 0.05) -> float:
    """Theorem 1's ``L = sqrt(2 ||D^+||_1 log(p / epsilon) / n)`` for an ``(h, w)`` grid.

    Examples
    --------
    >>> from captum_latent.attr.leg_tv import theoretical_bound
    >>> round(theoretical_bound((8, 8), 1000), 4) > 0
    True
    """
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    p = shape[0] * shape[1]
    return math.sqrt(2.0 * _pinv_l1_norm(shape) * math.log(p / epsilon) / n_samples)


def _check_penalty(penalty: str, k_l: float, l_value: float | None) -> float:
    """Validate the penalty arguments; the number the LP builder uses (``k_l`` or ``L``)."""
    if penalty not in ("relative", "theory", "absolute"):
        raise ValueError(f"penalty must be 'relative', 'theory' or 'absolute', got {penalty!r}")
    if penalty == "absolute":
        if isinstance(l_value, bool) or not isinstance(l_value, (int, float)) or l_value < 0:
            raise ValueError(f"penalty='absolute' needs l_value >= 0, got {l_value!r}")
        return float(l_value)
    if penalty == "relative" and not (isinstance(k_l, (int, float)) and 0 <= k_l <= 1):
        raise ValueError(f"k_l must be a number in [0, 1], got {k_l!r}")
    return k_l


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


@dataclass(frozen=True)
class LEGTVCertificate:
    """What the LEG-TV solve proves about its maps, per example and channel (``(B, C)``).

    Returned by ``LEGTV.attribute(..., return_certificate=True)`` (one per input for a tuple of
    inputs) and kept per penalty in :class:`LEGTVPath`.

    Attributes
    ----------
    penalty : Tensor
        The ``L`` of each program.
    sigma2 : float
        The perturbation scale used (the one ``sigma2="auto"`` chose).
    objective : Tensor
        ``||D g||_1`` of the returned (feasible) map.
    dual_objective : Tensor
        A lower bound on the optimum (a dual-feasible value; ``nan`` when the solver gives none,
        as the cvxpy reference does).
    duality_gap : Tensor
        ``objective - dual_objective``: the map is optimal to within this amount.
    feasibility_violation : Tensor
        How far the map breaks ``||D^{+T}(b - Sigma g)||_inf <= L`` (0 when feasible).
    converged : Tensor
        Whether the solver met its tolerance.
    iterations : int
        First-order iterations used (0 for exact solvers).

    Examples
    --------
    >>> import torch
    >>> from captum_latent import LEGTV
    >>> model = lambda x: x[:, :, 1:3, 1:3].sum(dim=(1, 2, 3)).unsqueeze(1)
    >>> _, cert = LEGTV(model).attribute(torch.zeros(2, 1, 5, 5), target=0, n_samples=100,
    ...                                  seed=0, return_certificate=True)
    >>> tuple(cert.duality_gap.shape), bool((cert.relative_gap <= 1e-4).all())
    ((2, 1), True)
    """

    penalty: Tensor
    sigma2: float
    objective: Tensor
    dual_objective: Tensor
    duality_gap: Tensor
    feasibility_violation: Tensor
    converged: Tensor
    iterations: int

    @property
    def relative_gap(self) -> Tensor:
        """``duality_gap / |objective|`` (0 for a zero map, whose gap is 0)."""
        return self.duality_gap / self.objective.abs().clamp_min(1e-12)


def _warn_if_unconverged(certificates: Sequence[LEGTVCertificate]) -> None:
    """One warning when a solve stopped before its duality-gap tolerance (the maps returned
    are feasible, their optimality not certified)."""
    short = sum(int((~c.converged).sum()) for c in certificates)
    if short == 0:
        return
    total = sum(c.converged.numel() for c in certificates)
    worst = max(float(c.relative_gap.nan_to_num(0.0).max()) for c in certificates)
    warnings.warn(
        f"LEG-TV: {short} of {total} solves stopped at the iteration limit before the duality-gap "
        f"tolerance (largest relative gap {worst:.1e}); the maps are feasible but not certified "
        "optimal. Raise FastTVSolver(max_iter=...), loosen tol, use a coarser grid_size, or "
        "inspect attribute(..., return_certificate=True)", RuntimeWarning, stacklevel=3)


@dataclass(frozen=True)
class LEGTVPath:
    """LEG-TV maps over a grid of penalties, largest ``L`` first (warm-started solves).

    Attributes
    ----------
    k_l : Tensor
        ``(K,)`` relative penalties ``L / L_max``.
    bounds : Tensor or tuple of Tensor
        ``(K, B, C)`` absolute penalties ``L`` (one per input for a tuple of inputs).
    attributions : Tensor or tuple of Tensor
        ``(K, ...)``: one attribution per penalty, in ``attribute``'s output layout (one per
        input for a tuple of inputs).
    certificates : list of LEGTVCertificate
        One per penalty (a tuple per input for a tuple of inputs).
    """

    k_l: Tensor
    bounds: Any
    attributions: Any
    certificates: list[Any]


class LEGTV(LEG):
    r"""LEG-TV: ``min ||D g||_1  s.t.  ||D^{+T}(b - Sigma g)||_inf <= L`` per channel (Eq. 4).

    ``b = mean_i(y~_i z_i)`` is collected exactly as for :class:`LEG`. The LP identifies ``g`` up
    to a constant; the constant is set so that the map's mean equals the empirical LEG's (a
    consistent estimate of the true mean, paper §4.1); when the covariance fixes the mean too
    (``Sigma 1`` not a multiple of ``1``), the feasible mean closest to it. The LP is solved by
    :class:`FastTVSolver` (certified by a duality gap): with the paper's perturbation through
    its structured form at any grid size, with ``IndependentGaussian`` through the general
    form's DCT path (no dense matrix, any grid size), with any other covariance through the
    general form (a dense ``p x p`` factorisation: grids up to ``max_dense_pixels``, 64x64 by
    default). On a ``feature_mask``'s cells the LP is solved exactly by HiGHS, certified by its
    dual.

    Parameters
    ----------
    forward_func, perturbation, output_transform
        As for :class:`LEG`.
    solver : FastTVSolver or CvxpyTVSolver, optional
        Default (``None``): ``FastTVSolver()`` for the paper's ``TVGaussian`` and for
        ``IndependentGaussian`` (DCT-diagonal: faster than cvxpy at 28x28 on one CPU thread,
        see docs/benchmarks.md); for any other covariance ``CvxpyTVSolver()`` when the
        attribution runs on the CPU (exact, and as fast as the dense general first-order path
        there up to 28x28) and ``FastTVSolver()`` on a GPU. Pass one to choose.

    Examples
    --------
    >>> import torch
    >>> from captum_latent import LEGTV
    >>> w = torch.zeros(1, 1, 8, 8); w[..., 2:5, 2:6] = 1.0
    >>> model = lambda x: (x * w).sum(dim=(1, 2, 3)).unsqueeze(1)
    >>> attr, cert = LEGTV(model).attribute(
    ...     torch.zeros(1, 1, 8, 8), target=0, n_samples=300, seed=0, return_certificate=True
    ... )
    >>> cert.feasibility_violation.max().item() <= 1e-9, tuple(cert.penalty.shape)
    (True, (1, 1))
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        perturbation: PerturbationScheme | None = None,
        output_transform: str = "none",
        solver: TVSolver | None = None,
    ) -> None:
        super().__init__(forward_func, perturbation, output_transform)
        if solver is not None and not isinstance(solver, (FastTVSolver, CvxpyTVSolver)):
            raise TypeError(
                f"solver must be FastTVSolver or CvxpyTVSolver, got {type(solver).__name__}"
            )
        self.solver = solver
        self._defaults: dict[str, TVSolver] = {}

    def _collect_moments(self, call: _Call) -> _Collected:
        """As :meth:`LEG._collect_moments`, after refusing what the LP cannot solve (before any
        model evaluation)."""
        if call.feature_mask is not None and isinstance(self.perturbation, IndependentGaussian):
            raise ValueError(
                "LEGTV with a feature_mask needs the paper's TVGaussian perturbation (the LP on "
                "cells uses its structure); LEG takes IndependentGaussian with a mask"
            )
        return super()._collect_moments(call)

    def has_convergence_delta(self) -> bool:
        """``True``: ``return_convergence_delta=True`` gives each example's relative duality
        gap (Captum's convention, so ``NoiseTunnel`` collects it too)."""
        return True

    def _solver_for(self, moments: Tensor) -> TVSolver:
        """The solver given, else the default for this perturbation and device."""
        if self.solver is not None:
            return self.solver
        scheme = self.perturbation
        fast = scheme.structured or scheme.dct_diagonal or moments.device.type != "cpu"
        kind = "fast" if fast else "cvxpy"
        if kind not in self._defaults:
            self._defaults[kind] = FastTVSolver() if fast else CvxpyTVSolver()
        return self._defaults[kind]

    @_with_common_parameters
    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        feature_mask: Any = None,
        n_samples: int = 500,
        sigma2: float | str = "auto",
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        grid_size: tuple[int, int] | None = None,
        channel_reduction: str = "auto",
        contrast_target: TargetType = None,
        return_input_shape: bool = True,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        k_l: float = 0.1,
        penalty: str = "relative",
        epsilon: float = 0.05,
        l_value: float | None = None,
        return_certificate: bool = False,
        return_convergence_delta: bool = False,
    ) -> Any:
        """Attribute ``f_target`` (minus ``f_contrast_target``, Eq. 1): collect the moments
        as :meth:`LEG.attribute` does, then solve the TV-penalised LP (Eq. 4).

        Parameters
        ----------
        <common parameters>
        k_l : float, default 0.1
            With ``penalty="relative"``: ``L = k_l * L_max`` (paper §4.3, which uses 0.05 or
            0.1; 0.1 reads as regions and was as faithful as 0.05 in the deletion test of
            docs/benchmarks.md), ``0 <= k_l <= 1``;
            ``L_max`` is per example, the largest over its channels (and inputs), so that a
            channel the model ignores is not explained by noise.
        penalty : {"relative", "theory", "absolute"}, default "relative"
            ``"theory"``: Theorem 1's ``L`` for ``epsilon`` (often conservative);
            ``"absolute"``: ``L = l_value`` for every example and channel (e.g. to compare
            models at one penalty, as in the sanity check).
        epsilon : float, default 0.05
            Failure probability for ``penalty="theory"``.
        l_value : float, optional
            The penalty ``L`` for ``penalty="absolute"``.
        return_certificate : bool, default False
            Also return the solve's :class:`LEGTVCertificate` (one per input for a tuple): the
            penalty ``L`` used, objective, dual bound, duality gap, feasibility and convergence
            per example and channel.
        return_convergence_delta : bool, default False
            Captum's convention: also return a ``(B,)`` tensor, each example's largest relative
            duality gap (``nan`` where the solver gives no dual bound).

        Returns
        -------
        Tensor (or tuple, matching ``inputs``)
            The LEG-TV maps; followed by the certificate and/or the delta when asked for, in
            that order: ``(maps, certificate)``, ``(maps, delta)`` or
            ``(maps, certificate, delta)``.

        Examples
        --------
        A user covariance (here: smooth, a squared-exponential kernel on the 6x6 grid):

        >>> import torch
        >>> from captum_latent import LEGTV
        >>> from captum_latent.attr import CovarianceGaussian
        >>> ij = torch.cartesian_prod(torch.arange(6), torch.arange(6)).double()
        >>> kernel = torch.exp(-torch.cdist(ij, ij) ** 2 / 4) + 0.1 * torch.eye(36)
        >>> model = lambda x: x[:, :, 1:4, 2:5].sum(dim=(1, 2, 3)).unsqueeze(1)
        >>> explainer = LEGTV(model, perturbation=CovarianceGaussian(kernel))
        >>> attr, cert = explainer.attribute(
        ...     torch.zeros(1, 1, 6, 6), target=0, n_samples=200, seed=0, return_certificate=True
        ... )
        >>> bool(cert.converged.all()), tuple(attr.shape)
        (True, (1, 1, 6, 6))
        """
        k_l = _check_penalty(penalty, k_l, l_value)
        _check_flag("return_certificate", return_certificate)
        _check_flag("return_convergence_delta", return_convergence_delta)
        got = self._collect_moments(_Call.of(locals()))
        bounds = self._bounds(got, k_l, penalty, epsilon)
        maps, certs = [], []
        for layout, bk, bound, s2 in zip(got.layouts, got.b, bounds, got.sigma2):
            m, cert, _ = self._solve_input(layout, bk, s2, bound)
            maps.append(_finish(layout, m, channel_reduction, return_input_shape))
            certs.append(cert)
        _warn_if_unconverged(certs)
        attributions = tuple(maps) if got.is_tuple else maps[0]
        if not (return_certificate or return_convergence_delta):
            return attributions
        out: tuple[Any, ...] = (attributions,)
        if return_certificate:
            out += (tuple(certs) if got.is_tuple else certs[0],)
        if return_convergence_delta:
            gaps = torch.stack([c.relative_gap.amax(dim=1) for c in certs]).amax(dim=0)
            out += (gaps.to(got.layouts[0].x.device),)
        return out

    @_with_common_parameters
    def attribute_path(
        self,
        inputs: Any,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        feature_mask: Any = None,
        n_samples: int = 500,
        sigma2: float | str = "auto",
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        grid_size: tuple[int, int] | None = None,
        channel_reduction: str = "auto",
        contrast_target: TargetType = None,
        return_input_shape: bool = True,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        k_l_grid: int | Sequence[float] = 10,
    ) -> LEGTVPath:
        """The whole solution path over relative penalties (one set of model evaluations).

        Parameters
        ----------
        <common parameters>
        k_l_grid : int or sequence of float, default 10
            Relative penalties ``K_L`` in ``[0, 1]``, or a count ``K`` (``K`` values log-spaced
            from 1 down to 0.01). Solves run from the largest ``L`` down, each warm-started
            from the previous one.

        Returns
        -------
        LEGTVPath
            The penalties, one attribution per penalty (``(K, ...)``, in :meth:`attribute`'s
            layout; a tuple of them for a tuple of inputs) and one certificate per penalty.

        Examples
        --------
        >>> import torch
        >>> from captum_latent import LEGTV
        >>> model = lambda x: x[:, :, 1:4, 2:5].sum(dim=(1, 2, 3)).unsqueeze(1)
        >>> path = LEGTV(model).attribute_path(
        ...     torch.zeros(1, 1, 6, 6), target=0, n_samples=100, seed=0, k_l_grid=[1.0, 0.1]
        ... )
        >>> tuple(path.attributions.shape), bool(path.attributions[0].std() == 0)  # L_max: flat
        ((2, 1, 1, 6, 6), True)
        """
        if isinstance(k_l_grid, (bool, str)) or not isinstance(k_l_grid, (int, Sequence, Tensor)):
            raise TypeError(f"k_l_grid must be an int or a sequence of floats, got {k_l_grid!r}")
        if isinstance(k_l_grid, int):
            if k_l_grid < 1:
                raise ValueError(f"k_l_grid must be >= 1, got {k_l_grid}")
            values = torch.logspace(0, -2, k_l_grid, dtype=torch.float64)
        else:
            values = torch.as_tensor(list(k_l_grid), dtype=torch.float64)
            if values.numel() == 0 or bool(((values < 0) | (values > 1)).any()):
                raise ValueError("k_l_grid values must lie in [0, 1]")
            values = values.sort(descending=True).values
        got = self._collect_moments(_Call.of(locals()))
        count = len(got.layouts)
        outs: list[list[Tensor]] = [[] for _ in range(count)]
        certs: list[list[LEGTVCertificate]] = [[] for _ in range(count)]
        states: list[Any] = [None] * count
        for k in values.tolist():
            bounds = self._bounds(got, k, "relative", 0.05)
            for j, (layout, bk, bound) in enumerate(zip(got.layouts, got.b, bounds)):
                m, cert, states[j] = self._solve_input(layout, bk, got.sigma2[j], bound, states[j])
                outs[j].append(_finish(layout, m, channel_reduction, return_input_shape))
                certs[j].append(cert)
        _warn_if_unconverged([c for per_input in certs for c in per_input])
        stacked = tuple(torch.stack(o) for o in outs)
        per_penalty = [tuple(c[i] for c in certs) if got.is_tuple else certs[0][i]
                       for i in range(values.numel())]
        bounds = tuple(torch.stack([c.penalty for c in per_input]) for per_input in certs)
        if not got.is_tuple:
            return LEGTVPath(values, bounds[0], stacked[0], per_penalty)
        return LEGTVPath(values, bounds, stacked, per_penalty)

    def _bounds(self, got: _Collected, k_l: float, penalty: str, epsilon: float) -> list[Tensor]:
        """Each input's penalties ``L``, ``(B, C)``; ``"relative"``: ``k_l`` times the example's
        ``L_max``, the largest over all its channels and inputs."""
        batch = len(got.b[0])
        if penalty == "absolute":
            return [torch.full((batch, bk[0].shape[0]), float(k_l), dtype=torch.float64)
                    for bk in got.b]
        if penalty == "theory":
            out = []
            for layout, bk in zip(got.layouts, got.b):
                rows = []
                for i in range(batch):
                    if layout.masked:
                        norm = layout.ops(i).pinv_l1_norm()
                        p = layout.ops(i).graph.p
                        value = math.sqrt(2.0 * norm * math.log(p / epsilon) / got.n)
                    else:
                        value = theoretical_bound(layout.grid, got.n, epsilon)
                    rows.append(torch.full((bk[0].shape[0],), value, dtype=torch.float64))
                out.append(torch.stack(rows))
            return out
        l_max = [self._l_max(layout, bk, s2)
                 for layout, bk, s2 in zip(got.layouts, got.b, got.sigma2)]
        joint = torch.stack([lm.amax(dim=1) for lm in l_max]).amax(dim=0)  # (B,)
        return [k_l * joint[:, None].expand_as(lm).clone() for lm in l_max]

    @staticmethod
    def _l_max(layout: _Layout, bk: list[Tensor], sigma2: float) -> Tensor:
        """``L_max = ||D^{+T} b||_inf`` per example and channel, ``(B, C)`` on the CPU."""
        if layout.masked:
            return torch.stack([layout.ops(i).edge_data(bi).abs().amax(dim=1)
                                for i, bi in enumerate(bk)]).cpu()
        stacked = torch.stack(bk)
        flat = stacked.reshape(-1, *layout.grid)
        helper = StructuredTVProblem.from_moments(flat, sigma2, k_l=1.0)
        return helper.l_max.reshape(stacked.shape[0], stacked.shape[1]).double().cpu()

    def _solve_input(
        self,
        layout: _Layout,
        bk: list[Tensor],
        sigma2: float,
        bound: Tensor,
        state: Any = None,
    ) -> tuple[list[Tensor], LEGTVCertificate, Any]:
        """One input's LEG-TV maps (``bk[i]``'s layout), certificate and warm-start state."""
        if layout.masked:
            return (*self._solve_cells(layout, bk, sigma2, bound), None)
        stacked = torch.stack(bk)
        flat = stacked.reshape(-1, *layout.grid)
        problem = self._problem(flat, sigma2, bound.reshape(-1).to(flat))
        solution = self._solver_for(flat).solve(problem, warm_start=state)
        maps = self._with_mean(solution, problem, flat, sigma2).reshape(stacked.shape)
        shape = tuple(stacked.shape[:2])
        cert = solution.certificate
        return list(maps), LEGTVCertificate(
            penalty=bound.reshape(shape).to(flat),
            sigma2=sigma2,
            objective=cert.objective.reshape(shape),
            dual_objective=cert.dual_objective.reshape(shape),
            duality_gap=cert.duality_gap.reshape(shape),
            feasibility_violation=cert.feasibility_violation.reshape(shape),
            converged=cert.converged.reshape(shape),
            iterations=cert.iterations,
        ), solution.state

    def _solve_cells(
        self, layout: _Layout, bk: list[Tensor], sigma2: float, bound: Tensor
    ) -> tuple[list[Tensor], LEGTVCertificate]:
        """The LP on each example's cells (HiGHS), with the empirical LEG's mean per channel."""
        maps, parts = [], []
        for i, bi in enumerate(bk):
            ops = layout.ops(i)
            sol = ops.solve_tv(ops.edge_data(bi), sigma2, bound[i])
            mean = ops.leg(bi, sigma2, False).mean(dim=1, keepdim=True).cpu()
            maps.append((sol.pop("maps") + mean).to(bi))
            parts.append(sol)
        fields = {k: torch.stack([p[k] for p in parts]) for k in parts[0]}
        return maps, LEGTVCertificate(penalty=bound.double(), sigma2=sigma2, iterations=0,
                                      **fields)

    def _problem(
        self, flat: Tensor, sigma2: float, bound: Tensor
    ) -> StructuredTVProblem | GeneralTVProblem:
        """The LP of every (example, channel) map of ``flat`` ``(B*C, h, w)`` at penalties
        ``bound`` ``(B*C,)``."""
        grid = (flat.shape[1], flat.shape[2])
        if self.perturbation.structured:
            problem = StructuredTVProblem.from_moments(flat, sigma2, k_l=1.0)
            return StructuredTVProblem(problem.c, sigma2, bound, grid)
        pixels = grid[0] * grid[1]
        solver = self._solver_for(flat)
        dense = not self.perturbation.dct_diagonal  # DCT-diagonal: no p x p matrix
        if dense and isinstance(solver, FastTVSolver) and pixels > solver.max_dense_pixels:
            raise ValueError(
                f"{type(self.perturbation).__name__} on a {grid[0]}x{grid[1]} grid needs a dense "
                f"{pixels}x{pixels} covariance, above FastTVSolver's max_dense_pixels="
                f"{solver.max_dense_pixels}: pass a coarser grid_size, use TVGaussian "
                "(no dense matrix at any size), or a solver with a larger max_dense_pixels"
            )
        cov = self.perturbation.covariance_operator(grid, sigma2).to(flat)
        return GeneralTVProblem(flat, cov, bound)

    def _with_mean(
        self,
        solution: TVSolution,
        problem: StructuredTVProblem | GeneralTVProblem,
        flat: Tensor,
        sigma2: float,
    ) -> Tensor:
        """The LP's maps with the empirical LEG's mean (the nearest feasible one when the
        covariance fixes the mean)."""
        mean = self.perturbation.solve(flat, sigma2).mean(dim=(1, 2))
        maps = solution.maps.to(flat)
        if isinstance(problem, GeneralTVProblem):
            return _feasible_general(problem, maps, mean)[0]
        return maps - maps.mean(dim=(1, 2), keepdim=True) + mean[:, None, None]


register_adapter(LEGTV, LEGTVDatasetAdapter)
