from __future__ import annotations

import json

import numpy as np
import pytest
from alibi.api.interfaces import Explainer, Explanation

from alibi_ext import DISC
from captum_latent.counterfactual import FixedSchedule, INRPrior, ProgressiveSchedule, TVL2Prior


@pytest.fixture(scope="module")
def threes_nhwc(digits_data):
    x = digits_data.test.images[digits_data.test.labels == 3][:4]
    return x.permute(0, 2, 3, 1).numpy()


def test_explanation_has_alibis_counterfactual_layout(digits_classifier, threes_nhwc):
    explainer = DISC(digits_classifier, shape=(28, 28, 1), prior=INRPrior(fit_steps=100),
                     schedule=ProgressiveSchedule(steps_per_stage=40))
    assert isinstance(explainer, Explainer)
    explanation = explainer.explain(threes_nhwc, target_class=8)
    assert isinstance(explanation, Explanation)
    cf = explanation.cf
    assert set(cf) == {"X", "class", "proba", "diff"}
    assert cf["X"].shape == threes_nhwc.shape and cf["proba"].shape == (4, 10)
    np.testing.assert_allclose(cf["diff"], cf["X"] - threes_nhwc, atol=1e-6)
    assert cf["class"].tolist() == [8, 8, 8, 8]
    assert explanation.orig_class.tolist() == [3, 3, 3, 3]
    assert explanation.valid.all()
    assert explanation.meta["name"] == "DISC"
    assert explanation.meta["params"]["lambda_target"] == 1.0

    payload = json.loads(explanation.to_json())
    assert np.asarray(payload["data"]["cf"]["X"]).shape == threes_nhwc.shape
    restored = Explanation.from_json(explanation.to_json())
    assert restored.meta["params"]["seed"] == 0


def test_single_instance_and_other_target(digits_classifier, threes_nhwc):
    explainer = DISC(digits_classifier, prior=TVL2Prior(), schedule=FixedSchedule(3))
    explanation = explainer.explain(threes_nhwc[0])  # (H, W, C): one instance
    assert explanation.cf["X"].shape == (1, 28, 28, 1)
    runner_up = np.argsort(explanation.orig_proba[0])[-2]
    assert explanation.target_class.tolist() == [runner_up]


def test_bad_inputs_are_reported(digits_classifier, threes_nhwc):
    with pytest.raises(ValueError, match=r"predictor_model failed on .*shape \(1, 3, 28, 28\)"):
        DISC(digits_classifier, shape=(28, 28, 3))
    with pytest.raises(TypeError, match="predictor_model"):
        DISC(lambda x: x)
    explainer = DISC(digits_classifier, shape=(28, 28, 1), prior=TVL2Prior(),
                     schedule=FixedSchedule(2))
    with pytest.raises(TypeError, match="numpy"):
        explainer.explain(threes_nhwc.tolist())
    with pytest.raises(ValueError, match=r"X must have shape \(N, 28, 28, 1\)"):
        explainer.explain(threes_nhwc[:, :20])
    with pytest.raises(TypeError, match="float"):
        explainer.explain((threes_nhwc * 255).astype(np.uint8))
