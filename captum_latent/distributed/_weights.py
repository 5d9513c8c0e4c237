"""The models behind an explainer, found and hashed for a run's fingerprint.

An explainer reaches its models in many ways: as attributes (``MimicGAN.generator``), through
a forward function that is a module, a bound method (``model.forward``), a closure
(``lambda x: model(x)`` inside a function) or a module-level name a lambda uses, or through a
``functools.partial``. :func:`find_modules` follows all of these, a few levels deep, and
:func:`weights_hash` hashes what it found (parameters and buffers, by bytes), so a resumed run
notices a retrained model.
"""

from __future__ import annotations

import functools
import hashlib
import types
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

#: how many references deep the search goes from the explainer
_MAX_DEPTH = 5
#: objects visited at most (a guard against wandering through a large object graph)
_MAX_VISITS = 20000
#: packages whose functions' module-level names are not searched
_LIBRARIES = frozenset({"captum_latent", "alibi_ext", "captum", "alibi", "torch", "numpy",
                        "scipy", "sklearn", "skimage", "ray", "functools", "builtins"})
#: containers longer than this are not searched (a data set, not a set of models)
_MAX_ITEMS = 64


def _children(obj: Any) -> list[Any]:
    """The objects ``obj`` refers to that may lead to a model."""
    if isinstance(obj, (str, bytes, int, float, bool, complex, type(None), np.ndarray,
                        torch.Tensor, np.generic, type, types.ModuleType)):
        return []
    if isinstance(obj, functools.partial):
        return [obj.func, *obj.args, *obj.keywords.values()]
    if isinstance(obj, types.MethodType):
        return [obj.__self__, obj.__func__]
    if isinstance(obj, types.FunctionType):
        found = [cell.cell_contents for cell in (obj.__closure__ or ())
                 if _cell_is_set(cell)]
        found += list(obj.__defaults__ or ())
        if _is_users(obj):
            found += [obj.__globals__[name] for name in obj.__code__.co_names
                      if name in obj.__globals__]
        if hasattr(obj, "__wrapped__"):
            found.append(obj.__wrapped__)
        return found
    if isinstance(obj, Mapping):
        return list(obj.values()) if len(obj) <= _MAX_ITEMS else []
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj) if len(obj) <= _MAX_ITEMS else []
    try:
        attributes = vars(obj)
    except TypeError:  # no __dict__ (slots, builtins)
        return []
    return list(attributes.values())


def _is_users(function: types.FunctionType) -> bool:
    """Whether ``function`` is the user's (its module-level names may be their models), not
    a library's (whose globals are the library itself)."""
    module = (function.__module__ or "").split(".")[0]
    return module not in _LIBRARIES


def _cell_is_set(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - reading it raises on an empty cell
    except ValueError:  # an empty cell (a closure variable not assigned yet)
        return False
    return True


def find_modules(obj: Any, max_depth: int = _MAX_DEPTH) -> list[nn.Module]:
    """The outermost ``nn.Module`` objects reachable from ``obj``, in a stable order.

    A module's submodules are covered by its state dict, so the search does not go inside a
    module. Each object is visited once.

    Examples
    --------
    >>> from torch import nn
    >>> from captum_latent.distributed._weights import find_modules
    >>> net = nn.Linear(2, 1)
    >>> def make_explainer(model):
    ...     return lambda x: model(x).sum()
    >>> find_modules(make_explainer(net)) == [net]
    True
    """
    found: list[nn.Module] = []
    seen: set[int] = set()
    frontier = [obj]
    for _ in range(max_depth + 1):
        following = []
        for item in frontier:
            if id(item) in seen or len(seen) >= _MAX_VISITS:
                continue
            seen.add(id(item))
            if isinstance(item, nn.Module):
                found.append(item)
                continue
            following.extend(_children(item))
        frontier = following
        if not frontier:
            break
    return found


def weights_hash(obj: Any) -> str | None:
    """SHA-256 of the weights (parameters and buffers) of every model behind ``obj``.

    ``None`` when no model is found (a plain function, or a model out of reach, such as a
    remote service): then the fingerprint cannot notice a changed model.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from captum_latent.distributed._weights import weights_hash
    >>> net = nn.Linear(2, 1)
    >>> before = weights_hash(net.forward)
    >>> with torch.no_grad():
    ...     _ = net.bias.add_(1.0)
    >>> before != weights_hash(net.forward)
    True
    >>> weights_hash(lambda x: x) is None
    True
    """
    modules = find_modules(obj)
    if not modules:
        return None
    h = hashlib.sha256()
    for module in modules:
        h.update(f"{type(module).__module__}.{type(module).__qualname__}|".encode())
        for name, tensor in module.state_dict().items():
            data = tensor.detach()
            if data.device.type == "meta":
                h.update(f"{name}:meta{tuple(data.shape)};".encode())
                continue
            array = data.to("cpu").contiguous()
            if array.dtype == torch.bfloat16:
                array = array.float()
            h.update(f"{name}:{array.dtype}{tuple(array.shape)};".encode())
            h.update(array.numpy().tobytes() if array.numel() else b"")
    return h.hexdigest()
