"""Corruptions of the MimicGAN paper, adapted to grey-scale and colour ``(N, C, H, W)`` images in
[0, 1], and adversarial attacks (from Captum's maintained ``captum.robust``) for the defence
study. Every random corruption takes ``seed=`` and never touches global random state.

The paper works on images in [-1, 1]: its "set to 0" is the mid value and its negative is
``-x``. On [0, 1] images these become 0.5 and ``1 - x``, which is what the functions here do.

Robust-classification corruptions (paper §4.2): :func:`binary_threshold`,
:func:`drop_pixels`, :func:`blur_negative`. Blind-recovery corruptions (paper appendix A.1):
:func:`line_inpainting`, :func:`occlusion`, :func:`stuck_pixels`, :func:`grey_blur`.

Corruptions no preset names, for checking a defence on what nobody tuned it for
(:data:`PANEL`): :func:`affine_warp` (translations, rotations, scalings), :func:`box_blur`,
:func:`gamma`, :func:`contrast`, :func:`gaussian_noise`, :func:`jpeg_like`.
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
    "PANEL",
    "adversarial",
    "affine_warp",
    "binary_threshold",
    "blur_negative",
    "box_blur",
    "contrast",
    "gamma",
    "gaussian_noise",
    "jpeg_like",
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


def affine_warp(images: torch.Tensor, shift: tuple[float, float] = (0.0, 0.0),
                angle: float = 0.0, scale: float = 1.0, fill: float = 0.0) -> torch.Tensor:
    """Move the content of every image: ``shift`` = (right, down) in pixels, ``angle`` in
    degrees (counter-clockwise), ``scale`` > 1 enlarges; bilinear, ``fill`` outside.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(1, 1, 5, 5); x[..., 2, 2] = 1
    >>> affine_warp(x, shift=(1, 0))[0, 0, 2].tolist()
    [0.0, 0.0, 0.0, 1.0, 0.0]
    """
    images = _check(images)
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    n, _, h, w = images.shape
    a = math.radians(-angle)  # counter-clockwise as displayed (rows grow downwards)
    # affine_grid maps output coordinates to input ones: the inverse of the content's motion
    theta = torch.tensor(
        [[math.cos(a) / scale, math.sin(a) / scale, 0.0],
         [-math.sin(a) / scale, math.cos(a) / scale, 0.0]], dtype=images.dtype,
        device=images.device)
    theta[:, 2] = -theta[:, :2] @ torch.tensor([2 * shift[0] / w, 2 * shift[1] / h],
                                               dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(images.shape), align_corners=False)
    out = F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out + fill


def box_blur(images: torch.Tensor, size: int = 5) -> torch.Tensor:
    """Mean over a ``size`` x ``size`` window (reflect padding)."""
    images = _check(images)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be an odd positive int, got {size!r}")
    r = size // 2
    return F.avg_pool2d(F.pad(images, (r, r, r, r), mode="reflect"), size, stride=1)


def gamma(images: torch.Tensor, exponent: float = 2.5) -> torch.Tensor:
    """``x ** exponent`` (> 1 darkens the mid tones), on values clamped to [0, 1]."""
    images = _check(images)
    if not exponent > 0:
        raise ValueError(f"exponent must be > 0, got {exponent!r}")
    return images.clamp(0, 1) ** exponent


def contrast(images: torch.Tensor, factor: float = 0.5, centre: float = 0.5) -> torch.Tensor:
    """``centre + factor * (x - centre)``: ``factor`` < 1 lowers the contrast."""
    images = _check(images)
    return centre + factor * (images - centre)


def gaussian_noise(images: torch.Tensor, sigma: float = 0.1, seed: int | None = None
                   ) -> torch.Tensor:
    """Add independent Gaussian noise of standard deviation ``sigma``, clamped to [0, 1]."""
    images = _check(images)
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    gen = _generator(seed, images.device)
    noise = torch.randn(images.shape, generator=gen, device=images.device, dtype=images.dtype)
    return (images + sigma * noise).clamp(0, 1)


# the JPEG standard's luminance quantisation table (quality 50)
_JPEG_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61), (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56), (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77), (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101), (72, 92, 95, 98, 112, 100, 103, 99),
)


def jpeg_like(images: torch.Tensor, quality: int = 10) -> torch.Tensor:
    """JPEG's lossy step: 8x8 block DCT, coefficients rounded to the standard luminance table
    scaled for ``quality`` (1-100, lower is coarser), inverse DCT; every channel alike, no
    colour subsampling or entropy coding (they lose nothing more). Edge padding to a multiple
    of 8, cropped back."""
    images = _check(images)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an int in [1, 100], got {quality!r}")
    n, c, h, w = images.shape
    ph, pw = -h % 8, -w % 8
    x = F.pad(images.double() * 255 - 128, (0, pw, 0, ph), mode="replicate")
    k = torch.arange(8, dtype=torch.float64, device=images.device)
    dct = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    dct[0] /= math.sqrt(2)  # orthonormal DCT-II: rows are frequencies
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    table = ((torch.tensor(_JPEG_TABLE, dtype=torch.float64, device=images.device) * scale
              + 50) // 100).clamp(min=1)
    blocks = x.unflatten(2, (-1, 8)).unflatten(4, (-1, 8)).transpose(3, 4)  # n c H/8 W/8 8 8
    coefficients = dct @ blocks @ dct.T
    restored = dct.T @ ((coefficients / table).round() * table) @ dct
    out = restored.transpose(3, 4).flatten(4).flatten(2, 3)[..., :h, :w]
    return ((out + 128) / 255).clamp(0, 1).to(images.dtype)


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

#: Corruptions that no MimicGAN preset names (issue #19's panel), ``f(images, seed=None)``: the
#: three of the issue, geometric ones, occlusion, JPEG-like quantisation and no corruption.
PANEL: dict[str, Callable[..., torch.Tensor]] = {
    "none": lambda x, seed=None: x,
    "box_blur_invert": lambda x, seed=None: 1.0 - box_blur(x, 5),
    "gamma_noise": lambda x, seed=None: gaussian_noise(gamma(x, 2.5), 0.1, seed=seed),
    "shift_contrast": lambda x, seed=None: contrast(affine_warp(x, shift=(3, 0)), 0.5),
    "shift": lambda x, seed=None: affine_warp(x, shift=(-2, 2)),
    "rotation": lambda x, seed=None: affine_warp(x, angle=15),
    "scaling": lambda x, seed=None: affine_warp(x, scale=0.8),
    "occlusion": lambda x, seed=None: occlusion(x, seed=seed).clamp(0, 1),
    "jpeg": lambda x, seed=None: jpeg_like(x, 10),
    "dropped_pixels": lambda x, seed=None: drop_pixels(x, 0.7, seed=seed),
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
