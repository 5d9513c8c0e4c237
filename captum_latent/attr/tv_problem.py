"""The LEG-TV linear program (paper Eq. 4) in its two formulations, and its solution objects.

General formulation, any covariance ``Sigma`` (``p x p``, ``p = h * w``)::

    min_g ||D g||_1   s.t.   || D^{+T} (b - Sigma g) ||_inf <= L

Structured formulation, for the paper's covariance ``Sigma = s2 (D^T D + 11^T / p)``: since
``D^{+T} Sigma = s2 D`` the constraint is ``|| c - s2 D g ||_inf <= L`` with ``c = D^{+T} b``.
The structured program is invariant to adding a constant to ``g``: solvers return mean-zero
maps and the caller chooses the mean (:class:`~captum_latent.attr.LEGTV` uses the empirical
LEG's mean). The general one is too when ``Sigma 1`` is a multiple of ``1`` (the paper's and the
independent covariance); otherwise the constraint also restricts the mean (``D^{+T} Sigma 1 !=
0``) and solvers return the feasible shift of their solution closest to mean zero.

A general covariance is a dense ``(p, p)`` tensor or, when the 2-D DCT-II diagonalises it (e.g.
``s2 I``), a :class:`SpectralCovariance`: its ``p`` eigenvalues only, no ``p x p`` matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_latent.attr._grid import _GridLaplacian, _n_edges, _pinv_transpose


@dataclass(frozen=True)
class StructuredTVProblem:
    """A batch of LEG-TV programs ``min ||D g||_1  s.t.  ||c - s2 D g||_inf <= L``.

    Parameters
    ----------
    c : Tensor
        ``(B, m)`` edge data ``D^{+T} b`` (must lie in the range of ``D``).
    sigma2 : float
        Perturbation scale ``s2 > 0``.
    bound : Tensor
        ``(B,)`` penalty levels ``L >= 0``.
    shape : tuple of int
        Grid shape ``(h, w)``, ``h, w >= 2``.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.attr.tv_problem import StructuredTVProblem
    >>> b = torch.randn(1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> prob = StructuredTVProblem.from_moments(b, sigma2=0.1, k_l=0.1)
    >>> prob.c.shape, prob.bound.shape
    (torch.Size([1, 60]), torch.Size([1]))
    """

    c: Tensor
    sigma2: float
    bound: Tensor
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        if not isinstance(self.c, Tensor) or self.c.dim() != 2:
            raise TypeError(f"c must be a (B, m) tensor, got {type(self.c).__name__}")
        if len(self.shape) != 2 or min(self.shape) < 2:
            raise ValueError(f"shape must be (h, w) with h, w >= 2, got {self.shape}")
        if self.c.shape[1] != _n_edges(self.shape):
            raise ValueError(
                f"c has {self.c.shape[1]} edges but a {self.shape} grid has "
                f"{_n_edges(self.shape)}"
            )
        if not self.sigma2 > 0:
            raise ValueError(f"sigma2 must be > 0, got {self.sigma2}")
        if self.bound.shape != (self.c.shape[0],):
            raise ValueError(
                f"bound must have shape ({self.c.shape[0]},), got {tuple(self.bound.shape)}"
            )
        if bool((self.bound < 0).any()):
            raise ValueError("bound (L) must be >= 0")

    @property
    def l_max(self) -> Tensor:
        """Smallest ``L`` whose solution is ``g = 0`` (paper §4.3): ``||c||_inf``."""
        return self.c.abs().amax(dim=1)

    @classmethod
    def from_moments(
        cls,
        b: Tensor,
        sigma2: float,
        k_l: float | None = None,
        bound: Tensor | None = None,
    ) -> StructuredTVProblem:
        """Build from the moment map ``b = mean_i(y_i z_i)`` of shape ``(B, h, w)``.

        Exactly one of ``k_l`` (``L = k_l * L_max``) and ``bound`` (``L`` itself) is given.
        """
        if (k_l is None) == (bound is None):
            raise ValueError("give exactly one of k_l and bound")
        if b.dim() != 3:
            raise ValueError(f"b must have shape (B, h, w), got {tuple(b.shape)}")
        lap = _GridLaplacian((b.shape[1], b.shape[2]), b.dtype, b.device)
        c = _pinv_transpose(b, lap)
        if k_l is not None:
            if not 0.0 <= k_l:
                raise ValueError(f"k_l must be >= 0, got {k_l}")
            bound_t = k_l * c.abs().amax(dim=1)
        else:
            bound_t = torch.as_tensor(bound, dtype=b.dtype, device=b.device).reshape(-1)
            bound_t = bound_t.expand(b.shape[0]).clone()
        return cls(c=c, sigma2=float(sigma2), bound=bound_t, shape=(b.shape[1], b.shape[2]))


@dataclass(frozen=True)
class SpectralCovariance:
    """A covariance diagonalised by the orthonormal 2-D DCT-II: ``Sigma = C^T diag(s) C``.

    ``C`` is the 2-D DCT-II of the grid (the eigenbasis of the Neumann Laplacian ``D^T D``), so
    every spectral function of the Laplacian is one, e.g. ``s2 I`` (``IndependentGaussian``).
    Nothing of size ``p x p`` is stored; :class:`~captum_latent.attr.FastTVSolver` solves
    such problems with DCTs only, at any grid size.

    Parameters
    ----------
    spectrum : Tensor
        ``(h, w)`` positive eigenvalues; entry ``(i, j)`` belongs to the DCT basis image of
        frequencies ``(i, j)`` (``(0, 0)``: the constant image).

    Examples
    --------
    >>> import torch
    >>> from captum_latent.attr import SpectralCovariance
    >>> cov = SpectralCovariance.scaled_identity((3, 4), 0.5)
    >>> bool(torch.allclose(cov.dense(), 0.5 * torch.eye(12, dtype=torch.float64)))
    True
    """

    spectrum: Tensor

    def __post_init__(self) -> None:
        spec = self.spectrum
        if not isinstance(spec, Tensor) or spec.dim() != 2 or not spec.is_floating_point():
            raise TypeError("spectrum must be a floating-point (h, w) tensor")
        if min(spec.shape) < 2:
            raise ValueError(f"spectrum must be at least 2x2, got {tuple(spec.shape)}")
        if not bool((torch.isfinite(spec) & (spec > 0)).all()):
            raise ValueError("spectrum must be finite and > 0 (a positive-definite covariance)")

    @classmethod
    def scaled_identity(
        cls,
        shape: tuple[int, int],
        sigma2: float,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> SpectralCovariance:
        """``sigma2 * I`` on an ``(h, w)`` grid."""
        return cls(torch.full(tuple(shape), float(sigma2), dtype=dtype, device=device))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.spectrum.shape[0], self.spectrum.shape[1])

    def to(self, *args: Any, **kwargs: Any) -> SpectralCovariance:
        """Move/cast the spectrum (``Tensor.to`` arguments)."""
        return SpectralCovariance(self.spectrum.to(*args, **kwargs))

    def matmul(self, g: Tensor) -> Tensor:
        """``Sigma g`` for maps ``g`` of shape ``(B, h, w)``."""
        lap = _GridLaplacian(self.shape, g.dtype, g.device)
        return lap.inverse_dct(self.spectrum.to(g) * lap.forward_dct(g))

    def dense(self) -> Tensor:
        """The ``(p, p)`` matrix (small grids: tests and the reference solver)."""
        h, w = self.shape
        eye = torch.eye(h * w, dtype=self.spectrum.dtype, device=self.spectrum.device)
        return self.matmul(eye.reshape(-1, h, w)).reshape(h * w, h * w)


@dataclass(frozen=True)
class GeneralTVProblem:
    """A batch of LEG-TV programs with a general covariance (paper Eq. 4 as written).

    Parameters
    ----------
    b : Tensor
        ``(B, h, w)`` moment maps ``mean_i(y_i z_i)``.
    covariance : Tensor or SpectralCovariance
        ``(p, p)`` symmetric positive-definite ``Sigma`` (already scaled by ``s2``), or a
        :class:`SpectralCovariance` (DCT-diagonal ``Sigma``, no dense matrix).
    bound : Tensor
        ``(B,)`` penalty levels ``L >= 0``.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.attr.tv_problem import GeneralTVProblem
    >>> b = torch.zeros(1, 3, 3, dtype=torch.float64)
    >>> prob = GeneralTVProblem(b, 0.1 * torch.eye(9, dtype=torch.float64), torch.ones(1))
    >>> prob.shape
    (3, 3)
    """

    b: Tensor
    covariance: Tensor | SpectralCovariance
    bound: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.b, Tensor) or self.b.dim() != 3:
            raise TypeError("b must be a (B, h, w) tensor")
        p = self.b.shape[1] * self.b.shape[2]
        if isinstance(self.covariance, SpectralCovariance):
            if self.covariance.shape != tuple(self.b.shape[1:]):
                raise ValueError(
                    f"covariance spectrum must have the grid's shape {tuple(self.b.shape[1:])}, "
                    f"got {self.covariance.shape}"
                )
        elif not isinstance(self.covariance, Tensor):
            raise TypeError("covariance must be a (p, p) tensor or a SpectralCovariance")
        elif self.covariance.shape != (p, p):
            raise ValueError(
                f"covariance must have shape ({p}, {p}), got {tuple(self.covariance.shape)}"
            )
        if min(self.b.shape[1:]) < 2:
            raise ValueError(f"grid must be at least 2x2, got {tuple(self.b.shape[1:])}")
        if self.bound.shape != (self.b.shape[0],):
            raise ValueError(f"bound must have shape ({self.b.shape[0]},)")
        if bool((self.bound < 0).any()):
            raise ValueError("bound (L) must be >= 0")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.b.shape[1], self.b.shape[2])


@dataclass(frozen=True)
class Certificate:
    """What a solver proves about its answer, per problem of the batch.

    Attributes
    ----------
    objective : Tensor
        ``||D g||_1`` of the returned (feasible) maps.
    dual_objective : Tensor
        A lower bound on the optimum (a dual-feasible point's value); ``nan`` if unknown.
    duality_gap : Tensor
        ``objective - dual_objective`` (``>= 0`` up to rounding): the returned map is optimal
        to within this amount.
    feasibility_violation : Tensor
        ``max(||c - s2 D g||_inf - L, 0)`` (general problems: ``max(||c - D^{+T} Sigma g||_inf
        - L, 0)``) in the constraint's units.
    iterations : int
        Iterations used (0 for the reference solver).
    converged : Tensor
        Whether the relative gap met the tolerance.
    """

    objective: Tensor
    dual_objective: Tensor
    duality_gap: Tensor
    feasibility_violation: Tensor
    iterations: int
    converged: Tensor

    @property
    def relative_gap(self) -> Tensor:
        return self.duality_gap / self.objective.abs().clamp_min(1e-12)


@dataclass(frozen=True)
class TVSolution:
    """Solution maps ``(B, h, w)`` (mean zero), their certificate and a warm-start state."""

    maps: Tensor
    certificate: Certificate
    state: Any = None
