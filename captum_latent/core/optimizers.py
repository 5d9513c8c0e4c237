"""Row-wise optimisers for batches of independent codes.

``torch.optim`` keeps one state per parameter tensor, so a batch of codes shares one Adam
step counter. The engine refills and restarts individual rows, which must start from fresh
moments and their own bias correction. These optimisers keep every state tensor with one row
per code and expose :meth:`reset` for a subset of rows; the update is the textbook one
(Kingma & Ba for Adam, Tieleman & Hinton for RMSprop, matching ``torch.optim`` defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["RowwiseOptimizer", "Adam", "RMSprop"]


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_unit(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


class RowwiseOptimizer:
    """Base class: ``init(codes)`` -> state dict, ``step(codes, grads, state)`` -> new codes.

    State is a ``dict[str, Tensor]`` whose tensors have the batch as first dimension, so the
    engine can index, reset and compact rows uniformly.

    Examples
    --------
    >>> import torch
    >>> class SGD(RowwiseOptimizer):
    ...     def init(self, codes):
    ...         return {}
    ...     def step(self, codes, grads, state):
    ...         return codes - 0.1 * grads
    >>> SGD().step(torch.ones(2, 3), torch.ones(2, 3), {})[0]
    tensor([0.9000, 0.9000, 0.9000])
    """

    def init(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def step(  # pragma: no cover - abstract
        self, codes: torch.Tensor, grads: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        raise NotImplementedError

    def reset(self, state: dict[str, torch.Tensor], rows: torch.Tensor) -> None:
        """Zero the state of ``rows`` (bool mask or indices) in place."""
        for value in state.values():
            value[rows] = 0


@dataclass(frozen=True)
class Adam(RowwiseOptimizer):
    """Adam with one step counter per row.

    Parameters
    ----------
    lr : float
        Step size.
    betas : tuple of float
        Moment decay rates.
    eps : float
        Denominator offset.

    Examples
    --------
    >>> import torch
    >>> opt = Adam(lr=0.1)
    >>> z = torch.zeros(2, 3); state = opt.init(z)
    >>> opt.step(z, torch.ones(2, 3), state)[0]
    tensor([-0.1000, -0.1000, -0.1000])
    """

    lr: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        _check_positive("lr", self.lr)
        if len(self.betas) != 2:
            raise ValueError(f"betas must be a pair, got {self.betas!r}")
        _check_unit("betas[0]", self.betas[0])
        _check_unit("betas[1]", self.betas[1])
        _check_positive("eps", self.eps)

    def init(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "m": torch.zeros_like(codes),
            "v": torch.zeros_like(codes),
            "p1": torch.zeros(codes.shape[0], 1, dtype=codes.dtype, device=codes.device),
            "p2": torch.zeros(codes.shape[0], 1, dtype=codes.dtype, device=codes.device),
        }

    def step(
        self, codes: torch.Tensor, grads: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        # p1 = 1 - b1**t and p2 = 1 - b2**t are updated as p <- b * p + (1 - b), which starts
        # from p = 0 at t = 0: a row reset to zero restarts its bias correction exactly.
        b1, b2 = self.betas
        m, v, p1, p2 = state["m"], state["v"], state["p1"], state["p2"]
        p1.mul_(b1).add_(1 - b1)
        p2.mul_(b2).add_(1 - b2)
        m.lerp_(grads, 1 - b1)
        v.mul_(b2).addcmul_(grads, grads, value=1 - b2)
        denom = (v / p2).sqrt_().add_(self.eps)
        return codes - (self.lr / p1) * m / denom


@dataclass(frozen=True)
class RMSprop(RowwiseOptimizer):
    """RMSprop (``torch.optim.RMSprop`` semantics, no centering), per-row state.

    Examples
    --------
    >>> import torch
    >>> opt = RMSprop(lr=0.01, alpha=0.0)
    >>> z = torch.zeros(1, 2); state = opt.init(z)
    >>> opt.step(z, torch.full((1, 2), 4.0), state)
    tensor([[-0.0100, -0.0100]])
    """

    lr: float = 3e-4
    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0

    def __post_init__(self) -> None:
        _check_positive("lr", self.lr)
        _check_unit("alpha", self.alpha)
        _check_positive("eps", self.eps)
        _check_unit("momentum", self.momentum)

    def init(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        state = {"square_avg": torch.zeros_like(codes)}
        if self.momentum > 0:
            state["buf"] = torch.zeros_like(codes)
        return state

    def step(
        self, codes: torch.Tensor, grads: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        sq = state["square_avg"]
        sq.mul_(self.alpha).addcmul_(grads, grads, value=1 - self.alpha)
        update = grads / sq.sqrt().add_(self.eps)
        if self.momentum > 0:
            buf = state["buf"]
            buf.mul_(self.momentum).add_(update)
            update = buf
        return codes - self.lr * update
