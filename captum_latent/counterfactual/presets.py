"""The DISC configurations compared in the paper's Table 1, built for one classifier."""

from __future__ import annotations

from torch import nn

from captum_latent.counterfactual.generator import DISCGenerator
from captum_latent.counterfactual.manifold import DEPConsistency, DUQConsistency
from captum_latent.counterfactual.priors import DeepImagePrior, INRPrior, TVL2Prior
from captum_latent.counterfactual.progressive import FixedSchedule, ProgressiveSchedule
from captum_latent.counterfactual.semantics import FeatureSemantics
from captum_latent.zoo.dep import DEPClassifier

__all__ = ["DUQ_METHODS", "TABLE1_METHODS", "table1_generator"]

#: Method names of Table 1, in the paper's column order.
TABLE1_METHODS: tuple[str, ...] = (
    "LSO + TV + L2", "LSO + DIP", "LSO + INR", "LSO + DIP + DEP", "LSO + INR + DEP",
)

#: The DUQ variants of the paper's Figure 4 (need ``duq_model``).
DUQ_METHODS: tuple[str, ...] = ("LSO + DIP + DUQ", "LSO + INR + DUQ")

#: How the ``+ DEP`` methods choose ``s*``.
DEP_TARGETS: tuple[str, ...] = ("class", "low")


def table1_generator(method: str, classifier: nn.Module, *, steps: int = 150,
                     lambda_semantic: float = 1.0, lambda_manifold: float = 1.0,
                     inr_variance: float | None = None, image_size: int = 28,
                     dep_target: str = "class", duq_model: nn.Module | None = None,
                     device: str | None = None) -> DISCGenerator:
    """A :class:`DISCGenerator` for one Table 1 column (or a DUQ variant).

    All methods use LSO on the classifier's default layers; DIP and INR use progressive
    optimisation over their layers with ``steps`` steps in total (rounded down per stage),
    TV + L2 ``steps`` plain steps. The ``+ DEP`` methods need a :class:`DEPClassifier`; with
    ``dep_target="class"`` (default) ``s*`` is ``classifier.class_loss_scores[target]``, the
    median score of real training images of the target class, with ``"low"`` the single
    ``classifier.low_loss_score`` (10% quantile over all classes; the earlier default, kept
    for comparison). The ``+ DUQ`` methods (:data:`DUQ_METHODS`) use
    ``DUQConsistency(duq_model, margin=0.5)``. The INR frequency variance defaults to
    ``100 * (image_size / 96)^2``: the paper's 100 at 96x96, same frequencies per pixel.

    Examples
    --------
    >>> from captum_latent.counterfactual import DEPClassifier
    >>> gen = table1_generator("LSO + INR + DEP", DEPClassifier(1, 10, 28).eval())
    >>> gen.manifold.name, type(gen.prior).__name__
    ('DEP', 'INRPrior')
    """
    if method not in TABLE1_METHODS + DUQ_METHODS:
        raise ValueError(f"method must be one of {TABLE1_METHODS + DUQ_METHODS}, got "
                         f"{method!r}")
    if dep_target not in DEP_TARGETS:
        raise ValueError(f"dep_target must be one of {DEP_TARGETS}, got {dep_target!r}")
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
        target_loss = (classifier.class_loss_scores.detach().cpu() if dep_target == "class"
                       else float(classifier.low_loss_score))
        manifold = DEPConsistency(classifier.loss_predictor(), target_loss=target_loss)
    elif method.endswith("+ DUQ"):
        if duq_model is None:
            raise ValueError(f"{method!r} needs duq_model= (see duq_digits_classifier)")
        manifold = DUQConsistency(duq_model, margin=0.5)
    return DISCGenerator(classifier, prior=prior, semantics=FeatureSemantics(),
                         manifold=manifold, schedule=schedule, lambda_semantic=lambda_semantic,
                         lambda_manifold=lambda_manifold, device=device,
                         target_probability=None)  # the paper's protocol: every step
