from __future__ import annotations

import pytest
import torch

from captum_latent.metrics import (
    DiscrepancyTrainer,
    classifier_discrepancy,
    concentration,
    mse,
)


def test_mse_per_image():
    x = torch.zeros(3, 2, 4, 4)
    cf = x.clone()
    cf[1] = 1.0
    cf[2, 0, 0, 0] = 4.0
    assert mse(x, cf).tolist() == [0.0, 1.0, 16.0 / 32]


def test_concentration_boxes():
    x = torch.zeros(4, 3, 10, 20)
    cf = x.clone()
    cf[1] = 0.5                          # everything changed -> 1
    cf[2, 2, 4, 5] = -0.2                # one pixel, any channel, sign ignored -> 1 / 200
    cf[3, 0, 1, 2] = 0.3                 # box rows 1..6, cols 2..11 -> 6 * 10 / 200
    cf[3, 1, 6, 11] = 0.3
    cf[3, 0, 5, 5] = 0.04                # below the threshold: ignored
    torch.testing.assert_close(concentration(x, cf), torch.tensor([0.0, 1.0, 0.005, 0.3]))
    torch.testing.assert_close(concentration(x, cf, threshold=0.4), torch.tensor(
        [0.0, 1.0, 0.0, 0.0]))


def test_metrics_validate_inputs():
    with pytest.raises(ValueError, match="same shape"):
        mse(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
    with pytest.raises(TypeError, match="counterfactuals"):
        concentration(torch.zeros(1, 1, 2, 2), [[0.0]])
    with pytest.raises(ValueError, match="threshold"):
        concentration(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), threshold=-1)


@pytest.fixture(scope="module")
def pair(digits_data):
    def take(split, label, n):
        return split.images[split.labels == label][:n]

    x0, x1 = take(digits_data.train, 3, 40), take(digits_data.train, 8, 40)
    t0, t1 = take(digits_data.test, 3, 40), take(digits_data.test, 8, 40)
    test = torch.cat([t0, t1])
    labels = torch.cat([torch.zeros(len(t0)), torch.ones(len(t1))]).long()
    return x0, x1, test, labels


def test_real_target_images_give_no_discrepancy(pair):
    x0, x1, test, labels = pair
    trainer = DiscrepancyTrainer(epochs=15)
    cd = classifier_discrepancy(x0, x1, x1.clone(), test, labels, trainer)
    assert cd.discrepancy == 0.0
    assert cd.reference_accuracy > 0.9


def test_unchanged_queries_give_a_large_discrepancy(pair):
    """Counterfactuals that are just the queries teach F^c nothing about class 1."""
    x0, x1, test, labels = pair
    cd = classifier_discrepancy(x0, x1, x0.clone(), test, labels, DiscrepancyTrainer(epochs=15),
                                repeats=2)
    assert cd.repeats == 2 and len(cd.per_repeat) == 2
    assert sum(cd.per_repeat) / 2 == pytest.approx(cd.discrepancy)
    assert cd.std == pytest.approx(abs(cd.per_repeat[0] - cd.per_repeat[1]) / 2 ** 0.5)
    assert cd.discrepancy > 0.3
    assert cd.counterfactual_accuracy < 0.65


def test_trainer_is_deterministic_and_leaves_global_state_alone(pair):
    x0, x1, test, _ = pair
    images = torch.cat([x0, x1])
    labels = torch.cat([torch.zeros(len(x0)), torch.ones(len(x1))]).long()
    state = torch.random.get_rng_state()
    a = DiscrepancyTrainer(epochs=2).fit(images, labels)(test)
    b = DiscrepancyTrainer(epochs=2).fit(images, labels)(test)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(a, b)


def test_discrepancy_validates_inputs(pair):
    x0, x1, test, labels = pair
    with pytest.raises(ValueError, match="test_labels"):
        classifier_discrepancy(x0, x1, x1, test, labels + 1)
    with pytest.raises(ValueError, match="share"):
        classifier_discrepancy(x0, x1, x1[:, :, :10], test, labels)
    with pytest.raises(ValueError, match="repeats"):
        classifier_discrepancy(x0, x1, x1, test, labels, repeats=0)
