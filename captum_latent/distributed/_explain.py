"""``explain_dataset``: one explainer over a data set, in-process or on Ray, resumable."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import sys
import time
import warnings
from collections.abc import Mapping, Sized
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from captum_latent.adapters import ExplainerAdapter, Items, adapter_for, item_seed
from captum_latent.distributed._items import content_hash, items_hash, make_items
from captum_latent.distributed._result import DatasetExplanation, summarise
from captum_latent.distributed._storage import (
    FORMAT,
    FORMAT_VERSION,
    LOCK,
    MANIFEST,
    Part,
    RunLock,
    Store,
    clean_temporary,
    read_manifest,
    remove_run_files,
    scan_status,
    write_manifest,
)
from captum_latent.distributed._weights import weights_hash
from captum_latent.distributed._work import Unit, run_unit

BACKENDS = ("local", "ray")
_FINGERPRINT_FIELDS = ("n_items", "images_sha256", "explainer", "weights_sha256", "seed",
                       "kwargs_sha256", "chunking")


def explain_dataset(
    explainer: Any,
    images: Any,
    out: str | os.PathLike | None = None,
    *,
    backend: str = "local",
    explain_kwargs: Mapping[str, Any] | None = None,
    per_item_kwargs: Mapping[str, Any] | None = None,
    seed: int | None = 0,
    chunk_size: int | None = None,
    num_workers: int | None = None,
    resources_per_worker: dict | None = None,
    device: Any = None,
    overwrite: bool = False,
    retry_failed: bool = False,
    show_progress: bool = False,
    on_interrupt: str = "return",
) -> DatasetExplanation:
    """Explain every item of a data set with one explainer; resumable, in-process or on Ray.

    Items are explained one by one (``MimicGAN``: one joint recovery per chunk), each with its
    own seed derived from ``seed`` and its index, so results do not depend on the backend, the
    number of workers or the chunking: ``backend="ray"`` gives the same results as
    ``backend="local"``. With ``out``, finished chunks are written to that directory as they
    complete, in data-set order, each file atomically; calling again with the same arguments
    skips what is done (the run's fingerprint is checked first).

    Parameters
    ----------
    explainer
        What explains one item, called as follows (items are ``images[i]``):

        - `LEG` / `LEGTV`:
          ``attribute(images[i][None], seed=s, **kwargs)`` on channel-first tensors; result
          ``{"attribution": (C, H, W)}``, plus for LEGTV ``penalty``, ``objective``,
          ``duality_gap``, ``feasibility_violation``, ``converged`` (per channel).
        - `alibi_ext.GANAnchorImage`: ``explain(images[i], **kwargs)`` on channel-last
          numpy, seeded per item; result ``anchor`` (H, W, C), ``segments``, ``precision``,
          ``coverage``, ``feature`` (anchor superpixels), ``prediction``, ``sampler_stats.*``.
        - `alibi_ext.DISC`: ``explain(images[i][None], **kwargs)`` on channel-last
          numpy, seeded per item; result ``cf.X``, ``cf.class``, ``cf.proba``, ``cf.diff``,
          ``orig_class``, ``orig_proba``, ``target_class``, ``valid``, ``loss_history``.
        - `DISCGenerator`: ``generate(images[i][None], target,
          seed=s)``; result ``counterfactual``, ``source``, ``target``, ``probabilities``,
          ``predicted``, ``valid``, ``loss_history``.
        - `MimicGAN`: ``recover(images[a:b], seed=s, **kwargs)`` per
          chunk (the corruption surrogate is fitted on the chunk, so ``chunk_size`` must be at
          least ``min_observations``); result ``image``, ``code``, ``mimicked``.
        - another Captum attribution (``.attribute``): run under torch's RNG seeded per item;
          another Alibi explainer (``.explain``): under numpy's global RNG seeded per item
          (restored afterwards), its ``data`` entries that are arrays or numbers.
        - a callable ``fn(item, **kwargs)``, given ``seed=`` when it has a ``seed`` parameter;
          items are tensors if ``images`` is a tensor, arrays if an array, the objects of a
          list otherwise. It returns a dict (nested dicts are flattened with ``"."``), an
          array/tensor/number (stored as ``"result"``) or an Alibi ``Explanation``.
    images : torch.Tensor, numpy.ndarray or sequence
        ``(N, ...)`` items in the explainer's own convention (Captum: channel-first
        ``(N, C, H, W)``; Alibi: channel-last numpy ``(N, H, W, C)``). A list of arbitrary
        picklable objects (file names, ...) works with a callable.
    out : str or path, optional
        Run directory (created if needed). ``None``: results stay in memory, nothing resumes.
    backend : {"local", "ray"}, default "local"
        ``"ray"``: one actor per worker, each with its own copy of the explainer (pickled
        once). If Ray is not initialised, ``ray.init(num_cpus=..., include_dashboard=False,
        log_to_driver=False)`` starts a local one (as many CPUs as the machine has, or
        as the workers ask for), which stays up for later calls (stop it with
        ``ray.shutdown()``); a Ray you started (``ray.init(address=...)`` for a cluster) is used
        as is and never shut down.
    explain_kwargs : dict, optional
        Arguments for every call (e.g. ``{"n_samples": 500}``, ``{"threshold": 0.9}``).
    per_item_kwargs : dict of str to sequence, optional
        Arguments that vary per item, each a sequence of length ``N`` (e.g.
        ``{"target": labels}``); numpy/torch scalars are passed as Python numbers.
    seed : int or None, default 0
        Run seed; item ``i`` gets ``item_seed(seed, i)``. ``None`` draws one (stored in the
        manifest, so that resuming keeps it).
    chunk_size : int, optional
        Items per unit of work and per file. Default: ``ceil(N / 64)`` clipped to [1, 32]
        (``max(64, min_observations)`` for MimicGAN); when resuming, the run's own. It changes
        results only for MimicGAN.
    num_workers : int, optional
        Ray actors. Default: one per GPU when the cluster has GPUs, else one per CPU, never
        more than units of work.
    resources_per_worker : dict, optional
        Ray actor resources (``num_cpus``, ``num_gpus``, ``memory``, ``resources``,
        ``accelerator_type``). Default ``{"num_cpus": 1, "num_gpus": 1}`` on a cluster with
        GPUs, else ``{"num_cpus": 1}``. Each actor sets ``torch.set_num_threads(num_cpus)``.
    device : str or torch.device, optional
        Where tensor inputs go (Captum-style explainers, MimicGAN, DISCGenerator, callables on
        tensors). Default: the device of ``images`` if it is a tensor, else the CPU; on a GPU
        actor ``"cuda"`` is the actor's own GPU.
    overwrite : bool, default False
        Replace a run in ``out`` whose fingerprint differs (only the run's own files are
        deleted).
    retry_failed : bool, default False
        Recompute the chunks that hold failed items (deterministic failures fail again).
    show_progress : bool, default False
        A tqdm bar over items (advances per item locally, per chunk on Ray).
    on_interrupt : {"return", "raise"}, default "return"
        On ``KeyboardInterrupt`` (Ctrl-C) every finished item is kept (on disk with ``out``);
        ``"return"`` returns the partial result with ``interrupted=True`` (and warns),
        ``"raise"`` re-raises after saving. Locally the items finished in the current chunk
        are kept too; on Ray the chunks still running are lost.

    Returns
    -------
    DatasetExplanation
        ``results`` (in order), ``completed``, ``failed`` (index -> traceback; an item that
        raises does not stop the run), ``interrupted``, ``seconds``, ``stats``.

    Raises
    ------
    TypeError, ValueError
        Before any work: an empty or mistyped data set, a layout the explainer does not take
        (with a hint for channel-first/last mix-ups), NaN/Inf in the images, unknown or
        reserved arguments, an unknown backend, or ``out`` holding another run (pass
        ``overwrite=True`` or another directory).

    Notes
    -----
    The fingerprint covers the number of items, a SHA-256 of the images, the explainer's
    class, a SHA-256 of the weights of the models behind it, the seed, the arguments and (for
    MimicGAN) the chunk size. Models are found through the explainer's attributes and its
    forward function (a module, a bound method, a closure, a ``functools.partial``, or a
    module-level name that a function of yours uses); a model out of reach (a remote service)
    is not covered: after changing such a model, use a new ``out``.
    One run per directory at a time (a ``.lock`` file guards it).

    Examples
    --------
    >>> import torch
    >>> from captum_latent import LEG
    >>> from captum_latent.distributed import explain_dataset
    >>> w = torch.zeros(1, 1, 6, 6); w[..., 1:3, 1:4] = 1.0
    >>> model = lambda x: (x * w).sum(dim=(1, 2, 3)).unsqueeze(1)
    >>> run = explain_dataset(LEG(model), torch.zeros(3, 1, 6, 6),
    ...                       explain_kwargs={"target": 0, "n_samples": 100})
    >>> run
    DatasetExplanation(3/3 completed, 0 failed, 0 missing; in memory)
    >>> run.results[0]["attribution"].shape
    (1, 6, 6)
    """
    begin = time.perf_counter()
    job = _validate(explainer, images, backend, explain_kwargs, per_item_kwargs, seed,
                    chunk_size, num_workers, resources_per_worker, out, device, overwrite,
                    retry_failed, show_progress, on_interrupt)
    directory = _prepare_directory(out)
    with RunLock(directory) if directory is not None else contextlib.nullcontext():
        plan = _plan(job, directory, seed, chunk_size, overwrite, retry_failed)
        interrupted, stats = _execute(job, plan, backend, num_workers, show_progress)
        stats["seconds"] = time.perf_counter() - begin
        result = summarise(plan.store, plan.manifest, interrupted, stats)
    if interrupted:
        _report_interrupt(result, len(job.items), directory, on_interrupt)
    return result


@dataclass(frozen=True)
class _Job:
    """What was asked, checked: the explainer's adapter, the items and the arguments."""

    adapter: ExplainerAdapter
    items: Items
    fixed: dict
    varying: dict
    min_chunk: int
    resources_per_worker: dict | None


