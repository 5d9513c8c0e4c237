"""What :class:`~captum_latent.attr.LEG` and :class:`~captum_latent.attr.LEGTV` share behind
their public ``attribute`` signatures: the call's common arguments as one object, and the
docstring text describing them (filled into each method's docstring at import, so ``help()``,
the API pages and the doctests see complete docstrings)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional, TypeVar

import torch
from captum._utils.typing import TargetType

_F = TypeVar("_F", bound=Callable[..., Any])

COMMON_PARAMETERS = """inputs : Tensor or 1-tuple of Tensor
    ``(B, C, H, W)`` images; each example is explained separately.
target : int, tuple, Tensor or list, optional
    Captum's target: one for all examples, or one per example.
additional_forward_args : optional
    Extra model arguments; tensors whose first dimension is ``B`` are split per example.
n_samples : int, default 500
    Model evaluations per example (plus one for ``f(x0)``).
sigma2 : float, default 0.1
    Perturbation scale (the paper uses 0.05 to 0.3 for inputs in [0, 1]).
perturbations_per_eval : int, default 1
    Perturbed copies per model call (memory/speed only: results do not change).
show_progress : bool, default False
    Show a tqdm progress bar over model evaluations.
grid_size : (int, int), optional
    Saliency grid; default the input's ``(H, W)``.
channel_reduction : {"auto", "sum_abs", "none"}, default "auto"
    ``"sum_abs"``: sum of absolute per-channel maps (the paper); ``"none"``: keep signed
    per-channel maps; ``"auto"``: ``"sum_abs"`` when ``C > 1``, signed when ``C == 1``.
contrast_target : optional
    A second target subtracted from the first: ``f9 - f7`` is ``target=9,
    contrast_target=7``.
return_input_shape : bool, default True
    ``True``: ``(B, C, H, W)`` (grid maps upsampled, combined maps repeated over
    channels). ``False``: the grid maps, ``(B, C or 1, h, w)``.
seed, generator : optional
    Source of randomness (at most one); perturbations are drawn on the generator's
    device."""

_MARKER = "<common parameters>"


def _with_common_parameters(method: _F) -> _F:
    """Replace the line ``<common parameters>`` of ``method``'s docstring by
    :data:`COMMON_PARAMETERS`, indented like that line."""
    doc = method.__doc__
    if doc is None:  # python -OO strips docstrings
        return method
    for line in doc.splitlines():
        if line.strip() == _MARKER:
            indent = line[: len(line) - len(line.lstrip())]
            text = "\n".join(indent + row if row else row for row in COMMON_PARAMETERS.splitlines())
            method.__doc__ = doc.replace(line, text)
            return method
    raise ValueError(f"{method.__qualname__}'s docstring has no {_MARKER!r} line")


@dataclass(frozen=True)
class _Call:
    """The arguments every ``attribute`` method takes (see :data:`COMMON_PARAMETERS`)."""

    inputs: Any
    target: TargetType
    additional_forward_args: Any
    n_samples: int
    sigma2: float
    perturbations_per_eval: int
    show_progress: bool
    grid_size: Optional[tuple[int, int]]
    channel_reduction: str
    contrast_target: TargetType
    return_input_shape: bool
    seed: Optional[int]
    generator: Optional[torch.Generator]

    @classmethod
    def of(cls, arguments: Mapping[str, Any]) -> _Call:
        """The common arguments picked by name from a method's ``locals()``."""
        return cls(**{f.name: arguments[f.name] for f in fields(cls)})
