"""The grid operators behind LEG-TV, public for custom solvers and for benchmarks.

On an ``(h, w)`` grid with ``m = 2hw - h - w`` edges:

- :func:`grid_difference` is ``D``: maps ``(B, h, w)`` to edge differences ``(B, m)``
  (horizontal edges first, then vertical);
- :func:`grid_difference_adjoint` is ``D^T``: ``(B, m)`` to ``(B, h, w)``;
- :class:`GridLaplacian` applies and inverts the Neumann Laplacian ``D^T D`` through the DCT;
- :func:`default_grid` is the saliency grid LEG and LEG-TV use when no ``grid_size`` is given;
- :class:`PaddedADMMGrid` holds the buffers of :class:`~captum_latent.attr.FastTVSolver`'s
  in-place ADMM loop (its ``iterate(n, lo, hi, ...)`` is the solver's inner loop).

Examples
--------
>>> import torch
>>> from captum_latent.attr.grid import GridLaplacian, grid_difference, grid_difference_adjoint
>>> g = torch.randn(2, 5, 6, dtype=torch.float64)
>>> y = grid_difference(g)
>>> tuple(y.shape)
(2, 49)
>>> lap = GridLaplacian((5, 6), torch.float64, torch.device("cpu"))
>>> back = lap.solve(grid_difference_adjoint(y, (5, 6)))  # (D^T D)^+ D^T D g = g - mean(g)
>>> bool(torch.allclose(back, g - g.mean(dim=(1, 2), keepdim=True)))
True
"""

from __future__ import annotations

from captum_latent.attr._admm import _PaddedGrid as PaddedADMMGrid
from captum_latent.attr._grid import _diff as grid_difference
from captum_latent.attr._grid import _diff_adjoint as grid_difference_adjoint
from captum_latent.attr._grid import _GridLaplacian as GridLaplacian
from captum_latent.attr._grid import _n_edges as n_edges
from captum_latent.attr._inputs import default_grid

__all__ = [
    "GridLaplacian",
    "PaddedADMMGrid",
    "default_grid",
    "grid_difference",
    "grid_difference_adjoint",
    "n_edges",
]
