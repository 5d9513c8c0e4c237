"""Probe a user's generator once: the shape and value range of its images."""

from __future__ import annotations

import torch
from torch import nn

from captum_latent.core.batchnorm import batchnorm_mode

__all__ = ["probe_generator"]


def probe_generator(
    generator: nn.Module, latent_dim: int, device: torch.device | str, *, n: int = 64,
    margin: float = 0.25,
) -> tuple[tuple[int, ...], float, float]:
    """``(C, H, W)`` of ``generator``'s images and their tolerated value range: its samples'
    range widened by ``margin`` times its width on each side, plus 1e-3.

    The generator is evaluated once on ``n`` seeded codes in eval mode (its own RNG, running
    statistics and mode are left untouched).
    """
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(0)
    codes = torch.randn(n, latent_dim, generator=gen, device=device)
    try:
        with torch.no_grad(), batchnorm_mode(generator, "eval"):
            images = generator(codes)
    except Exception as e:  # the user's module failed: say what it was fed
        raise TypeError(
            f"generator failed on codes of shape ({n}, {latent_dim}) on {device}: {e}"
        ) from e
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(
            f"generator must map (B, {latent_dim}) codes to (B, C, H, W) images, got "
            f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}"
        )
    lo, hi = float(images.min()), float(images.max())
    pad = margin * (hi - lo) + 1e-3
    return tuple(int(v) for v in images.shape[1:]), lo - pad, hi + pad
