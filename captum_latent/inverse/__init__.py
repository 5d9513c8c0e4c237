"""Blind image recovery and a clean-then-classify defence (MimicGAN) on the latent-search core.

- :class:`MimicGAN` (also PGD / Defense-GAN via :meth:`MimicGAN.pgd` and "Cowboy" via
  :meth:`MimicGAN.cowboy`), :data:`PRESETS` (the paper's Table 1 and digits presets);
- :class:`MimicGANDefense`, an ``nn.Module`` that cleans then classifies, passing an image
  through unchanged when its recovery cannot be trusted (:class:`DefenseOutcome`), and
  reconstructing around occlusions (:mod:`captum_latent.inverse.occlusion`,
  :class:`OcclusionTest`);
- surrogates: :class:`ShallowSurrogate` (the paper's), :class:`AffineSurrogate` (a bounded
  :class:`AffineWarp` before it, for corruptions that move the image), :class:`IdentitySurrogate`;
- :mod:`captum_latent.inverse.corruptions`, the paper's corruptions and adversarial attacks.
"""

from __future__ import annotations

from captum_latent.inverse import corruptions, occlusion
from captum_latent.inverse.defense import DefenseOutcome, MimicGANDefense
from captum_latent.inverse.mimicgan import PRESETS, MimicGAN, MimicGANConfig, MimicGANResult
from captum_latent.inverse.occlusion import OcclusionTest
from captum_latent.inverse.surrogate import (
    AffineSurrogate,
    AffineWarp,
    IdentitySurrogate,
    ShallowSurrogate,
)

__all__ = [
    "PRESETS",
    "AffineSurrogate",
    "AffineWarp",
    "DefenseOutcome",
    "IdentitySurrogate",
    "MimicGAN",
    "MimicGANConfig",
    "MimicGANDefense",
    "MimicGANResult",
    "OcclusionTest",
    "ShallowSurrogate",
    "corruptions",
    "occlusion",
]
