"""Where each input tensor's saliency lives: a grid (``grid_size``) or the user's cells
(``feature_mask``). A :class:`_Layout` draws the perturbations of one input, paints them on its
pixels, and maps saliency back to the input's shape; Captum's tuples of inputs get one layout
each."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_latent.attr._cells import _CellGraph, _CellOps, _check_mask
from captum_latent.attr.perturbations import IndependentGaussian, PerturbationScheme, TVGaussian
from captum_latent.validation import check_image_tensor

#: the default grid has at most ``n_samples / SAMPLES_PER_CELL`` cells (the paper's own
#: setting, 3000 evaluations for a 28x28 grid, is 3.8 per cell)
SAMPLES_PER_CELL = 4


def default_grid(hw: tuple[int, int], n_samples: int) -> tuple[int, int]:
    """The saliency grid used when ``grid_size`` is not given: the input's ``(H, W)`` when it
    has at most ``n_samples / 4`` pixels, else both sides scaled by one factor so that the grid
    has at most that many cells (at least 2x2): every cell is estimated from at least 4 model
    evaluations.

    Examples
    --------
    >>> from captum_latent.attr.grid import default_grid
    >>> default_grid((8, 8), 500), default_grid((28, 28), 500), default_grid((28, 28), 3000)
    ((8, 8), (11, 11), (27, 27))
    >>> default_grid((224, 224), 3000)  # the paper's setting: about its 28x28
    (27, 27)
    """
    budget = max(4, n_samples // SAMPLES_PER_CELL)
    h, w = hw
    if h * w <= budget:
        return hw
    scale = math.sqrt(budget / (h * w))
    return (max(2, min(h, math.floor(h * scale))), max(2, min(w, math.floor(w * scale))))


@dataclass
class _Layout:
    """One input tensor ``(B, C, H, W)`` and its saliency cells."""

    x: Tensor
    grid: tuple[int, int] | None = None
    cells: list[_CellOps] = field(default_factory=list)  # one per example (or one shared)

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def masked(self) -> bool:
        return self.grid is None

    def ops(self, i: int) -> _CellOps:
        return self.cells[i if len(self.cells) > 1 else 0]

    def draw(self, scheme: PerturbationScheme, i: int, n: int, sigma2: float,
             generator: torch.Generator) -> Tensor:
        """Example ``i``'s ``n`` perturbations: ``(n, C, h, w)`` on a grid, ``(n, C, p)`` on
        cells; channels independent."""
        c = self.channels
        if self.grid is not None:
            z = scheme.sample(n * c, self.grid, sigma2, generator=generator,
                              device=generator.device)
            return z.reshape(n, c, *self.grid)
        ops = self.ops(i)
        z = ops.sample(n * c, sigma2, isinstance(scheme, IndependentGaussian), generator,
                       torch.float64)
        return z.reshape(n, c, ops.graph.p)

    def unit_variance(self, scheme: PerturbationScheme) -> float:
        """Mean variance of one pixel of this input's perturbations at ``sigma2 = 1`` (the
        paper's scheme: ``mean degree + 1 / p`` of the grid or cell graph)."""
        if isinstance(scheme, IndependentGaussian):
            return 1.0
        if self.grid is None:
            graphs = [ops.graph for ops in self.cells]
            return sum((2 * g.m + 1) / g.p for g in graphs) / len(graphs)
        h, w = self.grid
        if isinstance(scheme, TVGaussian):
            return (2 * (2 * h * w - h - w) + 1) / (h * w)
        matrix = getattr(scheme, "matrix", None)
        if isinstance(matrix, Tensor):
            return float(matrix.diagonal().double().mean())
        probe = scheme.sample(256, self.grid, 1.0, generator=torch.Generator().manual_seed(0))
        return float(probe.double().var(dim=0).mean())

    def value_range(self) -> float:
        """``max - min`` of the input's values over the batch (1 for a constant input)."""
        spread = float(self.x.max() - self.x.min())
        return spread if spread > 0 and math.isfinite(spread) else 1.0

    def paint(self, z: Tensor, i: int) -> Tensor:
        """Perturbations ``(k, C, ...)`` of example ``i`` on the input's pixels."""
        hw = tuple(self.x.shape[-2:])
        if self.grid is None:
            return self.ops(i).graph.to_pixels(z)
        if tuple(z.shape[-2:]) != hw:
            return F.interpolate(z, size=hw, mode="nearest")
        return z

    def to_input(self, maps: Tensor, i: int) -> Tensor:
        """One example's saliency ``(C', ...)`` at the input's resolution ``(C', H, W)``."""
        if self.grid is None:
            return self.ops(i).graph.to_pixels(maps)
        hw = tuple(self.x.shape[-2:])
        if tuple(maps.shape[-2:]) != hw:
            return F.interpolate(maps[None], size=hw, mode="nearest")[0]
        return maps


