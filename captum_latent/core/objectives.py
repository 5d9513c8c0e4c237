"""Per-sample objectives for the latent-search engine.

An objective maps a batch of generated images, the codes that produced them and the index of
the problem each row belongs to, to one loss per row::

    losses = objective(images, codes, problems)     # (B, C, H, W), (B, d), (B,) -> (B,)

"Problem" is whatever the caller solves many samples of: one masked image for GANchors, one
observed image for reversal or MimicGAN. Targets are stored once per problem and gathered by
``problems``, so ``N`` samples of ``P`` problems run as one batch without a Python loop.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "Objective",
    "MaskedReconstruction",
    "Reconstruction",
    "DiscriminatorLoss",
    "CallableObjective",
    "WeightedSum",
]

_NORMS = ("l2", "l1")
_REDUCTIONS = ("mean", "sum")


class Objective(nn.Module):
    """Base class: a per-sample loss on generated images.

    Subclasses implement :meth:`forward` returning a ``(B,)`` tensor. Objectives add with
    ``+`` and scale with ``*`` (see :class:`WeightedSum`), and are ``nn.Module`` s so their
    targets live in buffers and follow ``.to(device)``.

    Examples
    --------
    >>> import torch
    >>> class Brightness(Objective):
    ...     def forward(self, images, codes, problems):
    ...         return images.flatten(1).mean(1)
    >>> obj = Brightness() + 0.5 * Brightness()
    >>> obj(torch.ones(3, 1, 2, 2), torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))
    tensor([1.5000, 1.5000, 1.5000])
    """

    #: number of distinct problems this objective holds targets for (``None``: any).
    n_problems: int | None = None

    def forward(  # pragma: no cover - abstract
        self, images: torch.Tensor, codes: torch.Tensor, problems: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def __add__(self, other: Objective) -> WeightedSum:
        if not isinstance(other, Objective):
            return NotImplemented
        return WeightedSum([self, other], [1.0, 1.0])

    def __mul__(self, weight: float) -> WeightedSum:
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            return NotImplemented
        return WeightedSum([self], [float(weight)])

    __rmul__ = __mul__


def _check_images(name: str, value: torch.Tensor) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() == 3:
        value = value.unsqueeze(0)
    if value.dim() != 4:
        raise ValueError(
            f"{name} must have shape (P, C, H, W) or (C, H, W), got {tuple(value.shape)}"
        )
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
    return value


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


class MaskedReconstruction(Objective):
    """Masked reconstruction ``||A x - A G(z)||`` per sample (GANchors Eq. 8).

    Parameters
    ----------
    targets : torch.Tensor
        Observed images, shape ``(P, C, H, W)`` (or ``(C, H, W)`` for one problem).
    masks : torch.Tensor
        Binary or soft masks ``A`` broadcastable to ``targets``: ``(P or 1, 1 or C, H, W)``.
        1 marks pixels that must be reproduced.
    norm : {"l2", "l1"}
        Squared error or absolute error per pixel.
    reduction : {"mean", "sum"}
        ``"mean"`` divides by the number of masked entries (``"l2"`` + ``"mean"`` is the masked
        MSE used for GANchors' threshold ``xi``); ``"sum"`` returns the plain sum.

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(2, 1, 4, 4)
    >>> mask = torch.zeros(1, 1, 4, 4); mask[..., :2, :] = 1
    >>> obj = MaskedReconstruction(x, mask)
    >>> obj(torch.zeros(3, 1, 4, 4), torch.zeros(3, 8), torch.tensor([0, 1, 1]))
    tensor([1., 1., 1.])
    """

    def __init__(
        self,
        targets: torch.Tensor,
        masks: torch.Tensor,
        *,
        norm: str = "l2",
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        targets = _check_images("targets", targets)
        masks = _check_images("masks", masks)
        try:
            full = torch.broadcast_shapes(masks.shape, targets.shape)
        except RuntimeError as e:
            raise ValueError(
                f"masks of shape {tuple(masks.shape)} do not broadcast to targets of shape "
                f"{tuple(targets.shape)}"
            ) from e
        if full != targets.shape:
            raise ValueError(
                f"masks of shape {tuple(masks.shape)} must broadcast to targets "
                f"{tuple(targets.shape)} without enlarging them"
            )
        self.norm = _check_choice("norm", norm, _NORMS)
        self.reduction = _check_choice("reduction", reduction, _REDUCTIONS)
        masks = masks.to(targets.dtype)
        counts = masks.expand_as(targets).flatten(1).sum(1)
        if masks.shape[0] == 1:
            counts = counts[:1]
        if bool((counts <= 0).any()):
            raise ValueError("masks must select at least one pixel for every problem")
        self.register_buffer("targets", targets * masks)
        self.register_buffer("masks", masks)
        self.register_buffer("counts", counts)
        self.n_problems = targets.shape[0]
        self._all_ones = bool((masks == 1).all())
        self._count = float(counts[0])  # plain reconstruction: skip the masking

    def _gather(self, buffer: torch.Tensor, problems: torch.Tensor) -> torch.Tensor:
        return buffer if buffer.shape[0] == 1 else buffer.index_select(0, problems)

    def forward(
        self, images: torch.Tensor, codes: torch.Tensor, problems: torch.Tensor
    ) -> torch.Tensor:
        target = self._gather(self.targets, problems)
        if self._all_ones:
            diff = images.float() - target
        else:
            diff = images.float() * self._gather(self.masks, problems) - target
        per_pixel = diff.square() if self.norm == "l2" else diff.abs()
        total = per_pixel.flatten(1).sum(1)
        if self.reduction == "mean":
            if self.counts.shape[0] == 1:
                return total * (1.0 / float(self._count))
            total = total / self._gather(self.counts, problems)
        return total


class Reconstruction(MaskedReconstruction):
    """Full-image reconstruction ``||x - G(z)||`` per sample (generator reversal, Defense-GAN).

    Parameters
    ----------
    targets : torch.Tensor
        Images ``(P, C, H, W)``.
    norm, reduction
        As in :class:`MaskedReconstruction`; ``"l2"``/``"mean"`` is the per-image MSE.

    Examples
    --------
    >>> import torch
    >>> obj = Reconstruction(torch.ones(2, 1, 3, 3))
    >>> obj(torch.zeros(2, 1, 3, 3), torch.zeros(2, 4), torch.tensor([0, 1]))
    tensor([1., 1.])
    """

    def __init__(self, targets: torch.Tensor, *, norm: str = "l2", reduction: str = "mean") -> None:
        targets = _check_images("targets", targets)
        ones = torch.ones((1, *targets.shape[1:]), dtype=targets.dtype, device=targets.device)
        super().__init__(targets, ones, norm=norm, reduction=reduction)


class DiscriminatorLoss(Objective):
    """Realism term ``-log sigmoid(D(G(z)))`` per sample from a discriminator returning logits.

    Parameters
    ----------
    discriminator : nn.Module
        Maps ``(B, C, H, W)`` images to real/fake logits of shape ``(B,)`` or ``(B, 1)``.
        It is used as given (its train/eval mode is not changed).

    Examples
    --------
    >>> import torch
    >>> d = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1))
    >>> images, codes = torch.zeros(5, 1, 2, 2), torch.zeros(5, 3)
    >>> loss = DiscriminatorLoss(d)(images, codes, torch.zeros(5, dtype=torch.long))
    >>> loss.shape
    torch.Size([5])
    """

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        if not isinstance(discriminator, nn.Module):
            raise TypeError(
                f"discriminator must be a torch.nn.Module, got {type(discriminator).__name__}"
            )
        self.discriminator = discriminator

    def forward(
        self, images: torch.Tensor, codes: torch.Tensor, problems: torch.Tensor
    ) -> torch.Tensor:
        logits = self.discriminator(images).float().reshape(images.shape[0], -1)
        if logits.shape[1] != 1:
            raise ValueError(
                f"discriminator must return one logit per image, got shape {tuple(logits.shape)}"
            )
        return F.softplus(-logits[:, 0])


class CallableObjective(Objective):
    """Wrap a user function ``fn(images, codes, problems) -> (B,) losses`` as an objective.

    Examples
    --------
    >>> import torch
    >>> obj = CallableObjective(lambda images, codes, problems: codes.square().sum(1))
    >>> obj(torch.zeros(2, 1, 2, 2), torch.ones(2, 3), torch.tensor([0, 0]))
    tensor([3., 3.])
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        n_problems: int | None = None,
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.n_problems = n_problems

    def forward(
        self, images: torch.Tensor, codes: torch.Tensor, problems: torch.Tensor
    ) -> torch.Tensor:
        return self.fn(images, codes, problems)


