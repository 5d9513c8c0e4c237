"""Conversion of one item's explanation into a flat record of numpy arrays and scalars."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

Record = dict[str, Any]


def _to_numpy(value: Any, key: str) -> Any:
    """A numpy array (or ``None``) for one value of a record; ``TypeError`` if impossible."""
    if value is None:
        return None
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor without importing torch
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"result {key!r} is an object array; return numeric arrays")
        return value
    if isinstance(value, (bool, int, float, complex, str, np.generic)):
        return np.asarray(value)
    if isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except ValueError as e:  # ragged
            raise TypeError(f"result {key!r} is a ragged sequence; return arrays") from e
        if array.dtype == object:
            raise TypeError(f"result {key!r} is a sequence of mixed or non-numeric values")
        return array
    raise TypeError(
        f"result {key!r} has type {type(value).__name__}; values must be numpy arrays, "
        "tensors, numbers, strings or (nested) dicts of them"
    )


def to_record(result: Any, skip_unsupported: bool = False) -> Record:
    """Flatten ``result`` into ``{key: numpy array or None}``.

    A mapping is flattened with ``"."`` joining nested keys; an Alibi ``Explanation`` contributes
    its ``data``; anything else is stored under ``"result"``. With ``skip_unsupported``, values
    that cannot be converted are left out instead of raising ``TypeError``.

    Examples
    --------
    >>> import numpy as np
    >>> from captum_latent.distributed._records import to_record
    >>> rec = to_record({"map": np.zeros((2, 2)), "info": {"score": 0.5}})
    >>> sorted(rec), rec["info.score"].shape
    (['info.score', 'map'], ())
    """
    data = getattr(result, "data", None)
    if not isinstance(result, Mapping) and isinstance(data, Mapping) and hasattr(result, "meta"):
        result = data  # alibi.api.interfaces.Explanation
    if not isinstance(result, Mapping):
        result = {"result": result}
    record: Record = {}

    def walk(prefix: str, mapping: Mapping) -> None:
        for name, value in mapping.items():
            if not isinstance(name, str):
                raise TypeError(f"result keys must be strings, got {name!r}")
            key = f"{prefix}{name}"
            if isinstance(value, Mapping):
                walk(key + ".", value)
                continue
            try:
                record[key] = _to_numpy(value, key)
            except TypeError:
                if not skip_unsupported:
                    raise

    walk("", result)
    return record


def from_stored(array: np.ndarray) -> Any:
    """Undo the storage of scalars as 0-d arrays: 0-d arrays come back as numpy scalars."""
    return array[()] if array.ndim == 0 else array
