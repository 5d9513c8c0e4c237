from __future__ import annotations

import pytest
import torch
from toys import ToyGenerator


@pytest.fixture
def toy_generator() -> ToyGenerator:
    return ToyGenerator()


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models on a shared 2-core machine: one intra-op thread avoids spin-wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
