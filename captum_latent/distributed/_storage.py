"""On-disk layout of a data-set run, and its in-memory twin.

A run directory holds::

    manifest.json                     fingerprint, n_items, chunk size, explainer, versions
    part-000000000-000000008.npz      items [0, 8): results, per-item status, errors, seconds
    part-000000008-000000016.npz      ...

Each part file covers a contiguous range of items and is written atomically (a temporary file
in the same directory, fsync, ``os.replace``), so a part either exists whole or not at all. A
part's ``__index__`` entry (a JSON string) lists, per item, its status (``"ok"`` or
``"failed"``), the traceback of a failure, the seconds it took, and which stored arrays hold its
result keys; arrays are saved under neutral names (``a0``, ``a1``, ...) so that any key
works, and are read back with ``allow_pickle=False``.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from captum_latent.adapters import Record
from captum_latent.distributed._records import from_stored

FORMAT = "captum-latent/dataset-explanation"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
_PART = re.compile(r"^part-(\d{9})-(\d{9})\.npz$")
_TMP_PREFIX = ".tmp-"


@dataclass
class Part:
    """Results of items ``start:stop`` (one computed unit, or the finished prefix of one)."""

    start: int
    stop: int
    records: list[Record | None] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    done: int = 0  # items filled so far (while a worker fills it)

    def __post_init__(self) -> None:
        if not self.records:
            n = self.stop - self.start
            self.records, self.errors, self.seconds = [None] * n, [None] * n, [float("nan")] * n

    @property
    def failed(self) -> list[int]:
        return [self.start + j for j, e in enumerate(self.errors) if e is not None]

    def head(self, n: int) -> Part:
        """The part of the first ``n`` items (what finished before an interruption)."""
        return Part(self.start, self.start + n, self.records[:n], self.errors[:n],
                    self.seconds[:n])


def part_name(start: int, stop: int) -> str:
    return f"part-{start:09d}-{stop:09d}.npz"


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_manifest(directory: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True).encode()
    _atomic_write(directory / MANIFEST, lambda f: f.write(text))


def read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{directory} holds no explain_dataset run ({MANIFEST} missing)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not an explain_dataset manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} has format version {manifest['format_version']}; this "
                         f"captum-latent reads up to {FORMAT_VERSION}: upgrade it")
    return manifest


def write_part(directory: Path, part: Part) -> None:
    arrays: dict[str, np.ndarray] = {}
    entries = []
    for record, error, seconds in zip(part.records, part.errors, part.seconds):
        keys: dict[str, str | None] = {}
        if error is None and record is not None:
            for key, value in record.items():
                if value is None:
                    keys[key] = None
                    continue
                name = f"a{len(arrays)}"
                arrays[name] = np.asarray(value)
                keys[key] = name
        entries.append({"status": "ok" if error is None else "failed", "error": error,
                        "seconds": None if seconds != seconds else seconds, "keys": keys})
    index = {"start": part.start, "stop": part.stop, "format_version": FORMAT_VERSION,
             "items": entries}
    arrays["__index__"] = np.asarray(json.dumps(index))
    _atomic_write(directory / part_name(part.start, part.stop), lambda f: np.savez(f, **arrays))


def _read_index(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["__index__"][()]))


def read_part(path: Path) -> Part:
    with np.load(path, allow_pickle=False) as z:
        index = json.loads(str(z["__index__"][()]))
        part = Part(index["start"], index["stop"])
        for j, entry in enumerate(index["items"]):
            part.errors[j] = entry["error"] if entry["status"] != "ok" else None
            part.seconds[j] = float("nan") if entry["seconds"] is None else entry["seconds"]
            if entry["status"] == "ok":
                part.records[j] = {key: None if name is None else from_stored(z[name])
                                   for key, name in entry["keys"].items()}
    return part


def list_parts(directory: Path) -> list[tuple[int, int, Path]]:
    """``(start, stop, path)`` of every part file, sorted; ``ValueError`` on overlaps."""
    found = []
    for path in directory.iterdir():
        m = _PART.match(path.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), path))
    found.sort()
    for (_s0, e0, p0), (s1, _, p1) in zip(found, found[1:]):
        if s1 < e0:
            raise ValueError(f"{p0.name} and {p1.name} overlap: the directory was edited by hand "
                             "or by two runs at once; remove one of them")
    return found


def remove_run_files(directory: Path) -> None:
    """Delete what a run wrote (manifest, parts, temporary files) and nothing else."""
    for path in directory.iterdir():
        if path.name == MANIFEST or _PART.match(path.name) or path.name.startswith(_TMP_PREFIX):
            path.unlink()


def clean_temporary(directory: Path) -> None:
    for path in directory.iterdir():
        if path.name.startswith(_TMP_PREFIX):
            try:
                path.unlink()
            except OSError:
                pass


class RunLock:
    """An advisory lock file so that two runs never write one directory at once."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK
        self.held = False

    def __enter__(self) -> RunLock:
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self._stale():
                    self.path.unlink(missing_ok=True)
                    continue
                raise RuntimeError(
                    f"{self.path.parent} is in use by another explain_dataset run "
                    f"({self.path.read_text().strip() or 'unknown process'}); wait for it, or "
                    f"delete {self.path} if that run is gone") from None
            with os.fdopen(fd, "w") as f:
                f.write(me)
            self.held = True
            return self
        raise RuntimeError(f"could not take the lock {self.path}")

    def _stale(self) -> bool:
        try:
            host, pid = self.path.read_text().split()
        except (OSError, ValueError):
            return True
        if host != socket.gethostname():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def __exit__(self, *exc: Any) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


