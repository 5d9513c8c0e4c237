from __future__ import annotations

import pytest
import torch

from captum_latent.counterfactual import FeatureSemantics, PixelSemantics, default_feature_layers
from captum_latent.zoo import SmallCNN


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_default_layers_are_the_conv_blocks(digits_classifier):
    assert default_feature_layers(digits_classifier) == ["features.block1", "features.block2"]
    plain = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    assert default_feature_layers(plain) == ["0"]


def test_lso_distance_is_zero_at_the_query_and_grows_with_change(digits_classifier, threes):
    with FeatureSemantics().bind(digits_classifier, threes) as evaluate:
        assert _hooks(digits_classifier) == 2
        logits, d0 = evaluate(threes)
        _, d1 = evaluate((threes + 0.1).clamp(0, 1))
        _, d2 = evaluate((threes + 0.4).clamp(0, 1))
    assert _hooks(digits_classifier) == 0
    torch.testing.assert_close(logits, digits_classifier(threes))
    assert d0.abs().max().item() == 0.0
    assert bool((d2 > d1).all()) and bool((d1 > 0).all())


def test_lso_matches_a_manual_computation(digits_classifier, threes):
    other = threes.flip(-1)
    with FeatureSemantics(layers=["features.block1"]).bind(digits_classifier, threes) as ev:
        _, d = ev(other)
    block = digits_classifier.features.block1
    expected = (block(other) - block(threes)).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(d, expected)


def test_hooks_are_removed_when_the_body_raises(digits_classifier, threes):
    with pytest.raises(RuntimeError, match="boom"):
        with FeatureSemantics().bind(digits_classifier, threes):
            raise RuntimeError("boom")
    assert _hooks(digits_classifier) == 0


def test_iso_is_pixel_mse():
    model = SmallCNN(1, 3, 8).eval()
    x = torch.zeros(2, 1, 8, 8)
    with PixelSemantics().bind(model, x) as evaluate:
        _, d = evaluate(x + 0.5)
    assert d.tolist() == [0.25, 0.25]


def test_unknown_layers_are_named_in_the_error(digits_classifier):
    with pytest.raises(ValueError, match="nope"):
        FeatureSemantics(layers=["nope"]).resolve(digits_classifier)
    with pytest.raises(TypeError, match="layers"):
        FeatureSemantics(layers="features.block1")
