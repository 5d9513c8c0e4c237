from __future__ import annotations

import pytest
import torch

from captum_latent.inverse import corruptions


@pytest.fixture
def images(rng):
    return torch.rand(6, 1, 28, 28, generator=rng)


@pytest.mark.parametrize("name", sorted(corruptions.CORRUPTIONS))
def test_shapes_and_seeded_determinism(images, name):
    f = corruptions.CORRUPTIONS[name]
    a, b = f(images, seed=3), f(images, seed=3)
    assert a.shape == images.shape and torch.equal(a, b)
    assert not torch.allclose(a, images)


def test_colour_images_work(rng):
    x = torch.rand(2, 3, 32, 32, generator=rng)
    for f in corruptions.CORRUPTIONS.values():
        assert f(x, seed=0).shape == x.shape
    assert torch.allclose(corruptions.grey_blur(x)[:, 0], corruptions.grey_blur(x)[:, 2])


def test_binary_threshold_is_binary_and_balanced(images):
    out = corruptions.binary_threshold(images)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(out.mean()) - 0.5) < 0.02


def test_drop_pixels_fraction(images):
    out = corruptions.drop_pixels(images, 0.7, seed=0)
    dropped = float((out == 0.5).float().mean())
    assert 0.65 < dropped < 0.75
    kept = out != 0.5
    assert torch.equal(out[kept], images[kept])


def test_blur_negative_is_a_negative_blur(images):
    out = corruptions.blur_negative(images)
    assert float(out.max()) <= 1 and float(out.min()) >= 0
    assert out.flatten(1).std(1).mean() < images.flatten(1).std(1).mean()  # blurred
    assert torch.allclose(out.mean(), 1 - images.mean(), atol=0.02)  # blur keeps the mean


def test_adversarial_attacks_lower_accuracy(digits_classifier, digits_data):
    x, y = digits_data.test.images[:64], digits_data.test.labels[:64]
    clean = (digits_classifier(x).argmax(1) == y).float().mean()
    for attack in corruptions.ATTACKS:
        adv = corruptions.adversarial(digits_classifier, x, y, attack=attack, epsilon=0.2)
        assert float((adv - x).abs().max()) <= 0.2 + 1e-6
        assert 0 <= float(adv.min()) and float(adv.max()) <= 1
        acc = (digits_classifier(adv).argmax(1) == y).float().mean()
        assert acc < clean - 0.3, (attack, float(acc), float(clean))


@pytest.mark.parametrize("name", sorted(corruptions.PANEL))
def test_panel_corruptions_are_seeded_and_stay_in_range(images, name):
    f = corruptions.PANEL[name]
    a, b = f(images, seed=3), f(images, seed=3)
    assert a.shape == images.shape and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, images) == (name == "none")


def _dot(h=9, w=9, row=4, col=4):
    x = torch.zeros(1, 1, h, w)
    x[..., row, col] = 1
    return x


def test_affine_warp_moves_content_right_down_counter_clockwise_and_larger():
    def peak(x):
        flat = int(x.flatten().argmax())
        return divmod(flat, x.shape[-1])

    assert peak(corruptions.affine_warp(_dot(), shift=(2, 0))) == (4, 6)  # right
    assert peak(corruptions.affine_warp(_dot(), shift=(0, -3))) == (1, 4)  # up
    # a dot right of the centre goes up under a counter-clockwise quarter turn
    assert peak(corruptions.affine_warp(_dot(col=7), angle=90)) == (1, 4)
    # doubling the size doubles the distance from the centre
    assert peak(corruptions.affine_warp(_dot(col=6), scale=2.0)) == (4, 8)
    # the identity changes nothing; the fill shows where the image left the frame
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(corruptions.affine_warp(x), x, atol=1e-6)
    moved = corruptions.affine_warp(x, shift=(3, 0), fill=0.25)
    assert torch.allclose(moved[..., :3], torch.full_like(moved[..., :3], 0.25))


def test_box_blur_gamma_contrast_and_noise(images):
    blurred = corruptions.box_blur(images, 3)
    inner = images.unfold(2, 3, 1).unfold(3, 3, 1).mean((-1, -2))  # valid 3x3 means
    assert torch.allclose(blurred[..., 1:-1, 1:-1], inner, atol=1e-6)
    assert torch.allclose(corruptions.gamma(images, 2.0), images.clamp(0, 1) ** 2)
    low = corruptions.contrast(images, 0.5)
    assert torch.allclose(low - 0.5, 0.5 * (images - 0.5), atol=1e-6)
    noisy = corruptions.gaussian_noise(torch.full((4, 1, 64, 64), 0.5), 0.1, seed=0)
    assert abs(float((noisy - 0.5).std()) - 0.1) < 0.005
    assert not torch.equal(noisy, corruptions.gaussian_noise(torch.full((4, 1, 64, 64), 0.5),
                                                             0.1, seed=1))


def test_jpeg_like_loses_more_at_lower_quality_and_works_in_8x8_blocks(rng):
    x = torch.rand(3, 2, 28, 28, generator=rng)
    errors = [float((corruptions.jpeg_like(x, q) - x).abs().mean()) for q in (95, 50, 10)]
    assert errors[0] < errors[1] < errors[2]
    assert errors[0] < 0.03
    # a smooth image whose 8x8 blocks are constant passes unchanged (only the DC term is used,
    # and constant blocks of multiples of the DC step survive rounding)
    blocks = torch.arange(16.0).reshape(1, 1, 4, 4) * 16 / 255
    flat = blocks.repeat_interleave(8, 2).repeat_interleave(8, 3)
    assert torch.allclose(corruptions.jpeg_like(flat, 50), flat, atol=1e-6)
    # 28 is not a multiple of 8: the output keeps the input's size
    assert corruptions.jpeg_like(x, 10).shape == x.shape


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: corruptions.drop_pixels(torch.rand(2, 28, 28)), ValueError),
        (lambda: corruptions.drop_pixels(torch.ones(2, 1, 4, 4, dtype=torch.long)), TypeError),
        (lambda: corruptions.drop_pixels(torch.rand(2, 1, 4, 4), fraction=2), ValueError),
        (lambda: corruptions.gaussian_blur(torch.rand(2, 1, 4, 4), sigma=0), ValueError),
        (lambda: corruptions.affine_warp(torch.rand(2, 1, 4, 4), scale=0), ValueError),
        (lambda: corruptions.box_blur(torch.rand(2, 1, 4, 4), 4), ValueError),
        (lambda: corruptions.gamma(torch.rand(2, 1, 4, 4), -1), ValueError),
        (lambda: corruptions.gaussian_noise(torch.rand(2, 1, 4, 4), -0.1), ValueError),
        (lambda: corruptions.jpeg_like(torch.rand(2, 1, 4, 4), 0), ValueError),
        (lambda: corruptions.jpeg_like(torch.rand(2, 1, 4, 4), 50.0), ValueError),
        (lambda: corruptions.adversarial(torch.nn.Identity(), torch.rand(1, 1, 2, 2),
                                         torch.zeros(1), attack="cw"), ValueError),
    ],
)
def test_bad_arguments(call, error):
    with pytest.raises(error):
        call()
