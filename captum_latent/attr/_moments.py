"""Model evaluations for LEG: perturb every example, evaluate the model in vectorised calls,
return the moments ``b = mean_i(y~_i z_i)``.

Captum's conventions are kept: ``target`` (int, tuple, tensor or list, per example),
``additional_forward_args`` (tensors with a batch dimension are repeated per perturbation) and
``perturbations_per_eval`` (how many perturbed copies of each example go through the model per
call). All perturbations are drawn before any evaluation, so the result does not depend on
``perturbations_per_eval`` (up to the order of floating-point sums).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from captum._utils.common import _format_additional_forward_args
from torch import Tensor

from captum_latent.validation import (
    call_model,
    check_device,
    check_model_output,
    module_device,
)

_OUTPUT_TRANSFORMS = ("none", "softmax", "log_softmax")


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
    xs: tuple[Tensor, ...],
    args: Any,
    target: Any,
    contrast_target: Any,
) -> tuple[list[Any] | None, list[Any] | None]:
    """Before the perturbation loop: the inputs sit on the model's device, and every example's
    target indexes the model's output (checked on one probe call with the first example).
    Returns the per-example targets and contrast targets (``None`` where not given)."""
    device = module_device(forward_func)
    if device is not None:
        for k, x in enumerate(xs):
            check_device("inputs" if len(xs) == 1 else f"inputs[{k}]", x, device)
    batch = xs[0].shape[0]
    targets = {
        name: [_example_target(t, i, batch) for i in range(batch)]
        for name, t in (("target", target), ("contrast_target", contrast_target))
        if t is not None
    }
    with torch.no_grad():
        first = _example_args(args, 0, batch) or ()
        out = call_model("forward_func", forward_func, *(x[:1] for x in xs), *first,
                         when="(a probe with the first example, before any perturbation)")
    if out is not None and not isinstance(out, Tensor):
        out = torch.as_tensor(out)
    check_model_output("forward_func", out, when="on the first example (the probe call)")
    if isinstance(out, Tensor) and out.dim() < 2 and targets:
        name = next(iter(targets))
        raise ValueError(
            f"forward_func returns one number per example (outputs of shape "
            f"{tuple(out.shape)} for one example), so {name}= has no class to select: call with "
            "target=None (and no contrast_target) to explain that number, or make the model "
            "return (N, K) scores"
        )
    rows: dict[str, list[Any]] = {}
    if not targets or not isinstance(out, Tensor) or out.dim() < 2:
        return None, None
    sizes = tuple(int(s) for s in out.shape[1:])
    for name, per_example in targets.items():
        rows[name] = []
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
            rows[name].append(index[0] if len(index) == 1 else index)
    return rows.get("target"), rows.get("contrast_target")


def _select_rows(out: Tensor, rows: list[Any]) -> Tensor:
    """``out[r, rows[r]]`` for each row ``r`` (``rows``: ints or index tuples, Captum's
    per-example targets)."""
    n = out.shape[0]
    r = torch.arange(n, device=out.device)
    if all(isinstance(t, tuple) for t in rows):
        cols = list(zip(*rows))
        return out[(r,) + tuple(torch.tensor(c, device=out.device) for c in cols)]
    return out[r, torch.tensor([int(t) for t in rows], device=out.device)]


def _scalar_outputs(
    forward_func: Callable[..., Any],
    xs: tuple[Tensor, ...],
    targets: list[Any] | None,
    contrasts: list[Any] | None,
    args: Any,
    output_transform: str,
    when: str = "",
) -> Tensor:
    """One number per row of ``xs``: the target output (minus the contrast target), after the
    output transform. ``targets``/``contrasts`` hold one entry per row (or are ``None``)."""
    out = call_model("forward_func", forward_func, *xs, *(args or ()), when=when)
    if not isinstance(out, Tensor):
        out = torch.as_tensor(out, device=xs[0].device)
    if out.dim() == 0:
        out = out.reshape(1)
    if output_transform != "none":
        if out.dim() < 2:
            raise ValueError(f"output_transform={output_transform!r} needs (N, K) model outputs")
        fn = torch.softmax if output_transform == "softmax" else torch.log_softmax
        out = fn(out, dim=1)
    y = _select_rows(out, targets) if targets is not None else out
    if contrasts is not None:
        y = y - _select_rows(out, contrasts)
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dim() != 1 or y.shape[0] != xs[0].shape[0]:
        raise ValueError(
            "the forward function's output (after target selection) must be one number per "
            f"example, got shape {tuple(y.shape)} for {xs[0].shape[0]} inputs: pass target="
        )
    return y


def _expand_args(args: Any, batch: int, copies: int) -> Any:
    """``additional_forward_args`` for ``copies`` rows per example: tensors with ``batch``
    rows (per example) are repeated row by row, one-row tensors broadcast, the rest kept."""
    if args is None:
        return None
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch:
            a = a.repeat_interleave(copies, dim=0)
        elif isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == 1:
            a = a.expand(batch * copies, *a.shape[1:])
        out.append(a)
    return tuple(out)


#: bytes of perturbed inputs per model call when ``perturbations_per_eval`` is not given
EVAL_BUDGET_BYTES = 32 * 2**20
#: at most this many perturbed copies per model call when ``perturbations_per_eval`` is not given
EVAL_MAX_ROWS = 4096


def _auto_perturbations_per_eval(xs: tuple[Tensor, ...], n_samples: int) -> int:
    """Perturbations per example and model call: as many as fit :data:`EVAL_BUDGET_BYTES` of
    perturbed inputs for the whole batch (and at most :data:`EVAL_MAX_ROWS` rows)."""
    batch = int(xs[0].shape[0])
    per_copy = sum(x[0].numel() * x.element_size() for x in xs)
    k = min(EVAL_BUDGET_BYTES // max(1, batch * per_copy), EVAL_MAX_ROWS // batch)
    return int(max(1, min(n_samples, k)))


def _responses(
    forward_func: Callable[..., Any],
    layouts: list[Any],
    z: list[Any],
    scales: list[float],
    targets: list[Any] | None,
    contrasts: list[Any] | None,
    args: Any,
    perturbations_per_eval: int,
    output_transform: str,
    progress: Any | None = None,
    f0: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``(y~, f0)``: ``y~ = f(x0 + scale * up(z)) - f(x0)``, ``(B, n)`` float64, from
    vectorised model calls (each sees ``perturbations_per_eval`` perturbed copies of every
    example), and ``f(x0)`` (computed unless given).

    ``z[k][i]`` holds input ``k``'s ``n`` (unit-scale) perturbations of example ``i`` (``z[k]``
    a ``(B, n, C, ...)`` tensor, or a list for per-example cells) and ``scales[k]`` multiplies
    them."""
    xs = tuple(layout.x for layout in layouts)
    batch, n = int(xs[0].shape[0]), int(z[0][0].shape[0])
    with torch.no_grad():
        if f0 is None:
            f0 = _scalar_outputs(forward_func, xs, targets, contrasts, args, output_transform,
                                 when="on the unperturbed examples")
            check_model_output("forward_func", f0, when="on the unperturbed examples")
        ys = []
        for start in range(0, n, perturbations_per_eval):
            k = min(perturbations_per_eval, n - start)
            rows = []
            for layout, zk, scale in zip(layouts, z, scales):
                x = layout.x
                # scaled on the grid, painted in the input's dtype
                if isinstance(zk, Tensor):  # (B, n, C, ...): one grid or one set of cells
                    chunk = (scale * zk[:, start : start + k].flatten(0, 1)).to(x.device, x.dtype)
                    delta = layout.paint(chunk, 0)
                else:  # per-example cells: one painting per example
                    delta = torch.cat([
                        layout.paint((scale * zk[i][start : start + k]).to(x.device, x.dtype), i)
                        for i in range(batch)
                    ])
                rows.append(x.repeat_interleave(k, dim=0) + delta)
            y = _scalar_outputs(
                forward_func, tuple(rows), _repeat(targets, k), _repeat(contrasts, k),
                _expand_args(args, batch, k), output_transform,
                when=f"on perturbations {start} to {start + k - 1} of {n} (of {batch} examples)",
            )
            ys.append(y.detach().to(torch.float64).reshape(batch, k))
            if progress is not None:
                progress.update(batch * k)
        y_all = torch.cat(ys, dim=1)
        _check_perturbed_outputs(y_all)  # one check (one device sync) for the batch
        return y_all - f0.detach().to(torch.float64)[:, None], f0


