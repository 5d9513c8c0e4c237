"""captum-latent: latent-space explainers for image classifiers, as Captum and Alibi plug-ins.

Public classes are re-exported here lazily so that ``import captum_latent`` stays cheap and
an optional dependency is imported only when the class that needs it is used::

    from captum_latent import LEGTV          # captum_latent.attr
    from captum_latent import zoo            # embedded data and reference models
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0.dev0"

# public name -> module that defines it. Each method package adds its names here.
_LAZY_EXPORTS: dict[str, str] = {
    "zoo": "captum_latent.zoo",
    "report": "captum_latent.report",
    "LEG": "captum_latent.attr",
    "LEGTV": "captum_latent.attr",
    "DISCGenerator": "captum_latent.counterfactual",
    "core": "captum_latent.core",
    "LatentSearch": "captum_latent.core",
    "generative": "captum_latent.generative",
    "GeneratorReversal": "captum_latent.generative",
    "pag_score": "captum_latent.generative",
    "GaussianPrior": "captum_latent.generative",
    "PGANPrior": "captum_latent.generative",
    "DiverseEncoder": "captum_latent.generative",
    "metrics": "captum_latent.metrics",
    "inverse": "captum_latent.inverse",
    "MimicGAN": "captum_latent.inverse",
    "MimicGANDefense": "captum_latent.inverse",
    "distributed": "captum_latent.distributed",
    "explain_dataset": "captum_latent.distributed",
}

__all__ = ["__version__", *sorted(_LAZY_EXPORTS)]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'captum_latent' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
