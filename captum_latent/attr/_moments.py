"""Model evaluations for LEG: perturb one example, evaluate the model, return ``mean(y~ z)``.

Captum's conventions are kept: ``target`` (int, tuple, tensor or list, per example),
``additional_forward_args`` (tensors with a batch dimension are sliced per example and
expanded per perturbation) and ``perturbations_per_eval`` (how many perturbed copies go
through the model per call). All perturbations are drawn before any evaluation, so the result
does not depend on ``perturbations_per_eval``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from captum._utils.common import (
    _expand_additional_forward_args,
    _expand_target,
    _format_additional_forward_args,
    _select_targets,
)
from torch import Tensor

from captum_latent.attr.perturbations import PerturbationScheme
from captum_latent.validation import (
    call_model,
    check_device,
    check_image_tensor,
    check_model_output,
    module_device,
)

_OUTPUT_TRANSFORMS = ("none", "softmax", "log_softmax")


@dataclass(frozen=True)
class _Moments:
    """Per-example statistics: ``b`` is ``(C, h, w)``; ``f0`` the unperturbed output."""

    b: Tensor
    f0: float
    n: int


def _example_target(target: Any, i: int, batch: int) -> Any:
    """The target of example ``i`` in Captum's accepted forms."""
    if target is None or isinstance(target, (int, tuple)):
        return target
    if isinstance(target, Tensor):
        if target.numel() == 1:
            return int(target.item())
        if target.dim() == 1 and target.numel() == batch:
            return int(target[i].item())
        if target.dim() == 2 and target.shape[0] == batch:
            return tuple(int(t) for t in target[i].tolist())
        raise ValueError(
            f"target tensor must have 1 or {batch} elements (one per example), "
            f"got shape {tuple(target.shape)}"
        )
    if isinstance(target, list):
        if len(target) != batch:
            raise ValueError(
                f"target list must have one entry per example ({batch}), got {len(target)}"
            )
        return target[i]
    raise TypeError(f"target must be None, int, tuple, tensor or list, got {type(target).__name__}")


def _example_args(args: Any, i: int, batch: int) -> Any:
    if args is None:
        return None
    return tuple(
        a[i : i + 1] if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch else a
        for a in args
    )


def _check_model_and_targets(
    forward_func: Callable[..., Any],
    x: Tensor,
    args: Any,
    target: Any,
    contrast_target: Any,
) -> None:
    """Before the perturbation loop: the inputs sit on the model's device, and every example's
    target indexes the model's output (checked on one probe call with the first example)."""
    device = module_device(forward_func)
    if device is not None:
        check_device("inputs", x, device)
    batch = x.shape[0]
    targets = {
        name: [_example_target(t, i, batch) for i in range(batch)]
        for name, t in (("target", target), ("contrast_target", contrast_target))
        if t is not None
    }
    with torch.no_grad():
        first = _example_args(args, 0, batch) or ()
        out = call_model("forward_func", forward_func, x[:1], *first,
                         when="(a probe with the first example, before any perturbation)")
    check_model_output("forward_func", out, when="on the first example (the probe call)")
    if isinstance(out, Tensor) and out.dim() < 2 and targets:
        name = next(iter(targets))
        raise ValueError(
            f"forward_func returns one number per example (outputs of shape "
            f"{tuple(out.shape)} for one example), so {name}= has no class to select: call with "
            "target=None (and no contrast_target) to explain that number, or make the model "
            "return (N, K) scores"
        )
    if not targets or not isinstance(out, Tensor) or out.dim() < 2:
        return
    sizes = tuple(int(s) for s in out.shape[1:])
    for name, per_example in targets.items():
        for t in per_example:
            index = tuple(
                int(v) if isinstance(v, Tensor) and v.numel() == 1 or hasattr(v, "__index__")
                and not isinstance(v, bool) else v
                for v in ((t,) if not isinstance(t, tuple) else t)
            )
            if len(index) != len(sizes) or any(
                isinstance(v, bool) or not isinstance(v, int) for v in index
            ):
                raise ValueError(
                    f"{name}={t!r} does not index the model's outputs of shape (N, "
                    f"{', '.join(map(str, sizes))})"
                )
            if any(not 0 <= v < k for v, k in zip(index, sizes)):
                raise ValueError(
                    f"{name}={t!r} is out of range for the model's outputs of shape (N, "
                    f"{', '.join(map(str, sizes))}): valid targets are 0 to {sizes[0] - 1}"
                    if len(sizes) == 1 else f"{name}={t!r} is out of range for the model's "
                    f"outputs of shape (N, {', '.join(map(str, sizes))})"
                )


