"""Saving and loading trained modules: generators, encoders, priors, classifiers.

A module is stored as its *state dict* (weights and buffers, on the CPU, readable with
``torch.load`` by anyone who has the architecture) plus a weightless *skeleton* of its
architecture (the module moved to PyTorch's ``meta`` device and pickled), so that
:func:`load_module` rebuilds it without the user's help. The explainers in :mod:`alibi_ext`
use the same records inside Alibi's ``save_explainer``/``load_explainer``.

The skeleton is a pickle: load only files you trust (as with ``torch.load``). Its classes must
be importable where it is loaded (a class defined in a script's ``__main__`` loads in that
script only); to load weights into your own architecture instead, use
``module.load_state_dict(read_state_dict(path))``.
"""

from __future__ import annotations

import copy
import io
import os
import pickle
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = ["save_module", "load_module", "read_state_dict", "SaveLoadMixin"]

_FORMAT = "captum_latent.module"
_VERSION = 1

M = TypeVar("M", bound="SaveLoadMixin")


def _non_persistent_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for prefix, sub in module.named_modules():
        for name in getattr(sub, "_non_persistent_buffers_set", ()):
            buf = sub._buffers.get(name)
            if buf is not None:
                out[f"{prefix}.{name}" if prefix else name] = buf.detach().cpu()
    return out


def module_record(module: nn.Module) -> dict[str, Any]:
    """In-memory record of ``module``: skeleton bytes, CPU state dict, training flag, device."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    first = next(iter(module.parameters()), None)
    if first is None:
        first = next(iter(module.buffers()), None)
    device = str(first.device) if first is not None else "cpu"
    skeleton = copy.deepcopy(module).to("meta")
    buffer = io.BytesIO()
    pickle.dump(skeleton, buffer)
    return {
        "format": _FORMAT,
        "version": _VERSION,
        "class": f"{type(module).__module__}.{type(module).__qualname__}",
        "skeleton": buffer.getvalue(),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "extra_buffers": _non_persistent_buffers(module),
        "training": module.training,
        "device": device,
    }


def module_from_record(
    record: dict[str, Any], map_location: torch.device | str | None = None
) -> nn.Module:
    """Rebuild the module of :func:`module_record` on ``map_location`` (default: the device it
    was saved from when available, else the CPU)."""
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise ValueError("not a captum_latent module record (was it written by save_module?)")
    if record.get("version", 0) > _VERSION:
        raise ValueError(
            f"module record version {record['version']} is newer than this library's "
            f"({_VERSION}): upgrade captum-latent to load it"
        )
    device = torch.device(map_location if map_location is not None else record["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        device = torch.device("cpu")
    try:
        skeleton = pickle.loads(record["skeleton"])
    except (AttributeError, ModuleNotFoundError, ImportError) as e:
        raise ImportError(
            f"cannot rebuild {record['class']}: its class is not importable here ({e}); load "
            "the weights into your own module with read_state_dict() instead"
        ) from e
    module = skeleton.to_empty(device=device)
    module.load_state_dict(record["state_dict"], strict=True)
    for name, value in record.get("extra_buffers", {}).items():
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        owner._buffers[leaf] = value.to(device)
    module.train(record["training"])
    return module


def save_module(module: nn.Module, path: str | os.PathLike) -> Path:
    """Save ``module`` (architecture skeleton + state dict) to ``path``; returns the path.

    Examples
    --------
    >>> import tempfile, torch
    >>> from captum_latent.persistence import save_module, load_module
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)).eval()
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save_module(net, f"{d}/net.pt")
    ...     again = load_module(path)
    >>> x = torch.randn(4, 3)
    >>> bool(torch.equal(net(x), again(x))), again.training
    (True, False)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = module_record(module)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(record, tmp)
    os.replace(tmp, path)
    return path


def _read(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved module at {path}")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - say which file is broken
        raise ValueError(f"{path} is not a readable captum_latent module file: {e}") from e
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a captum_latent module file (see save_module)")
    return record


def load_module(
    path: str | os.PathLike, map_location: torch.device | str | None = None
) -> nn.Module:
    """Load a module written by :func:`save_module` (see the module docstring's caveat)."""
    return module_from_record(_read(path), map_location)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Only the state dict of a file written by :func:`save_module` (no pickle executed)."""
    return dict(_read(path)["state_dict"])


class SaveLoadMixin:
    """Adds ``save(path)`` and ``Class.load(path)`` to an ``nn.Module`` subclass."""

    def save(self, path: str | os.PathLike) -> Path:
        """Save this module with :func:`save_module`; returns the path written."""
        return save_module(self, path)  # type: ignore[arg-type]

    @classmethod
    def load(
        cls: type[M], path: str | os.PathLike, map_location: torch.device | str | None = None
    ) -> M:
        """Load a module saved with :meth:`save`, checking it is a ``cls``."""
        module = load_module(path, map_location)
        if not isinstance(module, cls):
            raise TypeError(f"{path} holds a {type(module).__name__}, not a {cls.__name__}")
        return module
