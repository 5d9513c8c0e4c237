"""The pixel-space baseline (captum_latent/counterfactual/baselines.py)."""

from __future__ import annotations

import pytest
import torch

from captum_latent.counterfactual import pixel_counterfactuals


def test_each_query_stops_at_its_first_valid_step(digits_classifier, digits_data):
    x = digits_data.test.images[digits_data.test.labels == 3][:6]
    cf = pixel_counterfactuals(digits_classifier, x, 8)
    with torch.no_grad():
        assert bool((digits_classifier(cf).argmax(1) == 8).all())
    assert float((cf - x).abs().max()) > 0 and float(cf.min()) >= 0 and float(cf.max()) <= 1
    # an L1 penalty makes the change no larger
    sparse = pixel_counterfactuals(digits_classifier, x, 8, l1=0.05)
    assert float((sparse - x).abs().sum()) <= float((cf - x).abs().sum()) * 1.05


def test_target_per_query_and_bad_counts():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x = torch.rand(2, 1, 2, 2)
    assert pixel_counterfactuals(model, x, [0, 2], max_steps=5).shape == x.shape
    with pytest.raises(ValueError, match="3 entries for 2 queries"):
        pixel_counterfactuals(model, x, [0, 1, 2])
