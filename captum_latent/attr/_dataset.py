"""How ``LEG`` and ``LEGTV`` are explained item by item over a data set (registered with
:func:`captum_latent.adapters.register_adapter` by :mod:`~captum_latent.attr.leg` and
:mod:`~captum_latent.attr.leg_tv`)."""

from __future__ import annotations

from typing import Any

from captum_latent.adapters import ExplainerAdapter, Items, Record, check_item_array


class LEGDatasetAdapter(ExplainerAdapter):
    """``attribute(images[i][None], seed=item_seed, **kwargs)`` on channel-first tensors;
    record ``{"attribution": (C, H, W)}``."""

    reserved = ("inputs", "seed", "generator")
    call = "attribute"

    def check_items(self, items: Items) -> None:
        check_item_array(items, 4, "(N, C, H, W)", f"{type(self.explainer).__name__}.attribute")

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        out = self.explainer.attribute(self._tensor(item[None]), seed=seed, **kwargs)
        return {"attribution": out[0]}


class LEGTVDatasetAdapter(LEGDatasetAdapter):
    """As :class:`LEGDatasetAdapter`, plus the solve's ``penalty``, ``sigma2``, ``objective``,
    ``duality_gap``, ``feasibility_violation`` and ``converged`` (per channel)."""

    reserved = ("inputs", "seed", "generator", "return_certificate", "return_convergence_delta")

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        out, cert = self.explainer.attribute(
            self._tensor(item[None]), seed=seed, return_certificate=True, **kwargs
        )
        return {
            "attribution": out[0],
            "penalty": cert.penalty[0],
            "sigma2": cert.sigma2,
            "objective": cert.objective[0],
            "duality_gap": cert.duality_gap[0],
            "feasibility_violation": cert.feasibility_violation[0],
            "converged": cert.converged[0],
        }