def _moments(yt: Tensor, z: list[Any], scales: list[float]) -> list[list[Tensor]]:
    """``b[k][i] = mean_j(y~_ij * scale_k * z[k][i]_j)`` (float64, on the perturbations'
    device); ``z[k]`` is a ``(B, n, C, ...)`` tensor (one einsum for the batch) or a list of
    per-example ``(n, C, ...)`` tensors."""
    n = yt.shape[1]
    out = []
    for zk, scale in zip(z, scales):
        if isinstance(zk, Tensor):
            b = torch.einsum("bn,bn...->b...", yt.to(zk.device), zk.to(torch.float64))
            out.append(list(b * (scale / n)))
            continue
        out.append([
            torch.einsum("n,n...->...", yt[i].to(zi.device), zi.to(torch.float64)) * (scale / n)
            for i, zi in enumerate(zk)
        ])
    return out


def _repeat(rows: list[Any] | None, copies: int) -> list[Any] | None:
    return None if rows is None else [t for t in rows for _ in range(copies)]


def _check_perturbed_outputs(y: Tensor) -> None:
    """The model's (target-selected) outputs on the perturbed copies are finite; else say how
    many were not and on which perturbations."""
    bad = ~torch.isfinite(y)
    if not bool(bad.any()):
        return
    where = [(int(i), int(j)) for i, j in torch.nonzero(bad).tolist()]
    shown = ", ".join(f"{j} of example {i}" for i, j in where[:6])
    shown += ", ..." if len(where) > 6 else ""
    nan, inf = int(torch.isnan(y).sum()), int(torch.isinf(y).sum())
    raise ValueError(
        f"forward_func returned {nan} NaN and {inf} Inf values among {y.numel()} outputs on "
        f"perturbations [{shown}] (the unperturbed examples were finite): an explanation of "
        "non-finite outputs is meaningless; check the model (a log of 0, a division, an "
        "overflow) and its input range (sigma2 moves pixels out of [0, 1])"
    )


