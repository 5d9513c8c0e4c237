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


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: corruptions.drop_pixels(torch.rand(2, 28, 28)), ValueError),
        (lambda: corruptions.drop_pixels(torch.ones(2, 1, 4, 4, dtype=torch.long)), TypeError),
        (lambda: corruptions.drop_pixels(torch.rand(2, 1, 4, 4), fraction=2), ValueError),
        (lambda: corruptions.gaussian_blur(torch.rand(2, 1, 4, 4), sigma=0), ValueError),
        (lambda: corruptions.adversarial(torch.nn.Identity(), torch.rand(1, 1, 2, 2),
                                         torch.zeros(1), attack="cw"), ValueError),
    ],
)
def test_bad_arguments(call, error):
    with pytest.raises(error):
        call()
