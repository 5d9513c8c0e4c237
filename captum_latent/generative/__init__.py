"""Generator reversal, the PAG score, learned latent priors and the diverse encoder.

Built on :mod:`captum_latent.core`: every optimisation over codes runs through
:class:`~captum_latent.core.LatentSearch`, and every prior here is a
:class:`~captum_latent.core.LatentPrior` the engine accepts wherever it draws initial codes.
"""

from __future__ import annotations

from .diverse_encoder import (
    DiverseEncoder,
    DiverseEncoderConfig,
    EncoderInitialiser,
    diverse_encoder_loss,
    train_diverse_encoder,
)
from .pag import pag_score
from .priors import GaussianPrior, PGANConfig, PGANPrior
from .reversal import GeneratorReversal, ReversalResult
from .superpixels import random_superpixel_masks, superpixel_segments

__all__ = [
    "DiverseEncoder",
    "DiverseEncoderConfig",
    "EncoderInitialiser",
    "GaussianPrior",
    "GeneratorReversal",
    "PGANConfig",
    "PGANPrior",
    "ReversalResult",
    "diverse_encoder_loss",
    "pag_score",
    "random_superpixel_masks",
    "superpixel_segments",
    "train_diverse_encoder",
]
