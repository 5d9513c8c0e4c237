"""The models behind an explainer, found for the run fingerprint (distributed/_weights.py)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

from captum_latent import LEG
from captum_latent.distributed._weights import find_modules, weights_hash

NET = nn.Linear(4, 2)


def _global_forward(x):
    return NET(x)


class _Holder:
    def __init__(self, model):
        self.inner = {"models": [model]}


@pytest.mark.parametrize("reach", [
    "module", "bound method", "closure", "partial", "global name", "nested attributes",
    "captum forward_func"])
def test_models_are_found_however_they_are_reached(reach):
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))

    def closure(x):
        return net(x)

    obj = {
        "module": net,
        "bound method": net.forward,
        "closure": closure,
        "partial": functools.partial(lambda model, x: model(x), net),
        "global name": _global_forward,
        "nested attributes": _Holder(net),
        "captum forward_func": LEG(lambda x: net(x)),
    }[reach]
    expected = NET if reach == "global name" else net
    found = find_modules(obj)
    assert len(found) == 1 and found[0] is expected  # the outer module, not its layers


def test_a_changed_weight_or_buffer_changes_the_hash_and_nothing_else_does():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).eval()
    explainer = LEG(lambda x: net(x))
    first = weights_hash(explainer)
    assert first == weights_hash(LEG(lambda x: net(x)))  # a new wrapper, same weights
    net(torch.zeros(2, 3))  # eval mode: buffers unchanged
    assert weights_hash(explainer) == first
    with torch.no_grad():
        net[1].running_mean += 1e-6
    second = weights_hash(explainer)
    assert second != first
    with torch.no_grad():
        net[0].weight[0, 0] += 1.0
    assert weights_hash(explainer) not in (first, second)


def test_no_model_gives_none_and_library_globals_are_not_searched():
    assert weights_hash(lambda x: np.sum(x)) is None
    assert weights_hash(np.mean) is None
    assert find_modules(torch.softmax) == []
    # a function of the library: its module-level names (which include torch itself and
    # many classes) are not explored
    from captum_latent.distributed import _explain

    assert find_modules(_explain.explain_dataset) == []


def test_cycles_and_shared_models_are_visited_once():
    net = nn.Linear(2, 2)
    a, b = _Holder(net), _Holder(net)
    a.other, b.other = b, a
    assert find_modules([a, b, net.forward]) == [net]


def test_meta_and_bfloat16_weights_hash_without_error():
    with torch.device("meta"):
        meta = nn.Linear(2, 2)
    half = nn.Linear(2, 2).to(torch.bfloat16)
    assert weights_hash(meta) == weights_hash(meta)
    assert weights_hash(half) is not None
