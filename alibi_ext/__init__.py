"""Alibi-compatible explainers driven by captum-latent's latent-search core.

Requires the ``alibi`` extra: ``pip install "captum-latent[alibi]"``.

- :class:`GANAnchorImage` -- ``alibi.explainers.AnchorImage`` with GAN in-painting
  perturbations, and its samplers :class:`GANInpaintingSampler`, :class:`DiverseEncoderSampler`;
  :class:`GANInpainter` and :class:`GeneratorBank`, the in-painting they run on.
- :class:`QuickshiftSegmentation` -- quickshift tuned to a number of superpixels.
- :class:`DISC` -- counterfactual explanations by deep model inversion.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module defining it (imported on first use: alibi is slow to import)
_LAZY_EXPORTS: dict[str, str] = {
    "GANAnchorImage": "alibi_ext.anchor_image",
    "GANInpaintingSampler": "alibi_ext.samplers",
    "DiverseEncoderSampler": "alibi_ext.samplers",
    "QuickshiftSegmentation": "alibi_ext.segmentation",
    "quickshift_n_segments": "alibi_ext.segmentation",
    "GANInpainter": "alibi_ext._inpainting",
    "GeneratorBank": "alibi_ext._bank",
    "DISC": "alibi_ext.counterfactual",
}

__all__ = sorted(_LAZY_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'alibi_ext' has no attribute {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        if "alibi" in str(e) and "alibi_ext" not in str(e):
            raise ImportError(
                f"alibi_ext.{name} needs Alibi: pip install 'captum-latent[alibi]'"
            ) from e
        raise
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
