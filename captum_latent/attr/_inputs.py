"""Where each input tensor's saliency lives: a grid (``grid_size``) or the user's cells
(``feature_mask``). A :class:`_Layout` draws the perturbations of one input, paints them on its
pixels, and maps saliency back to the input's shape; Captum's tuples of inputs get one layout
each."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_latent.attr._cells import _CellGraph, _CellOps, _check_mask
from captum_latent.attr.perturbations import IndependentGaussian, PerturbationScheme, TVGaussian
from captum_latent.validation import check_image_tensor

#: default grids are the input's own up to this side; larger inputs get a grid of about
#: ``DEFAULT_GRID_SIDE`` cells a side (the paper's 28 x 28 for 224 x 224)
DEFAULT_GRID_SIDE = 28
_FULL_RESOLUTION_UP_TO = 32


def default_grid(hw: tuple[int, int]) -> tuple[int, int]:
    """The saliency grid used when ``grid_size`` is not given: the input's ``(H, W)`` when
    both sides are at most 32, else the input divided by one integer factor so that the longer
    side has about 28 cells (224 x 224 -> 28 x 28, the paper's).

    Examples
    --------
    >>> from captum_latent.attr._inputs import default_grid
    >>> default_grid((8, 8)), default_grid((224, 224)), default_grid((100, 60))
    ((8, 8), (28, 28), (25, 15))
    """
    if max(hw) <= _FULL_RESOLUTION_UP_TO:
        return hw
    factor = max(1, round(max(hw) / DEFAULT_GRID_SIDE))
    return (max(2, math.ceil(hw[0] / factor)), max(2, math.ceil(hw[1] / factor)))


@dataclass
class _Layout:
    """One input tensor ``(B, C, H, W)`` and its saliency cells."""

    x: Tensor
    grid: Optional[tuple[int, int]] = None
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


def _grid_for(grid_size: Any, hw: tuple[int, int], name: str) -> tuple[int, int]:
    if grid_size is None:
        return default_grid(hw)
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
            layouts.append(_Layout(x=x, grid=_grid_for(grid, hw, gname)))
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
