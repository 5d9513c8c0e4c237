"""Occlusions: pixels that a generator cannot explain, in connected patches.

A reconstruction by the generator alone (PGD / Defense-GAN) fits an occluded observation as a
whole, and the patch it cannot reproduce (a noise cross, a scratch, a sticker) drags the rest
of the image with it: on the zoo digits PGD's recoveries of the paper's noise-cross occlusion
are *less* accurate than the occluded digits themselves (0.375 against 0.519). The patch shows
in the residual as *outliers* (pixels the reconstruction misses by much) that are clustered:
each outlier has several times more outlier neighbours than the image has outliers on
average. Diffuse corruptions (Gaussian or salt-and-pepper noise, dropped pixels, blur, JPEG,
adversarial noise) leave outliers scattered at about the image's own density, or none.

:func:`find_occlusions` applies that test (:func:`outlier_statistics` gives the two numbers it
reads, to see where a corruption of one's own falls); :func:`reconstruct_around` reconstructs an
occluded observation from the pixels outside the patch (masked reconstruction, as in
GANchors' in-painting) and keeps the observation there.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from captum_latent.core import LatentSearch, MaskedReconstruction
from captum_latent.validation import check_image_tensor

__all__ = ["OcclusionTest", "find_occlusions", "outlier_statistics", "reconstruct_around"]


@dataclass(frozen=True)
class OcclusionTest:
    """Settings of :func:`find_occlusions` (defaults chosen on zoo digits 200-359 with the
    paper's noise cross, salt-and-pepper and Gaussian noise, three white lines and the
    corruption panel of ``benchmarks/mimicgan_panel.py``; docs/benchmarks.md).

    Attributes
    ----------
    outlier_level : float
        A pixel is an outlier when the reconstruction misses it by more than this fraction of
        the generator's pixel range (largest over channels).
    min_outliers : float
        Fraction of outlier pixels an occluded image has at least.
    clustering : float
        How much denser outliers must be around outliers than in the whole image: the mean
        fraction of outliers among an outlier's 8 neighbours over the image's outlier
        fraction (about 1 for scattered outliers; 2.6-3.3 for the noise cross, 6-11 for a
        solid block on the zoo digits).
    dilation : int
        Odd side of the square by which the outliers are grown into the patch that is
        reconstructed (the edges of a patch are outliers only in part).
    min_kept : float
        Fraction of the pixels that must remain outside the grown patch to reconstruct from.

    Examples
    --------
    >>> OcclusionTest().clustering, OcclusionTest(dilation=3).dilation
    (2.4, 3)
    >>> OcclusionTest(dilation=4)
    Traceback (most recent call last):
        ...
    ValueError: dilation must be an odd positive int, got 4
    """

    outlier_level: float = 0.3
    min_outliers: float = 0.05
    clustering: float = 2.4
    dilation: int = 5
    min_kept: float = 0.25

    def __post_init__(self) -> None:
        for name in ("outlier_level", "min_outliers", "min_kept"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < 1:
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        if isinstance(self.clustering, bool) or not isinstance(self.clustering, (int, float)) \
                or not self.clustering > 1:
            raise ValueError(f"clustering must be a number > 1, got {self.clustering!r}")
        if isinstance(self.dilation, bool) or not isinstance(self.dilation, int) \
                or self.dilation < 1 or self.dilation % 2 == 0:
            raise ValueError(f"dilation must be an odd positive int, got {self.dilation!r}")


def _check_pair(observations: torch.Tensor, reconstructions: torch.Tensor,
                value_scale: float, test: OcclusionTest | None) -> OcclusionTest:
    """Checked inputs of the two public functions; the test to apply."""
    test = OcclusionTest() if test is None else test
    if not isinstance(test, OcclusionTest):
        raise TypeError(f"test must be an OcclusionTest, got {type(test).__name__}")
    check_image_tensor("observations", observations)
    check_image_tensor("reconstructions", reconstructions, device=observations.device)
    if observations.shape != reconstructions.shape:
        raise ValueError(
            f"observations and reconstructions must be (N, C, H, W) of one shape, got "
            f"{tuple(observations.shape)} and {tuple(reconstructions.shape)}"
        )
    if isinstance(value_scale, bool) or not isinstance(value_scale, numbers.Real) \
            or not value_scale > 0:
        raise ValueError(f"value_scale must be a positive number, got {value_scale!r}")
    return test


def _outliers(observations: torch.Tensor, reconstructions: torch.Tensor, value_scale: float,
              test: OcclusionTest) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(N, 1, H, W)`` outlier map, ``(N,)`` outlier fraction, ``(N,)`` clustering ratio."""
    miss = (observations.float() - reconstructions.float()).abs().amax(1, keepdim=True)
    outliers = (miss > test.outlier_level * value_scale).float()
    density = outliers.flatten(1).mean(1)
    ring = torch.ones(1, 1, 3, 3, device=outliers.device)
    ring[0, 0, 1, 1] = 0
    neighbours = F.conv2d(outliers, ring, padding=1) / 8
    around = (neighbours * outliers).flatten(1).sum(1) / outliers.flatten(1).sum(1).clamp_min(1)
    return outliers, density, around / density.clamp_min(1e-12)


