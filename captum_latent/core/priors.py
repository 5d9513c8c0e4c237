"""Latent priors: where the engine draws initial (and restart) codes from.

Every initialiser the engine accepts implements one method::

    codes = prior.sample(problems, generator)   # (n,) long problem indices -> (n, d) float32

Unconditional priors ignore ``problems``; conditional initialisers (the diverse encoder in
:mod:`captum_latent.generative`) use it to pick the masked image a code is meant for.
Codes are created on ``problems.device`` with the given ``torch.Generator``, which must live
on the same device.
"""

from __future__ import annotations

import torch
from torch import nn

from captum_latent.persistence import SaveLoadMixin

__all__ = ["LatentPrior", "StandardNormal", "UniformPrior"]


class LatentPrior(SaveLoadMixin, nn.Module):
    """Base class of latent priors and initialisers.

    Parameters
    ----------
    latent_dim : int
        Dimension ``d`` of the codes it draws.

    Examples
    --------
    >>> import torch
    >>> class Zeros(LatentPrior):
    ...     def sample(self, problems, generator):
    ...         return torch.zeros(len(problems), self.latent_dim, device=problems.device)
    >>> Zeros(3).sample(torch.arange(2), torch.Generator()).shape
    torch.Size([2, 3])
    """

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
        self.latent_dim = latent_dim

    def sample(  # pragma: no cover - abstract
        self, problems: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, problems: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.sample(problems, generator)


def _check_device(problems: torch.Tensor, generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if problems.device.type != generator.device.type:
        raise ValueError(
            f"generator is on {generator.device} but problems are on {problems.device}; "
            "create the torch.Generator on the search device"
        )


class StandardNormal(LatentPrior):
    """``z ~ N(0, scale^2 I)``, the usual GAN prior.

    Parameters
    ----------
    latent_dim : int
        Code dimension.
    scale : float
        Standard deviation (the flexible-prior paper initialises reversal with ``1e-4``).

    Examples
    --------
    >>> import torch
    >>> prior = StandardNormal(4)
    >>> prior.sample(torch.zeros(3, dtype=torch.long), torch.Generator().manual_seed(0)).shape
    torch.Size([3, 4])
    """

    def __init__(self, latent_dim: int, *, scale: float = 1.0) -> None:
        super().__init__(latent_dim)
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        self.scale = float(scale)

    def sample(self, problems: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_device(problems, generator)
        z = torch.randn(
            len(problems), self.latent_dim, generator=generator, device=problems.device
        )
        return z * self.scale if self.scale != 1.0 else z


class UniformPrior(LatentPrior):
    """``z ~ U[low, high]^d`` (MimicGAN's codes live in ``[-1, 1]``).

    Examples
    --------
    >>> import torch
    >>> z = UniformPrior(5).sample(torch.arange(4), torch.Generator().manual_seed(0))
    >>> bool(z.abs().max() <= 1)
    True
    """

    def __init__(self, latent_dim: int, *, low: float = -1.0, high: float = 1.0) -> None:
        super().__init__(latent_dim)
        if not high > low:
            raise ValueError(f"high must exceed low, got low={low!r}, high={high!r}")
        self.low = float(low)
        self.high = float(high)

    def sample(self, problems: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_device(problems, generator)
        u = torch.rand(len(problems), self.latent_dim, generator=generator, device=problems.device)
        return self.low + (self.high - self.low) * u
