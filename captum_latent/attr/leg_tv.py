"""LEG-TV: the TV-penalised LEG estimate (paper Eq. 4) as a Captum attribution."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch
from captum._utils.typing import TargetType
from torch import Tensor

from captum_latent.adapters import register_adapter
from captum_latent.attr._attribute import _Call, _with_common_parameters
from captum_latent.attr._dataset import LEGTVDatasetAdapter
from captum_latent.attr._general import _feasible_general
from captum_latent.attr._grid import _pinv_l1_norm
from captum_latent.attr._moments import _finish
from captum_latent.attr.leg import LEG
from captum_latent.attr.perturbations import PerturbationScheme
from captum_latent.attr.tv_problem import (
    Certificate,
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


def _check_penalty(penalty: str, k_l: float, l_value: Optional[float]) -> float:
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


def _warn_if_unconverged(certificates: Sequence[Certificate]) -> None:
    """One warning when a solve stopped before its duality-gap tolerance (the maps returned
    are feasible, their optimality not certified)."""
    short = sum(int((~c.converged).sum()) for c in certificates)
    if short == 0:
        return
    total = sum(c.converged.numel() for c in certificates)
    worst = max(float((c.duality_gap / c.objective.abs().clamp_min(1e-300)).max())
                for c in certificates)
    warnings.warn(
        f"LEG-TV: {short} of {total} solves stopped at the iteration limit before the duality-gap "
        f"tolerance (largest relative gap {worst:.1e}); the maps are feasible but not certified "
        "optimal. Raise FastTVSolver(max_iter=...), loosen tol, use a coarser grid_size, or "
        "check last_certificate", RuntimeWarning, stacklevel=3)


@dataclass(frozen=True)
class LEGTVPath:
    """LEG-TV maps over a grid of penalties, largest ``L`` first (warm-started solves).

    Attributes
    ----------
    k_l : Tensor
        ``(K,)`` relative penalties ``L / L_max``.
    bounds : Tensor
        ``(K, B, C)`` absolute penalties ``L``.
    attributions : Tensor
        ``(K, ...)``: one attribution per penalty, in ``attribute``'s output layout.
    certificates : list of Certificate
        One per penalty (batched over examples and channels).
    """

    k_l: Tensor
    bounds: Tensor
    attributions: Tensor
    certificates: list[Certificate]


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
    default).

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
    >>> explainer = LEGTV(model)
    >>> attr = explainer.attribute(torch.zeros(1, 1, 8, 8), target=0, n_samples=300, seed=0)
    >>> explainer.last_certificate.feasibility_violation.max().item() <= 1e-9
    True
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        perturbation: Optional[PerturbationScheme] = None,
        output_transform: str = "none",
        solver: Optional[TVSolver] = None,
    ) -> None:
        super().__init__(forward_func, perturbation, output_transform)
        if solver is not None and not isinstance(solver, (FastTVSolver, CvxpyTVSolver)):
            raise TypeError(
                f"solver must be FastTVSolver or CvxpyTVSolver, got {type(solver).__name__}"
            )
        self.solver = solver
        self.last_certificate: Optional[Certificate] = None
        self.last_penalty: Optional[Tensor] = None
        self._defaults: dict[str, TVSolver] = {}

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
        n_samples: int = 500,
        sigma2: float = 0.1,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
        grid_size: Optional[tuple[int, int]] = None,
        channel_reduction: str = "auto",
        contrast_target: TargetType = None,
        return_input_shape: bool = True,
        seed: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        k_l: float = 0.05,
        penalty: str = "relative",
        epsilon: float = 0.05,
        l_value: Optional[float] = None,
    ) -> Any:
        """Attribute ``f_target`` (minus ``f_contrast_target``, Eq. 1): collect the moments
        as :meth:`LEG.attribute` does, then solve the TV-penalised LP (Eq. 4).

        Parameters
        ----------
        <common parameters>
        k_l : float, default 0.05
            With ``penalty="relative"``: ``L = k_l * L_max`` (paper §4.3), ``0 <= k_l <= 1``;
            ``L_max`` is per example, the largest over its channels, so that a channel the
            model ignores is not explained by noise.
        penalty : {"relative", "theory", "absolute"}, default "relative"
            ``"theory"``: Theorem 1's ``L`` for ``epsilon`` (often conservative);
            ``"absolute"``: ``L = l_value`` for every example and channel (e.g. to compare
            models at one penalty, as in the sanity check).
        epsilon : float, default 0.05
            Failure probability for ``penalty="theory"``.
        l_value : float, optional
            The penalty ``L`` for ``penalty="absolute"``.

        Returns
        -------
        Tensor (or 1-tuple, matching ``inputs``)
            The LEG-TV maps. The solver's certificate is stored in ``self.last_certificate``
            and the penalties used in ``self.last_penalty`` (``(B, C)``).

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
        >>> attr = explainer.attribute(torch.zeros(1, 1, 6, 6), target=0, n_samples=200, seed=0)
        >>> bool(explainer.last_certificate.converged.all()), tuple(attr.shape)
        (True, (1, 1, 6, 6))
        """
        k_l = _check_penalty(penalty, k_l, l_value)
        call = _Call.of(locals())
        b, x, is_tuple, grid = self._collect_moments(call)
        flat = b.reshape(-1, *grid)
        problem = self._problem(flat, float(sigma2), k_l, penalty, epsilon, n_samples, b.shape[1])
        solution = self._solver_for(flat).solve(problem)
        _warn_if_unconverged([solution.certificate])
        self.last_certificate = solution.certificate
        self.last_penalty = problem.bound.reshape(b.shape[0], b.shape[1])
        maps = self._with_mean(solution, problem, flat, float(sigma2)).reshape(b.shape)
        return _finish(maps, x, channel_reduction, return_input_shape, is_tuple)

    @_with_common_parameters
    def attribute_path(
        self,
        inputs: Any,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_samples: int = 500,
        sigma2: float = 0.1,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
        grid_size: Optional[tuple[int, int]] = None,
        channel_reduction: str = "auto",
        contrast_target: TargetType = None,
        return_input_shape: bool = True,
        seed: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        k_l_grid: Union[int, Sequence[float]] = 10,
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
            The penalties, one attribution per penalty (``return_input_shape`` as for
            :meth:`attribute`, never a tuple) and one certificate per penalty.

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
        if isinstance(k_l_grid, int):
            if k_l_grid < 1:
                raise ValueError(f"k_l_grid must be >= 1, got {k_l_grid}")
            values = torch.logspace(0, -2, k_l_grid, dtype=torch.float64)
        else:
            values = torch.as_tensor(list(k_l_grid), dtype=torch.float64)
            if values.numel() == 0 or bool(((values < 0) | (values > 1)).any()):
                raise ValueError("k_l_grid values must lie in [0, 1]")
            values = values.sort(descending=True).values
        b, x, is_tuple, grid = self._collect_moments(_Call.of(locals()))
        flat = b.reshape(-1, *grid)
        outs, bounds, certs = [], [], []
        state = None
        for k in values.tolist():
            problem = self._problem(flat, float(sigma2), k, "relative", 0.05, n_samples, b.shape[1])
            solution = self._solver_for(flat).solve(problem, warm_start=state)
            state = solution.state
            maps = self._with_mean(solution, problem, flat, float(sigma2)).reshape(b.shape)
            outs.append(_finish(maps, x, channel_reduction, return_input_shape, False))
            bounds.append(problem.bound.reshape(b.shape[0], b.shape[1]))
            certs.append(solution.certificate)
        _warn_if_unconverged(certs)
        self.last_certificate = certs[-1]
        return LEGTVPath(values, torch.stack(bounds), torch.stack(outs), certs)

    @staticmethod
    def _joint_l_max(l_max: Tensor, channels: int) -> Tensor:
        """``L_max`` of an example: the largest over its channels (all maps zero above it)."""
        joint = l_max.reshape(-1, channels).amax(dim=1, keepdim=True)
        return joint.expand(-1, channels).reshape(-1)

    def _problem(
        self,
        flat: Tensor,
        sigma2: float,
        k_l: float,
        penalty: str,
        epsilon: float,
        n: int,
        channels: int,
    ) -> Union[StructuredTVProblem, GeneralTVProblem]:
        grid = (flat.shape[1], flat.shape[2])
        if penalty == "absolute":
            fixed = torch.full((flat.shape[0],), k_l, dtype=flat.dtype, device=flat.device)
        if self.perturbation.structured:
            if penalty == "absolute":
                return StructuredTVProblem.from_moments(flat, sigma2, bound=fixed)
            if penalty == "theory":
                return StructuredTVProblem.from_moments(
                    flat, sigma2, bound=torch.tensor(theoretical_bound(grid, n, epsilon))
                )
            problem = StructuredTVProblem.from_moments(flat, sigma2, k_l=1.0)
            return StructuredTVProblem(
                problem.c, sigma2, k_l * self._joint_l_max(problem.l_max, channels), grid
            )
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
        if penalty == "absolute":
            bound = fixed
        elif penalty == "theory":
            bound = torch.full((flat.shape[0],), theoretical_bound(grid, n, epsilon)).to(flat)
        else:
            helper = StructuredTVProblem.from_moments(flat, sigma2, k_l=1.0)
            # L_max of the general program: ||D^{+T} b||_inf (g = 0 feasible)
            bound = k_l * self._joint_l_max(helper.l_max, channels)
        return GeneralTVProblem(flat, cov, bound)

    def _with_mean(
        self,
        solution: TVSolution,
        problem: Union[StructuredTVProblem, GeneralTVProblem],
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
