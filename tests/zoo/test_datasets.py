from __future__ import annotations

import pytest
import torch

from captum_latent import zoo


def test_digits_shapes_range_and_split():
    ds = zoo.digits()
    assert ds.image_shape == (1, 28, 28)
    assert len(ds.train) == 1347 and len(ds.test) == 450
    for split in (ds.train, ds.test):
        assert split.images.dtype == torch.float32 and split.labels.dtype == torch.int64
        assert float(split.images.min()) >= 0.0 and float(split.images.max()) <= 1.0
        assert set(split.labels.tolist()) == set(range(10))
    assert ds.classes == tuple(str(i) for i in range(10))


def test_digits_split_is_fixed_and_disjoint():
    a, b = zoo.digits(), zoo.digits()
    assert torch.equal(a.test.images, b.test.images)
    # no test image appears in the training split
    train = {tuple(x.flatten().tolist()) for x in a.train.images[:, :, ::4, ::4]}
    dup = sum(tuple(x.flatten().tolist()) in train for x in a.test.images[:, :, ::4, ::4])
    assert dup < 5  # sklearn's digits hold a handful of exact duplicates, no more


def test_digits_upsampling_preserves_the_original():
    from sklearn.datasets import load_digits

    original = torch.as_tensor(load_digits().images[0], dtype=torch.float32) / 16
    small = torch.nn.functional.interpolate(zoo.digits(size=8).train.images[:1], size=8)
    assert torch.allclose(small[0, 0], original, atol=1e-6)


def test_faces_balanced_binary():
    ds = zoo.faces()
    assert ds.image_shape == (1, 25, 25) and ds.classes == ("non-face", "face")
    assert len(ds.train) == 150 and len(ds.test) == 50
    assert ds.test.labels.sum() == 25


@pytest.mark.parametrize("name", zoo.PHOTOGRAPHS)
def test_photograph(name):
    img = zoo.photograph(name, size=(32, 48))
    assert img.shape == (3, 32, 48) and img.dtype == torch.float32
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"name": "lena"}, "name must be one of"), ({"size": 0}, "size"), ({"size": (3,)}, "size")],
)
def test_photograph_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.photograph(**kwargs)


def test_digits_rejects_bad_size():
    with pytest.raises(ValueError, match="size"):
        zoo.digits(size=4)
