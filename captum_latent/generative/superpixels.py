"""Superpixel segmentations and random superpixel masks (GANchors' training masks)."""

from __future__ import annotations

import numpy as np
import torch
from skimage.segmentation import slic

from captum_latent.seeding import make_generator

__all__ = ["superpixel_segments", "random_superpixel_masks"]


def superpixel_segments(
    images: torch.Tensor, *, n_segments: int = 15, compactness: float = 0.1
) -> torch.Tensor:
    """SLIC superpixels of each image, labels ``0..S-1`` per image.

    Parameters
    ----------
    images : torch.Tensor
        ``(n, C, H, W)`` images in ``[0, 1]``.
    n_segments : int
        Approximate number of superpixels per image.
    compactness : float
        SLIC compactness (small values follow intensity edges; intensities are in ``[0, 1]``).

    Returns
    -------
    torch.Tensor
        ``(n, H, W)`` int64 labels on the images' device.

    Examples
    --------
    >>> import torch
    >>> images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    >>> seg = superpixel_segments(images)
    >>> seg.shape, int(seg.min())
    (torch.Size([2, 28, 28]), 0)
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(
            f"images must be a (n, C, H, W) tensor, got {getattr(images, 'shape', images)!r}"
        )
    if isinstance(n_segments, bool) or not isinstance(n_segments, int) or n_segments < 1:
        raise ValueError(f"n_segments must be a positive int, got {n_segments!r}")
    arr = images.detach().float().cpu().permute(0, 2, 3, 1).numpy().astype(np.float64)
    out = np.empty(arr.shape[:3], dtype=np.int64)
    for i, image in enumerate(arr):  # skimage segments one image at a time (CPU, ~1 ms each)
        labels = slic(image, n_segments=n_segments, compactness=compactness, channel_axis=-1,
                      start_label=0, enforce_connectivity=True)
        out[i] = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    return torch.from_numpy(out).to(images.device)


def random_superpixel_masks(
    segments: torch.Tensor,
    *,
    keep_prob: float = 0.5,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """Masks keeping each superpixel independently with probability ``keep_prob``.

    At least one superpixel is kept per mask (a random one is forced on), so every mask
    selects some pixels. Vectorised over images.

    Parameters
    ----------
    segments : torch.Tensor
        ``(n, H, W)`` integer labels (e.g. from :func:`superpixel_segments`).
    keep_prob : float
        Probability of keeping each superpixel (GANchors: 0.5).
    generator, seed
        Randomness (at most one); the generator must be on ``segments``' device.

    Returns
    -------
    torch.Tensor
        ``(n, 1, H, W)`` float masks with values in ``{0, 1}``.

    Examples
    --------
    >>> import torch
    >>> seg = torch.arange(4).repeat_interleave(4).reshape(1, 4, 4)
    >>> m = random_superpixel_masks(seg, seed=0)
    >>> m.shape, bool(m.sum() >= 4)
    (torch.Size([1, 1, 4, 4]), True)
    """
    if not isinstance(segments, torch.Tensor) or segments.dim() != 3:
        raise ValueError(
            f"segments must be a (n, H, W) tensor, got {getattr(segments, 'shape', segments)!r}"
        )
    if not 0 < keep_prob <= 1:
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob!r}")
    gen = make_generator(generator=generator, seed=seed, device=segments.device)
    n = segments.shape[0]
    n_labels = int(segments.max()) + 1
    keep = torch.rand(n, n_labels, generator=gen, device=segments.device) < keep_prob
    present = torch.zeros(n, n_labels, dtype=torch.bool, device=segments.device)
    present.scatter_(1, segments.flatten(1), True)
    keep &= present
    # force one present label on: the one with the highest random score among present labels
    score = torch.rand(n, n_labels, generator=gen, device=segments.device).masked_fill(~present, -1)
    keep[torch.arange(n, device=segments.device), score.argmax(1)] = True
    masks = keep.gather(1, segments.flatten(1)).reshape(segments.shape)
    return masks.unsqueeze(1).float()
