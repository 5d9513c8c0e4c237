"""Records as stored: scalars are kept as 0-d arrays (records are made by
:func:`captum_latent.adapters.to_record`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def from_stored(array: np.ndarray) -> Any:
    """Undo the storage of scalars as 0-d arrays: 0-d arrays come back as numpy scalars."""
    return array[()] if array.ndim == 0 else array
