"""How ``GANAnchorImage`` and ``DISC`` are explained item by item over a data set (registered
with :func:`captum_latent.adapters.register_adapter` by their modules)."""

from __future__ import annotations

from typing import Any

import numpy as np

from captum_latent.adapters import (
    ExplainerAdapter,
    Items,
    Record,
    check_item_array,
    reject_tensor_items,
)


def _check_shape(data: np.ndarray, shape: Any, name: str) -> None:
    if shape is not None and tuple(data.shape[1:]) != tuple(shape):
        hint = " (channel-first? Alibi is channel-last)" if data.shape[1] == shape[-1] else ""
        raise ValueError(f"images must have shape (N, {', '.join(map(str, shape))}) for this "
                         f"{name}, got {data.shape}{hint}")


class GANAnchorDatasetAdapter(ExplainerAdapter):
    """``GANAnchorImage.explain(image, **kwargs)`` on channel-last numpy, seeded per item;
    record ``anchor``, ``segments``, ``precision``, ``coverage``, ``feature``, ``prediction``,
    ``sampler_stats.*``."""

    reserved = ("image",)

    def check_items(self, items: Items) -> None:
        reject_tensor_items(items, "GANAnchorImage")
        data = check_item_array(items, 4, "(N, H, W, C)", "GANAnchorImage.explain")
        _check_shape(data, self.explainer.image_shape, "GANAnchorImage")

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        explanation = self.explainer.explain_seeded(item, seed, **kwargs)
        data = explanation.data
        raw = data.get("raw") or {}
        record: Record = {
            "anchor": data["anchor"],
            "segments": data["segments"],
            "precision": float(np.asarray(data["precision"]).reshape(-1)[0]),
            "coverage": float(data["coverage"]),
            "feature": np.asarray(raw.get("feature", []), dtype=np.int64),
            "prediction": int(np.asarray(raw.get("prediction", [-1])).reshape(-1)[0]),
        }
        for key, value in (data.get("sampler_stats") or {}).items():
            if isinstance(value, (int, float, np.generic)):
                record[f"sampler_stats.{key}"] = value
        return record


class DISCDatasetAdapter(ExplainerAdapter):
    """``DISC.explain(images[i][None], **kwargs)`` on channel-last numpy, seeded per item;
    record ``cf.X``, ``cf.class``, ``cf.proba``, ``cf.diff``, ``orig_class``, ``orig_proba``,
    ``target_class``, ``valid``, ``loss_history``."""

    reserved = ("X",)

    def check_items(self, items: Items) -> None:
        reject_tensor_items(items, "DISC")
        data = check_item_array(items, 4, "(N, H, W, C)", "DISC.explain")
        _check_shape(data, self.explainer.shape, "DISC")

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        explanation = self.explainer.explain_seeded(item[None], seed, **kwargs)
        data = explanation.data
        cf = data["cf"]
        return {
            "cf.X": cf["X"][0], "cf.class": int(cf["class"][0]), "cf.proba": cf["proba"][0],
            "cf.diff": cf["diff"][0], "orig_class": int(data["orig_class"][0]),
            "orig_proba": data["orig_proba"][0], "target_class": int(data["target_class"][0]),
            "valid": bool(data["valid"][0]),
            "loss_history": np.asarray(data["all"].get("loss_history", []), dtype=np.float64),
        }
