"""Per-image change metrics: MSE and concentration of ``|x - x_bar|``."""

from __future__ import annotations

import torch

__all__ = ["concentration", "mse"]


def _pair(queries: torch.Tensor, counterfactuals: torch.Tensor) -> None:
    for name, t in (("queries", queries), ("counterfactuals", counterfactuals)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if queries.shape != counterfactuals.shape:
        raise ValueError(f"queries {tuple(queries.shape)} and counterfactuals "
                         f"{tuple(counterfactuals.shape)} must have the same shape")
    if queries.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) images, got {tuple(queries.shape)}")


def mse(queries: torch.Tensor, counterfactuals: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per image, shape ``(B,)``.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(2, 1, 2, 2)
    >>> mse(x, x + torch.tensor([0.0, 0.5]).view(2, 1, 1, 1)).tolist()
    [0.0, 0.25]
    """
    _pair(queries, counterfactuals)
    return (counterfactuals - queries).pow(2).flatten(1).mean(1)


def concentration(queries: torch.Tensor, counterfactuals: torch.Tensor,
                  threshold: float = 0.05) -> torch.Tensor:
    """Area fraction of the smallest axis-aligned box holding every pixel whose change
    ``max_c |x - x_bar|`` exceeds ``threshold``; shape ``(B,)``, 0 when nothing changed.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(1, 1, 10, 10)
    >>> cf = x.clone(); cf[0, 0, 2, 3] = 1.0; cf[0, 0, 3, 7] = 0.5
    >>> round(concentration(x, cf).item(), 6)  # rows 2..3, columns 3..7: 2 * 5 / 100
    0.1
    """
    _pair(queries, counterfactuals)
    if not isinstance(threshold, (int, float)) or threshold < 0:
        raise ValueError(f"threshold must be a number >= 0, got {threshold!r}")
    changed = (counterfactuals - queries).abs().amax(1) > threshold  # (B, H, W)
    b, h, w = changed.shape
    rows, cols = changed.any(2), changed.any(1)  # (B, H), (B, W)
    r_idx = torch.arange(h, device=changed.device)
    c_idx = torch.arange(w, device=changed.device)
    big = max(h, w)
    height = (torch.where(rows, r_idx, -1).amax(1) - torch.where(rows, r_idx, big).amin(1) + 1)
    width = (torch.where(cols, c_idx, -1).amax(1) - torch.where(cols, c_idx, big).amin(1) + 1)
    area = (height.clamp_min(0) * width.clamp_min(0)).float() / (h * w)
    return torch.where(rows.any(1), area, torch.zeros_like(area))
