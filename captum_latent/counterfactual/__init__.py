"""DISC: counterfactual explanations by deep model inversion (Thiagarajan et al.).

Counterfactuals that need only the trained classifier: an image prior (:class:`TVL2Prior`,
:class:`DeepImagePrior`, :class:`INRPrior`) is optimised per query so that the classifier
predicts a target class while semantics are preserved in pixel space
(:class:`PixelSemantics`, ISO) or in the classifier's feature space (:class:`FeatureSemantics`,
LSO), optionally staying on the data manifold (:class:`DEPConsistency` with a
:class:`DEPClassifier`, :class:`DUQConsistency` with a :class:`DUQClassifier`), with
progressive optimisation (:class:`ProgressiveSchedule`).
The DEP- and DUQ-trained classifiers are reference models of the zoo
(:mod:`captum_latent.zoo.dep`, :mod:`captum_latent.zoo.duq`), re-exported here.
:class:`DISCGenerator` runs batches of queries together. Users who have a generator of their
images can search counterfactuals among its images instead (:class:`GeneratorPrior`, a latent
search on the core).
"""

from __future__ import annotations

from captum_latent.counterfactual.baselines import pixel_counterfactuals
from captum_latent.counterfactual.generator import CounterfactualResult, DISCGenerator
from captum_latent.counterfactual.generator_prior import GeneratorPrior, LatentCounterfactuals
from captum_latent.counterfactual.manifold import (
    DEPConsistency,
    DUQConsistency,
    ManifoldConsistency,
)
from captum_latent.counterfactual.priors import (
    DeepImagePrior,
    ImagePrior,
    INRPrior,
    PriorState,
    TVL2Prior,
    total_variation,
)
from captum_latent.counterfactual.progressive import FixedSchedule, ProgressiveSchedule, Stage
from captum_latent.counterfactual.semantics import (
    FeatureSemantics,
    PixelSemantics,
    default_feature_layers,
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

__all__ = [
    "CounterfactualResult",
    "DEPClassifier",
    "DEPConfig",
    "DEPConsistency",
    "DISCGenerator",
    "GeneratorPrior",
    "LatentCounterfactuals",
    "DUQClassifier",
    "DUQConfig",
    "DUQConsistency",
    "DeepImagePrior",
    "FixedSchedule",
    "INRPrior",
    "ImagePrior",
    "ManifoldConsistency",
    "PixelSemantics",
    "PriorState",
    "ProgressiveSchedule",
    "Stage",
    "TVL2Prior",
    "FeatureSemantics",
    "default_feature_layers",
    "pixel_counterfactuals",
    "dep_digits_classifier",
    "dep_faces_classifier",
    "duq_digits_classifier",
    "gradient_penalty",
    "ranking_loss",
    "train_dep_classifier",
    "train_duq_classifier",
    "total_variation",
]
