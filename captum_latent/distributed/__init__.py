"""Explanations over whole data sets: in-process or on Ray, streamed to disk, resumable.

- `explain_dataset` runs any captum-latent explainer (``LEG``, ``LEGTV``,
  ``GANAnchorImage``, ``DISC``, ``DISCGenerator``, ``MimicGAN``), any Captum attribution or
  Alibi explainer, or a plain callable over a data set;
- `load_results` opens a run directory; `DatasetExplanation` is their result.

Ray is optional (``pip install "captum-latent[ray]"``) and imported only for
``backend="ray"``.
"""

from __future__ import annotations

from captum_latent.adapters import item_seed
from captum_latent.distributed._explain import BACKENDS, explain_dataset
from captum_latent.distributed._result import DatasetExplanation, load_results

__all__ = ["BACKENDS", "DatasetExplanation", "explain_dataset", "item_seed", "load_results"]