@dataclass(frozen=True)
class _Plan:
    """The run: its storage, manifest (with the fingerprint) and the units of work left."""

    store: Store
    manifest: dict
    units: list[Unit]
    skipped: int


def _validate(explainer: Any, images: Any, backend: Any, explain_kwargs: Any,
              per_item_kwargs: Any, seed: Any, chunk_size: Any, num_workers: Any,
              resources_per_worker: Any, out: Any, device: Any, overwrite: Any,
              retry_failed: Any, show_progress: Any, on_interrupt: Any) -> _Job:
    """Every check that needs no file and no model evaluation (step 1)."""
    _check_options(backend, seed, chunk_size, num_workers, out, on_interrupt, overwrite,
                   retry_failed, show_progress)
    if backend != "ray" and (num_workers is not None or resources_per_worker is not None):
        raise ValueError("num_workers and resources_per_worker apply to backend='ray' only")
    items = make_items(images)
    n = len(items)
    if n == 0:
        raise ValueError("images is empty: nothing to explain")
    adapter = adapter_for(explainer, items, device)
    fixed, varying = _check_kwargs(adapter, explain_kwargs, per_item_kwargs, n)
    adapter.check_items(items)
    _check_finite(items)
    min_chunk = adapter.min_chunk_size(fixed)
    if chunk_size is not None and chunk_size < min_chunk:
        raise ValueError(f"chunk_size must be >= {min_chunk} for {type(explainer).__name__} "
                         f"(its min_observations), got {chunk_size}")
    if n < min_chunk:
        raise ValueError(f"{type(explainer).__name__} needs at least {min_chunk} images "
                         f"(min_observations), got {n}")
    if backend == "ray":
        from captum_latent.distributed._ray import check_resources, import_ray

        import_ray()
        resources_per_worker = check_resources(resources_per_worker)
    return _Job(adapter, items, fixed, varying, min_chunk, resources_per_worker)


