"""The diverse encoder of GANchors §4.2: a network mapping a masked image to N codes.

Trained with Eq. 12,

    sum_i ||A x - A G(z_i)||  +  lambda * sum_{i != j} ((min(||z_i - z_j||, t) - t) / t)^2,

on random superpixel masks: every code must reproduce the kept pixels, and codes are pushed
apart up to distance ``t`` (the paper's upper bound on the pairwise term), so they are not
collapsed. Its outputs (plus noise) replace ``N(0, I)`` as initial codes of the search
(:class:`EncoderInitialiser`), which then needs fewer iterations to reach a masked threshold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from captum_latent.core import LatentPrior, batchnorm_mode
from captum_latent.persistence import SaveLoadMixin
from captum_latent.seeding import make_generator

from .superpixels import random_superpixel_masks, superpixel_segments

__all__ = [
    "DiverseEncoder",
    "DiverseEncoderConfig",
    "EncoderInitialiser",
    "diverse_encoder_loss",
    "train_diverse_encoder",
]


class DiverseEncoder(SaveLoadMixin, nn.Module):
    """Convolutional encoder ``(masked image, mask) -> (N, d)`` codes.

    The mask is an input channel next to the masked image, so "black pixel kept" and "pixel
    hidden" are distinguishable (digits have black backgrounds).

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` of the generator's images.
    latent_dim : int
        Code dimension ``d``.
    n_codes : int
        Codes per masked image ``N`` (GANchors: 8).
    width : int
        Channels of the first convolution.

    Examples
    --------
    >>> import torch
    >>> enc = DiverseEncoder((1, 28, 28), latent_dim=32, n_codes=8)
    >>> enc(torch.rand(3, 1, 28, 28), torch.ones(3, 1, 28, 28)).shape
    torch.Size([3, 8, 32])
    """

    def __init__(
        self, image_shape: tuple[int, int, int], latent_dim: int, *, n_codes: int = 8,
        width: int = 32,
    ) -> None:
        super().__init__()
        if len(image_shape) != 3 or not all(isinstance(v, int) and v > 0 for v in image_shape):
            raise ValueError(f"image_shape must be (C, H, W) positive ints, got {image_shape!r}")
        for name, value in (("latent_dim", latent_dim), ("n_codes", n_codes), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        c = image_shape[0]
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        self.n_codes = n_codes
        self.features = nn.Sequential(
            nn.Conv2d(c + 1, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * width * 16, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, n_codes * latent_dim),
        )

    def forward(self, masked_images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        masks = masks.expand(masked_images.shape[0], 1, *masked_images.shape[2:])
        out = self.features(torch.cat([masked_images * masks, masks], 1))
        return out.view(-1, self.n_codes, self.latent_dim)


def diverse_encoder_loss(
    codes: torch.Tensor,
    reconstructions: torch.Tensor,
    targets: torch.Tensor,
    masks: torch.Tensor,
    *,
    diversity_weight: float = 1.0,
    t: float = 5.0,
) -> torch.Tensor:
    """GANchors Eq. 12, averaged over the batch.

    Parameters
    ----------
    codes : torch.Tensor
        ``(B, N, d)`` encoder outputs.
    reconstructions : torch.Tensor
        ``(B, N, C, H, W)`` generator images of ``codes``.
    targets, masks : torch.Tensor
        ``(B, C, H, W)`` images and ``(B, 1 or C, H, W)`` masks ``A``.
    diversity_weight : float
        ``lambda``.
    t : float
        Target (and upper bound) of pairwise code distances.

    Examples
    --------
    >>> import torch
    >>> z = torch.zeros(1, 2, 3)   # collapsed codes pay the full diversity penalty
    >>> images, target = torch.zeros(1, 2, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    >>> mask = torch.ones(1, 1, 2, 2)
    >>> float(diverse_encoder_loss(z, images, target, mask))
    2.0
    """
    b, n = codes.shape[:2]
    diff = (reconstructions - targets.unsqueeze(1)) * masks.unsqueeze(1)
    recon = diff.flatten(2).norm(dim=2).sum(1)  # sum_i ||A x - A G(z_i)||
    dist = torch.cdist(codes, codes)  # (B, N, N)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=codes.device)
    pair = ((dist.clamp(max=t) - t) / t).square()
    diversity = (pair * off_diagonal).flatten(1).sum(1)
    return (recon + diversity_weight * diversity).mean()


@dataclass(frozen=True)
class DiverseEncoderConfig:
    """Training settings of :func:`train_diverse_encoder`.

    Attributes
    ----------
    n_codes : int
        Codes per masked image (GANchors: 8).
    diversity_weight : float
        ``lambda`` of Eq. 12 (GANchors: 1).
    t : float or None
        Pairwise-distance bound; ``None`` uses ``sqrt(latent_dim)`` (10 for the paper's
        100-dimensional latent space, where GANchors used ``t = 10``).
    steps : int
        Optimiser steps.
    batch_size : int
        Masked images per step (each gives ``n_codes`` generator evaluations).
    lr : float
        Adam step size.
    keep_prob : float
        Probability of keeping each superpixel in a random mask (GANchors: 0.5).
    n_segments : int
        SLIC superpixels per image (GANchors: 15).
    """

    n_codes: int = 8
    diversity_weight: float = 1.0
    t: float | None = None
    steps: int = 600
    batch_size: int = 32
    lr: float = 1e-3
    keep_prob: float = 0.5
    n_segments: int = 15

    def __post_init__(self) -> None:
        for name in ("n_codes", "steps", "batch_size", "n_segments"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.n_codes < 2:
            raise ValueError(f"n_codes must be at least 2 to be diverse, got {self.n_codes}")
        if self.diversity_weight < 0:
            raise ValueError(f"diversity_weight must be >= 0, got {self.diversity_weight!r}")
        if self.t is not None and not self.t > 0:
            raise ValueError(f"t must be positive, got {self.t!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not 0 < self.keep_prob <= 1:
            raise ValueError(f"keep_prob must be in (0, 1], got {self.keep_prob!r}")


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Stop gradients into ``module``'s parameters; restore the flags on exit."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def train_diverse_encoder(
    generator: nn.Module,
    images: torch.Tensor,
    *,
    latent_dim: int | None = None,
    config: DiverseEncoderConfig | None = None,
    segments: torch.Tensor | None = None,
    seed: int | None = None,
    rng: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    batchnorm: str = "eval",
) -> DiverseEncoder:
    """Train a :class:`DiverseEncoder` for a frozen generator on random superpixel masks.

    Parameters
    ----------
    generator : nn.Module
        Frozen generator ``(B, d) -> (B, C, H, W)`` (not modified; batch-norm as ``batchnorm``).
    images : torch.Tensor
        ``(n, C, H, W)`` training images in the generator's range.
    latent_dim : int, optional
        Defaults to ``generator.latent_dim``.
    config : DiverseEncoderConfig, optional
        Training settings.
    segments : torch.Tensor, optional
        ``(n, H, W)`` superpixel labels; computed with SLIC when omitted.
    seed, rng
        Randomness (at most one): initialisation, batches and masks.
    device : str or torch.device
        Where training runs; the generator must be there already.
    batchnorm : {"eval", "batch", "as_is"}
        Batch-norm mode of the generator during training.

    Returns
    -------
    DiverseEncoder
        In eval mode; ``encoder.losses`` holds the loss every 50 steps.
    """
    config = DiverseEncoderConfig() if config is None else config
    if not isinstance(config, DiverseEncoderConfig):
        raise TypeError(f"config must be a DiverseEncoderConfig, got {type(config).__name__}")
    if not isinstance(generator, nn.Module):
        raise TypeError(f"generator must be a torch.nn.Module, got {type(generator).__name__}")
    latent_dim = getattr(generator, "latent_dim", None) if latent_dim is None else latent_dim
    if latent_dim is None:
        raise TypeError("latent_dim is required when the generator has no `latent_dim` attribute")
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(
            f"images must be a (n, C, H, W) tensor, got {getattr(images, 'shape', images)!r}"
        )
    device = torch.device(device)
    gen = make_generator(generator=rng, seed=seed, device=device)
    images = images.detach().float().to(device)
    if segments is None:
        segments = superpixel_segments(images, n_segments=config.n_segments)
    if tuple(segments.shape) != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"segments must have shape {(images.shape[0], *images.shape[2:])}, got "
            f"{tuple(segments.shape)}"
        )
    segments = segments.to(device)
    t = config.t if config.t is not None else float(latent_dim) ** 0.5
    encoder = DiverseEncoder(tuple(images.shape[1:]), latent_dim, n_codes=config.n_codes).to(device)
    _init_parameters(encoder, gen)
    opt = torch.optim.Adam(encoder.parameters(), lr=config.lr)
    losses: list[float] = []
    n = images.shape[0]
    with _frozen(generator), batchnorm_mode(generator, batchnorm):
        for step in range(config.steps):
            idx = torch.randint(0, n, (config.batch_size,), generator=gen, device=device)
            x = images[idx]
            masks = random_superpixel_masks(segments[idx], keep_prob=config.keep_prob,
                                            generator=gen)
            codes = encoder(x, masks)
            recon = generator(codes.reshape(-1, latent_dim)).float()
            recon = recon.view(config.batch_size, config.n_codes, *recon.shape[1:])
            loss = diverse_encoder_loss(codes, recon, x, masks,
                                        diversity_weight=config.diversity_weight, t=t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 50 == 0 or step == config.steps - 1:
                losses.append(float(loss.detach()))
    encoder.eval()
    encoder.losses = losses
    encoder.t = t
    return encoder


def _init_parameters(module: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default (Kaiming-uniform-like) initialisation drawn from ``gen``."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                fan_in = layer.weight[0].numel()
                bound = 1.0 / fan_in**0.5
                layer.weight.uniform_(-bound, bound, generator=gen)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=gen)


class EncoderInitialiser(LatentPrior):
    """Initial codes from a diverse encoder: one of its ``N`` outputs for the problem's masked
    image, plus Gaussian noise (GANchors §4.2, replacing Alg. 3 line 2).

    Parameters
    ----------
    encoder : DiverseEncoder
        Trained encoder.
    targets : torch.Tensor
        ``(P, C, H, W)`` images of the search's problems.
    masks : torch.Tensor
        ``(P or 1, 1, H, W)`` masks of the problems.
    noise_std : float
        Standard deviation of the added noise.

    Examples
    --------
    >>> import torch
    >>> enc = DiverseEncoder((1, 8, 8), latent_dim=4, n_codes=3)
    >>> init = EncoderInitialiser(enc, torch.rand(2, 1, 8, 8), torch.ones(1, 1, 8, 8))
    >>> init.sample(torch.tensor([0, 1, 1]), torch.Generator().manual_seed(0)).shape
    torch.Size([3, 4])
    """

    def __init__(
        self, encoder: DiverseEncoder, targets: torch.Tensor, masks: torch.Tensor, *,
        noise_std: float = 0.1,
    ) -> None:
        if not isinstance(encoder, DiverseEncoder):
            raise TypeError(f"encoder must be a DiverseEncoder, got {type(encoder).__name__}")
        super().__init__(encoder.latent_dim)
        if not isinstance(targets, torch.Tensor) or targets.dim() != 4:
            raise ValueError(
                f"targets must be (P, C, H, W), got {getattr(targets, 'shape', targets)!r}"
            )
        if not isinstance(masks, torch.Tensor) or masks.dim() != 4 or masks.shape[0] not in (
            1, targets.shape[0]
        ):
            raise ValueError(
                f"masks must be (P or 1, 1, H, W) for {targets.shape[0]} problems, got "
                f"{getattr(masks, 'shape', masks)!r}"
            )
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        device = next(encoder.parameters()).device
        with torch.no_grad():
            codes = encoder(targets.float().to(device), masks.float().to(device))
        self.register_buffer("codes", codes)
        self.noise_std = float(noise_std)
        self.n_codes = encoder.n_codes

    def sample(self, problems: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        which = torch.randint(0, self.n_codes, (len(problems),), generator=generator,
                              device=problems.device)
        base = self.codes.to(problems.device)[problems, which]
        if self.noise_std == 0:
            return base
        noise = torch.randn(base.shape, generator=generator, device=problems.device)
        return base + self.noise_std * noise
