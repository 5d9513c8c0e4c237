"""Corruptions of the MimicGAN paper, adapted to grey-scale and colour ``(N, C, H, W)`` images in
[0, 1], and adversarial attacks (from Captum's maintained ``captum.robust``) for the defence
study. Every random corruption takes ``seed=`` and never touches global random state.

The paper works on images in [-1, 1]: its "set to 0" is the mid value and its negative is
``-x``. On [0, 1] images these become 0.5 and ``1 - x``, which is what the functions here do.

Robust-classification corruptions (paper §4.2): :func:`binary_threshold`,
:func:`drop_pixels`, :func:`blur_negative`. Blind-recovery corruptions (paper appendix A.1):
:func:`line_inpainting`, :func:`occlusion`, :func:`stuck_pixels`, :func:`grey_blur`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ATTACKS",
    "CORRUPTIONS",
    "adversarial",
    "binary_threshold",
    "blur_negative",
    "drop_pixels",
    "gaussian_blur",
    "grey_blur",
    "line_inpainting",
    "occlusion",
    "stuck_pixels",
]


def _check(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point, got {images.dtype}")
    return images


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device)
    return gen.manual_seed(seed) if seed is not None else gen.manual_seed(
        int(torch.randint(0, 2**62, (1,)).item()))


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (kernel radius ``3 sigma``, reflect padding)."""
    images = _check(images)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, min(images.shape[-2:]) - 1)
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    out = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def binary_threshold(images: torch.Tensor, percentile: float = 50.0) -> torch.Tensor:
    """Binarise each image at its own ``percentile`` (paper: the median).

    Examples
    --------
    >>> import torch
    >>> binary_threshold(torch.tensor([[[[0.1, 0.4], [0.6, 0.9]]]]))
    tensor([[[[0., 0.],
              [1., 1.]]]])
    """
    images = _check(images)
    flat = images.flatten(1)
    level = torch.quantile(flat, percentile / 100.0, dim=1, keepdim=True)
    return (flat > level).to(images.dtype).view_as(images)


def drop_pixels(images: torch.Tensor, fraction: float = 0.7, seed: int | None = None,
                fill: float = 0.5) -> torch.Tensor:
    """Set a random ``fraction`` of the pixels (all channels) of each image to ``fill`` (the
    mid value of [0, 1], i.e. the paper's 0 on [-1, 1])."""
    images = _check(images)
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    gen = _generator(seed, images.device)
    n, _, h, w = images.shape
    keep = torch.rand(n, 1, h, w, generator=gen, device=images.device) >= fraction
    return torch.where(keep, images, torch.full_like(images, fill))


