"""On-disk cache for the zoo's trained models, keyed by a hash of the training configuration."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import torch

#: Bump when a change to the training code should invalidate every cached model.
CACHE_FORMAT_VERSION = 1

#: Environment variable that overrides the cache directory.
CACHE_ENV_VAR = "CAPTUM_LATENT_CACHE"

#: Environment variable that sets the default training seed of every zoo model (unset: 0). It
#: retrains the zoo as another machine might have trained it, to check that a result holds for
#: any model the configuration trains (``benchmarks/zoo_seeds.py``).
SEED_ENV_VAR = "CAPTUM_LATENT_ZOO_SEED"

# One lock for every cached model: a loader may need another model while training (the GAN
# is scored by the classifier), hence re-entrant.
_LOCK = threading.RLock()


def cache_dir() -> Path:
    """Return the directory where the zoo stores trained models.

    ``$CAPTUM_LATENT_CACHE`` when set, else ``$XDG_CACHE_HOME/captum_latent``, else
    ``~/.cache/captum_latent``. The directory is created on first use.
    """
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        root = Path(override).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "captum_latent"
    root.mkdir(parents=True, exist_ok=True)
    return root


def training_seed(seed: int | None = None) -> int:
    """The training seed of a zoo model: ``seed`` when given, else ``$CAPTUM_LATENT_ZOO_SEED``
    (0 when unset).

    Examples
    --------
    >>> from captum_latent.zoo import training_seed
    >>> training_seed(3)
    3
    """
    if seed is not None:
        return seed
    text = os.environ.get(SEED_ENV_VAR, "").strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"${SEED_ENV_VAR} must be an integer, got {text!r}") from None


def config_key(name: str, config: Any) -> str:
    """Stable short hash of a model name and its (dataclass) training configuration."""
    payload = {
        "name": name,
        "format": CACHE_FORMAT_VERSION,
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(name: str, config: Any) -> Path:
    """Path of the cache file for ``name`` trained with ``config``."""
    return cache_dir() / f"{name}-{config_key(name, config)}.pt"


def load_entry(path: Path) -> dict[str, Any] | None:
    """Load a cache entry, or return ``None`` when it is missing or unreadable."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign file: retrain rather than fail
        return None


def save_entry(path: Path, entry: dict[str, Any]) -> None:
    """Write a cache entry atomically (a crash never leaves a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(entry, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_or_train(path: Path, train: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The cache entry at ``path``; when it is missing or unreadable, ``train()`` makes it and
    it is saved. Threads asking for the same model together train it once."""
    with _LOCK:
        entry = load_entry(path)
        if entry is None:
            entry = train()
            save_entry(path, entry)
    return entry


def update_entry(path: Path, entry: dict[str, Any]) -> None:
    """Replace the cache entry at ``path`` (under the cache's lock)."""
    with _LOCK:
        save_entry(path, entry)


def model_entry(model: torch.nn.Module, metrics: dict[str, Any]) -> dict[str, Any]:
    """The cache entry of a trained model: its state dict and measured metrics."""
    return {"state_dict": model.state_dict(), "metrics": metrics}
