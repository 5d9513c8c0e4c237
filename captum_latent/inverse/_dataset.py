"""How ``MimicGAN`` recovers a data set chunk by chunk (registered with
:func:`captum_latent.adapters.register_adapter` by :mod:`~captum_latent.inverse.mimicgan`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from captum_latent.adapters import Data, ExplainerAdapter, Items, Record, check_item_array


class MimicGANDatasetAdapter(ExplainerAdapter):
    """``MimicGAN.recover(chunk, seed=...)``: one joint recovery per chunk (a batched adapter:
    the corruption surrogate is fitted on the whole chunk); record ``image``, ``code``,
    ``mimicked``."""

    batched = True
    reserved = ("observations", "seed")
    call = "recover"

    def __init__(self, explainer: Any, device: Any = None) -> None:
        super().__init__(explainer, device or explainer.device)

    def check_kwargs(self, names: set[str], per_item: set[str]) -> None:
        if per_item:
            raise TypeError(f"MimicGAN.recover has no per-item arguments, got {sorted(per_item)}")
        super().check_kwargs(names, per_item)

    def check_items(self, items: Items) -> None:
        data = check_item_array(items, 4, "(N, C, H, W)", "MimicGAN.recover")
        shape = tuple(self.explainer.image_shape)
        if data.shape[1:] != shape:
            hint = ""
            if data.shape[-1] == shape[0]:
                hint = " (channel-last? MimicGAN is channel-first)"
            raise ValueError(f"images must have shape (N, {', '.join(map(str, shape))}) for this "
                             f"MimicGAN, got {data.shape}{hint}")

    def _learnable(self, kwargs: Mapping[str, Any]) -> bool:
        template = kwargs.get("surrogate")
        if template is None:
            template = self.explainer.surrogate_template
        return bool(kwargs.get("fit_surrogate", True)) and any(
            p.requires_grad for p in template.parameters())

    def default_chunk_size(self, n_items: int) -> int:
        return max(64, self.explainer.min_observations)

    def min_chunk_size(self, kwargs: Mapping[str, Any]) -> int:
        return self.explainer.min_observations if self._learnable(kwargs) else 1

    def explain_batch(self, items: Data, seed: int, kwargs: list[dict[str, Any]]) -> list[Record]:
        r = self.explainer.recover(self._tensor(items), seed=seed, **(kwargs[0] if kwargs else {}))
        return [{"image": r.images[i], "code": r.codes[i], "mimicked": r.mimicked[i]}
                for i in range(len(items))]
