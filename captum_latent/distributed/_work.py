"""What a worker does with one unit of work (shared by the local and the Ray backends)."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from captum_latent.adapters import Data, ExplainerAdapter, to_record
from captum_latent.distributed._storage import Part


@dataclass(frozen=True)
class Unit:
    """Items ``start:stop`` with their seeds and call arguments."""

    start: int
    stop: int
    seeds: tuple[int, ...]
    kwargs: tuple[dict, ...]

    def __len__(self) -> int:
        return self.stop - self.start


def run_unit(
    adapter: ExplainerAdapter,
    items: Data,
    unit: Unit,
    part: Part | None = None,
    on_item: Callable[[int], Any] | None = None,
) -> Part:
    """Explain ``items`` (the unit's items) into ``part``, item by item.

    An exception raised by the explainer for one item is recorded as that item's failure (its
    traceback text) and the next item goes on; ``KeyboardInterrupt`` and other
    ``BaseException``s propagate, leaving ``part``'s first ``part.done`` items filled. A batched
    adapter explains the unit in one call; a failure fails all its items.
    """
    if part is None:
        part = Part(unit.start, unit.stop)
    part.done = 0
    if adapter.batched:
        begin = time.perf_counter()
        try:
            records = adapter.explain_batch(items, unit.seeds[0], list(unit.kwargs))
            if len(records) != len(unit):
                raise RuntimeError(f"{type(adapter).__name__} returned {len(records)} results "
                                   f"for {len(unit)} items")
            records = [to_record(r) for r in records]
        except Exception:
            text = traceback.format_exc()
            part.errors = [text] * len(unit)
        else:
            part.records = list(records)
        seconds = (time.perf_counter() - begin) / max(len(unit), 1)
        part.seconds = [seconds] * len(unit)
        part.done = len(unit)
        if on_item is not None:
            on_item(len(unit))
        return part
    for j in range(len(unit)):
        begin = time.perf_counter()
        try:
            part.records[j] = to_record(adapter.explain_item(items[j], unit.seeds[j],
                                                             dict(unit.kwargs[j])))
        except Exception:
            part.errors[j] = traceback.format_exc()
        part.seconds[j] = time.perf_counter() - begin
        part.done = j + 1
        if on_item is not None:
            on_item(1)
    return part