def outlier_statistics(
    observations: torch.Tensor, reconstructions: torch.Tensor, *, value_scale: float = 1.0,
    test: OcclusionTest | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two numbers :func:`find_occlusions` reads, per image.

    Parameters
    ----------
    observations, reconstructions, value_scale, test
        As for :func:`find_occlusions`; of ``test`` only ``outlier_level`` is read (what an
        outlier is).

    Returns
    -------
    fraction : torch.Tensor
        ``(N,)`` fraction of the pixels that are outliers (``test.min_outliers`` is its bar).
    clustering : torch.Tensor
        ``(N,)`` mean fraction of outliers among an outlier's 8 neighbours, over ``fraction``:
        about 1 for outliers scattered at random, several for patches (``test.clustering`` is
        its bar); 0 for an image without outliers.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(2, 1, 16, 16)
    >>> x[0, :, 4:9, 4:9] = 1.0                     # a solid patch
    >>> x[1, :, ::4, ::4] = 1.0                     # isolated pixels
    >>> fraction, clustering = outlier_statistics(x, torch.zeros_like(x))
    >>> [round(v, 3) for v in fraction.tolist()], [round(v, 1) for v in clustering.tolist()]
    ([0.098, 0.062], [7.4, 0.0])
    """
    test = _check_pair(observations, reconstructions, value_scale, test)
    _, density, ratio = _outliers(observations, reconstructions, value_scale, test)
    return density, ratio


def find_occlusions(
    observations: torch.Tensor, reconstructions: torch.Tensor, *, value_scale: float = 1.0,
    test: OcclusionTest | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which observations are occluded, and where.

    Parameters
    ----------
    observations, reconstructions : torch.Tensor
        ``(N, C, H, W)`` observations and the generator's reconstructions of them.
    value_scale : float, default 1.0
        Width of the generator's pixel range (``outlier_level`` is a fraction of it).
    test : OcclusionTest, optional
        Thresholds; defaults to ``OcclusionTest()``.

    Returns
    -------
    occluded : torch.Tensor
        ``(N,)`` bool.
    patches : torch.Tensor
        ``(N, 1, H, W)`` bool: the grown outliers (the pixels to reconstruct), all False for
        the images that are not occluded.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(2, 1, 16, 16)
    >>> x[0, :, 4:9, 4:9] = 1.0                     # a solid patch: occluded
    >>> g = torch.Generator().manual_seed(0)
    >>> x[1] = (torch.rand(1, 16, 16, generator=g) < 0.1).float()  # scattered: not occluded
    >>> occluded, patches = find_occlusions(x, torch.zeros_like(x))
    >>> occluded.tolist(), int(patches[0].sum()) > 25, int(patches[1].sum())
    ([True, False], True, 0)
    """
    test = _check_pair(observations, reconstructions, value_scale, test)
    outliers, density, ratio = _outliers(observations, reconstructions, value_scale, test)
    clustered = ratio > test.clustering
    k = test.dilation
    patches = F.max_pool2d(outliers, k, stride=1, padding=k // 2) > 0
    kept = 1 - patches.float().flatten(1).mean(1)
    occluded = (density > test.min_outliers) & clustered & (kept >= test.min_kept)
    return occluded, patches & occluded[:, None, None, None]


def reconstruct_around(
    search: LatentSearch, observations: torch.Tensor, patches: torch.Tensor,
    initial_codes: torch.Tensor, *, max_iterations: int = 200, seed: int = 0,
) -> torch.Tensor:
    """Reconstruct ``observations`` from their pixels outside ``patches`` and put the
    reconstruction in the patches: ``(N, C, H, W)`` images, the observation elsewhere.

    Parameters
    ----------
    search : LatentSearch
        The generator's search (e.g. ``MimicGAN.pgd(...).search``).
    observations : torch.Tensor
        ``(N, C, H, W)``.
    patches : torch.Tensor
        ``(N, 1, H, W)`` bool, True where the observation is not to be trusted; each image must
        keep at least one pixel.
    initial_codes : torch.Tensor
        ``(N, d)`` codes to start from (the full reconstruction's).
    max_iterations : int, default 200
        Steps of the masked reconstruction.
    seed : int, default 0
        Randomness of the search's restarts.

    Examples
    --------
    >>> import torch
    >>> from captum_latent import zoo
    >>> from captum_latent.inverse import MimicGAN
    >>> pgd = MimicGAN.pgd(zoo.digits_gan(progress=False).generator)
    >>> x = zoo.digits().test.images[:2].clone()
    >>> patches = torch.zeros(2, 1, 28, 28, dtype=torch.bool); patches[:, :, 10:18] = True
    >>> out = reconstruct_around(pgd.search, x, patches, torch.zeros(2, 32), max_iterations=20)
    >>> bool(torch.equal(out[:, :, :10], x[:, :, :10])), out.shape
    (True, torch.Size([2, 1, 28, 28]))
    """
    check_image_tensor("observations", observations, chw=search.image_shape)
    if not isinstance(patches, torch.Tensor) or \
            patches.shape != (observations.shape[0], 1, *observations.shape[2:]) \
            or patches.dtype != torch.bool:
        raise ValueError(f"patches must be a bool (N, 1, H, W) tensor for observations of shape "
                         f"{tuple(observations.shape)}, got {getattr(patches, 'dtype', '')} "
                         f"{tuple(getattr(patches, 'shape', ())) or type(patches).__name__}")
    if bool(patches.flatten(1).all(1).any()):
        raise ValueError("every observation must keep at least one pixel outside its patch")
    x = observations.to(search.device, torch.float32)
    keep = (~patches).to(search.device).float()
    result = search.search(MaskedReconstruction(x, keep), initial_codes=initial_codes,
                           max_iterations=max_iterations, seed=seed)
    filled = result.images.reshape(x.shape).to(observations.device, observations.dtype)
    return torch.where(patches.to(observations.device), filled, observations)
