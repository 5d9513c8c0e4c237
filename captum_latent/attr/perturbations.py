"""Gaussian perturbation schemes for LEG: the paper's TV-adapted one, independent, user-given.

Every scheme describes ``Sigma = sigma2 * S`` on an ``(h, w)`` grid through three operations:
``sample`` (draws ``z ~ N(0, Sigma)``), ``solve`` (``Sigma^{-1} b``, the empirical LEG of Eq. 3)
and ``structured`` (whether ``D^{+T} Sigma = sigma2 D``, which enables the fast LEG-TV solver).
``dct_diagonal`` schemes (the 2-D DCT-II diagonalises ``Sigma``) hand the general LEG-TV
solver a :class:`~captum_latent.attr.tv_problem.SpectralCovariance` (``covariance_operator``)
instead of a dense matrix, so they are solved at any grid size.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from captum_latent.attr._grid import _diff_adjoint, _diff_matrix, _GridLaplacian, _n_edges
from captum_latent.attr.tv_problem import SpectralCovariance


def _check_sigma2(sigma2: float) -> float:
    if isinstance(sigma2, bool) or not isinstance(sigma2, (int, float)):
        raise TypeError(f"sigma2 must be a float, got {type(sigma2).__name__}")
    if not sigma2 > 0:
        raise ValueError(f"sigma2 must be > 0, got {sigma2}")
    return float(sigma2)


class PerturbationScheme:
    """Base class: a centred Gaussian ``N(0, sigma2 * S)`` on a grid.

    The public methods check their arguments once, here, and call the hooks a scheme
    implements on validated values: ``_sample(n, shape, sigma2, **factory)`` (``factory``:
    ``generator``, ``dtype``, ``device``, for ``torch.randn``), ``_solve(b, sigma2)`` and
    ``_covariance(shape, sigma2)``; ``_check_grid(shape)`` may reject grids. A scheme with
    ``dct_diagonal = True`` also implements ``_spectrum(shape, sigma2)`` (its DCT eigenvalues).
    """

    structured: bool = False
    dct_diagonal: bool = False

    def sample(
        self,
        n: int,
        shape: tuple[int, int],
        sigma2: float,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``n`` perturbations, shape ``(n, h, w)``."""
        sigma2 = _check_sigma2(sigma2)
        self._check_grid(shape)
        return self._sample(n, shape, sigma2, generator=generator, dtype=dtype, device=device)

    def solve(self, b: Tensor, sigma2: float) -> Tensor:
        """``Sigma^{-1} b`` for maps ``b`` of shape ``(B, h, w)``."""
        sigma2 = _check_sigma2(sigma2)
        self._check_grid((b.shape[-2], b.shape[-1]))
        return self._solve(b, sigma2)

    def covariance(self, shape: tuple[int, int], sigma2: float) -> Tensor:
        """The dense ``(p, p)`` covariance (small grids only: tests and the general LP)."""
        sigma2 = _check_sigma2(sigma2)
        self._check_grid(shape)
        return self._covariance(shape, sigma2)

    def covariance_operator(
        self, shape: tuple[int, int], sigma2: float
    ) -> Tensor | SpectralCovariance:
        """The covariance for the general LEG-TV program: a :class:`SpectralCovariance` for a
        ``dct_diagonal`` scheme (no ``p x p`` matrix), else :meth:`covariance`."""
        if not self.dct_diagonal:
            return self.covariance(shape, sigma2)
        sigma2 = _check_sigma2(sigma2)
        self._check_grid(shape)
        return SpectralCovariance(self._spectrum(shape, sigma2))

    def _spectrum(self, shape: tuple[int, int], sigma2: float) -> Tensor:
        raise NotImplementedError

    def _check_grid(self, shape: tuple[int, int]) -> None:
        """Raise ``ValueError`` for a grid the scheme cannot describe (default: any grid)."""

    def _sample(self, n: int, shape: tuple[int, int], sigma2: float, **factory: Any) -> Tensor:
        raise NotImplementedError

    def _solve(self, b: Tensor, sigma2: float) -> Tensor:
        raise NotImplementedError

    def _covariance(self, shape: tuple[int, int], sigma2: float) -> Tensor:
        raise NotImplementedError


