"""The zoo's on-disk model cache (zoo/_cache.py)."""

from __future__ import annotations

import threading

import torch

from captum_latent.zoo._cache import (
    cache_path,
    config_key,
    load_entry,
    load_or_train,
    model_entry,
    update_entry,
)


def test_a_model_is_trained_once_even_when_threads_ask_together(tmp_path):
    path = tmp_path / "m.pt"
    calls = []

    def train():
        calls.append(1)
        return model_entry(torch.nn.Linear(2, 1), {"accuracy": 0.5})

    entries = []
    threads = [threading.Thread(target=lambda: entries.append(load_or_train(path, train)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(entries) == 4
    assert all(torch.equal(e["state_dict"]["weight"], entries[0]["state_dict"]["weight"])
               for e in entries)
    assert load_or_train(path, train)["metrics"] == {"accuracy": 0.5} and len(calls) == 1


def test_a_nested_load_while_training_does_not_deadlock(tmp_path):
    """The GAN loader needs the classifier while it trains: the lock is re-entrant."""
    inner = lambda: load_or_train(tmp_path / "inner.pt", lambda: {"metrics": {"x": 1}})  # noqa: E731
    entry = load_or_train(tmp_path / "outer.pt", lambda: {"metrics": inner()["metrics"]})
    assert entry == {"metrics": {"x": 1}}


def test_an_unreadable_entry_is_retrained_and_replaced(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"not a checkpoint")
    assert load_entry(path) is None
    entry = load_or_train(path, lambda: {"metrics": {"fresh": True}})
    assert entry["metrics"] == {"fresh": True} and load_entry(path) == entry
    update_entry(path, {"metrics": {"updated": True}})
    assert load_entry(path) == {"metrics": {"updated": True}}


def test_keys_depend_on_name_and_config_only(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTUM_LATENT_CACHE", str(tmp_path))
    assert config_key("a", {"lr": 1}) == config_key("a", {"lr": 1})
    assert config_key("a", {"lr": 1}) != config_key("a", {"lr": 2}) != config_key("b", {"lr": 2})
    assert cache_path("a", {"lr": 1}).parent == tmp_path
