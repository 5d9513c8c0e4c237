"""Input checks shared by every package's public entry points.

Every check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, wrong
content) with a message that names the argument and says what was expected, before any
expensive work. Captum-side entry points take channel-first ``(N, C, H, W)`` tensors;
Alibi-side ones take channel-last ``(N, H, W, C)`` numpy arrays; each check recognises the other
convention and says how to convert.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

_CHANNELS = (1, 3, 4)


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in getattr(x, "shape", ()))


def _looks_channel_last(shape: Sequence[int]) -> bool:
    return len(shape) == 4 and shape[-1] in _CHANNELS and shape[1] not in _CHANNELS


def check_image_tensor(
    name: str,
    x: Any,
    *,
    chw: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    min_batch: int = 1,
) -> torch.Tensor:
    """A channel-first float batch ``(N, C, H, W)``: finite, non-empty, on ``device``.

    ``chw`` is the expected ``(C, H, W)`` when known (e.g. a generator's output).
    """
    if isinstance(x, np.ndarray):
        hint = " (channel-last numpy from Alibi? use torch.as_tensor(x).permute(0, 3, 1, 2))" \
            if _looks_channel_last(x.shape) else " (use torch.as_tensor(x))"
        raise TypeError(f"{name} must be a torch.Tensor (N, C, H, W), got a numpy array{hint}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
    shape = _shape(x)
    expected = "(N, C, H, W)" if chw is None else f"(N, {', '.join(str(s) for s in chw)})"
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape {expected}, got {shape}")
    if chw is not None and shape[1:] != tuple(chw):
        if shape[1:] == (chw[1], chw[2], chw[0]):
            raise ValueError(
                f"{name} has shape {shape}, which looks channel-last (N, H, W, C); expected "
                f"channel-first {expected}: use x.permute(0, 3, 1, 2)"
            )
        raise ValueError(f"{name} must have shape {expected}, got {shape}")
    if chw is None and _looks_channel_last(shape):
        raise ValueError(
            f"{name} has shape {shape}, which looks channel-last (N, H, W, C); Captum-style "
            "classes take channel-first (N, C, H, W): use x.permute(0, 3, 1, 2)"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if shape[0] < min_batch:
        if shape[0] == 0:
            raise ValueError(f"{name} is empty: shape {shape}")
        raise ValueError(f"{name} must hold at least {min_batch} images, got {shape[0]}")
    if device is not None:
        check_device(name, x, device)
    check_finite(name, x)
    return x


def check_device(name: str, x: torch.Tensor, device: torch.device | str) -> None:
    """``x`` lives on ``device`` (same type; CUDA indices are not compared)."""
    want = torch.device(device)
    if x.device.type != want.type:
        raise ValueError(
            f"{name} is on device {x.device}, expected {want} (where the model lives): move it "
            f"with .to({str(want)!r})"
        )


def check_finite(name: str, x: torch.Tensor | np.ndarray) -> None:
    if isinstance(x, torch.Tensor):
        if x.device.type == "meta":
            return
        bad_nan = int(torch.isnan(x).sum())
        bad_inf = int(torch.isinf(x).sum())
    else:
        if not np.issubdtype(x.dtype, np.floating):
            return
        bad_nan = int(np.isnan(x).sum())
        bad_inf = int(np.isinf(x).sum())
    if bad_nan or bad_inf:
        raise ValueError(f"{name} contains NaN or Inf values ({bad_nan} NaN, {bad_inf} Inf)")


def module_device(module: Any) -> torch.device | None:
    """Device of an ``nn.Module``'s (or a bound method's module's) first parameter or buffer."""
    owner = getattr(module, "__self__", module)
    if not isinstance(owner, nn.Module):
        return None
    for tensor in owner.parameters():
        return tensor.device
    for tensor in owner.buffers():
        return tensor.device
    return None


def check_in_range(
    name: str, x: torch.Tensor | np.ndarray, low: float, high: float, *, what: str
) -> None:
    """Values of ``x`` lie in ``[low, high]`` (inclusive), else a message citing ``what``."""
    if isinstance(x, torch.Tensor):
        if x.device.type == "meta" or x.numel() == 0:
            return
        lo, hi = float(x.min()), float(x.max())
    else:
        if x.size == 0:
            return
        lo, hi = float(np.min(x)), float(np.max(x))
    if lo < low or hi > high:
        raise ValueError(
            f"{name} has values in [{lo:.4g}, {hi:.4g}], outside the range of {what} "
            f"(tolerated: [{low:.4g}, {high:.4g}]); rescale the images to the model's range"
        )


def check_image_array(
    name: str,
    x: Any,
    *,
    hwc: Sequence[int] | None = None,
    batched: bool,
    allow_int: bool = False,
) -> np.ndarray:
    """An Alibi-style channel-last numpy image ``(H, W, C)`` or batch ``(N, H, W, C)``."""
    if isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a channel-last numpy array "
            f"{'(N, H, W, C)' if batched else '(H, W, C)'}"
            " as in Alibi, got a torch.Tensor; use "
            f"{'x.permute(0, 2, 3, 1)' if batched else 'x.permute(1, 2, 0)'}.cpu().numpy()"
        )
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    shape = _shape(x)
    rank = 4 if batched else 3
    item = shape[1:] if batched else shape
    if hwc is not None:
        expected = tuple(hwc)
        want = f"(N, {', '.join(map(str, expected))})" if batched else str(expected)
        if not batched and len(shape) == 4 and shape[1:] == expected:
            raise ValueError(
                f"{name} must be one image of shape {expected}, got a batch {shape}: explain the "
                "images one at a time (or run captum_latent.distributed.explain_dataset)"
            )
        if len(shape) != rank or item != expected:
            if len(item) == 3 and item == (expected[2], expected[0], expected[1]):
                raise ValueError(
                    f"{name} has shape {shape}, which looks channel-first; Alibi-style "
                    f"explainers take channel-last {want}: use np.moveaxis(x, {rank - 3}, -1)"
                )
            raise ValueError(f"{name} must have shape {want}, got {shape}")
    elif len(shape) != rank:
        raise ValueError(
            f"{name} must have {rank} dimensions {'(N, H, W, C)' if batched else '(H, W, C)'}, "
            f"got {shape}"
        )
    elif item[0] in _CHANNELS and item[-1] not in _CHANNELS:
        raise ValueError(
            f"{name} has shape {shape}, which looks channel-first; Alibi-style explainers take "
            f"channel-last {'(N, H, W, C)' if batched else '(H, W, C)'}: use "
            f"np.moveaxis(x, {rank - 3}, -1)"
        )
    if batched and shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {shape}")
    if not allow_int and not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    check_finite(name, x)
    return x


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_fraction(name: str, value: Any, *, closed_low: bool = False) -> float:
    """A float in ``(0, 1]`` (or ``[0, 1]`` with ``closed_low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    ok = (0 <= value <= 1) if closed_low else (0 < value <= 1)
    if not ok:
        interval = "[0, 1]" if closed_low else "(0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def _describe_input(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {_shape(x)} (dtype {x.dtype}, device {x.device})"
    if isinstance(x, np.ndarray):
        return f"an array of shape {_shape(x)} (dtype {x.dtype})"
    return f"a {type(x).__name__}"


def call_model(name: str, model: Any, x: Any, *args: Any, when: str = "") -> Any:
    """``model(x, *args)``; an exception raised by the user's model becomes a ``ValueError``
    naming the input's shape, dtype and device (the original exception is kept as its cause).

    ``when`` says which call this was (``"on the unperturbed input"``, ...).
    """
    try:
        return model(x, *args)
    except Exception as e:
        where = f" {when}" if when else ""
        raise ValueError(
            f"{name} failed on {_describe_input(x)}{where}: {type(e).__name__}: {e}. Check that "
            "the model takes inputs of this shape and layout (channels, image size)"
        ) from e


def check_model_output(name: str, out: Any, *, when: str = "") -> None:
    """The user's model returned finite numbers; else a ``ValueError`` saying how many NaN/Inf
    values there were, among how many outputs, and for which call."""
    if isinstance(out, torch.Tensor):
        if out.device.type == "meta" or not (out.is_floating_point() or out.is_complex()):
            return
        nan, inf = int(torch.isnan(out).sum()), int(torch.isinf(out).sum())
        total = out.numel()
    elif isinstance(out, np.ndarray):
        if not np.issubdtype(out.dtype, np.floating):
            return
        nan, inf = int(np.isnan(out).sum()), int(np.isinf(out).sum())
        total = out.size
    else:
        return
    if nan or inf:
        where = f" {when}" if when else ""
        raise ValueError(
            f"{name} returned {nan} NaN and {inf} Inf values among {total} outputs of shape "
            f"{_shape(out)}{where}: an explanation of non-finite outputs is meaningless; check "
            "the model (a log of 0, a division, an overflow) and its input range"
        )


def class_scores(name: str, model: Any, x: torch.Tensor, *, when: str = "") -> torch.Tensor:
    """``model(x)`` without gradient, checked to be finite ``(N, K)`` class scores with
    ``K >= 2`` (a counterfactual moves the prediction to a target class: it needs a score per
    class); every failure is a ``ValueError``/``TypeError`` naming ``name`` and the call."""
    with torch.no_grad():
        out = call_model(name, model, x, when=when)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name} must return a torch.Tensor of (N, K) logits, got "
                        f"{type(out).__name__}")
    check_model_output(name, out, when=when)
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        raise ValueError(
            f"{name} returns one number per image (shape {_shape(out)}); a counterfactual moves "
            "the prediction to a target class, so it needs one score per class, (N, K) logits "
            "with K >= 2: for a single logit s, wrap the model to return "
            "torch.cat([-s, s], dim=1) / 2 (two classes with the same probabilities)"
        )
    if out.ndim != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"{name} must return ({x.shape[0]}, K) logits for {x.shape[0]} images, "
                         f"got shape {_shape(out)}")
    return out
