"""Manifold-consistency terms ``L_mc`` for DISC (paper §3.3).

* :class:`DEPConsistency` -- Eq. 8: ``|G(x_bar) - s*|`` with ``G`` a loss predictor trained
  jointly with the classifier (see :mod:`captum_latent.zoo.dep`); ``s*`` one
  number, or one per target class.
* :class:`DUQConsistency` -- Eq. 9: ``max(K(x_bar, phi(y)) - K(x_bar, phi(y_bar)) + tau, 0)``
  with ``K`` the kernel similarities of a DUQ model (any module mapping images to ``(B, K)``
  similarities in (0, 1], e.g. a :class:`~captum_latent.counterfactual.DUQClassifier` from
  :func:`~captum_latent.counterfactual.train_duq_classifier`).

Each term is called as ``term(images, source, target)`` and returns one value per image.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import torch
from torch import nn

__all__ = ["DEPConsistency", "DUQConsistency", "ManifoldConsistency"]


class ManifoldConsistency(abc.ABC):
    """A per-image penalty for leaving the data manifold, computed from the classifier only."""

    name: str

    @abc.abstractmethod
    def __call__(self, images: torch.Tensor, source: torch.Tensor,
                 target: torch.Tensor) -> torch.Tensor:
        """Return ``(B,)`` penalties for ``images`` moving from ``source`` to ``target``."""


TargetLoss = Union[float, Sequence[float], torch.Tensor]


@dataclass(frozen=True)
class DEPConsistency(ManifoldConsistency):
    """Eq. 8: ``L_mc = |G(x_bar) - s*|_1``.

    Parameters
    ----------
    loss_predictor : nn.Module
        Maps ``(B, C, H, W)`` images to ``(B,)`` predicted losses, e.g. the module returned
        by ``DEPClassifier.loss_predictor()``.
    target_loss : float, or sequence / 1-D tensor of floats
        ``s*``, in the predictor's own scale: one number for every counterfactual, or one per
        class, indexed by each counterfactual's target class. The ranking loss (Eq. 6) fixes
        only the order of the predictions, so take ``s*`` from the predictor's scores on
        training data: ``DEPClassifier.class_loss_scores`` holds the median score of each
        class's correctly classified training images (the recommended per-class target).

    Examples
    --------
    >>> import torch
    >>> g = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    >>> term = DEPConsistency(g, target_loss=0.0)
    >>> term(torch.zeros(3, 1, 2, 2), torch.zeros(3), torch.ones(3)).shape
    torch.Size([3])
    >>> per_class = DEPConsistency(lambda x: torch.zeros(len(x)), target_loss=[-1.0, -2.0])
    >>> per_class(torch.zeros(2, 1, 2, 2), torch.tensor([1, 0]), torch.tensor([0, 1])).tolist()
    [1.0, 2.0]
    """

    loss_predictor: nn.Module
    target_loss: TargetLoss
    name: str = "DEP"

    def __post_init__(self) -> None:
        if not callable(self.loss_predictor):
            raise TypeError("loss_predictor must be callable (an nn.Module)")
        value = self.target_loss
        if isinstance(value, bool):
            raise TypeError("target_loss must be a number or a sequence of numbers, got bool")
        if isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise ValueError(f"target_loss must be finite, got {value!r}")
            object.__setattr__(self, "target_loss", float(value))
            return
        try:
            table = torch.as_tensor(value, dtype=torch.float32).detach().clone()
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"target_loss must be a number or a sequence of numbers, got "
                            f"{type(value).__name__}") from err
        if table.ndim == 0 and bool(torch.isfinite(table)):
            object.__setattr__(self, "target_loss", float(table))
            return
        if table.ndim != 1 or table.numel() == 0 or not bool(torch.isfinite(table).all()):
            raise ValueError(f"target_loss must be a finite number or a non-empty 1-D "
                             f"sequence of finite numbers, got shape {tuple(table.shape)}")
        object.__setattr__(self, "target_loss", table)

    def __call__(self, images: torch.Tensor, source: torch.Tensor,
                 target: torch.Tensor) -> torch.Tensor:
        predicted = self.loss_predictor(images).reshape(images.shape[0])
        if isinstance(self.target_loss, torch.Tensor):
            if int(target.max()) >= self.target_loss.numel() or int(target.min()) < 0:
                raise ValueError(f"target classes {target.tolist()} out of range for "
                                 f"{self.target_loss.numel()} per-class target losses")
            s_star = self.target_loss.to(predicted)[target.to(predicted.device)]
            return (predicted - s_star).abs()
        return (predicted - self.target_loss).abs()


@dataclass(frozen=True)
class DUQConsistency(ManifoldConsistency):
    """Eq. 9: ``max(K(F(x_bar), phi(y)) - K(F(x_bar), phi(y_bar)) + tau, 0)``.

    Parameters
    ----------
    duq_model : nn.Module
        Maps images to ``(B, K)`` kernel similarities to the class centroids, e.g. a trained
        DUQ model (van Amersfoort et al.).
    margin : float, default 0.5
        ``tau``.

    Examples
    --------
    >>> import torch
    >>> term = DUQConsistency(lambda x: torch.full((x.shape[0], 2), 0.3))
    >>> term(torch.zeros(2, 1, 2, 2), torch.tensor([0, 0]), torch.tensor([1, 1])).tolist()
    [0.5, 0.5]
    """

    duq_model: nn.Module
    margin: float = 0.5
    name: str = "DUQ"

    def __post_init__(self) -> None:
        if not callable(self.duq_model):
            raise TypeError("duq_model must be callable (an nn.Module)")
        if not isinstance(self.margin, (int, float)) or self.margin < 0:
            raise ValueError(f"margin must be a number >= 0, got {self.margin!r}")

    def __call__(self, images: torch.Tensor, source: torch.Tensor,
                 target: torch.Tensor) -> torch.Tensor:
        kernel = self.duq_model(images)
        k_source = kernel.gather(1, source.view(-1, 1)).squeeze(1)
        k_target = kernel.gather(1, target.view(-1, 1)).squeeze(1)
        return torch.clamp(k_source - k_target + self.margin, min=0.0)
