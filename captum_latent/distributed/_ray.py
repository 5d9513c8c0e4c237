"""The Ray backend: a pool of actors, each holding its own copy of the explainer."""

from __future__ import annotations

import os
import time
import warnings
from collections import deque
from typing import Any, Callable

from captum_latent.adapters import Data, ExplainerAdapter, Items
from captum_latent.distributed._storage import Part
from captum_latent.distributed._work import Unit, run_unit

_RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory", "resources", "accelerator_type")
_IN_FLIGHT_PER_WORKER = 2  # a queued unit hides the round trip between units
_READY_WARNING_S = 60.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError("backend='ray' needs Ray: pip install 'captum-latent[ray]'") from e
    return ray


class _Worker:
    """A Ray actor: unpickles the explainer once, then explains units of the shared items."""

    def __init__(self, payload: bytes, data: Data, threads: int | None) -> None:
        import sys

        import ray.cloudpickle

        self.adapter = ray.cloudpickle.loads(payload)
        if threads and "torch" in sys.modules:  # set by the explainer's own import of torch
            sys.modules["torch"].set_num_threads(int(threads))
        self.items = Items(data, "numpy")

    def ready(self) -> int:
        return os.getpid()

    def run(self, unit: Unit) -> Part:
        return run_unit(self.adapter, self.items.chunk(unit.start, unit.stop), unit)


def check_resources(resources: dict | None) -> dict | None:
    if resources is None:
        return None
    if not isinstance(resources, dict):
        raise TypeError(f"resources_per_worker must be a dict, got {type(resources).__name__}")
    unknown = sorted(set(resources) - set(_RESOURCE_KEYS))
    if unknown:
        raise TypeError(f"resources_per_worker has unknown keys {unknown}; accepted: "
                        f"{list(_RESOURCE_KEYS)}")
    for key in ("num_cpus", "num_gpus"):
        value = resources.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"resources_per_worker[{key!r}] must be a number >= 0, got {value!r}")
    return dict(resources)


def ensure_ray(num_workers: int | None, resources: dict | None) -> bool:
    """Start a local Ray if none is running; True when this call started it."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    cpus = (resources or {}).get("num_cpus", 1) or 1
    wanted = int(num_workers * cpus) if num_workers else 1
    ray.init(num_cpus=max(wanted, os.cpu_count() or 1), include_dashboard=False,
             log_to_driver=False)
    return True


def plan_workers(num_workers: int | None, resources: dict | None,
                 n_units: int) -> tuple[int, dict]:
    """``(num_workers, actor resources)``: one actor per GPU when the cluster has GPUs, else
    one per CPU; never more actors than units of work."""
    ray = import_ray()
    cluster = ray.cluster_resources()
    gpus, cpus = int(cluster.get("GPU", 0)), int(cluster.get("CPU", 1))
    if resources is None:
        resources = {"num_cpus": 1, "num_gpus": 1} if gpus else {"num_cpus": 1}
    if num_workers is None:
        per_gpu = resources.get("num_gpus", 0)
        per_cpu = resources.get("num_cpus", 1)
        if per_gpu:
            num_workers = int(gpus // per_gpu)
        else:
            num_workers = int(cpus // per_cpu) if per_cpu else cpus
    return max(1, min(int(num_workers), n_units)), resources


def run_ray(
    adapter: ExplainerAdapter,
    items: Items,
    units: list[Unit],
    sink: Callable[[Part], None],
    num_workers: int,
    resources: dict,
    stats: dict | None = None,
) -> bool:
    """Run ``units`` on ``num_workers`` actors; parts go to ``sink`` in unit order.

    A unit whose actor dies (out of memory, a crash in native code) is retried once on a fresh
    actor, then recorded as failed. Returns True when interrupted (``KeyboardInterrupt``):
    every finished unit is given to ``sink`` first, those that finished out of order included;
    units still running are lost. ``stats["startup_seconds"]`` gets the time the actors took
    to load the explainer.
    """
    ray = import_ray()
    try:
        payload = ray.cloudpickle.dumps(adapter)
    except Exception as e:
        raise TypeError(
            f"the explainer ({adapter.name}) cannot be pickled for Ray workers: {e}. Build it "
            "from picklable parts (no open files, locks or lambdas capturing them)"
        ) from e
    threads = max(1, int(resources.get("num_cpus") or 1))
    actor_cls = ray.remote(_Worker).options(**resources)
    data_ref = ray.put(items.data)

    def new_actor() -> Any:
        return actor_cls.remote(payload, data_ref, threads)

    actors = [new_actor() for _ in range(num_workers)]
    spawned = list(actors)
    buffered: dict[int, Part] = {}
    interrupted = False
    try:
        begin = time.perf_counter()
        _wait_ready(ray, actors, resources)
        if stats is not None:
            stats["startup_seconds"] = time.perf_counter() - begin
        pending = deque(enumerate(units))
        in_flight: dict[Any, tuple[int, Any]] = {}
        load = {id(a): 0 for a in actors}
        attempts = dict.fromkeys(range(len(units)), 0)
        replacements = 2 * num_workers
        next_out = 0
        window = 4 * num_workers
        while pending or in_flight:
            for actor in list(actors):
                while (pending and load[id(actor)] < _IN_FLIGHT_PER_WORKER
                       and pending[0][0] - next_out < window):
                    k, unit = pending.popleft()
                    attempts[k] += 1
                    in_flight[actor.run.remote(unit)] = (k, actor)
                    load[id(actor)] += 1
            if not in_flight:
                raise RuntimeError("all Ray workers died; the finished results are saved")
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                k, actor = in_flight.pop(ref)
                load[id(actor)] -= 1
                try:
                    buffered[k] = ray.get(ref)
                    continue
                except ray.exceptions.RayActorError as e:
                    error: Exception = e
                    if actor in actors:
                        actors.remove(actor)
                        if replacements > 0:
                            replacements -= 1
                            fresh = new_actor()
                            spawned.append(fresh)
                            actors.append(fresh)
                            load[id(fresh)] = 0
                    if attempts[k] < 2 and actors:
                        pending.appendleft((k, units[k]))
                        continue
                except ray.exceptions.RayError as e:
                    error = e
                part = Part(units[k].start, units[k].stop)
                text = f"Ray worker error: {type(error).__name__}: {error}"
                part.errors = [text] * len(units[k])
                buffered[k] = part
            while next_out in buffered:
                sink(buffered.pop(next_out))
                next_out += 1
    except KeyboardInterrupt:
        interrupted = True
    finally:
        try:
            for k in sorted(buffered):  # finished out of order: keep them too
                sink(buffered.pop(k))
        finally:
            for actor in spawned:
                ray.kill(actor, no_restart=True)
    return interrupted


def _wait_ready(ray: Any, actors: list, resources: dict) -> None:
    refs = [a.ready.remote() for a in actors]
    start = time.monotonic()
    warned = False
    while True:
        done, waiting = ray.wait(refs, num_returns=len(refs), timeout=5.0)
        if not waiting:
            break
        if not warned and time.monotonic() - start > _READY_WARNING_S:
            warnings.warn(
                f"{len(waiting)} of {len(actors)} Ray workers are not scheduled after "
                f"{_READY_WARNING_S:.0f} s: each asks for {resources} and the cluster has "
                f"{ray.available_resources()} available; pass fewer num_workers or smaller "
                "resources_per_worker", RuntimeWarning, stacklevel=4)
            warned = True
    try:
        ray.get(refs)
    except ray.exceptions.RayError as e:
        raise RuntimeError(f"Ray workers could not load the explainer: {e}") from e
