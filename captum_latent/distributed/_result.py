"""``DatasetExplanation`` (the outcome of a data-set run) and ``load_results``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from captum_latent.distributed._storage import ResultSequence, Store, read_manifest, scan_status


@dataclass
class DatasetExplanation:
    """Per-item results of a data-set run, in data-set order.

    Attributes
    ----------
    results : sequence of dict or None
        ``results[i]`` is item ``i``'s result (a dict of numpy arrays and numpy scalars; see
        `explain_dataset` for the keys each explainer gives), ``None`` when the item
        failed or was not computed (an interrupted run). Read from disk lazily, one part file at
        a time, so a large run need not fit in memory.
    completed : numpy.ndarray
        Sorted indices of the items explained successfully.
    failed : dict of int to str
        Index -> traceback text of every item whose explanation raised.
    interrupted : bool
        The run was stopped by ``KeyboardInterrupt``; call `explain_dataset` again with
        the same arguments to finish it.
    n_items : int
    out : pathlib.Path or None
        The run directory (``None`` for an in-memory run).
    manifest : dict
        Fingerprint, chunk size, explainer, seed and versions of the run.
    seconds : numpy.ndarray
        ``(n_items,)`` wall-clock seconds per item (``nan`` if not computed; for a batched
        explainer such as MimicGAN, the chunk's time shared equally).
    stats : dict
        This call only: ``computed`` and ``skipped`` (already on disk) item counts,
        ``seconds``, ``backend``, ``num_workers``.
    """

    results: Sequence
    completed: np.ndarray
    failed: dict[int, str]
    interrupted: bool
    n_items: int
    out: Path | None
    manifest: dict
    seconds: np.ndarray
    stats: dict = field(default_factory=dict)

    @property
    def missing(self) -> np.ndarray:
        """Indices neither completed nor failed (left by an interruption)."""
        done = np.zeros(self.n_items, dtype=bool)
        done[self.completed] = True
        done[list(self.failed)] = True
        return np.flatnonzero(~done)

    @property
    def complete(self) -> bool:
        """Every item was attempted (completed or failed)."""
        return len(self.missing) == 0

    def stack(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, values)``: result ``key`` of every completed item, stacked.

        Examples
        --------
        >>> import numpy as np
        >>> from captum_latent.distributed import explain_dataset
        >>> run = explain_dataset(lambda x: {"mean": x.mean()}, np.arange(6.0).reshape(3, 2))
        >>> run.stack("mean")
        (array([0, 1, 2]), array([0.5, 2.5, 4.5]))
        """
        if not len(self.completed):
            raise ValueError("no item is completed")
        values = []
        for i in self.completed:
            record = self.results[int(i)]
            if key not in record:
                raise KeyError(f"item {int(i)} has no result {key!r}; it has {sorted(record)}")
            values.append(np.asarray(record[key]))
        return self.completed.copy(), np.stack(values)

    def __repr__(self) -> str:
        where = f"out={str(self.out)!r}" if self.out is not None else "in memory"
        flag = ", interrupted" if self.interrupted else ""
        return (f"DatasetExplanation({len(self.completed)}/{self.n_items} completed, "
                f"{len(self.failed)} failed, {len(self.missing)} missing{flag}; {where})")


def summarise(store: Store, manifest: dict, interrupted: bool, stats: dict) -> DatasetExplanation:
    n = int(manifest["n_items"])
    state, failed, seconds, _ = scan_status(store, n)
    return DatasetExplanation(
        results=ResultSequence(store, n), completed=np.flatnonzero(state == 1),
        failed=dict(sorted(failed.items())), interrupted=interrupted, n_items=n,
        out=store.directory, manifest=manifest, seconds=seconds, stats=stats,
    )


def load_results(out: str | os.PathLike) -> DatasetExplanation:
    """Open a run directory written by `explain_dataset` (finished or not).

    Parameters
    ----------
    out : str or path
        The directory given to ``explain_dataset(..., out=...)``.

    Returns
    -------
    DatasetExplanation
        Results in data-set order (``None`` for failed or missing items); ``interrupted`` is
        False (use `missing` to see what is left).

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from captum_latent.distributed import explain_dataset, load_results
    >>> out = tempfile.mkdtemp()
    >>> _ = explain_dataset(lambda x: {"total": x.sum()}, np.ones((4, 3)), out)
    >>> [float(r["total"]) for r in load_results(out).results]
    [3.0, 3.0, 3.0, 3.0]
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path, got {type(out).__name__}")
    directory = Path(out)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    manifest = read_manifest(directory)
    return summarise(Store(directory), manifest, False, {})
