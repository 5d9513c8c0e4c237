from __future__ import annotations

import numpy as np
import pytest

from alibi_ext.segmentation import QuickshiftSegmentation, quickshift_n_segments


@pytest.mark.parametrize("n_segments", [5, 10, 15, 30])
def test_exact_number_of_segments_on_zoo_digits(digits_data, n_segments):
    for image in digits_data.test.images[:25, 0].numpy():
        labels = quickshift_n_segments(image, n_segments)
        assert labels.shape == (28, 28) and labels.dtype == np.int64
        assert set(np.unique(labels)) == set(range(n_segments))


def test_channel_last_and_colour_inputs(digits_data):
    grey = digits_data.test.images[0].permute(1, 2, 0).numpy()
    colour = np.repeat(grey, 3, axis=2)
    assert np.array_equal(QuickshiftSegmentation(12)(grey), QuickshiftSegmentation(12)(colour))


@pytest.mark.parametrize(
    ("image", "n", "match"),
    [
        (np.zeros((4, 4, 2)), 3, "channel-last"),
        (np.full((8, 8), np.nan), 3, "NaN"),
        (np.zeros((3, 3)), 10, "exceeds"),
        (np.zeros((8, 8)), 0, "n_segments"),
    ],
)
def test_bad_inputs(image, n, match):
    with pytest.raises(ValueError, match=match):
        quickshift_n_segments(image, n)
