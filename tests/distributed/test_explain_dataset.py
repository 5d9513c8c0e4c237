"""explain_dataset on the local backend: results, ordering, resume, interruption, failures,
fingerprints, bad input, and the adapters of each explainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from captum_latent import LEG, LEGTV
from captum_latent.distributed import (
    DatasetExplanation,
    explain_dataset,
    item_seed,
    load_results,
)


class Recorder:
    """A plain-callable explainer that counts its calls and can fail or be interrupted."""

    def __init__(self, fail_on=(), interrupt_after=None):
        self.calls: list[int] = []
        self.fail_on = set(fail_on)
        self.interrupt_after = interrupt_after

    def __call__(self, item, seed, scale=1.0):
        index = int(item[0])
        if self.interrupt_after is not None and len(self.calls) == self.interrupt_after:
            raise KeyboardInterrupt
        self.calls.append(index)
        if index in self.fail_on:
            raise ValueError(f"item {index} is bad")
        noise = np.random.default_rng(seed).normal(size=3)
        return {"index": index, "value": item * scale, "noise": noise, "meta": {"seed": seed}}


def _items(n=10):
    return np.stack([np.full(2, i, dtype=np.float64) for i in range(n)])


def _toy_model():
    w = torch.zeros(1, 1, 6, 6)
    w[..., 1:3, 1:4] = 1.0
    return lambda x: (x * w).sum(dim=(1, 2, 3)).unsqueeze(1)


# -- results and ordering ----------------------------------------------------------------------
def test_callable_results_in_order_with_per_item_seeds():
    run = explain_dataset(Recorder(), _items(), chunk_size=3, explain_kwargs={"scale": 2.0})
    assert isinstance(run, DatasetExplanation)
    assert run.complete and not run.interrupted and run.failed == {}
    assert run.completed.tolist() == list(range(10))
    for i, record in enumerate(run.results):
        assert record["index"] == i
        np.testing.assert_array_equal(record["value"], [2.0 * i, 2.0 * i])
        assert record["meta.seed"] == item_seed(0, i)
        np.testing.assert_array_equal(record["noise"],
                                      np.random.default_rng(item_seed(0, i)).normal(size=3))
    indices, values = run.stack("index")
    assert indices.tolist() == values.tolist() == list(range(10))
    assert np.isfinite(run.seconds).all() and run.stats["computed"] == 10


def test_leg_results_do_not_depend_on_chunking_and_match_direct_calls(tmp_path):
    x = torch.rand(7, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    explainer = LEG(_toy_model())
    kw = {"explain_kwargs": {"target": 0, "n_samples": 60}, "seed": 3}
    runs = [explain_dataset(explainer, x, tmp_path / f"c{c}", chunk_size=c, **kw)
            for c in (1, 3, 7)]
    for i in range(7):
        direct = explainer.attribute(x[i:i + 1], target=0, n_samples=60, seed=item_seed(3, i))
        for run in runs:
            np.testing.assert_array_equal(run.results[i]["attribution"], direct[0].numpy())
    parts = sorted(p.name for p in (tmp_path / "c3").iterdir() if p.name.startswith("part-"))
    assert parts == ["part-000000000-000000003.npz", "part-000000003-000000006.npz",
                     "part-000000006-000000007.npz"]


def test_legtv_records_its_certificate(digits_data, digits_classifier):
    x, y = digits_data.test.images[:2], digits_data.test.labels[:2]
    run = explain_dataset(LEGTV(digits_classifier, output_transform="softmax"), x,
                          per_item_kwargs={"target": y}, explain_kwargs={"n_samples": 40})
    record = run.results[1]
    assert record["attribution"].shape == (1, 28, 28)
    assert record["penalty"].shape == record["duality_gap"].shape == (1,)
    assert float(record["feasibility_violation"].max()) <= 1e-6


def test_memory_and_disk_runs_agree_and_load_results(tmp_path):
    memory = explain_dataset(Recorder(), _items(5), chunk_size=2)
    disk = explain_dataset(Recorder(), _items(5), tmp_path / "run", chunk_size=2)
    loaded = load_results(tmp_path / "run")
    assert memory.out is None and loaded.out == tmp_path / "run"
    for a, b, c in zip(memory.results, disk.results, loaded.results):
        assert a.keys() == b.keys() == c.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], c[key])
            assert type(a[key]) is type(c[key])
    assert loaded.results[-1]["index"] == 4 and loaded.results[1:3][1]["index"] == 2
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["n_items"] == 5 and manifest["chunk_size"] == 2
    assert manifest["explainer"].endswith("Recorder") and "numpy" in manifest["versions"]
    assert not [p for p in os.listdir(tmp_path / "run") if p.startswith(".")]  # no tmp, no lock


# -- resume, interruption, failures --------------------------------------------------------
def test_resume_skips_finished_items(tmp_path):
    first = Recorder()
    explain_dataset(first, _items(), tmp_path, chunk_size=4)
    again = Recorder()
    run = explain_dataset(again, _items(), tmp_path)
    assert again.calls == [] and run.stats == {**run.stats, "computed": 0, "skipped": 10}
    assert [r["index"] for r in run.results] == list(range(10))


def test_interrupted_run_keeps_finished_items_and_resumes(tmp_path):
    reference = explain_dataset(Recorder(), _items(), chunk_size=4)
    stopped = Recorder(interrupt_after=6)
    with pytest.warns(RuntimeWarning, match="interrupted: 6/10 items are saved"):
        partial = explain_dataset(stopped, _items(), tmp_path, chunk_size=4)
    assert partial.interrupted and partial.completed.tolist() == list(range(6))
    assert partial.missing.tolist() == [6, 7, 8, 9] and partial.results[7] is None
    # the two finished items of the interrupted chunk are on disk as their own part
    assert (tmp_path / "part-000000004-000000006.npz").exists()
    resumed = Recorder()
    run = explain_dataset(resumed, _items(), tmp_path, chunk_size=4)
    assert resumed.calls == [6, 7, 8, 9]
    assert run.complete and not run.interrupted and run.stats["skipped"] == 6
    for a, b in zip(run.results, reference.results):
        np.testing.assert_array_equal(a["noise"], b["noise"])


def test_a_drawn_seed_is_stored_and_reused_on_resume(tmp_path):
    with pytest.warns(RuntimeWarning, match="interrupted"):
        partial = explain_dataset(Recorder(interrupt_after=4), _items(), tmp_path, seed=None)
    drawn = partial.manifest["seed"]
    assert partial.results[0]["meta.seed"] == item_seed(drawn, 0)
    run = explain_dataset(Recorder(), _items(), tmp_path, seed=None)
    assert run.complete and run.manifest["seed"] == drawn
    assert run.results[9]["meta.seed"] == item_seed(drawn, 9)


def test_interrupt_can_reraise_after_saving(tmp_path):
    with pytest.raises(KeyboardInterrupt, match="3/10 items are saved"):
        explain_dataset(Recorder(interrupt_after=3), _items(), tmp_path, chunk_size=2,
                        on_interrupt="raise")
    assert load_results(tmp_path).completed.tolist() == [0, 1, 2]
    assert not (tmp_path / ".lock").exists()


def test_failures_are_captured_persisted_and_retried(tmp_path):
    run = explain_dataset(Recorder(fail_on={3, 8}), _items(), tmp_path, chunk_size=4)
    assert run.complete and sorted(run.failed) == [3, 8]
    assert "ValueError: item 3 is bad" in run.failed[3] and "Traceback" in run.failed[3]
    assert run.results[3] is None and run.results[4]["index"] == 4
    assert 3 not in run.completed and len(run.completed) == 8
    assert sorted(load_results(tmp_path).failed) == [3, 8]
    again = Recorder(fail_on={3, 8})
    explain_dataset(again, _items(), tmp_path)
    assert again.calls == []  # failures are final unless retry_failed
    fixed = Recorder()
    retried = explain_dataset(fixed, _items(), tmp_path, retry_failed=True)
    assert sorted(fixed.calls) == [0, 1, 2, 3, 8, 9]  # the chunks that held the failures
    assert retried.failed == {} and len(retried.completed) == 10


# -- fingerprint and directory checks --------------------------------------------------------
@pytest.mark.parametrize("change, field", [
    ({"images": _items(10) + 1}, "images_sha256"),
    ({"images": _items(9)}, "n_items"),
    ({"seed": 1}, "seed"),
    ({"explain_kwargs": {"scale": 3.0}}, "kwargs_sha256"),
    ({"explainer": lambda item: {"x": item}}, "explainer"),
])
def test_fingerprint_mismatch_asks_for_overwrite(tmp_path, change, field):
    base = {"explainer": Recorder(), "images": _items(10), "out": tmp_path}
    explain_dataset(**base)
    args = {**base, **change}
    with pytest.raises(ValueError, match=f"holds a different run.*{field}.*overwrite=True"):
        explain_dataset(**args)
    run = explain_dataset(**args, overwrite=True)
    assert run.complete and load_results(tmp_path).manifest["fingerprint"] == \
        run.manifest["fingerprint"]


def test_a_retrained_model_is_a_different_run(tmp_path):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2))
    explainer = LEG(net)
    images = torch.rand(3, 1, 6, 6)
    kw = {"explain_kwargs": {"target": 0, "n_samples": 50}, "out": tmp_path}
    first = explain_dataset(explainer, images, **kw)
    assert first.manifest["weights_sha256"] is not None
    again = explain_dataset(explainer, images, **kw)  # same weights: resumes, nothing to do
    assert again.complete and again.manifest["fingerprint"] == first.manifest["fingerprint"]
    with torch.no_grad():
        net[1].weight.mul_(2.0)
    with pytest.raises(ValueError, match="holds a different run.*weights_sha256.*overwrite"):
        explain_dataset(explainer, images, **kw)


def test_explaining_leaves_the_weights_hash_unchanged(digits_data, digits_classifier,
                                                      digits_gan):
    """The fingerprint is taken before a resumed run: explaining must not change it (no model
    trained or buffer updated in place), or every resume would refuse its own run.
    GANAnchorImage is checked in tests/alibi_ext/test_anchor_image.py."""
    from alibi_ext import DISC
    from captum_latent.counterfactual import FixedSchedule, PixelSemantics, TVL2Prior
    from captum_latent.distributed._weights import weights_hash
    from captum_latent.inverse import MimicGAN, MimicGANConfig, corruptions

    x = digits_data.test.images[:25]
    mimic = MimicGAN(digits_gan.generator, config=MimicGANConfig(
        outer_iterations=1, surrogate_steps=2, code_steps=2))
    disc = DISC(digits_classifier, shape=(28, 28, 1), prior=TVL2Prior(lr=0.05),
                semantics=PixelSemantics(), schedule=FixedSchedule(steps=5))
    runs = [
        (mimic, lambda: mimic.recover(corruptions.blur_negative(x), seed=0)),
        (disc, lambda: disc.explain(x[:1].permute(0, 2, 3, 1).numpy(), target_class=3)),
    ]
    for explainer, explain in runs:
        before = weights_hash(explainer)
        assert before is not None, type(explainer).__name__
        explain()
        assert weights_hash(explainer) == before, type(explainer).__name__


def test_out_must_be_empty_or_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no explain_dataset run.*notes.txt"):
        explain_dataset(Recorder(), _items(), tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        explain_dataset(Recorder(), _items(), tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        load_results(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_overwrite_removes_only_run_files(tmp_path):
    explain_dataset(Recorder(), _items(), tmp_path, chunk_size=5)
    explain_dataset(Recorder(), _items(4), tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json",
                                                          "part-000000000-000000001.npz",
                                                          "part-000000001-000000002.npz",
                                                          "part-000000002-000000003.npz",
                                                          "part-000000003-000000004.npz"]


def test_a_live_lock_refuses_and_a_stale_one_is_taken(tmp_path):
    explain_dataset(Recorder(), _items(2), tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import socket

        (tmp_path / ".lock").write_text(f"{socket.gethostname()} {sleeper.pid}")
        with pytest.raises(RuntimeError, match="in use by another explain_dataset run"):
            explain_dataset(Recorder(), _items(2), tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert explain_dataset(Recorder(), _items(2), tmp_path).complete  # the pid is gone


# -- bad input --------------------------------------------------------------------------------
def _leg():
    return LEG(_toy_model())


X4 = torch.zeros(3, 1, 6, 6)
BAD = [
    ("empty", lambda t: explain_dataset(Recorder(), np.zeros((0, 2))), ValueError,
     "images is empty"),
    ("empty list", lambda t: explain_dataset(Recorder(), []), ValueError, "images is empty"),
    ("string images", lambda t: explain_dataset(Recorder(), "images/"), TypeError,
     "images must be"),
    ("dict images", lambda t: explain_dataset(Recorder(), {"a": 1}), TypeError,
     "images must be"),
    ("not an explainer", lambda t: explain_dataset(42, X4), TypeError,
     "explainer must be"),
    ("backend", lambda t: explain_dataset(_leg(), X4, backend="dask"), ValueError,
     "backend must be one of"),
    ("chunk_size", lambda t: explain_dataset(_leg(), X4, chunk_size=0), ValueError,
     "chunk_size must be an int >= 1"),
    ("seed", lambda t: explain_dataset(_leg(), X4, seed=-1), ValueError, "seed must be"),
    ("seed float", lambda t: explain_dataset(_leg(), X4, seed=1.5), TypeError, "seed must be"),
    ("out type", lambda t: explain_dataset(_leg(), X4, out=3), TypeError, "out must be a path"),
    ("workers local", lambda t: explain_dataset(_leg(), X4, num_workers=2), ValueError,
     "backend='ray' only"),
    ("on_interrupt", lambda t: explain_dataset(_leg(), X4, on_interrupt="ignore"),
     ValueError, "on_interrupt must be"),
    ("overwrite type", lambda t: explain_dataset(_leg(), X4, overwrite="yes"), TypeError,
     "overwrite must be a bool"),
    ("LEG one image", lambda t: explain_dataset(_leg(), X4[0]), ValueError,
     r"\(N, C, H, W\).*images\[None\]"),
    ("LEG integer images", lambda t: explain_dataset(_leg(), X4.long()), TypeError,
     "floating point"),
    ("LEG reserved seed", lambda t: explain_dataset(_leg(), X4, explain_kwargs={"seed": 1}),
     TypeError, "must not set.*seed"),
    ("LEG unknown kwarg", lambda t: explain_dataset(_leg(), X4, explain_kwargs={"n_sample": 9}),
     TypeError, r"no argument\(s\) \['n_sample'\]"),
    ("kwargs type", lambda t: explain_dataset(_leg(), X4, explain_kwargs=[("target", 0)]),
     TypeError, "explain_kwargs must be a dict"),
    ("per-item length", lambda t: explain_dataset(_leg(), X4, per_item_kwargs={"target": [0]}),
     ValueError, r"has 1 values for 3 images"),
    ("per-item scalar", lambda t: explain_dataset(_leg(), X4, per_item_kwargs={"target": 0}),
     TypeError, "one value per item"),
    ("kwarg in both", lambda t: explain_dataset(_leg(), X4, explain_kwargs={"target": 0},
                                                per_item_kwargs={"target": [0, 0, 0]}),
     TypeError, "both explain_kwargs and per_item_kwargs"),
    ("NaN", lambda t: explain_dataset(_leg(), torch.cat([X4, torch.full((1, 1, 6, 6), np.nan)])),
     ValueError, r"NaN or Inf in 1 item\(s\): \[3\]"),
    ("callable unknown kwarg", lambda t: explain_dataset(Recorder(), _items(),
                                                         explain_kwargs={"shift": 1}),
     TypeError, r"no argument\(s\) \['shift'\]"),
]


@pytest.mark.parametrize("case, call, error, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_before_any_work(tmp_path, case, call, error, match):
    with pytest.raises(error, match=match):
        call(tmp_path)


# -- the other explainers' adapters ---------------------------------------------------------
def test_disc_adapter_seeds_per_item_and_takes_per_item_targets():
    from alibi_ext import DISC
    from captum_latent.counterfactual import FixedSchedule, PixelSemantics, TVL2Prior

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()

    def make():
        return DISC(model, shape=(4, 4, 1), prior=TVL2Prior(lr=0.05),
                    semantics=PixelSemantics(), schedule=FixedSchedule(steps=40))

    x = np.random.default_rng(0).uniform(size=(3, 4, 4, 1)).astype(np.float32)
    explainer = make()
    run = explain_dataset(explainer, x, per_item_kwargs={"target_class": [2, 1, 0]})
    assert explainer.seed == 0  # restored
    assert [int(r["target_class"]) for r in run.results] == [2, 1, 0]
    direct = make()
    direct.seed = item_seed(0, 1)
    expected = direct.explain(x[1:2], target_class=1)
    np.testing.assert_array_equal(run.results[1]["cf.X"], expected.cf["X"][0])
    with pytest.raises(TypeError, match="channel-last numpy"):
        explain_dataset(explainer, torch.as_tensor(x).permute(0, 3, 1, 2))


def test_anchor_adapter_seeds_per_item(digits_data, digits_classifier):
    from alibi_ext import GANAnchorImage

    def predict(x):
        with torch.no_grad():
            out = digits_classifier(torch.as_tensor(x).permute(0, 3, 1, 2))
            return torch.softmax(out, 1).numpy()

    images = digits_data.test.images[:2].permute(0, 2, 3, 1).numpy()
    kw = {"threshold": 0.9, "stop_on_first": True, "max_anchor_size": 2,
          "coverage_samples": 200}
    explainer = GANAnchorImage(predict, (28, 28, 1), sampler="alibi", seed=5)
    run = explain_dataset(explainer, images, explain_kwargs=kw, seed=1)
    assert (explainer.seed, explainer._explain_count) == (5, 0)
    direct = GANAnchorImage(predict, (28, 28, 1), sampler="alibi",
                            seed=item_seed(1, 1)).explain(images[1], **kw)
    record = run.results[1]
    np.testing.assert_array_equal(record["anchor"], direct.anchor)
    assert record["precision"] == pytest.approx(float(direct.precision))
    assert record["feature"].tolist() == list(direct.data["raw"]["feature"])
    with pytest.raises(ValueError, match="channel-first"):
        explain_dataset(explainer, digits_data.test.images[:2].numpy())


def test_gan_anchors_share_one_bank_across_items(digits_data, digits_classifier, digits_gan):
    """The GAN sampler's bank of generator samples is made once and serves every item; an
    item's result does not depend on the items explained before it."""
    from alibi_ext import GANAnchorImage

    def predict(x):
        with torch.no_grad():
            out = digits_classifier(torch.as_tensor(x).permute(0, 3, 1, 2))
            return torch.softmax(out, 1).numpy()

    images = digits_data.test.images[:3].permute(0, 2, 3, 1).numpy()
    kw = {"threshold": 0.9, "max_anchor_size": 1, "coverage_samples": 200}
    explainer = GANAnchorImage(predict, (28, 28, 1), digits_gan.generator, seed=0)
    bank = explainer._bank
    run = explain_dataset(explainer, images, explain_kwargs=kw, seed=1)
    assert explainer._bank is bank and bank.built
    alone = GANAnchorImage(predict, (28, 28, 1), digits_gan.generator, seed=0)
    direct = alone.explain_seeded(images[2], item_seed(1, 2), **kw)
    assert run.results[2]["feature"].tolist() == list(direct.data["raw"]["feature"])
    assert run.results[2]["precision"] == pytest.approx(float(np.asarray(direct.precision)))


