"""Probe a user's generator once: its code size, and the shape and value range of its images."""

from __future__ import annotations

import torch
from torch import nn

from captum_latent.core.batchnorm import batchnorm_mode

__all__ = ["infer_latent_dim", "probe_generator"]


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


def infer_latent_dim(generator: nn.Module, device: torch.device | str = "cpu") -> int:
    """The code size ``d`` of a generator mapping ``(B, d)`` codes to ``(B, C, H, W)`` images.

    ``generator.latent_dim`` when it is an int; else the input size of its first layer with
    weights (``nn.Linear``'s ``in_features``, a convolution's ``in_channels``), confirmed by
    one call on two codes of that size (eval mode for batch norm, running statistics
    untouched). ``TypeError`` (asking for ``latent_dim=``) when neither gives a working size.

    Examples
    --------
    >>> from torch import nn
    >>> from captum_latent.core import infer_latent_dim
    >>> g = nn.Sequential(nn.Linear(12, 64), nn.Unflatten(1, (1, 8, 8)), nn.Sigmoid())
    >>> infer_latent_dim(g)
    12
    """
    attribute = getattr(generator, "latent_dim", None)
    if isinstance(attribute, int) and not isinstance(attribute, bool) and attribute > 0:
        return attribute
    candidate = None
    for module in generator.modules():
        if isinstance(module, nn.Linear):
            candidate = module.in_features
        elif isinstance(module, nn.modules.conv._ConvNd):
            candidate = module.in_channels
        else:
            continue
        break
    hint = ("pass latent_dim= (the size d of the generator's (B, d) codes) or give the generator "
            "an int attribute `latent_dim`")
    if candidate is None:
        raise TypeError(f"cannot infer the generator's code size (no Linear or convolution "
                        f"layer found): {hint}")
    device = torch.device(device)
    codes = torch.zeros(2, candidate, device=device)
    try:
        with torch.no_grad(), batchnorm_mode(generator, "eval"):
            images = generator(codes)
    except Exception as e:
        raise TypeError(f"cannot infer the generator's code size: its first layer takes "
                        f"{candidate} inputs, but codes of shape (2, {candidate}) failed "
                        f"({type(e).__name__}: {e}); {hint}") from e
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise TypeError(f"cannot infer the generator's code size: codes of shape (2, {candidate})"
                        f" did not give (B, C, H, W) images; {hint}")
    return candidate
