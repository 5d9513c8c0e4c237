"""How ``DISCGenerator`` is run item by item over a data set (registered with
:func:`captum_latent.adapters.register_adapter` by :mod:`~captum_latent.counterfactual.generator`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from captum_latent.adapters import ExplainerAdapter, Items, Record, check_item_array


class DISCGeneratorDatasetAdapter(ExplainerAdapter):
    """``generate(images[i][None], target, seed=item_seed)`` on channel-first tensors; record
    ``counterfactual``, ``source``, ``target``, ``probabilities``, ``predicted``, ``valid``,
    ``loss_history``."""

    reserved = ("queries", "seed", "generator")
    call = "generate"

    def check_items(self, items: Items) -> None:
        check_item_array(items, 4, "(N, C, H, W)", "DISCGenerator.generate")

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        kwargs = dict(kwargs)
        target = kwargs.pop("target", "other")
        r = self.explainer.generate(self._tensor(item[None]), target, seed=seed, **kwargs)
        return {
            "counterfactual": r.counterfactuals[0], "source": int(r.source[0]),
            "target": int(r.target[0]), "probabilities": r.probabilities[0],
            "predicted": int(r.predicted[0]), "valid": bool(r.valid[0]),
            "loss_history": np.asarray(r.loss_history, dtype=np.float64),
        }
