"""Semantic preservation d(x_bar, x) for DISC (paper §3.1).

* :class:`PixelSemantics` -- image-space optimisation (ISO): mean squared pixel error.
* :class:`FeatureSemantics` -- latent-space optimisation (LSO): ``sum_l MSE(Psi_l(x_bar),
  Psi_l(x))`` over classifier layers read with forward hooks. The hooks live only inside the
  :meth:`~FeatureSemantics.bind` context manager and are always removed on exit.

Both expose ``bind(classifier, queries)``: a context manager yielding a
:class:`BoundSemantics` whose ``__call__(images)`` returns ``(logits, distance)`` from a single
classifier forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

__all__ = ["BoundSemantics", "FeatureSemantics", "PixelSemantics", "default_feature_layers"]

BoundSemantics = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]


def _per_sample_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(1)


@dataclass(frozen=True)
class PixelSemantics:
    """ISO: ``d(x_bar, x) = mean((x_bar - x)^2)`` per image.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> x = torch.zeros(1, 1, 2, 2)
    >>> with PixelSemantics().bind(model, x) as semantics:
    ...     logits, d = semantics(x + 0.5)
    >>> logits.shape, d.tolist()
    (torch.Size([1, 2]), [0.25])
    """

    name: str = "ISO"

    @contextlib.contextmanager
    def bind(self, classifier: nn.Module, queries: torch.Tensor) -> Iterator[BoundSemantics]:
        reference = queries.detach()

        def evaluate(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return classifier(images), _per_sample_mse(images, reference)

        yield evaluate


def default_feature_layers(classifier: nn.Module) -> list[str]:
    """Default LSO layers: the children of ``classifier.features`` (the conv blocks of the
    zoo's :class:`~captum_latent.zoo.SmallCNN`), else every ``nn.Conv2d``, else every
    ``nn.Linear`` except the last one."""
    features = getattr(classifier, "features", None)
    if isinstance(features, nn.Module) and len(list(features.children())) > 0:
        return [f"features.{name}" for name, _ in features.named_children()]
    convs = [name for name, m in classifier.named_modules() if isinstance(m, nn.Conv2d)]
    if convs:
        return convs
    linears = [name for name, m in classifier.named_modules() if isinstance(m, nn.Linear)]
    if len(linears) > 1:
        return linears[:-1]
    raise ValueError(
        "cannot choose default feature layers: the classifier has no `features` submodule, "
        "no Conv2d and at most one Linear layer; pass layers=[...] explicitly"
    )


@dataclass(frozen=True)
class FeatureSemantics:
    """LSO: ``d = sum_l mean((Psi_l(x_bar) - Psi_l(x))^2)`` over named classifier layers.

    Parameters
    ----------
    layers : sequence of str, optional
        Names of submodules (as in ``classifier.named_modules()``) whose outputs are compared.
        Default: :func:`default_feature_layers` (the conv blocks of a ``SmallCNN``).

    Examples
    --------
    >>> import torch
    >>> from captum_latent.zoo import SmallCNN
    >>> model = SmallCNN(1, 10, 28).eval()
    >>> x = torch.rand(2, 1, 28, 28)
    >>> with FeatureSemantics().bind(model, x) as semantics:
    ...     logits, d = semantics(x)
    >>> d.tolist(), len(model.features.block1._forward_hooks)
    ([0.0, 0.0], 0)
    """

    layers: Sequence[str] | None = None
    name: str = "LSO"

    def __post_init__(self) -> None:
        if self.layers is not None:
            if isinstance(self.layers, str) or not all(isinstance(n, str) for n in self.layers):
                raise TypeError(f"layers must be a sequence of str, got {self.layers!r}")
            if len(self.layers) == 0:
                raise ValueError("layers must name at least one layer")
            object.__setattr__(self, "layers", tuple(self.layers))

    def resolve(self, classifier: nn.Module) -> list[str]:
        """The layer names used for ``classifier`` (checked to exist)."""
        names = list(self.layers) if self.layers is not None else default_feature_layers(
            classifier)
        modules = dict(classifier.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise ValueError(f"layers {missing} not found in the classifier; "
                             f"available: {sorted(n for n in modules if n)}")
        return names

    @contextlib.contextmanager
    def bind(self, classifier: nn.Module, queries: torch.Tensor) -> Iterator[BoundSemantics]:
        names = self.resolve(classifier)
        modules = dict(classifier.named_modules())
        captured: dict[str, torch.Tensor] = {}

        def make_hook(name: str) -> Callable[..., None]:
            def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
                captured[name] = output

            return hook

        handles = [modules[n].register_forward_hook(make_hook(n)) for n in names]
        try:
            with torch.no_grad():
                classifier(queries)
            reference = {n: captured[n].detach() for n in names}

            def evaluate(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                captured.clear()
                logits = classifier(images)
                d = sum(_per_sample_mse(captured[n], reference[n]) for n in names)
                captured.clear()
                return logits, d  # type: ignore[return-value]

            yield evaluate
        finally:
            for handle in handles:
                handle.remove()