def _prepare_directory(out: Any) -> Path | None:
    """The run directory, created when missing (``None``: results stay in memory)."""
    if out is None:
        return None
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"out={str(directory)!r} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _plan(job: _Job, directory: Path | None, seed: int | None,
          chunk_size: int | None, overwrite: bool, retry_failed: bool) -> _Plan:
    """Fingerprint the run, open (or resume) its directory and list the work left (step 2)."""
    adapter, n = job.adapter, len(job.items)
    existing = _existing_manifest(directory)
    if seed is None:
        seed = existing["seed"] if existing else secrets.randbelow(2**31)
    images_sha256 = items_hash(job.items)

    def manifest_for(size: int) -> dict:
        return _manifest(adapter, job.items, images_sha256, seed, size, job.fixed, job.varying)

    default_size = max(adapter.default_chunk_size(n), job.min_chunk)
    manifest = manifest_for(chunk_size or (existing["chunk_size"] if existing else default_size))
    if (chunk_size is None and existing is not None and overwrite
            and existing["fingerprint"] != manifest["fingerprint"]):
        manifest = manifest_for(default_size)
    if directory is not None:
        manifest = _open_run(directory, existing, manifest, overwrite)
    store = Store(directory)
    state, _, _, part_of = scan_status(store, n)
    if retry_failed and (state == 2).any():
        store.drop({part_of[i] for i in np.flatnonzero(state == 2)})
        state, _, _, part_of = scan_status(store, n)
    units = _units(n, int(chunk_size or manifest["chunk_size"]),
                   job.min_chunk if adapter.batched else 1, state, manifest["seed"], job.fixed,
                   job.varying, adapter.batched)
    return _Plan(store, manifest, units, int((state != 0).sum()))