def _scalar_output(
    forward_func: Callable[..., Any],
    x: Tensor,
    target: Any,
    contrast_target: Any,
    args: Any,
    output_transform: str,
    when: str = "",
) -> Tensor:
    n = x.shape[0]
    exp_args = _expand_additional_forward_args(args, n) if args is not None else ()
    out = call_model("forward_func", forward_func, x, *exp_args, when=when)
    if not isinstance(out, Tensor):
        out = torch.as_tensor(out, device=x.device)
    if out.dim() == 0:
        out = out.reshape(1)
    if output_transform != "none":
        if out.dim() < 2:
            raise ValueError(f"output_transform={output_transform!r} needs (N, K) model outputs")
        fn = torch.softmax if output_transform == "softmax" else torch.log_softmax
        out = fn(out, dim=1)
    y = _select_targets(out, _expand_target(target, n)) if target is not None else out
    if contrast_target is not None:
        y = y - _select_targets(out, _expand_target(contrast_target, n))
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dim() != 1:
        raise ValueError(
            "the forward function's output (after target selection) must be one number per "
            f"example, got shape {tuple(y.shape)}: pass target="
        )
    return y


def _evaluate_example(
    forward_func: Callable[..., Any],
    x0: Tensor,
    target: Any,
    contrast_target: Any,
    args: Any,
    z: Tensor,
    perturbations_per_eval: int,
    output_transform: str,
    progress: Optional[Any] = None,
) -> _Moments:
    """Evaluate ``f(x0 + up(z_i))`` for ``z`` of shape ``(n, C, h, w)`` and return the moments."""
    with torch.no_grad():
        f0 = _scalar_output(
            forward_func, x0.unsqueeze(0), target, contrast_target, args, output_transform,
            when="on the unperturbed example",
        )
        ys = []
        for start in range(0, z.shape[0], perturbations_per_eval):
            chunk = z[start : start + perturbations_per_eval].to(device=x0.device, dtype=x0.dtype)
            if chunk.shape[-2:] != x0.shape[-2:]:
                chunk = F.interpolate(chunk, size=tuple(x0.shape[-2:]), mode="nearest")
            y = _scalar_output(
                forward_func, x0.unsqueeze(0) + chunk, target, contrast_target, args,
                output_transform,
                when=f"on perturbations {start} to {start + chunk.shape[0] - 1} of {z.shape[0]}",
            )
            ys.append(y.detach().to(torch.float64))
            if progress is not None:
                progress.update(chunk.shape[0])
        check_model_output("forward_func", f0, when="on the unperturbed example")
        y_all = torch.cat(ys)
        _check_perturbed_outputs(y_all)  # one check (one device sync) per example
        yt = y_all.to(z.device) - float(f0.item())
    b = torch.einsum("n,nchw->chw", yt, z.to(torch.float64)) / z.shape[0]
    return _Moments(b=b, f0=float(f0.item()), n=z.shape[0])