class WeightedSum(Objective):
    """``sum_k w_k * objective_k``; built by ``+`` and ``*`` on objectives.

    Examples
    --------
    >>> import torch
    >>> obj = WeightedSum([Reconstruction(torch.ones(1, 1, 2, 2))], [2.0])
    >>> obj(torch.zeros(1, 1, 2, 2), torch.zeros(1, 3), torch.tensor([0]))
    tensor([2.])
    """

    def __init__(self, terms: list[Objective], weights: list[float]) -> None:
        super().__init__()
        if len(terms) != len(weights) or not terms:
            raise ValueError(
                f"terms and weights must be non-empty and of equal length, got {len(terms)} "
                f"and {len(weights)}"
            )
        flat_terms: list[Objective] = []
        flat_weights: list[float] = []
        for term, weight in zip(terms, weights):
            if not isinstance(term, Objective):
                raise TypeError(f"terms must be Objective instances, got {type(term).__name__}")
            if isinstance(term, WeightedSum):
                flat_terms.extend(term.terms)
                flat_weights.extend(weight * w for w in term.weights)
            else:
                flat_terms.append(term)
                flat_weights.append(float(weight))
        self.terms = nn.ModuleList(flat_terms)
        self.weights = flat_weights
        counts = {t.n_problems for t in flat_terms if t.n_problems is not None}
        if len(counts) > 1:
            raise ValueError(f"terms disagree on the number of problems: {sorted(counts)}")
        self.n_problems = counts.pop() if counts else None

    def __add__(self, other: Objective) -> WeightedSum:
        if not isinstance(other, Objective):
            return NotImplemented
        return WeightedSum([self, other], [1.0, 1.0])

    def forward(
        self, images: torch.Tensor, codes: torch.Tensor, problems: torch.Tensor
    ) -> torch.Tensor:
        total = None
        for term, weight in zip(self.terms, self.weights):
            value = weight * term(images, codes, problems).float()
            total = value if total is None else total + value
        return total
