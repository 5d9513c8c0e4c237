"""Fixtures of the core's tests: a toy generator (tests/toys.py) and images it made."""

from __future__ import annotations

import pytest
import torch
from toys import ToyGenerator


@pytest.fixture
def toy_generator() -> ToyGenerator:
    return ToyGenerator()


@pytest.fixture
def targets(toy_generator: ToyGenerator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in the generator's range (eval mode) and the codes that made them."""
    codes = torch.randn(12, toy_generator.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return toy_generator(codes), codes


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: intra-op threads only add spin-wait (measured
    100x slower with 2 threads under load); restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