def _execute(job: _Job, plan: _Plan, backend: str, num_workers: int | None,
             show_progress: bool) -> tuple[bool, dict]:
    """Run the units here or on Ray, storing each finished part (step 3); returns whether the
    run was interrupted, and its statistics."""
    n = len(job.items)
    stats = {"backend": backend, "computed": 0, "skipped": plan.skipped, "num_workers": 1,
             "todo": sum(len(u) for u in plan.units)}
    progress = _progress(show_progress, n, plan.skipped, job.adapter)

    def sink(part: Part) -> None:
        plan.store.add(part)
        stats["computed"] += part.stop - part.start

    try:
        if not plan.units:
            return False, stats
        if backend == "local":
            return _run_local(job.adapter, job.items, plan.units, sink, progress), stats
        from captum_latent.distributed._ray import ensure_ray, plan_workers, run_ray

        ensure_ray(num_workers, job.resources_per_worker)
        workers, resources = plan_workers(num_workers, job.resources_per_worker,
                                          len(plan.units))
        stats["num_workers"] = workers

        def ray_sink(part: Part) -> None:
            sink(part)
            if progress is not None:
                progress.update(part.stop - part.start)

        return run_ray(job.adapter, job.items, plan.units, ray_sink, workers, resources,
                       stats), stats
    finally:
        if progress is not None:
            progress.close()


def _report_interrupt(result: DatasetExplanation, n: int, directory: Path | None,
                      on_interrupt: str) -> None:
    """Step 4 of an interrupted run: raise or warn, saying what was kept."""
    where = f"saved in {directory}" if directory is not None else "kept in memory"
    message = (f"explain_dataset interrupted: {len(result.completed) + len(result.failed)}/"
               f"{n} items are {where}")
    if on_interrupt == "raise":
        raise KeyboardInterrupt(message + "; call again with the same arguments to resume")
    warnings.warn(message + ("; call again with the same arguments to resume"
                             if directory is not None else ""), RuntimeWarning, stacklevel=3)


def _check_options(backend: Any, seed: Any, chunk_size: Any, num_workers: Any, out: Any,
                   on_interrupt: Any, overwrite: Any, retry_failed: Any,
                   show_progress: Any) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if on_interrupt not in ("return", "raise"):
        raise ValueError(f"on_interrupt must be 'return' or 'raise', got {on_interrupt!r}")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int >= 0 or None, got {seed!r}")
        if seed < 0:
            raise ValueError(f"seed must be an int >= 0 or None, got {seed!r}")
    for name, value in (("chunk_size", chunk_size), ("num_workers", num_workers)):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path (str or os.PathLike) or None, got "
                        f"{type(out).__name__}")
    for name, value in (("overwrite", overwrite), ("retry_failed", retry_failed),
                        ("show_progress", show_progress)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _check_kwargs(adapter: ExplainerAdapter, explain_kwargs: Any, per_item_kwargs: Any,
                  n: int) -> tuple[dict, dict]:
    fixed = {} if explain_kwargs is None else explain_kwargs
    varying = {} if per_item_kwargs is None else per_item_kwargs
    for name, value in (("explain_kwargs", fixed), ("per_item_kwargs", varying)):
        if not isinstance(value, Mapping):
            raise TypeError(f"{name} must be a dict, got {type(value).__name__}")
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{name} keys must be argument names (str), got {bad}")
    both = sorted(set(fixed) & set(varying))
    if both:
        raise TypeError(f"{both} given in both explain_kwargs and per_item_kwargs")
    for key, values in varying.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sized):
            raise TypeError(f"per_item_kwargs[{key!r}] must be a sequence with one value per "
                            f"item, got {type(values).__name__}")
        if len(values) != n:
            raise ValueError(f"per_item_kwargs[{key!r}] has {len(values)} values for {n} images")
    adapter.check_kwargs(set(fixed), set(varying))
    return dict(fixed), dict(varying)


def _check_finite(items: Items) -> None:
    data = items.data
    if isinstance(data, np.ndarray) and np.issubdtype(data.dtype, np.inexact):
        bad = ~np.isfinite(data.reshape(len(data), -1)).all(axis=1)
        if bad.any():
            where = np.flatnonzero(bad)
            shown = ", ".join(map(str, where[:10])) + (", ..." if len(where) > 10 else "")
            raise ValueError(f"images contain NaN or Inf in {len(where)} item(s): [{shown}]")


