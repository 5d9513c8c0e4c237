"""Quality metrics for counterfactual explanations (DISC paper §3.5 and §5).

* :func:`mse` -- per-image mean squared difference between query and counterfactual.
* :func:`concentration` -- area fraction of the smallest box holding every change above a
  threshold (lower = more localised changes).
* :func:`classifier_discrepancy` -- accuracy gap between a classifier trained on real
  ``[X0, X1]`` and one trained on ``[X0, counterfactuals of X0]`` (lower = counterfactuals
  more representative of the target class).
* :func:`judge_agreement` / :func:`judge_verdicts` -- whether an independent classifier (the
  user's *judge*, not the explained model) puts each counterfactual in its target class, and
  :func:`mean_absolute_change`, the size of the change it is weighed against.
"""

from __future__ import annotations

from captum_latent.metrics.discrepancy import (
    ClassifierDiscrepancy,
    DiscrepancyTrainer,
    classifier_discrepancy,
)
from captum_latent.metrics.image import concentration, mse
from captum_latent.metrics.judge import judge_agreement, judge_verdicts, mean_absolute_change

__all__ = [
    "ClassifierDiscrepancy",
    "DiscrepancyTrainer",
    "classifier_discrepancy",
    "concentration",
    "judge_agreement",
    "judge_verdicts",
    "mean_absolute_change",
    "mse",
]
