"""Alibi-compatible explainers driven by captum-latent's latent-search core.

Requires the ``alibi`` extra: ``pip install "captum-latent[alibi]"``.
"""

from __future__ import annotations

__all__: list[str] = []
