"""GANAnchorImage saves and loads through Alibi's own save_explainer/load_explainer."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from alibi.saving import load_explainer, save_explainer

from alibi_ext import GANAnchorImage
from captum_latent.persistence import read_state_dict


@pytest.fixture(scope="module")
def predict(digits_classifier):
    def predict(x):
        with torch.no_grad():
            logits = digits_classifier(torch.as_tensor(x).permute(0, 3, 1, 2))
        return torch.softmax(logits, 1).numpy()

    return predict


# a cheap configuration: the point is that both explainers behave identically
_FAST = dict(threshold=0.8, max_anchor_size=1, stop_on_first=True, coverage_samples=200,
             batch_size=20, min_samples_start=20)


def quadrants(image: np.ndarray) -> np.ndarray:
    """Four superpixels (few candidate anchors keep the test cheap)."""
    h, w = image.shape[:2]
    rows, cols = np.arange(h)[:, None] >= h // 2, np.arange(w)[None, :] >= w // 2
    return (2 * rows + cols).astype(np.int64)


def _explainer(predict, generator) -> GANAnchorImage:
    return GANAnchorImage(predict, (28, 28, 1), generator, segmentation_fn=quadrants, seed=3,
                          pool_size=60, max_iterations=25, xi=0.05)


def _same(a, b) -> None:
    assert a.raw["feature"] == b.raw["feature"]
    assert np.array_equal(a.anchor, b.anchor) and np.array_equal(a.segments, b.segments)
    assert float(a.precision) == float(b.precision) and a.coverage == b.coverage
    assert np.array_equal(a.data["gan_samples"]["images"], b.data["gan_samples"]["images"])


def test_round_trip_reproduces_the_explanation(tmp_path, predict, digits_gan, digits_data):
    image = digits_data.test.images[3].permute(1, 2, 0).numpy()
    generator = _GeneratorCopy.of(digits_gan.generator)
    explainer = _explainer(predict, generator)
    save_explainer(explainer, tmp_path / "gan_anchor")
    # the generator is stored as a state dict (plus a weightless skeleton), not as a module
    assert explainer.predictor is not None and explainer.generator is generator
    loaded = load_explainer(tmp_path / "gan_anchor", predictor=predict)
    assert isinstance(loaded, GANAnchorImage) and loaded.generator is not generator
    for (name, p), q in zip(generator.state_dict().items(), loaded.generator.state_dict().values()):
        assert torch.equal(p, q), name
    _same(explainer.explain(image, **_FAST), loaded.explain(image, **_FAST))


def test_explainer_save_method_and_loading_in_a_fresh_process(tmp_path, predict, digits_gan):
    explainer = GANAnchorImage(predict, (28, 28, 1), digits_gan.generator, seed=3)
    explainer.save(tmp_path / "saved")  # Alibi's Explainer.save
    script = textwrap.dedent(
        f"""
        import numpy as np
        from alibi.saving import load_explainer  # alibi_ext is not imported first
        e = load_explainer({str(tmp_path / 'saved')!r},
                           predictor=lambda x: np.ones((len(x), 10)) / 10)
        print(type(e).__name__, type(e.generator).__name__, e.xi, e.seed)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-4:] == ["GANAnchorImage", "DCGANGenerator", str(explainer.xi), "3"]


def test_module_files_hold_state_dicts(tmp_path, digits_gan):
    path = digits_gan.generator.save(tmp_path / "g.pt")
    state = read_state_dict(path)
    assert set(state) == set(digits_gan.generator.state_dict())
    again = type(digits_gan.generator).load(path)
    z = torch.randn(3, digits_gan.latent_dim)
    with torch.no_grad():
        assert torch.equal(again.eval()(z), digits_gan.generator.eval()(z))


class _GeneratorCopy:
    @staticmethod
    def of(module):
        import copy

        return copy.deepcopy(module)


def test_disc_round_trip(tmp_path, digits_classifier, digits_data):
    from alibi_ext import DISC
    from captum_latent.counterfactual import FixedSchedule, TVL2Prior
    from captum_latent.counterfactual.manifold import DEPConsistency

    torch.manual_seed(0)
    loss_predictor = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 1),
                                         torch.nn.Flatten(0))
    explainer = DISC(digits_classifier, shape=(28, 28, 1), prior=TVL2Prior(),
                     manifold=DEPConsistency(loss_predictor, target_loss=0.0),
                     schedule=FixedSchedule(12), seed=7)
    x = digits_data.test.images[:2].permute(0, 2, 3, 1).numpy()
    before = explainer.explain(x, target_class=[4, 6])
    save_explainer(explainer, tmp_path / "disc")
    assert explainer.predictor_model is digits_classifier  # restored after saving
    loaded = load_explainer(tmp_path / "disc", predictor=digits_classifier)
    assert isinstance(loaded, DISC) and loaded.predictor_model is digits_classifier
    after = loaded.explain(x, target_class=[4, 6])
    assert np.array_equal(before.cf["X"], after.cf["X"])
    assert loaded.meta["params"] == explainer.meta["params"]