def _check_perturbed_outputs(y: Tensor) -> None:
    """The model's (target-selected) outputs on the perturbed copies are finite; else say how
    many were not and on which perturbations."""
    bad = ~torch.isfinite(y)
    if not bool(bad.any()):
        return
    where = torch.nonzero(bad).flatten().tolist()
    shown = ", ".join(map(str, where[:8])) + (", ..." if len(where) > 8 else "")
    nan, inf = int(torch.isnan(y).sum()), int(torch.isinf(y).sum())
    raise ValueError(
        f"forward_func returned {nan} NaN and {inf} Inf values among {y.numel()} outputs on "
        f"perturbations [{shown}] of {y.numel()} (the unperturbed example was finite): an "
        "explanation of non-finite outputs is meaningless; check the model (a log of 0, a "
        "division, an overflow) and its input range (sigma2 moves pixels out of [0, 1])"
    )


def _draw(
    perturbation: PerturbationScheme,
    n: int,
    channels: int,
    grid: tuple[int, int],
    sigma2: float,
    generator: torch.Generator,
) -> Tensor:
    """``(n, C, h, w)`` perturbations, channels independent, drawn on the generator's device."""
    z = perturbation.sample(
        n * channels, grid, sigma2, generator=generator, device=generator.device
    )
    return z.reshape(n, channels, *grid)


def _check_common(
    inputs: Any,
    n_samples: int,
    perturbations_per_eval: int,
    grid_size: Optional[tuple[int, int]],
    channel_reduction: str,
) -> tuple[Tensor, bool, tuple[int, int]]:
    is_tuple = isinstance(inputs, tuple)
    if is_tuple:
        if len(inputs) != 1:
            raise TypeError(
                f"inputs must be one image tensor (or a 1-tuple), got {len(inputs)} tensors"
            )
        inputs = inputs[0]
    check_image_tensor("inputs", inputs)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}")
    if (
        isinstance(perturbations_per_eval, bool)
        or not isinstance(perturbations_per_eval, int)
        or perturbations_per_eval < 1
    ):
        raise ValueError(
            f"perturbations_per_eval must be an int >= 1, got {perturbations_per_eval!r}"
        )
    if channel_reduction not in ("auto", "sum_abs", "none"):
        raise ValueError(
            f"channel_reduction must be 'auto', 'sum_abs' or 'none', got {channel_reduction!r}"
        )
    hw = (int(inputs.shape[2]), int(inputs.shape[3]))
    if grid_size is None:
        grid = hw
    else:
        if isinstance(grid_size, int):
            grid_size = (grid_size, grid_size)
        if len(grid_size) != 2 or any(int(s) < 2 for s in grid_size):
            raise ValueError(f"grid_size must be (h, w) with h, w >= 2, got {grid_size!r}")
        grid = (int(grid_size[0]), int(grid_size[1]))
        if grid[0] > hw[0] or grid[1] > hw[1]:
            raise ValueError(f"grid_size {grid} must not exceed the input's {hw}")
    return inputs, is_tuple, grid


def _finish(
    maps: Tensor,
    inputs: Tensor,
    channel_reduction: str,
    return_input_shape: bool,
    is_tuple: bool,
) -> Any:
    """Combine channels and map ``(B, C, h, w)`` grid maps back to the caller's layout."""
    if channel_reduction == "sum_abs" or (channel_reduction == "auto" and maps.shape[1] > 1):
        maps = maps.abs().sum(dim=1, keepdim=True)
    maps = maps.to(dtype=inputs.dtype, device=inputs.device)
    if return_input_shape:
        if maps.shape[-2:] != inputs.shape[-2:]:
            maps = F.interpolate(maps, size=tuple(inputs.shape[-2:]), mode="nearest")
        maps = maps.expand(-1, inputs.shape[1], -1, -1).contiguous()
    return (maps,) if is_tuple else maps


def _check_transform(output_transform: str) -> str:
    if output_transform not in _OUTPUT_TRANSFORMS:
        raise ValueError(
            f"output_transform must be one of {_OUTPUT_TRANSFORMS}, got {output_transform!r}"
        )
    return output_transform


def _format_args(additional_forward_args: Any) -> Any:
    return _format_additional_forward_args(additional_forward_args)
