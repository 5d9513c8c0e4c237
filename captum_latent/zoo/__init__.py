"""Embedded data sets and small reference models: real data, no downloads.

Data: :func:`digits`, :func:`faces`, :func:`photograph`. Models, trained in-process on first
use, deterministic by seed and cached on disk (see :func:`cache_dir`):
:func:`digits_classifier`, :func:`faces_classifier`, :func:`digits_gan`, and the DEP-trained
classifiers of DISC, :func:`dep_digits_classifier`, :func:`dep_faces_classifier`, and its
DUQ model :func:`duq_digits_classifier`, and independent judges of counterfactuals,
:func:`digits_judge`, :func:`faces_judge`.

Examples
--------
>>> from captum_latent import zoo
>>> ds = zoo.digits()
>>> model = zoo.digits_classifier()
>>> model(ds.test.images[:4]).shape
torch.Size([4, 10])
"""

from __future__ import annotations

from captum_latent.zoo._cache import CACHE_ENV_VAR, SEED_ENV_VAR, cache_dir, training_seed
from captum_latent.zoo._loaders import (
    GANPair,
    digits_classifier,
    digits_gan,
    digits_judge,
    faces_classifier,
    faces_judge,
    generator_quality,
)
from captum_latent.zoo.datasets import (
    PHOTOGRAPHS,
    ImageDataset,
    ImageSplit,
    digits,
    faces,
    photograph,
)
from captum_latent.zoo.dep import (
    DEPClassifier,
    DEPConfig,
    dep_digits_classifier,
    dep_faces_classifier,
    ranking_loss,
    train_dep_classifier,
)
from captum_latent.zoo.duq import (
    DUQClassifier,
    DUQConfig,
    duq_digits_classifier,
    gradient_penalty,
    train_duq_classifier,
)
from captum_latent.zoo.models import DCGANDiscriminator, DCGANGenerator, SmallCNN, SmallMLP
from captum_latent.zoo.training import ClassifierConfig, GANConfig, accuracy

__all__ = [
    "CACHE_ENV_VAR",
    "PHOTOGRAPHS",
    "SEED_ENV_VAR",
    "ClassifierConfig",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DEPClassifier",
    "DEPConfig",
    "DUQClassifier",
    "DUQConfig",
    "GANConfig",
    "GANPair",
    "ImageDataset",
    "ImageSplit",
    "SmallCNN",
    "SmallMLP",
    "accuracy",
    "cache_dir",
    "dep_digits_classifier",
    "dep_faces_classifier",
    "digits",
    "digits_classifier",
    "digits_gan",
    "digits_judge",
    "duq_digits_classifier",
    "faces",
    "faces_classifier",
    "faces_judge",
    "generator_quality",
    "gradient_penalty",
    "photograph",
    "ranking_loss",
    "train_dep_classifier",
    "train_duq_classifier",
    "training_seed",
]