def _versions() -> dict:
    import captum_latent

    versions = {"captum_latent": captum_latent.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    for name in ("torch", "captum", "alibi", "ray"):
        if name in sys.modules:
            versions[name] = str(getattr(sys.modules[name], "__version__", "unknown"))
    return versions


def _manifest(adapter: ExplainerAdapter, items: Items, images_sha256: str, seed: int,
              chunk_size: int, fixed: dict, varying: dict) -> dict:
    parts = {
        "n_items": len(items),
        "images_sha256": images_sha256,
        "explainer": adapter.name,
        "weights_sha256": weights_hash(adapter.explainer),
        "seed": int(seed),
        "kwargs_sha256": content_hash({"explain_kwargs": fixed, "per_item_kwargs": varying}),
        "chunking": int(chunk_size) if adapter.batched else "per-item",
    }
    fingerprint = content_hash(json.dumps(parts, sort_keys=True))
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "fingerprint": fingerprint,
        **parts, "chunk_size": int(chunk_size), "adapter": type(adapter).__name__,
        "item_shape": list(np.shape(items.data)[1:]) if items.is_array else None,
        "item_dtype": str(items.data.dtype) if isinstance(items.data, np.ndarray) else None,
        "explain_kwargs": sorted(fixed), "per_item_kwargs": sorted(varying),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }


def _existing_manifest(directory: Path | None) -> dict | None:
    if directory is None:
        return None
    if (directory / MANIFEST).exists():
        return read_manifest(directory)
    others = [p.name for p in directory.iterdir() if p.name != LOCK]
    others = [name for name in others if not name.startswith(".tmp-")]
    if others:
        shown = ", ".join(sorted(others)[:5]) + (", ..." if len(others) > 5 else "")
        raise ValueError(f"out={str(directory)!r} is not empty and holds no explain_dataset run "
                         f"({shown}); pass an empty or new directory")
    return None


def _open_run(directory: Path, existing: dict | None, manifest: dict,
              overwrite: bool) -> dict:
    clean_temporary(directory)
    if existing is not None and existing.get("fingerprint") != manifest["fingerprint"]:
        if not overwrite:
            diffs = [f"{k}: {existing.get(k)!r} there, {manifest[k]!r} now"
                     for k in _FINGERPRINT_FIELDS if existing.get(k) != manifest[k]]
            raise ValueError(
                f"out={str(directory)!r} holds a different run ({'; '.join(diffs) or 'format'}). "
                "Pass overwrite=True to replace it, or another directory")
        remove_run_files(directory)
        existing = None
    if existing is not None:
        return existing
    write_manifest(directory, manifest)
    return manifest


def _units(n: int, chunk_size: int, min_last: int, state: np.ndarray, seed: int, fixed: dict,
           varying: dict, batched: bool) -> list[Unit]:
    """Units of work: the missing items of each chunk, as contiguous ranges."""
    bounds = list(range(0, n, chunk_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < min_last:
        del bounds[-2]  # a too-small last chunk joins the one before
    units = []
    for a, b in zip(bounds, bounds[1:]):
        missing = state[a:b] == 0
        if batched:
            if missing.all():
                units.append(_unit(a, b, seed, fixed, varying))
            elif missing.any():
                raise ValueError(f"chunk {a}:{b} is partly done; a batched explainer's chunks "
                                 "are all or nothing (the directory was edited?)")
            continue
        i = a
        while i < b:
            if not missing[i - a]:
                i += 1
                continue
            j = i
            while j < b and missing[j - a]:
                j += 1
            units.append(_unit(i, j, seed, fixed, varying))
            i = j
    return units


def _scalar(value: Any) -> Any:
    """Numpy scalars and 0-d arrays/tensors as Python numbers (Captum targets, class ids)."""
    if isinstance(value, np.generic):
        return value.item()
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value


def _unit(a: int, b: int, seed: int, fixed: dict, varying: dict) -> Unit:
    kwargs = tuple({**fixed, **{k: _scalar(v[i]) for k, v in varying.items()}}
                   for i in range(a, b))
    return Unit(a, b, tuple(item_seed(seed, i) for i in range(a, b)), kwargs)


def _progress(show: bool, total: int, initial: int, adapter: ExplainerAdapter) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    name = adapter.name.rsplit(".", 1)[-1]
    return tqdm(total=total, initial=initial, desc=f"explain_dataset[{name}]", unit="item")


def _run_local(adapter: ExplainerAdapter, items: Items, units: list[Unit], sink: Any,
               progress: Any) -> bool:
    """Run in this process; True when interrupted (finished items of the unit are kept)."""
    on_item = progress.update if progress is not None else None
    for unit in units:
        part = Part(unit.start, unit.stop)
        try:
            run_unit(adapter, items.chunk(unit.start, unit.stop), unit, part, on_item)
        except KeyboardInterrupt:
            if part.done and not adapter.batched:
                sink(part.head(part.done))
            return True
        sink(part)
    return False
