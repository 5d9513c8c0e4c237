"""The data set of a run: items held once, sliced into chunks, hashed for the fingerprint."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from captum_latent.adapters import Items


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def make_items(images: Any) -> Items:
    """Normalise ``images`` (tensor, array, or sequence) into `Items`."""
    if _is_tensor(images):
        if images.dim() == 0:
            raise ValueError("images must be a batch (N, ...), got a 0-d tensor")
        device = str(images.device)
        return Items(images.detach().cpu().numpy(), "torch", device)
    if isinstance(images, np.ndarray):
        if images.ndim == 0:
            raise ValueError("images must be a batch (N, ...), got a 0-d array")
        if images.dtype == object:
            return Items(list(images), "object")
        return Items(images, "numpy")
    if isinstance(images, (str, bytes)) or isinstance(images, Mapping) or not isinstance(
        images, Sequence
    ):
        raise TypeError(
            "images must be a torch.Tensor or numpy array of shape (N, ...), or a sequence of "
            f"items, got {type(images).__name__}"
        )
    items = list(images)
    if items and all(_is_tensor(x) for x in items):
        arrays = [x.detach().cpu().numpy() for x in items]
        if len({(a.shape, a.dtype) for a in arrays}) == 1:
            return Items(np.stack(arrays), "torch", str(items[0].device))
    if items and all(isinstance(x, np.ndarray) for x in items):
        if len({(a.shape, a.dtype) for a in items}) == 1:
            return Items(np.stack(items), "numpy")
    return Items(items, "object")


def _update(h: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            _update(h, value.tolist())
            return
        h.update(f"ndarray{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif _is_tensor(value):
        _update(h, value.detach().cpu().numpy())
    elif isinstance(value, Mapping):
        h.update(b"{")
        for key in sorted(value, key=repr):
            _update(h, key)
            _update(h, value[key])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}{len(value)}[".encode())
        for v in value:
            _update(h, v)
        h.update(b"]")
    elif value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif hasattr(value, "state_dict") and callable(value.state_dict):  # an nn.Module
        h.update(f"module:{type(value).__qualname__}".encode())
        _update(h, dict(value.state_dict()))
    else:
        try:
            payload = pickle.dumps(value, protocol=4)
        except Exception:  # unpicklable: its type is all we can go by
            payload = f"object:{type(value).__module__}.{type(value).__qualname__}".encode()
        h.update(payload)


def content_hash(value: Any) -> str:
    """A SHA-256 of ``value``'s content (arrays by bytes, dtype and shape; modules by weights).

    Examples
    --------
    >>> import numpy as np
    >>> from captum_latent.distributed._items import content_hash
    >>> content_hash(np.zeros(3)) == content_hash(np.zeros(3)) != content_hash(np.ones(3))
    True
    """
    h = hashlib.sha256()
    _update(h, value)
    return h.hexdigest()


def items_hash(items: Items) -> str:
    """SHA-256 of the data set (array bytes, dtype and shape; objects by pickling)."""
    return content_hash(items.data)
