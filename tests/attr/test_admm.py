"""The fast solver's inner machinery: padded edge layout, in-place ADMM loop, min-plus repair."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import NegativeCycleError, bellman_ford

from captum_latent.attr._admm import _greatest_below, _PaddedGrid
from captum_latent.attr._face_polish import _face_bounds
from captum_latent.attr._grid import _diff, _diff_adjoint, _GridLaplacian, _n_edges

shapes = st.tuples(st.integers(2, 9), st.integers(2, 9))


def _grid(shape, batch=2):
    return _PaddedGrid(shape, batch, torch.float64, torch.device("cpu"))


def _edge_ends(shape):
    h, w = shape
    idx = np.arange(h * w).reshape(h, w)
    head = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    tail = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    return head, tail


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_padded_operators_match_grid_operators(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    grid = _grid(shape)
    g = torch.randn(2, *shape, generator=gen, dtype=torch.float64)
    y = torch.randn(2, _n_edges(shape), generator=gen, dtype=torch.float64)
    yp = grid.pad(y)
    assert torch.equal(grid.unpad(yp), y)
    assert bool((yp[grid.pads] == 0).all())
    assert torch.allclose(grid.unpad(grid.diff(g)), _diff(g))
    assert torch.allclose(grid.diff_adjoint(yp), _diff_adjoint(y, shape))
    lap = _GridLaplacian(shape, torch.float64, "cpu")
    proj = _diff(lap.solve(_diff_adjoint(y, shape)))
    assert torch.allclose(grid.unpad(grid.project(yp)), proj, atol=1e-12)


def test_in_place_loop_matches_textbook_admm():
    shape, gen = (6, 7), torch.Generator().manual_seed(0)
    grid = _grid(shape)
    lap = _GridLaplacian(shape, torch.float64, "cpu")
    m = _n_edges(shape)
    k = torch.randn(2, m, generator=gen, dtype=torch.float64)
    lo, hi = k - 0.3, k + 0.3
    rho = torch.tensor([[2.0], [5.0]], dtype=torch.float64)
    alpha = 1.6
    w = torch.clamp(torch.zeros_like(k), lo, hi)
    u = torch.zeros_like(k)
    for _ in range(30):  # the textbook form, unpadded and allocating
        v = _diff(lap.solve(_diff_adjoint(w - u, shape)))
        vh = alpha * v + (1 - alpha) * w
        q = vh + u
        w = torch.clamp(torch.sign(q) * (q.abs() - 1 / rho).clamp_min(0), lo, hi)
        u = u + vh - w
    lo_p, hi_p = grid.pad(lo), grid.pad(hi)
    torch.clamp(grid.w, lo_p, hi_p, out=grid.w)
    grid.iterate(30, lo_p, hi_p, 1 / rho, -1 / rho, alpha)
    assert torch.allclose(grid.unpad(grid.w), w, atol=1e-10)
    assert torch.allclose(grid.unpad(grid.u), u, atol=1e-10)
    assert bool((grid.w[grid.pads] == 0).all()) and bool((grid.u[grid.pads] == 0).all())


def _bellman_ford_greatest_below(g0, lower, upper, shape):
    """Reference: shortest paths from a source with arcs of length g0 to every pixel."""
    head, tail = _edge_ends(shape)
    p = shape[0] * shape[1]
    rows = np.concatenate([tail, head, np.full(p, p)])
    cols = np.concatenate([head, tail, np.arange(p)])
    base = g0 - g0.min() + 1.0  # positive source arcs (explicit zeros are not edges)
    # a 1e-12 slack: around a cycle of equality constraints the rounded arc lengths can sum
    # to -1e-16, which Bellman-Ford reports as a negative cycle (the answer moves by < 1e-10)
    slack = 1e-12
    weights = np.concatenate([upper + slack, -(lower - slack), base])
    weights = np.where(weights == 0, 1e-300, weights)
    graph = sp.csr_matrix((weights, (rows, cols)), shape=(p + 1, p + 1))
    return bellman_ford(graph, directed=True, indices=p)[:p] + g0.min() - 1.0


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_greatest_below_matches_bellman_ford(shape, seed):
    rng = np.random.default_rng(seed)
    grid = _grid(shape, batch=1)
    head, tail = _edge_ends(shape)
    centre = rng.standard_normal(shape[0] * shape[1])
    d = centre[head] - centre[tail]
    lower, upper = d - rng.random(d.size), d + rng.random(d.size)  # feasible: contains D centre
    if rng.random() < 0.3:  # some equality constraints
        eq = rng.random(d.size) < 0.5
        lower[eq] = upper[eq] = d[eq]
    g0 = centre + rng.standard_normal(centre.size)
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float64).reshape(1, -1)  # noqa: E731
    g, ok = _greatest_below(
        as_t(g0).reshape(1, *shape), grid.pad(as_t(lower)), grid.pad(as_t(upper)), grid,
        max_passes=4 * (shape[0] + shape[1]) + 8,
    )
    assert bool(ok.all())
    ref = _bellman_ford_greatest_below(g0, lower, upper, shape)
    assert np.allclose(g.reshape(-1).numpy(), ref, atol=1e-9)
    dg = g.reshape(-1).numpy()[head] - g.reshape(-1).numpy()[tail]
    assert np.all(dg >= lower - 1e-9) and np.all(dg <= upper + 1e-9)
    assert np.all(g.reshape(-1).numpy() <= g0 + 1e-12)


def test_greatest_below_reports_a_negative_cycle():
    shape = (3, 3)
    grid = _grid(shape, batch=2)
    head, tail = _edge_ends(shape)
    lower = np.zeros(head.size)
    upper = np.zeros(head.size)
    # batch 0: all differences 0 (feasible); batch 1: around the top-left square the
    # differences are forced to sum to 1 (no map has them): a negative cycle
    lower1, upper1 = lower.copy(), upper.copy()
    lower1[0] = upper1[0] = 1.0
    with pytest.raises(NegativeCycleError):
        _bellman_ford_greatest_below(np.zeros(9), lower1, upper1, shape)
    lo = torch.as_tensor(np.stack([lower, lower1]), dtype=torch.float64)
    up = torch.as_tensor(np.stack([upper, upper1]), dtype=torch.float64)
    g, ok = _greatest_below(torch.zeros(2, *shape, dtype=torch.float64), grid.pad(lo),
                            grid.pad(up), grid)
    assert ok.tolist() == [True, False]
    assert bool((g[0] == 0).all())


def test_face_bounds_classify_edges():
    lo = torch.tensor([[-1.0, -1.0, -1.0, 0.5, 0.5, -2.0, 0.0]])
    hi = torch.tensor([[3.0, 3.0, 3.0, 2.0, 2.0, -1.0, 0.0]])
    y = torch.tensor([[2.0, 0.2, -0.99, 0.3, 1.02, -1.0, 0.0]])
    lower, upper = _face_bounds(y, lo, hi, 0.1)
    # at hi; at 0; free on the negative side; at lo (positive box); free; free; pad
    assert lower.tolist() == [[3.0, 0.0, -1.0, 0.5, 0.5, -2.0, 0.0]]
    assert upper.tolist() == [[3.0, 0.0, 0.0, 0.5, 2.0, -1.0, 0.0]]