class TVGaussian(PerturbationScheme):
    """The paper's perturbation (§4.2): ``Sigma = sigma2 (D^T D + 11^T / p)``.

    Samples ``z = sqrt(sigma2) (D^T e1 + 1 e2 / sqrt(p))`` with ``e1 ~ N(0, I_m)``,
    ``e2 ~ N(0, 1)``: no SVD, ``O(p)`` per sample. ``Sigma^{-1} b`` is one DCT Laplacian solve
    plus the mean: ``((D^T D)^+ b + mean(b) 1) / sigma2``.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.attr import TVGaussian
    >>> z = TVGaussian().sample(4, (6, 5), 0.1, generator=torch.Generator().manual_seed(0))
    >>> tuple(z.shape)
    (4, 6, 5)
    """

    structured = True

    def _sample(self, n: int, shape: tuple[int, int], sigma2: float, **factory: Any) -> Tensor:
        h, w = shape
        e1 = torch.randn((n, _n_edges(shape)), **factory)
        e2 = torch.randn((n, 1, 1), **factory)
        return math.sqrt(sigma2) * (_diff_adjoint(e1, shape) + e2 / math.sqrt(h * w))

    def _solve(self, b: Tensor, sigma2: float) -> Tensor:
        lap = _GridLaplacian((b.shape[-2], b.shape[-1]), b.dtype, b.device)
        return (lap.solve(b) + b.mean(dim=(-2, -1), keepdim=True)) / sigma2

    def _covariance(self, shape: tuple[int, int], sigma2: float) -> Tensor:
        d = torch.from_numpy(_diff_matrix(shape).toarray())
        p = shape[0] * shape[1]
        return sigma2 * (d.T @ d + torch.ones(p, p, dtype=torch.float64) / p)


class IndependentGaussian(PerturbationScheme):
    """Independent pixel noise, ``Sigma = sigma2 I`` (the usual LIME-style choice).

    ``Sigma`` is DCT-diagonal (``dct_diagonal``): LEG-TV solves its program with
    :class:`~captum_latent.attr.FastTVSolver`'s DCT path, at any grid size.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.attr import IndependentGaussian
    >>> b = torch.ones(1, 3, 3, dtype=torch.float64)
    >>> IndependentGaussian().solve(b, 0.5).sum().item()
    18.0
    >>> IndependentGaussian().covariance_operator((3, 3), 0.5).spectrum.unique().tolist()
    [0.5]
    """

    dct_diagonal = True

    def _sample(self, n: int, shape: tuple[int, int], sigma2: float, **factory: Any) -> Tensor:
        return math.sqrt(sigma2) * torch.randn((n, *shape), **factory)

    def _spectrum(self, shape: tuple[int, int], sigma2: float) -> Tensor:
        return torch.full(tuple(shape), sigma2, dtype=torch.float64)

    def _solve(self, b: Tensor, sigma2: float) -> Tensor:
        return b / sigma2

    def _covariance(self, shape: tuple[int, int], sigma2: float) -> Tensor:
        return sigma2 * torch.eye(shape[0] * shape[1], dtype=torch.float64)


class CovarianceGaussian(PerturbationScheme):
    """A user covariance: ``Sigma = sigma2 * S`` for a symmetric positive-definite ``S``.

    :class:`~captum_latent.attr.LEGTV` solves its LP with the fast solver's general path (a
    dense factorisation of ``S``, grids up to 64x64 by default).

    Parameters
    ----------
    matrix : Tensor
        ``(p, p)`` SPD matrix ``S``; ``p = h * w`` of the saliency grid.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.attr import CovarianceGaussian
    >>> s = torch.eye(4, dtype=torch.float64) + 0.5
    >>> z = CovarianceGaussian(s).sample(3, (2, 2), 0.1, generator=torch.Generator().manual_seed(0))
    >>> tuple(z.shape)
    (3, 2, 2)
    """

    def __init__(self, matrix: Tensor) -> None:
        if not isinstance(matrix, Tensor) or matrix.dim() != 2:
            raise TypeError("matrix must be a 2-D torch.Tensor")
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be square, got {tuple(matrix.shape)}")
        mat = matrix.detach().to(torch.float64)
        if not torch.allclose(mat, mat.T, atol=1e-10 * float(mat.abs().max())):
            raise ValueError("matrix must be symmetric")
        chol, info = torch.linalg.cholesky_ex(mat)
        if int(info) != 0:
            raise ValueError("matrix must be positive definite")
        self.matrix = mat
        self._chol = chol

    def _check_grid(self, shape: tuple[int, int]) -> None:
        if shape[0] * shape[1] != self.matrix.shape[0]:
            raise ValueError(
                f"matrix is {self.matrix.shape[0]}x{self.matrix.shape[0]} but the grid "
                f"{shape} has {shape[0] * shape[1]} pixels"
            )

    def _sample(self, n: int, shape: tuple[int, int], sigma2: float, **factory: Any) -> Tensor:
        e = torch.randn((n, self.matrix.shape[0]), **factory)
        chol = self._chol.to(dtype=e.dtype, device=e.device)
        return (math.sqrt(sigma2) * e @ chol.T).reshape(n, *shape)

    def _solve(self, b: Tensor, sigma2: float) -> Tensor:
        chol = self._chol.to(dtype=b.dtype, device=b.device)
        flat = b.reshape(-1, chol.shape[0]).T
        x = torch.cholesky_solve(flat, chol).T
        return x.reshape(b.shape) / sigma2

    def _covariance(self, shape: tuple[int, int], sigma2: float) -> Tensor:
        return sigma2 * self.matrix
