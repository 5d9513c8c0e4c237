"""Batched latent search through a frozen generator (no captum, no alibi imports).

One engine, :class:`LatentSearch`, solves ``min_z loss_i(G(z_i))`` for many codes at once; the
methods built on it (generator reversal, GANchors in-painting, Defense-GAN / MimicGAN z-steps)
compose it from the small objects exported here.
"""

from __future__ import annotations

from .batchnorm import BATCHNORM_MODES, batchnorm_mode, has_batchnorm
from .engine import LatentSearch, SearchResult
from .memory import bytes_per_code
from .objectives import (
    CallableObjective,
    DiscriminatorLoss,
    MaskedReconstruction,
    Objective,
    Reconstruction,
    WeightedSum,
)
from .optimizers import Adam, RMSprop, RowwiseOptimizer
from .priors import LatentPrior, StandardNormal, UniformPrior
from .probe import infer_latent_dim, probe_generator
from .projection import BallProjection, Clip, Projection
from .stopping import (
    LossThreshold,
    MatchedThresholds,
    StopRule,
    match_thresholds,
    sample_thresholds,
)

__all__ = [
    "BATCHNORM_MODES",
    "Adam",
    "BallProjection",
    "CallableObjective",
    "Clip",
    "DiscriminatorLoss",
    "LatentPrior",
    "LatentSearch",
    "LossThreshold",
    "MaskedReconstruction",
    "MatchedThresholds",
    "Objective",
    "Projection",
    "RMSprop",
    "Reconstruction",
    "RowwiseOptimizer",
    "SearchResult",
    "StandardNormal",
    "StopRule",
    "UniformPrior",
    "WeightedSum",
    "batchnorm_mode",
    "bytes_per_code",
    "has_batchnorm",
    "infer_latent_dim",
    "match_thresholds",
    "probe_generator",
    "sample_thresholds",
]