def blur_negative(images: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Blur then invert (``1 - blur(x)``): the paper's "blur + negative" (``-blur(x)`` on
    [-1, 1] images).

    The paper blurs 28x28 images with a 25-pixel kernel scale; ``sigma=2`` is the grey 28x28
    equivalent used here.
    """
    return 1.0 - gaussian_blur(images, sigma)


def line_inpainting(images: torch.Tensor, width: int = 2, period: int = 4, sigma: float = 0.5,
                    seed: int | None = None) -> torch.Tensor:
    """Overlay horizontal lines of Gaussian noise (``sigma``) every ``period`` rows, covering
    the middle two thirds of the columns (paper: 4-pixel lines on 64x64)."""
    images = _check(images)
    gen = _generator(seed, images.device)
    _, c, h, w = images.shape
    mask = torch.zeros(h, w, dtype=torch.bool, device=images.device)
    for start in range(period // 2, h, 2 * period):  # a few rows: not a per-sample loop
        mask[start : start + width, w // 6 : w - w // 6] = True
    noise = sigma * torch.randn(images.shape, generator=gen, device=images.device)
    return torch.where(mask, noise, images)


def occlusion(images: torch.Tensor, band: float = 0.3, sigma: float = 0.5,
              seed: int | None = None) -> torch.Tensor:
    """Replace a central cross by Gaussian noise (``sigma``): a horizontal band ``band`` of the
    height tall spanning the middle two thirds of the width, and its transpose (the paper's
    occlusion of eyes, nose and mouth: rows 24-44 by columns 12-54 of 64, and the transpose).
    """
    images = _check(images)
    gen = _generator(seed, images.device)
    _, _, h, w = images.shape

    def horizontal(rows: int, cols: int) -> torch.Tensor:
        mask = torch.zeros(rows, cols, dtype=torch.bool, device=images.device)
        tall = max(1, int(band * rows))
        mask[(rows - tall) // 2 : (rows + tall) // 2, cols // 6 : cols - cols // 6] = True
        return mask

    cross = horizontal(h, w) | horizontal(w, h).T
    noise = sigma * torch.randn(images.shape, generator=gen, device=images.device)
    return torch.where(cross, noise, images)


def stuck_pixels(images: torch.Tensor, column: float = 0.4, sigma: float = 0.25,
                 seed: int | None = None) -> torch.Tensor:
    """Copy one column near the middle over every column to its left and add noise (the
    paper's "pixel error"); the same noise pattern for every image."""
    images = _check(images)
    gen = _generator(seed, images.device)
    _, c, h, w = images.shape
    z = max(1, int(column * w))
    noise = sigma * torch.randn(1, c, h, z, generator=gen, device=images.device)
    out = images.clone()
    out[..., :z] = images[..., z : z + 1] + noise
    return out


def grey_blur(images: torch.Tensor, sigma: float = 2.0, cap: float = 0.47) -> torch.Tensor:
    """Blur, convert to grey (mean over channels, kept as ``C`` channels) and truncate values
    above ``cap`` (the paper's grey blur with OpenCV's THRESH_TRUNC at 120/255)."""
    blurred = gaussian_blur(images, sigma)
    grey = blurred.mean(1, keepdim=True).expand_as(blurred)
    return grey.clamp(max=cap)


#: name -> corruption ``f(images, seed=None)``, for benchmarks and reports.
CORRUPTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "binary": lambda x, seed=None: binary_threshold(x),
    "dropped_pixels": lambda x, seed=None: drop_pixels(x, 0.7, seed=seed),
    "blur_negative": lambda x, seed=None: blur_negative(x),
    "line_inpainting": lambda x, seed=None: line_inpainting(x, seed=seed),
    "occlusion": lambda x, seed=None: occlusion(x, seed=seed),
    "stuck_pixels": lambda x, seed=None: stuck_pixels(x, seed=seed),
    "grey_blur": lambda x, seed=None: grey_blur(x),
}

#: Attacks available through :func:`adversarial`.
ATTACKS = ("fgsm", "pgd")


def adversarial(
    classifier: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack: str = "fgsm",
    epsilon: float = 0.1,
    steps: int = 10,
    step_size: float | None = None,
) -> torch.Tensor:
    """Untargeted L-inf adversarial examples from Captum's ``captum.robust`` (FGSM or PGD),
    clipped to [0, 1].

    Parameters
    ----------
    classifier : nn.Module
        Returns logits.
    images, labels : torch.Tensor
        ``(N, C, H, W)`` in [0, 1] and ``(N,)`` true labels.
    attack : {"fgsm", "pgd"}
    epsilon : float
        L-inf radius.
    steps, step_size
        PGD iterations and step (default ``epsilon / 4``).
    """
    from captum.robust import FGSM, PGD

    images = _check(images)
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    if attack == "fgsm":
        return FGSM(classifier, lower_bound=0.0, upper_bound=1.0).perturb(
            images, epsilon=epsilon, target=labels).detach()
    return PGD(classifier, lower_bound=0.0, upper_bound=1.0).perturb(
        images, radius=epsilon, step_size=step_size or epsilon / 4, step_num=steps,
        target=labels).detach()
