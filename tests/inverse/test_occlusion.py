from __future__ import annotations

import pytest
import torch

from captum_latent.inverse import MimicGAN, OcclusionTest
from captum_latent.inverse.occlusion import (
    find_occlusions,
    outlier_statistics,
    reconstruct_around,
)


def _scattered(n: int, fraction: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 28, 28, generator=g) < fraction).float()


@pytest.mark.parametrize("fraction", [0.08, 0.15, 0.3])
def test_scattered_outliers_are_not_an_occlusion(fraction):
    x = _scattered(64, fraction, seed=int(fraction * 100))
    occluded, patches = find_occlusions(x, torch.zeros_like(x))
    assert int(occluded.sum()) <= 1  # a random draw may cluster now and then, rarely
    assert not patches[~occluded].any()


def test_patches_crosses_and_lines_are_occlusions():
    x = torch.zeros(3, 1, 28, 28)
    x[0, :, 6:14, 9:17] = 0.8  # a solid patch
    x[1, :, 13:15, :] = 1.0  # a cross, two pixels wide
    x[1, :, :, 13:15] = 1.0
    x[2, :, [3, 20], :] = 1.0  # two white lines, one pixel thin
    occluded, patches = find_occlusions(x, torch.zeros_like(x))
    assert occluded.all()
    # the patch covers the outliers and their edge (grown by dilation // 2 = 2 pixels)
    assert patches[0, 0, 4:16, 7:19].all() and not patches[0, 0, :3].any()


def test_outlier_statistics_are_what_the_test_reads():
    """Scattered outliers cluster about 1x their density, patches and lines several times;
    find_occlusions flags exactly the images over both bars."""
    scattered = _scattered(32, 0.15, seed=7)
    shapes = torch.zeros(3, 1, 28, 28)
    shapes[0, :, 6:14, 9:17] = 0.8
    shapes[1, :, 13:15, :] = 1.0
    shapes[1, :, :, 13:15] = 1.0
    shapes[2, :, [3, 20], :] = 1.0
    x = torch.cat([scattered, shapes, torch.zeros(1, 1, 28, 28)])
    fraction, clustering = outlier_statistics(x, torch.zeros_like(x))
    assert torch.allclose(fraction[:32], x[:32].flatten(1).mean(1))
    assert 0.6 < float(clustering[:32].median()) < 1.4
    assert bool((clustering[32:35] > 3).all())  # the bar is 2.4
    assert float(fraction[35]) == 0 and float(clustering[35]) == 0  # nothing missed
    test = OcclusionTest()
    expected = (fraction > test.min_outliers) & (clustering > test.clustering)
    assert torch.equal(find_occlusions(x, torch.zeros_like(x))[0], expected)
    # outlier_level (times value_scale) decides what an outlier is
    faint = outlier_statistics(shapes * 0.25, torch.zeros_like(shapes))[0]
    assert float(faint.max()) == 0
    assert bool((outlier_statistics(shapes * 0.25, torch.zeros_like(shapes),
                                    value_scale=0.5)[0] > 0).all())


def test_value_scale_and_thresholds_set_what_is_an_outlier():
    x = torch.zeros(1, 1, 28, 28)
    x[0, :, 6:14, 9:17] = 0.2
    assert not find_occlusions(x, torch.zeros_like(x))[0].item()  # 0.2 < 0.3
    assert find_occlusions(x, torch.zeros_like(x), value_scale=0.5)[0].item()  # 0.2 > 0.15
    too_big = torch.zeros(1, 1, 28, 28)
    too_big[0, :, 2:26, 2:26] = 1.0  # grown, it leaves less than a quarter of the image
    assert not find_occlusions(too_big, torch.zeros_like(too_big))[0].item()
    small = torch.zeros(1, 1, 28, 28)
    small[0, :, 5:7, 5:8] = 1.0  # 6 pixels: under min_outliers
    assert not find_occlusions(small, torch.zeros_like(small))[0].item()
    assert find_occlusions(small, torch.zeros_like(small),
                           test=OcclusionTest(min_outliers=0.005))[0].item()


def test_rgb_outliers_are_the_largest_channel_miss():
    x = torch.zeros(2, 3, 16, 16)
    x[0, 1, 4:10, 4:10] = 1.0  # only green is missed
    occluded, patches = find_occlusions(x, torch.zeros_like(x))
    assert occluded.tolist() == [True, False] and patches.shape == (2, 1, 16, 16)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(outlier_level=0), "outlier_level"),
        (dict(min_outliers=1.0), "min_outliers"),
        (dict(min_kept=True), "min_kept"),
        (dict(clustering=1.0), "clustering"),
        (dict(dilation=4), "dilation"),
        (dict(dilation=0), "dilation"),
    ],
)
def test_occlusion_test_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OcclusionTest(**kwargs)


def test_bad_inputs_are_refused(digits_gan):
    x = torch.zeros(2, 1, 28, 28)
    with pytest.raises(ValueError, match="one shape"):
        find_occlusions(x, torch.zeros(2, 1, 27, 28))
    with pytest.raises(ValueError, match="value_scale"):
        find_occlusions(x, x, value_scale=0.0)
    with pytest.raises(ValueError, match="observations"):
        find_occlusions(torch.full((2, 1, 28, 28), float("nan")), x)
    with pytest.raises(TypeError, match="observations"):
        find_occlusions(x.numpy(), x)
    with pytest.raises(TypeError, match="test"):
        find_occlusions(x, x, test={"clustering": 3})
    with pytest.raises(ValueError, match="value_scale"):
        outlier_statistics(x, x, value_scale=True)
    with pytest.raises(ValueError, match="one shape"):
        outlier_statistics(x, x[:1])
    with pytest.raises(TypeError, match="test"):
        outlier_statistics(x, x, test=0.3)
    search = MimicGAN.pgd(digits_gan.generator).search
    with pytest.raises(ValueError, match="patches"):
        reconstruct_around(search, x, torch.zeros(2, 1, 28, 28), torch.zeros(2, 32))
    with pytest.raises(ValueError, match="patches"):
        reconstruct_around(search, x, [[0]], torch.zeros(2, 32))
    with pytest.raises(ValueError, match="at least one pixel"):
        reconstruct_around(search, x, torch.ones(2, 1, 28, 28, dtype=torch.bool),
                           torch.zeros(2, 32))


def test_reconstruct_around_fills_only_the_patch_and_fits_the_rest(digits_gan, digits_data):
    x = digits_data.test.images[:6]
    occluded = x.clone()
    occluded[:, :, 12:16, :] = 1.0  # a white bar across every digit
    patches = torch.zeros(6, 1, 28, 28, dtype=torch.bool)
    patches[:, :, 10:18] = True
    pgd = MimicGAN.pgd(digits_gan.generator, config="digits")
    start = pgd.recover(occluded, seed=0)
    out = reconstruct_around(pgd.search, occluded, patches, start.codes, seed=0)
    assert torch.equal(out[~patches.expand_as(out)], occluded[~patches.expand_as(out)])
    # inside the patch the bar is gone: the filling is closer to the digit than the bar is
    inside = patches.expand_as(out)
    assert float((out - x).abs()[inside].mean()) < 0.5 * float((occluded - x).abs()[inside].mean())
