"""Property-based checks (hypothesis) of the GAN samplers' invariants.

For random segmentations, anchors, sample sizes and seeds: the binary rows Alibi receives are
0/1 and keep the anchor's superpixels, coverage requests return masks only (the generator is not
called), and every in-painted example keeps its row's superpixels exactly as in the image.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from alibi_ext import GANInpaintingSampler


class _TinyGenerator(nn.Module):
    """(B, 4) codes -> (B, 1, 8, 8) images in (0, 1); counts its calls."""

    latent_dim = 4

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 64), nn.Sigmoid())
        self.calls = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(z).reshape(-1, 1, 8, 8)


_GENERATOR = _TinyGenerator().eval()
with torch.no_grad():
    _IMAGE = _GENERATOR(torch.randn(1, 4, generator=torch.Generator().manual_seed(1)))[0]
_IMAGE_HWC = _IMAGE.permute(1, 2, 0).numpy()


def _predict(x: np.ndarray) -> np.ndarray:
    return (x.reshape(len(x), -1).mean(1) > 0.5).astype(np.int64)


@st.composite
def cases(draw):
    n_segments = draw(st.integers(2, 8))
    seeds = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seeds)
    labels = rng.integers(0, n_segments, size=(8, 8))
    labels.flat[:n_segments] = np.arange(n_segments)  # every label present
    anchor = tuple(sorted(draw(st.sets(st.integers(0, n_segments - 1), max_size=n_segments))))
    return {
        "segments": labels,
        "anchor": anchor,
        "n": draw(st.integers(1, 40)),
        "p_sample": draw(st.floats(0.1, 0.9)),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def _sampler(case: dict) -> GANInpaintingSampler:
    segments = case["segments"]
    return GANInpaintingSampler(
        _predict, lambda image: segments, True, _IMAGE_HWC, _GENERATOR, xi=0.05,
        p_sample=case["p_sample"], pool_size=32, max_iterations=20, seed=case["seed"],
    )


_SETTINGS = dict(max_examples=20, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(**_SETTINGS)
@given(case=cases())
def test_rows_are_binary_and_keep_the_anchor(case) -> None:
    sampler = _sampler(case)
    anchor, n = case["anchor"], case["n"]
    _, _, labels, rows, _, order = sampler((7, anchor), n)
    k = len(np.unique(case["segments"]))
    assert order == 7 and rows.shape == (n, k) and labels.shape == (n,)
    assert set(np.unique(rows)) <= {0, 1} and set(np.unique(labels)) <= {0, 1}
    assert rows[:, list(anchor)].all()


@settings(**_SETTINGS)
@given(case=cases())
def test_inpaintings_keep_their_rows_superpixels_exactly(case) -> None:
    sampler = _sampler(case)
    anchor = case["anchor"]
    sampler((0, anchor), case["n"])
    images, rows = sampler.examples[anchor]
    assert len(images) > 0  # the image is the generator's own: in-painting always succeeds
    for image, row in zip(images, rows):
        kept = row[sampler.segments].astype(bool)
        assert np.array_equal(image[kept], _IMAGE_HWC[kept])
        assert image.min() >= 0.0 and image.max() <= 1.0  # the rest comes from the generator


@settings(**_SETTINGS)
@given(case=cases())
def test_coverage_masks_never_call_the_generator(case) -> None:
    sampler = _sampler(case)
    before = _GENERATOR.calls
    [masks] = sampler((0, case["anchor"]), case["n"] * 10, compute_labels=False)
    assert _GENERATOR.calls == before
    assert masks.shape == (case["n"] * 10, len(np.unique(case["segments"])))
    assert set(np.unique(masks)) <= {0, 1}