class Store:
    """Where finished parts go: a run directory, or memory when ``out`` is None."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._parts: dict[int, Part] = {}  # memory store: start -> part

    def add(self, part: Part) -> None:
        if part.stop <= part.start:
            return
        if self.directory is not None:
            write_part(self.directory, part)
        else:
            self._parts[part.start] = part

    def drop(self, starts: set[int]) -> None:
        """Forget the parts starting at ``starts`` (to recompute them)."""
        if self.directory is None:
            for s in starts:
                self._parts.pop(s, None)
            return
        for start, _stop, path in list_parts(self.directory):
            if start in starts:
                path.unlink()

    def parts_meta(self) -> list[tuple[int, int, Path | Part]]:
        if self.directory is None:
            return [(p.start, p.stop, p) for _, p in sorted(self._parts.items())]
        return [(s, e, p) for s, e, p in list_parts(self.directory)]


def scan_status(store: Store, n_items: int) -> tuple[np.ndarray, dict[int, str], np.ndarray,
                                                      dict[int, int]]:
    """``(state, failed, seconds, part_of)``: per item 0 missing / 1 ok / 2 failed, failure
    tracebacks, seconds (nan when unknown) and the start of the part holding each done item."""
    state = np.zeros(n_items, dtype=np.int8)
    seconds = np.full(n_items, np.nan)
    failed: dict[int, str] = {}
    part_of: dict[int, int] = {}
    for start, stop, source in store.parts_meta():
        if stop > n_items:
            raise ValueError(f"part {start}:{stop} is beyond the run's {n_items} items")
        if isinstance(source, Part):
            errors, secs = source.errors, source.seconds
        else:
            entries = _read_index(source)["items"]
            errors = [e["error"] if e["status"] != "ok" else None for e in entries]
            secs = [np.nan if e["seconds"] is None else e["seconds"] for e in entries]
        for j, (error, sec) in enumerate(zip(errors, secs)):
            i = start + j
            state[i] = 1 if error is None else 2
            seconds[i] = sec
            part_of[i] = start
            if error is not None:
                failed[i] = error
    return state, failed, seconds, part_of


class ResultSequence(Sequence):
    """Per-item results in order, read part by part on demand (one part cached).

    ``results[i]`` is item ``i``'s dict of numpy arrays/scalars, or ``None`` when the item
    failed or has not been computed yet.
    """

    def __init__(self, store: Store, n_items: int) -> None:
        self._n = n_items
        meta = store.parts_meta()
        self._starts = [s for s, _, _ in meta]
        self._meta = meta
        self._cache: tuple[int, Part | None] = (-1, None)

    def __len__(self) -> int:
        return self._n

    def _part(self, k: int) -> Part:
        cached_k, part = self._cache
        if cached_k != k or part is None:
            source = self._meta[k][2]
            part = source if isinstance(source, Part) else read_part(source)
            self._cache = (k, part)
        return part

    def _get(self, i: int) -> Record | None:
        k = bisect.bisect_right(self._starts, i) - 1
        if k < 0 or i >= self._meta[k][1]:
            return None
        record = self._part(k).records[i - self._meta[k][0]]
        if record is None:
            return None
        return {key: from_stored(v) if isinstance(v, np.ndarray) else v
                for key, v in record.items()}

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._get(i) for i in range(*index.indices(self._n))]
        i = int(index)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"item {index} out of range for {self._n} items")
        return self._get(i)

    def __iter__(self) -> Any:
        for i in range(self._n):
            yield self._get(i)

    def __repr__(self) -> str:
        return f"<ResultSequence of {self._n} items>"
