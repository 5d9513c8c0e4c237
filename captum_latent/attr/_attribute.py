"""What :class:`~captum_latent.attr.LEG` and :class:`~captum_latent.attr.LEGTV` share behind
their public ``attribute`` signatures: the call's common arguments as one object, and the
docstring text describing them (filled into each method's docstring at import, so ``help()``,
the API pages and the doctests see complete docstrings)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Callable, TypeVar

import torch
from captum._utils.typing import TargetType

_F = TypeVar("_F", bound=Callable[..., Any])

COMMON_PARAMETERS = """inputs : Tensor or tuple of Tensor
    ``(B, C, H, W)`` images, or a tuple of such tensors with one batch size (a model with
    several inputs): every tensor is perturbed and attributed, as Captum does; each example is
    explained separately.
target : int, tuple, Tensor or list, optional
    Captum's target: one for all examples, or one per example.
additional_forward_args : optional
    Extra model arguments; tensors whose first dimension is ``B`` are repeated per perturbation.
feature_mask : Tensor or tuple of Tensor, optional
    Integer cell ids of shape ``(H, W)``, ``(1, 1, H, W)`` or ``(B, 1, H, W)`` (one per input
    for a tuple; ``None`` entries keep a grid), as for ``captum.attr.Lime``: the cells
    (superpixels, blocks) become the saliency's unknowns and the TV graph joins cells that touch.
    At most 2048 cells; not together with ``grid_size``.
n_samples : int, default 500
    Model evaluations per example (plus one for ``f(x0)``).
sigma2 : float or "auto", default "auto"
    Perturbation scale: the covariance is ``sigma2 * S`` (the paper uses 0.05 to 0.3 with
    VGG-19 on inputs in [0, 1]). ``"auto"`` calibrates it to the input: each pixel's
    perturbation has a standard deviation of 5% of the input's value range (small enough to
    keep the image; 0.00065 for the paper's scheme on a 28x28 grid of [0, 1] images), doubled
    while the model's output does not move on a pilot of 16 perturbations per example.
perturbations_per_eval : int, optional
    Perturbed copies of each example per model call (memory/speed only: results do not
    change). Default: as many as fit 32 MiB of perturbed inputs for the batch (at most 4096
    rows per call).
show_progress : bool, default False
    Show a tqdm progress bar over model evaluations.
grid_size : (int, int) or tuple of them, optional
    Saliency grid, one for every input or one per input. Default: the input's ``(H, W)`` up to
    32 x 32; larger inputs get about 28 cells a side (224 x 224 -> 28 x 28, the paper's grid).
channel_reduction : {"auto", "sum_abs", "none"}, default "auto"
    ``"sum_abs"``: sum of absolute per-channel maps (the paper); ``"none"``: keep signed
    per-channel maps; ``"auto"``: ``"sum_abs"`` when ``C > 1``, signed when ``C == 1``.
contrast_target : optional
    A second target subtracted from the first: ``f9 - f7`` is ``target=9,
    contrast_target=7``.
return_input_shape : bool, default True
    ``True``: ``(B, C, H, W)`` (grid maps upsampled, combined maps repeated over
    channels). ``False``: the grid maps, ``(B, C or 1, h, w)`` (cells are always painted on
    the input's pixels).
seed, generator : optional
    Source of randomness (at most one); perturbations are drawn on the generator's
    device."""

_MARKER = "<common parameters>"


def _with_common_parameters(method: _F) -> _F:
    """Replace the line ``<common parameters>`` of ``method``'s docstring by
    :data:`COMMON_PARAMETERS`, indented like that line, and wrap it the way Captum's
    ``log_usage`` does: wrappers such as ``NoiseTunnel`` call ``attribute.__wrapped__``."""

    @functools.wraps(method)
    def attribute(*args: Any, **kwargs: Any) -> Any:
        return method(*args, **kwargs)

    doc = method.__doc__
    if doc is None:  # python -OO strips docstrings
        return attribute  # type: ignore[return-value]
    for line in doc.splitlines():
        if line.strip() == _MARKER:
            indent = line[: len(line) - len(line.lstrip())]
            text = "\n".join(indent + row if row else row for row in COMMON_PARAMETERS.splitlines())
            # both: help() reads the wrapper, tools that unwrap (griffe, the API pages) the method
            method.__doc__ = attribute.__doc__ = doc.replace(line, text)
            return attribute  # type: ignore[return-value]
    raise ValueError(f"{method.__qualname__}'s docstring has no {_MARKER!r} line")


@dataclass(frozen=True)
class _Call:
    """The arguments every ``attribute`` method takes (see :data:`COMMON_PARAMETERS`)."""

    inputs: Any
    target: TargetType
    additional_forward_args: Any
    feature_mask: Any
    n_samples: int
    sigma2: Any
    perturbations_per_eval: int | None
    show_progress: bool
    grid_size: tuple[int, int] | None
    channel_reduction: str
    contrast_target: TargetType
    return_input_shape: bool
    seed: int | None
    generator: torch.Generator | None

    @classmethod
    def of(cls, arguments: Mapping[str, Any]) -> _Call:
        """The common arguments picked by name from a method's ``locals()``."""
        return cls(**{f.name: arguments[f.name] for f in fields(cls)})
