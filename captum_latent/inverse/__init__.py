"""Blind image recovery and a clean-then-classify defence (MimicGAN) on the latent-search core.

- :class:`MimicGAN` (also PGD / Defense-GAN via :meth:`MimicGAN.pgd` and "Cowboy" via
  :meth:`MimicGAN.cowboy`), :data:`PRESETS` (the paper's Table 1 and digits presets);
- :class:`MimicGANDefense`, an ``nn.Module`` that cleans then classifies;
- :mod:`captum_latent.inverse.corruptions`, the paper's corruptions and adversarial attacks.
"""

from __future__ import annotations

from captum_latent.inverse import corruptions
from captum_latent.inverse.defense import MimicGANDefense
from captum_latent.inverse.mimicgan import PRESETS, MimicGAN, MimicGANConfig, MimicGANResult
from captum_latent.inverse.surrogate import IdentitySurrogate, ShallowSurrogate

__all__ = [
    "PRESETS",
    "IdentitySurrogate",
    "MimicGAN",
    "MimicGANConfig",
    "MimicGANDefense",
    "MimicGANResult",
    "ShallowSurrogate",
    "corruptions",
]
