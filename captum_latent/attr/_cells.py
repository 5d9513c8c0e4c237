"""Saliency on a user's cells (Captum's ``feature_mask``): superpixels or blocks as a graph.

A feature mask labels every pixel of an ``(H, W)`` image with a cell id. The cells become the
saliency's unknowns and two cells are joined by an edge when some pixel of one is a 4-neighbour
of a pixel of the other, so ``D`` is the graph's incidence matrix and ``D^T D`` its Laplacian
``Lap``. The paper's perturbation carries over unchanged: ``Sigma = s2 (Lap + 11^T / p)``,
sampled as ``z = sqrt(s2) (D^T e1 + 1 e2 / sqrt(p))``; ``Sigma^{-1} = (Lap + 11^T / p)^{-1} / s2``
because the graph of a connected image is connected (``Lap``'s null space is the constants).
The LP ``min ||D g||_1  s.t.  ||c - s2 D g||_inf <= L`` with ``c = D Lap^+ b`` is solved exactly
by HiGHS (cells are few: at most :data:`MAX_CELLS`), with its dual as the certificate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

MAX_CELLS = 2048


@dataclass(frozen=True)
class _CellGraph:
    """The cells of one feature mask: ``labels`` ``(H, W)`` in ``0..p-1`` and the edges."""

    labels: Tensor
    head: Tensor
    tail: Tensor
    p: int

    @property
    def m(self) -> int:
        return int(self.head.numel())

    @classmethod
    def from_mask(cls, mask: Tensor, name: str) -> _CellGraph:
        """Relabel ``mask`` (any integer ids) to ``0..p-1`` and join 4-adjacent cells."""
        ids, labels = torch.unique(mask.detach().cpu().long(), return_inverse=True)
        p = int(ids.numel())
        if p < 2:
            raise ValueError(f"{name} has a single cell: at least 2 are needed for a saliency")
        if p > MAX_CELLS:
            raise ValueError(
                f"{name} has {p} cells, above {MAX_CELLS}: use fewer (larger) cells, or no "
                "feature_mask and a grid_size"
            )
        pairs = []
        for a, b in ((labels[:, 1:], labels[:, :-1]), (labels[1:, :], labels[:-1, :])):
            differ = a != b
            lo = torch.minimum(a[differ], b[differ])
            hi = torch.maximum(a[differ], b[differ])
            pairs.append(lo * p + hi)
        keys = torch.unique(torch.cat(pairs))
        head, tail = keys % p, keys // p
        # the cells of one image are always connected: the pixel grid is
        return cls(labels=labels, head=head, tail=tail, p=p)

    def incidence(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """Dense ``D`` (``m x p``): ``(D g)_e = g[head_e] - g[tail_e]``."""
        d = torch.zeros(self.m, self.p, dtype=dtype)
        rows = torch.arange(self.m)
        d[rows, self.head] = 1.0
        d[rows, self.tail] = -1.0
        return d

    def shifted_laplacian(self) -> Tensor:
        """``Lap + 11^T / p`` (dense, float64, positive definite)."""
        d = self.incidence()
        return d.T @ d + 1.0 / self.p

    def to_pixels(self, values: Tensor) -> Tensor:
        """Cell values ``(..., p)`` painted on the image: ``(..., H, W)``."""
        labels = self.labels.to(values.device)
        return values[..., labels]


class _CellOps:
    """Everything LEG and LEG-TV need on one cell graph, factorised once."""

    def __init__(self, graph: _CellGraph) -> None:
        self.graph = graph
        self.d = graph.incidence()
        self.chol = torch.linalg.cholesky(graph.shifted_laplacian())

    def sample(self, n: int, sigma2: float, independent: bool, generator: torch.Generator,
               dtype: torch.dtype) -> Tensor:
        """``n`` perturbations of the cells, ``(n, p)``."""
        g = self.graph
        dev = generator.device
        if independent:
            return math.sqrt(sigma2) * torch.randn((n, g.p), generator=generator, dtype=dtype,
                                                   device=dev)
        e1 = torch.randn((n, g.m), generator=generator, dtype=dtype, device=dev)
        e2 = torch.randn((n, 1), generator=generator, dtype=dtype, device=dev)
        return math.sqrt(sigma2) * (e1 @ self.d.to(e1) + e2 / math.sqrt(g.p))

    def leg(self, b: Tensor, sigma2: float, independent: bool) -> Tensor:
        """``Sigma^{-1} b`` for ``b`` of shape ``(k, p)``."""
        if independent:
            return b / sigma2
        x = torch.cholesky_solve(b.T.double().cpu(), self.chol).T
        return (x / sigma2).to(b)

    def edge_data(self, b: Tensor) -> Tensor:
        """``c = D Lap^+ b`` for ``b`` of shape ``(k, p)``: ``(k, m)``."""
        x = torch.cholesky_solve(b.T.double().cpu(), self.chol).T
        return x @ self.d.T

    def pinv_l1_norm(self) -> float:
        """``||D^+||_1`` (Theorem 1's constant) of this graph."""
        pinv = torch.cholesky_solve(self.d.T.contiguous(), self.chol)  # Lap^+ D^T (p x m)
        return float(pinv.abs().sum(dim=0).max())

    def solve_tv(self, c: Tensor, sigma2: float, bound: Tensor) -> dict[str, Tensor]:
        """Solve ``min ||D g||_1  s.t.  |c - s2 D g| <= L`` for each row of ``c`` by HiGHS.

        Variables ``(g, t)`` with ``t >= |D g|``; the dual of the ``<=`` rows gives a lower bound
        on the optimum, so the duality gap is certified by HiGHS's own dual solution.
        """
        import scipy.sparse as sp
        from scipy.optimize import linprog

        g, d = self.graph, sp.csr_matrix(self.d.numpy())
        eye = sp.identity(g.m, format="csr")
        zeros = sp.csr_matrix((g.m, g.m))
        a_ub = sp.vstack([
            sp.hstack([d, -eye]), sp.hstack([-d, -eye]),
            sp.hstack([sigma2 * d, zeros]), sp.hstack([-sigma2 * d, zeros]),
        ]).tocsr()
        cost = np.concatenate([np.zeros(g.p), np.ones(g.m)])
        bounds = [(None, None)] * g.p + [(0, None)] * g.m
        maps, objective, dual, ok = [], [], [], []
        for row, lim in zip(c.double().cpu().numpy(), bound.double().cpu().numpy()):
            b_ub = np.concatenate([np.zeros(2 * g.m), row + lim, lim - row])
            res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
            ok.append(res.status == 0)
            x = res.x[: g.p] if res.x is not None else np.zeros(g.p)
            maps.append(x - x.mean())
            objective.append(float(np.abs(d @ x).sum()))
            marg = getattr(getattr(res, "ineqlin", None), "marginals", None)
            dual.append(float(marg @ b_ub) if marg is not None else float("nan"))
        out = torch.tensor(np.stack(maps))
        resid = (c.double().cpu() - sigma2 * out @ self.d.T).abs().amax(dim=1)
        obj = torch.tensor(objective, dtype=torch.float64)
        dual_t = torch.tensor(dual, dtype=torch.float64)
        return {
            "maps": out,
            "objective": obj,
            "dual_objective": dual_t,
            "duality_gap": (obj - dual_t).clamp_min(0.0),
            "feasibility_violation": (resid - bound.double().cpu()).clamp_min(0.0),
            "converged": torch.tensor(ok),
        }


def _check_mask(mask: Any, shape: tuple[int, int, int, int], name: str) -> Tensor:
    """A feature mask for ``(B, C, H, W)`` inputs as ``(B or 1, H, W)`` integer labels."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be an integer tensor, got {type(mask).__name__}")
    if mask.dtype.is_floating_point or mask.dtype.is_complex or mask.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer cell ids, got dtype {mask.dtype}")
    batch, _, h, w = shape
    m = mask
    if m.dim() == 2:
        m = m[None]
    elif m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    elif m.dim() == 4 or m.dim() == 3 and m.shape[0] not in (1, batch):
        m = None  # reported below
    if m is None or m.dim() != 3 or tuple(m.shape[1:]) != (h, w) or m.shape[0] not in (1, batch):
        raise ValueError(
            f"{name} must have shape (H, W), (1, 1, H, W) or (B, 1, H, W) with (H, W) = "
            f"({h}, {w}) and B = {batch} (one mask for every channel), got {tuple(mask.shape)}"
        )
    return m