def _check_counts(n_samples: Any, perturbations_per_eval: Any, channel_reduction: Any) -> None:
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}")
    if perturbations_per_eval is not None and (
        isinstance(perturbations_per_eval, bool)
        or not isinstance(perturbations_per_eval, int)
        or perturbations_per_eval < 1
    ):
        raise ValueError(
            "perturbations_per_eval must be None (chosen from the batch and a memory budget) "
            f"or an int >= 1, got {perturbations_per_eval!r}"
        )
    if channel_reduction not in ("auto", "sum_abs", "none"):
        raise ValueError(
            f"channel_reduction must be 'auto', 'sum_abs' or 'none', got {channel_reduction!r}"
        )


def _finish(
    layout: Any,
    maps: list[Tensor],
    channel_reduction: str,
    return_input_shape: bool,
) -> Tensor:
    """Combine channels and map one input's saliency (``maps[i]``: ``(C, ...)`` on its grid or
    cells) back to the caller's layout: ``(B, C, H, W)`` or ``(B, C or 1, h, w)``."""
    x = layout.x
    out = []
    for i, m in enumerate(maps):
        if channel_reduction == "sum_abs" or (channel_reduction == "auto" and m.shape[0] > 1):
            m = m.abs().sum(dim=0, keepdim=True)
        m = m.to(device=x.device)
        if return_input_shape or layout.masked:
            m = layout.to_input(m, i).expand(x.shape[1], -1, -1)
        out.append(m)
    return torch.stack(out).to(dtype=x.dtype).contiguous()


def _check_transform(output_transform: str) -> str:
    if output_transform not in _OUTPUT_TRANSFORMS:
        raise ValueError(
            f"output_transform must be one of {_OUTPUT_TRANSFORMS}, got {output_transform!r}"
        )
    return output_transform


def _format_args(additional_forward_args: Any) -> Any:
    return _format_additional_forward_args(additional_forward_args)
