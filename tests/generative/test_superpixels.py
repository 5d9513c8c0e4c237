from __future__ import annotations

import pytest
import torch

from captum_latent.generative.superpixels import random_superpixel_masks, superpixel_segments


def test_segments_cover_the_image_with_consecutive_labels() -> None:
    images = torch.zeros(3, 1, 28, 28)
    images[:, :, 5:20, 8:14] = 1.0
    seg = superpixel_segments(images, n_segments=15)
    assert seg.shape == (3, 28, 28) and seg.dtype == torch.int64
    for s in seg:
        labels = s.unique()
        assert torch.equal(labels, torch.arange(len(labels))) and len(labels) >= 3


def test_masks_keep_whole_superpixels_with_probability() -> None:
    seg = torch.arange(16).repeat_interleave(4).reshape(1, 8, 8).repeat(400, 1, 1)
    masks = random_superpixel_masks(seg, keep_prob=0.5, seed=0)
    assert masks.shape == (400, 1, 8, 8)
    # constant on every superpixel, at least one kept, about half kept
    per_segment = masks[:, 0].reshape(400, 16, 4)
    assert bool((per_segment.amax(2) == per_segment.amin(2)).all())
    assert bool((masks.flatten(1).sum(1) >= 4).all())
    assert abs(float(masks.mean()) - 0.5) < 0.05
    assert torch.equal(masks, random_superpixel_masks(seg, keep_prob=0.5, seed=0))
    with pytest.raises(ValueError, match="keep_prob"):
        random_superpixel_masks(seg, keep_prob=0.0)