def _grid_for(grid_size: Any, hw: tuple[int, int], name: str, n_samples: int) -> tuple[int, int]:
    if grid_size is None:
        return default_grid(hw, n_samples)
    if isinstance(grid_size, bool):
        raise TypeError(f"{name} must be (h, w) or an int, got {grid_size!r}")
    if isinstance(grid_size, int):
        grid_size = (grid_size, grid_size)
    if not isinstance(grid_size, (tuple, list)) or len(grid_size) != 2 or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 2 for s in grid_size
    ):
        raise ValueError(f"{name} must be (h, w) with integers h, w >= 2, got {grid_size!r}")
    grid = (int(grid_size[0]), int(grid_size[1]))
    if grid[0] > hw[0] or grid[1] > hw[1]:
        raise ValueError(f"{name} {grid} must not exceed the input's {hw}")
    return grid


def _layouts(
    inputs: Any,
    grid_size: Any,
    feature_mask: Any,
    perturbation: PerturbationScheme,
    n_samples: int,
) -> tuple[list[_Layout], bool]:
    """Check Captum-style ``inputs`` (a tensor or a tuple of tensors, each ``(B, C, H, W)``)
    with their ``grid_size`` and ``feature_mask``; one layout per input."""
    is_tuple = isinstance(inputs, tuple)
    xs = inputs if is_tuple else (inputs,)
    if is_tuple and len(xs) == 0:
        raise ValueError("inputs is an empty tuple: give at least one image tensor")
    names = [f"inputs[{k}]" if is_tuple else "inputs" for k in range(len(xs))]
    for x, name in zip(xs, names):
        check_image_tensor(name, x)
    batch = int(xs[0].shape[0])
    for x, name in zip(xs[1:], names[1:]):
        if int(x.shape[0]) != batch:
            raise ValueError(
                f"every input needs the same batch size: inputs[0] has {batch} examples, {name} "
                f"has {int(x.shape[0])}"
            )
        if x.device != xs[0].device:
            raise ValueError(f"every input must be on one device: inputs[0] is on "
                             f"{xs[0].device}, {name} on {x.device}")
    count = len(xs)
    grids = _grid_sizes(grid_size, count)
    masks = (None,) * count if feature_mask is None else _masks(feature_mask, count)
    if feature_mask is not None and not isinstance(perturbation, (TVGaussian, IndependentGaussian)):
        raise ValueError(
            f"feature_mask works with TVGaussian and IndependentGaussian perturbations, not "
            f"{type(perturbation).__name__} (its covariance is defined on a grid)"
        )
    layouts = []
    for k, (x, name, grid, mask) in enumerate(zip(xs, names, grids, masks)):
        hw = (int(x.shape[2]), int(x.shape[3]))
        gname = "grid_size" + (f"[{k}]" if count > 1 else "")
        if mask is not None:
            if grid is not None:
                raise ValueError(f"give feature_mask or grid_size for {name}, not both: the "
                                 "mask's cells are the saliency's cells")
            mname = "feature_mask" + (f"[{k}]" if count > 1 else "")
            m = _check_mask(mask, tuple(x.shape), mname)
            cells = [_CellOps(_CellGraph.from_mask(m[j], mname)) for j in range(m.shape[0])]
            layouts.append(_Layout(x=x, grid=None, cells=cells))
        else:
            layouts.append(_Layout(x=x, grid=_grid_for(grid, hw, gname, n_samples)))
    return layouts, is_tuple


def _grid_sizes(grid_size: Any, count: int) -> tuple[Any, ...]:
    """One ``grid_size`` entry per input: a pair (or int, or None) for all, or a tuple of them."""
    if (
        isinstance(grid_size, tuple)
        and len(grid_size) == count
        and count > 1
        and all(g is None or isinstance(g, (tuple, list, int)) for g in grid_size)
        and any(g is None or isinstance(g, (tuple, list)) for g in grid_size)
    ):
        return grid_size
    return (grid_size,) * count


def _masks(feature_mask: Any, count: int) -> tuple[Any, ...]:
    if isinstance(feature_mask, Tensor):
        if count > 1:
            raise TypeError(f"feature_mask must be a tuple of {count} masks (one per input, "
                            "None where an input keeps its grid)")
        return (feature_mask,)
    if not isinstance(feature_mask, tuple) or len(feature_mask) != count:
        raise TypeError(
            f"feature_mask must be a tensor (one input) or a tuple of {count} tensors or None "
            f"(one per input), got {type(feature_mask).__name__}"
            + (f" of length {len(feature_mask)}" if isinstance(feature_mask, tuple) else "")
        )
    return feature_mask
