"""Projections applied to codes after every optimiser step (projected gradient descent)."""

from __future__ import annotations

import torch

__all__ = ["Projection", "Clip", "BallProjection"]


class Projection:
    """Base class: ``project(codes) -> codes`` (out of place, no autograd).

    Examples
    --------
    >>> import torch
    >>> class Abs(Projection):
    ...     def project(self, codes):
    ...         return codes.abs()
    >>> Abs()(torch.tensor([[-1.0, 2.0]]))
    tensor([[1., 2.]])
    """

    def project(self, codes: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        return self.project(codes)


class Clip(Projection):
    """Clip every coordinate to ``[low, high]`` (MimicGAN: ``[-1, 1]``).

    Examples
    --------
    >>> import torch
    >>> Clip(-1, 1)(torch.tensor([[-3.0, 0.5, 2.0]]))
    tensor([[-1.0000,  0.5000,  1.0000]])
    """

    def __init__(self, low: float = -1.0, high: float = 1.0) -> None:
        if not high > low:
            raise ValueError(f"high must exceed low, got low={low!r}, high={high!r}")
        self.low = float(low)
        self.high = float(high)

    def project(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.clamp(self.low, self.high)


class BallProjection(Projection):
    """Project each code onto the Euclidean ball of ``radius`` (rows inside are unchanged).

    Examples
    --------
    >>> import torch
    >>> BallProjection(1.0)(torch.tensor([[3.0, 4.0], [0.1, 0.0]]))
    tensor([[0.6000, 0.8000],
            [0.1000, 0.0000]])
    """

    def __init__(self, radius: float) -> None:
        if not radius > 0:
            raise ValueError(f"radius must be positive, got {radius!r}")
        self.radius = float(radius)

    def project(self, codes: torch.Tensor) -> torch.Tensor:
        norms = codes.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return codes * (self.radius / norms).clamp(max=1.0)
