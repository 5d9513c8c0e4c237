"""Grid difference operator ``D`` and DCT-diagonalised Neumann Laplacian ``D^T D``.

A saliency map lives on a ``(h, w)`` grid. ``D`` maps a map ``g`` to its ``m = 2hw - h - w``
edge differences: first the horizontal ones ``g[i, j+1] - g[i, j]`` (``h * (w - 1)``, row major),
then the vertical ones ``g[i+1, j] - g[i, j]`` (``(h - 1) * w``). ``D`` has rank ``hw - 1``; its
null space is the constant maps. ``D^T D`` is the Neumann grid Laplacian, diagonalised by the
orthonormal 2-D DCT-II, so every solve with it costs two small matrix products per axis and
nothing of size ``p x p`` (``p = hw``) is ever formed.

All functions take a leading batch dimension: maps are ``(B, h, w)``, edge vectors ``(B, m)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def _n_edges(shape: tuple[int, int]) -> int:
    h, w = shape
    return 2 * h * w - h - w


def _diff(g: Tensor) -> Tensor:
    """``D g`` for maps ``g`` of shape ``(B, h, w)``; returns ``(B, m)``."""
    dh = (g[:, :, 1:] - g[:, :, :-1]).reshape(g.shape[0], -1)
    dv = (g[:, 1:, :] - g[:, :-1, :]).reshape(g.shape[0], -1)
    return torch.cat([dh, dv], dim=1)


def _diff_adjoint(y: Tensor, shape: tuple[int, int]) -> Tensor:
    """``D^T y`` for edge vectors ``y`` of shape ``(B, m)``; returns ``(B, h, w)``."""
    h, w = shape
    b = y.shape[0]
    n_h = h * (w - 1)
    yh = y[:, :n_h].reshape(b, h, w - 1)
    yv = y[:, n_h:].reshape(b, h - 1, w)
    out = torch.zeros((b, h, w), dtype=y.dtype, device=y.device)
    out[:, :, 1:] += yh
    out[:, :, :-1] -= yh
    out[:, 1:, :] += yv
    out[:, :-1, :] -= yv
    return out


def _dct_matrix(n: int, dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    """Orthonormal DCT-II matrix ``C`` (``C @ x`` transforms, ``C.T @ X`` inverts)."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    c = torch.cos(math.pi * k * (2 * j + 1) / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c.to(dtype=dtype, device=device)


def _path_eigenvalues(n: int) -> Tensor:
    k = torch.arange(n, dtype=torch.float64)
    return 4.0 * torch.sin(math.pi * k / (2 * n)) ** 2


class _GridLaplacian:
    """Neumann Laplacian ``D^T D`` of an ``(h, w)`` grid, applied and inverted through the DCT.

    ``solve(b)`` returns the minimum-norm solution ``(D^T D)^+ b`` (mean-zero; the mean of ``b``
    is ignored), ``solve_shifted(b, a, c)`` solves ``(a D^T D + c I) x = b`` for ``c > 0``.
    """

    def __init__(
        self, shape: tuple[int, int], dtype: torch.dtype, device: torch.device | str | None
    ) -> None:
        h, w = shape
        self.shape = (h, w)
        self.ch = _dct_matrix(h, dtype, device)
        self.cw = _dct_matrix(w, dtype, device)
        lam = _path_eigenvalues(h).unsqueeze(1) + _path_eigenvalues(w).unsqueeze(0)
        self.eig = lam.to(dtype=dtype, device=device)
        inv = torch.zeros_like(lam)
        inv[lam > 0] = 1.0 / lam[lam > 0]
        self.eig_pinv = inv.to(dtype=dtype, device=device)

    def forward_dct(self, x: Tensor) -> Tensor:
        return self.ch @ x @ self.cw.T

    def inverse_dct(self, x: Tensor) -> Tensor:
        return self.ch.T @ x @ self.cw

    def apply(self, x: Tensor) -> Tensor:
        return self.inverse_dct(self.eig * self.forward_dct(x))

    def solve(self, b: Tensor) -> Tensor:
        return self.inverse_dct(self.eig_pinv * self.forward_dct(b))

    def solve_shifted(self, b: Tensor, a: float, c: float) -> Tensor:
        return self.inverse_dct(self.forward_dct(b) / (a * self.eig + c))


def _pinv_transpose(b: Tensor, lap: _GridLaplacian) -> Tensor:
    """``D^{+T} b = D (D^T D)^+ b`` for maps ``b`` of shape ``(B, h, w)``; returns ``(B, m)``."""
    return _diff(lap.solve(b))


def _pinv_l1_norm(shape: tuple[int, int], max_exact_pixels: int = 4096) -> float:
    """``||D^+||_1``: the largest l1 norm of a column of ``D^+`` (Theorem 1's constant).

    Column ``e`` of ``D^+`` is ``(D^T D)^+ D^T e_e``, the potential of a unit dipole on edge
    ``e``. It is evaluated for every edge when ``h * w <= max_exact_pixels``; above that, for the
    edges at the corners, the side midpoints and the centre, where the maximum is attained on
    all grids checked exhaustively (tests compare both routes).
    """
    h, w = shape
    lap = _GridLaplacian(shape, torch.float64, "cpu")
    m = _n_edges(shape)
    n_h = h * (w - 1)
    if h * w <= max_exact_pixels:
        edges = torch.arange(m)
    else:
        rows = sorted({0, 1, h // 2 - 1, h // 2, h - 2, h - 1})
        cols = sorted({0, 1, w // 2 - 1, w // 2, w - 2, w - 1})
        idx = []
        for i in rows:
            for j in cols:
                if 0 <= i < h and 0 <= j < w - 1:
                    idx.append(i * (w - 1) + j)
                if 0 <= i < h - 1 and 0 <= j < w:
                    idx.append(n_h + i * w + j)
        edges = torch.tensor(sorted(set(idx)))
    best = 0.0
    for chunk in torch.split(edges, 512):
        y = torch.zeros((chunk.numel(), m), dtype=torch.float64)
        y[torch.arange(chunk.numel()), chunk] = 1.0
        cols_ = lap.solve(_diff_adjoint(y, shape))
        best = max(best, float(cols_.abs().sum(dim=(1, 2)).max()))
    return best


def _edge_ends(shape: tuple[int, int]) -> tuple[Any, Any]:
    """Flat pixel indices ``(head, tail)`` of the edges (numpy): ``(D g)_e = g[head] - g[tail]``."""
    import numpy as np

    h, w = shape
    idx = np.arange(h * w).reshape(h, w)
    head = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    tail = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    return head, tail


def _diff_matrix(shape: tuple[int, int]) -> Any:
    """``D`` as a ``scipy.sparse`` CSR matrix (``m x p``, two non-zeros per row)."""
    import numpy as np
    import scipy.sparse as sp

    h, w = shape
    head, tail = _edge_ends(shape)
    rows = np.arange(head.size)
    data = np.concatenate([np.ones(head.size), -np.ones(head.size)])
    return sp.csr_matrix(
        (data, (np.concatenate([rows, rows]), np.concatenate([head, tail]))),
        shape=(head.size, h * w),
    )