def test_mimicgan_adapter_recovers_whole_chunks(digits_data, digits_gan):
    from captum_latent.inverse import MimicGAN, MimicGANConfig, corruptions

    cfg = MimicGANConfig(lr_surrogate=3e-3, lr_codes=0.05, outer_iterations=2,
                         surrogate_steps=2, code_steps=4)
    model = MimicGAN(digits_gan.generator, config=cfg)
    observed = corruptions.blur_negative(digits_data.test.images[:30])
    run = explain_dataset(model, observed, chunk_size=25)  # 30 items: one chunk (5 < 25)
    assert run.manifest["chunk_size"] == 25 and run.complete
    direct = model.recover(observed, seed=item_seed(0, 0))
    np.testing.assert_array_equal(run.results[29]["image"], direct.images[29].numpy())
    np.testing.assert_array_equal(run.results[0]["code"], direct.codes[0].numpy())
    with pytest.raises(ValueError, match="chunk_size must be >= 25"):
        explain_dataset(model, observed, chunk_size=10)
    with pytest.raises(TypeError, match="no per-item arguments"):
        explain_dataset(model, observed, per_item_kwargs={"seed": list(range(30))})
    with pytest.raises(ValueError, match="channel-last"):
        explain_dataset(model, observed.permute(0, 2, 3, 1))


def test_callable_gets_tensors_or_objects_as_given():
    seen = []
    explain_dataset(lambda x: seen.append(type(x).__name__) or 0.0, torch.zeros(2, 3))
    explain_dataset(lambda x: seen.append(type(x).__name__) or 0.0, ["a.png", "b.png"])
    assert seen == ["Tensor", "Tensor", "str", "str"]
    run = explain_dataset(lambda name: {"length": len(name)}, ["a.png", "bb.png"])
    assert [int(r["length"]) for r in run.results] == [5, 6]
    bad = explain_dataset(lambda x: {"obj": object()}, [1])
    assert "unsupported" not in bad.failed[0] and "has type object" in bad.failed[0]
