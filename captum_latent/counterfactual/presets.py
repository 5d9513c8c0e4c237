"""The DISC configurations compared in the paper's Table 1, built for one classifier."""

from __future__ import annotations

from torch import nn

from captum_latent.counterfactual.dep import DEPClassifier
from captum_latent.counterfactual.generator import DISCGenerator
from captum_latent.counterfactual.manifold import DEPConsistency
from captum_latent.counterfactual.priors import DeepImagePrior, INRPrior, TVL2Prior
from captum_latent.counterfactual.progressive import FixedSchedule, ProgressiveSchedule
from captum_latent.counterfactual.semantics import FeatureSemantics

__all__ = ["TABLE1_METHODS", "table1_generator"]

#: Method names of Table 1, in the paper's column order.
TABLE1_METHODS: tuple[str, ...] = (
    "LSO + TV + L2", "LSO + DIP", "LSO + INR", "LSO + DIP + DEP", "LSO + INR + DEP",
)


def table1_generator(method: str, classifier: nn.Module, *, steps: int = 150,
                     lambda_semantic: float = 1.0, lambda_manifold: float = 1.0,
                     inr_variance: float | None = None, image_size: int = 28,
                     device: str | None = None) -> DISCGenerator:
    """A :class:`DISCGenerator` for one Table 1 column.

    All methods use LSO on the classifier's default layers; DIP and INR use progressive
    optimisation over their layers with ``steps`` steps in total (rounded down per stage),
    TV + L2 ``steps`` plain steps. The ``+ DEP`` methods need a :class:`DEPClassifier` and use
    ``s* = classifier.low_loss_score``. The INR frequency variance defaults to
    ``100 * (image_size / 96)^2``: the paper's 100 at 96x96, same frequencies per pixel.

    Examples
    --------
    >>> from captum_latent.counterfactual import DEPClassifier
    >>> gen = table1_generator("LSO + INR + DEP", DEPClassifier(1, 10, 28).eval())
    >>> gen.manifold.name, type(gen.prior).__name__
    ('DEP', 'INRPrior')
    """
    if method not in TABLE1_METHODS:
        raise ValueError(f"method must be one of {TABLE1_METHODS}, got {method!r}")
    if not isinstance(steps, int) or steps < 5:
        raise ValueError(f"steps must be an int >= 5, got {steps!r}")
    if "DIP" in method:
        prior, n_layers = DeepImagePrior(), 5
    elif "INR" in method:
        variance = 100.0 * (image_size / 96) ** 2 if inr_variance is None else inr_variance
        prior = INRPrior(variance=float(variance))
        n_layers = prior.n_layers + 1
    else:
        prior, n_layers = TVL2Prior(), 1
    schedule = (FixedSchedule(steps) if n_layers == 1
                else ProgressiveSchedule(steps_per_stage=max(1, steps // n_layers)))
    manifold = None
    if method.endswith("+ DEP"):
        if not isinstance(classifier, DEPClassifier):
            raise TypeError(f"{method!r} needs a DEPClassifier (see dep_digits_classifier), "
                            f"got {type(classifier).__name__}")
        manifold = DEPConsistency(classifier.loss_predictor(),
                                  target_loss=float(classifier.low_loss_score))
    return DISCGenerator(classifier, prior=prior, semantics=FeatureSemantics(),
                         manifold=manifold, schedule=schedule, lambda_semantic=lambda_semantic,
                         lambda_manifold=lambda_manifold, device=device)
