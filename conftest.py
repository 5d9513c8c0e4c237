"""Shared test configuration.

The zoo's model cache is redirected to a fresh temporary directory for the whole session, so
every test run (and CI) starts cold and deterministic; models are trained once per session.
The session fixtures below share one module between tests: do not mutate them (call
`zoo.digits_classifier()` etc. for a private copy).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
import torch

# Developers may keep a warm cache between runs with CAPTUM_LATENT_TEST_CACHE=DIR (never in CI).
_KEEP = os.environ.get("CAPTUM_LATENT_TEST_CACHE")
_CACHE = _KEEP or tempfile.mkdtemp(prefix="captum_latent_test_cache_")
os.environ["CAPTUM_LATENT_CACHE"] = _CACHE  # before any test imports the zoo
os.environ.setdefault("MPLBACKEND", "Agg")

# One intra-op thread: the models are small, and with torch's default (one thread per core)
# any concurrent load on a 2-core machine makes OpenMP spin-waits 20-100x slower (measured).
# CAPTUM_LATENT_TEST_THREADS=N overrides.
torch.set_num_threads(int(os.environ.get("CAPTUM_LATENT_TEST_THREADS", "1")))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _KEEP:
        shutil.rmtree(_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each device the test should run on: the CPU, and CUDA when present."""
    return torch.device(request.param)


@pytest.fixture
def rng() -> torch.Generator:
    """A seeded CPU random generator."""
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def digits_data():
    from captum_latent import zoo

    return zoo.digits()


@pytest.fixture(scope="session")
def digits_classifier():
    from captum_latent import zoo

    return zoo.digits_classifier(progress=False)


@pytest.fixture(scope="session")
def digits_gan():
    from captum_latent import zoo

    return zoo.digits_gan(progress=False)
