"""Exact finishing step for the LEG-TV LP: a point of the optimal face read off a dual iterate.

For the edge functions ``h_e(w) = |w| + indicator([lo_e, hi_e])`` complementary slackness says
``w_e`` maximises ``y_e w - h_e(w)`` for an optimal dual ``y``. Away from the kinks ``y_e = +-1``
that maximiser is unique (``0``, ``lo_e`` or ``hi_e``): the edge is *determined*; at a kink it
is any value of a sign-consistent interval: the edge is *free*. Every ``g`` whose differences
meet these interval constraints is optimal, and finding one is a system of difference
constraints ``g_a - g_b <= u``: shortest paths from a virtual source (Bellman-Ford) solve it
exactly, or report a negative cycle when the classification was wrong. The caller checks
feasibility and compares objectives, so a wrong classification can only cost time.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def _edge_ends(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    idx = np.arange(h * w).reshape(h, w)
    head = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    tail = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    return head, tail


def _face_point(
    y: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    shape: tuple[int, int],
    tau: float,
) -> Optional[np.ndarray]:
    """A map ``g`` (flat, length ``p``) on the face that ``y`` identifies, or ``None``."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import NegativeCycleError, bellman_ford

    p = shape[0] * shape[1]
    head, tail = _edge_ends(shape)
    zero_inside = (lo <= 0) & (hi >= 0)
    target = np.where(
        y > 1, hi, np.where(y < -1, lo, np.where(zero_inside, 0.0, np.where(lo > 0, lo, hi)))
    )
    confidence = np.where(
        zero_inside, np.abs(np.abs(y) - 1), np.where(lo > 0, np.abs(y - 1), np.abs(y + 1))
    )
    free = confidence < tau
    lower = np.where(free, np.where(zero_inside & (y > 0), 0.0, lo), target)
    upper = np.where(free, np.where(zero_inside & (y < 0), 0.0, hi), target)
    # equalities get a rounding allowance so that consistent cycles never look negative
    slack = 1e-12 * max(float(np.abs(lo).max()), float(np.abs(hi).max()), 1e-300)
    lower = np.where(free, lower, np.maximum(lower - slack, lo))
    upper = np.where(free, upper, np.minimum(upper + slack, hi))
    rows = np.concatenate([tail, head, np.full(p, p)])
    cols = np.concatenate([head, tail, np.arange(p)])
    # arcs: tail -> head (g_head - g_tail <= upper), head -> tail (g_tail - g_head <= -lower);
    # source arcs carry a tiny positive weight (explicit zeros are not edges for csgraph).
    weights = np.concatenate([upper, -lower, np.full(p, 1e-300)])
    # a zero-weight grid arc must also stay an edge
    weights[:-p][weights[:-p] == 0.0] = 1e-300
    graph = sp.csr_matrix((weights, (rows, cols)), shape=(p + 1, p + 1))
    try:
        dist = bellman_ford(graph, directed=True, indices=p)
    except NegativeCycleError:
        return None
    g = np.asarray(dist[:p], dtype=np.float64)
    if not np.all(np.isfinite(g)):
        return None
    return g
