"""Shared fixtures of the DISC tests: a small DEP classifier trained once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_dep_model():
    """A DEP classifier trained briefly on the zoo digits (a few seconds), with metrics."""
    from captum_latent import zoo
    from captum_latent.counterfactual import DEPConfig, train_dep_classifier

    config = DEPConfig(dataset="digits", epochs=8, width=8, hidden=32, loss_hidden=32, lr=3e-3)
    return train_dep_classifier(zoo.digits(), config, progress=False)


@pytest.fixture(scope="session")
def threes(digits_data):
    """Eight test-set threes (the source class of the 3 -> 8 pair)."""
    return digits_data.test.images[digits_data.test.labels == 3][:8]
