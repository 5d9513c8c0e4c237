"""explain_dataset on a local Ray cluster (``ray.init(num_cpus=2)``): same results as in-process,
resume across backends, interruption, failures, and leaving the user's Ray alone."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from captum_latent import LEGTV
from captum_latent.distributed import explain_dataset, load_results

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster():
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # this module's functions are not importable in Ray workers: ship them by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


def noisy_mean(item, seed, fail_on=-1):
    """A plain callable: a seeded random projection of the item."""
    if int(item[0]) == fail_on:
        raise ValueError(f"item {int(item[0])} refused")
    noise = np.random.default_rng(seed).normal(size=item.shape)
    return {"index": int(item[0]), "projection": float((item * noise).sum()), "noise": noise}


def _items(n=12):
    return np.stack([np.full(4, i, dtype=np.float64) for i in range(n)])


def _same(a, b):
    assert len(a.results) == len(b.results)
    assert a.failed.keys() == b.failed.keys()
    for ra, rb in zip(a.results, b.results):
        if ra is None or rb is None:
            assert ra is rb
            continue
        assert ra.keys() == rb.keys()
        for key in ra:
            np.testing.assert_array_equal(ra[key], rb[key])


def test_leg_tv_on_ray_equals_local(ray_cluster, digits_data, digits_classifier, tmp_path):
    explainer = LEGTV(digits_classifier, output_transform="softmax")
    x, y = digits_data.test.images[:6], digits_data.test.labels[:6]
    kw = {"per_item_kwargs": {"target": y}, "explain_kwargs": {"n_samples": 50}, "seed": 11,
          "chunk_size": 2}
    local = explain_dataset(explainer, x, **kw)
    remote = explain_dataset(explainer, x, tmp_path / "ray", backend="ray", num_workers=2,
                             **kw)
    assert remote.stats["num_workers"] == 2 and remote.stats["startup_seconds"] > 0
    assert remote.complete and remote.failed == {}
    _same(local, remote)
    _same(local, load_results(tmp_path / "ray"))
    assert ray.is_initialized()  # the user's Ray is left running


def test_callable_on_ray_equals_local_with_failures_and_resume(ray_cluster, tmp_path):
    kw = {"explain_kwargs": {"fail_on": 5}, "chunk_size": 3}
    local = explain_dataset(noisy_mean, _items(), **kw)
    # half on the local backend (interrupted), the rest on Ray: the same results
    calls = {"n": 0}

    def interrupting(item, seed, fail_on=-1):
        if calls["n"] == 7:
            raise KeyboardInterrupt
        calls["n"] += 1
        return noisy_mean(item, seed, fail_on)

    interrupting.__qualname__ = noisy_mean.__qualname__  # same explainer name: same fingerprint
    interrupting.__module__ = noisy_mean.__module__
    with pytest.warns(RuntimeWarning, match="interrupted"):
        explain_dataset(interrupting, _items(), tmp_path, **kw)
    finished = explain_dataset(noisy_mean, _items(), tmp_path, backend="ray", num_workers=2,
                               show_progress=True, **kw)
    assert finished.stats["skipped"] == 7 and finished.stats["computed"] == 5
    assert sorted(finished.failed) == sorted(local.failed) == [5]
    assert "ValueError: item 5 refused" in finished.failed[5]
    _same(local, finished)


def test_interrupted_ray_run_keeps_finished_chunks_and_resumes(ray_cluster, tmp_path,
                                                             monkeypatch):
    reference = explain_dataset(noisy_mean, _items(), chunk_size=2)
    real_wait = ray.wait
    waits = {"n": 0}

    def wait(refs, num_returns=1, **kwargs):
        if num_returns == 1 and kwargs.get("timeout") is None:
            waits["n"] += 1
            if waits["n"] == 3:  # Ctrl-C while two chunks are done
                raise KeyboardInterrupt
        return real_wait(refs, num_returns=num_returns, **kwargs)

    monkeypatch.setattr(ray, "wait", wait)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        partial = explain_dataset(noisy_mean, _items(), tmp_path, backend="ray",
                                  num_workers=2, chunk_size=2)
    monkeypatch.setattr(ray, "wait", real_wait)
    # two chunks had finished (maybe out of order): both kept, nothing else
    assert partial.interrupted and len(partial.completed) == 4
    resumed = explain_dataset(noisy_mean, _items(), tmp_path, backend="ray", num_workers=2)
    assert resumed.stats["skipped"] == 4 and resumed.stats["computed"] == 8
    assert resumed.complete and not resumed.interrupted
    _same(reference, resumed)


def test_unpicklable_explainer_is_refused(ray_cluster):
    lock = threading.Lock()

    def explain(item):
        with lock:
            return {"x": item}

    with pytest.raises(TypeError, match="cannot be pickled for Ray workers"):
        explain_dataset(explain, _items(2), backend="ray")


def test_bad_ray_resources_are_refused(ray_cluster):
    with pytest.raises(TypeError, match="unknown keys"):
        explain_dataset(noisy_mean, _items(2), backend="ray",
                        resources_per_worker={"cpus": 1})
    with pytest.raises(ValueError, match="num_gpus"):
        explain_dataset(noisy_mean, _items(2), backend="ray",
                        resources_per_worker={"num_gpus": -1})
