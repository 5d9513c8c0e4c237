"""Embedded image data sets: nothing is downloaded.

* :func:`digits` -- scikit-learn's 8x8 handwritten digits, upsampled to 1x28x28.
* :func:`faces` -- scikit-image's ``lfw_subset``: 100 faces and 100 non-faces, 1x25x25.
* :func:`photograph` -- scikit-image's colour sample photographs, resized, as 3xHxW tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: Seed of the fixed train/test splits.
SPLIT_SEED = 0

#: Colour photographs that ship inside scikit-image (no download needed).
PHOTOGRAPHS: tuple[str, ...] = (
    "astronaut",
    "cat",
    "chelsea",
    "coffee",
    "colorwheel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
)


@dataclass(frozen=True)
class ImageSplit:
    """Images ``(N, C, H, W)`` float32 in [0, 1] and integer labels ``(N,)``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image data set with a fixed train/test split.

    Attributes
    ----------
    name : str
        Short name (``"digits"``, ``"faces"``).
    train, test : ImageSplit
        The fixed splits.
    classes : tuple of str
        Human-readable class names, indexed by label.
    """

    name: str
    train: ImageSplit
    test: ImageSplit
    classes: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split; returns sorted train and test indices."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _make_dataset(
    name: str, images: torch.Tensor, labels: np.ndarray, classes: tuple[str, ...],
    test_fraction: float,
) -> ImageDataset:
    train_idx, test_idx = _stratified_split(labels, test_fraction, SPLIT_SEED)
    y = torch.as_tensor(labels, dtype=torch.int64)
    return ImageDataset(
        name=name,
        train=ImageSplit(images[train_idx].contiguous(), y[train_idx].contiguous()),
        test=ImageSplit(images[test_idx].contiguous(), y[test_idx].contiguous()),
        classes=classes,
    )


def digits(size: int = 28) -> ImageDataset:
    """scikit-learn's handwritten digits, upsampled to ``1 x size x size`` in [0, 1].

    1,797 images of the ten digits, split 75/25 (stratified, fixed seed): 1,347 train and
    450 test images. The 8x8 originals (values 0..16) are scaled to [0, 1] and upsampled
    bilinearly.

    Parameters
    ----------
    size : int, default 28
        Side of the upsampled images.

    Examples
    --------
    >>> from captum_latent import zoo
    >>> ds = zoo.digits()
    >>> tuple(ds.train.images.shape), tuple(ds.test.images.shape)
    ((1347, 1, 28, 28), (450, 1, 28, 28))
    """
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    images = images.clamp_(0.0, 1.0)
    classes = tuple(str(i) for i in range(10))
    return _make_dataset("digits", images, bunch.target.astype(np.int64), classes, 0.25)


def faces() -> ImageDataset:
    """scikit-image's ``lfw_subset``: 100 faces and 100 non-faces, ``1 x 25 x 25`` in [0, 1].

    Labels: 0 = non-face, 1 = face. Split 75/25 (stratified, fixed seed): 150 train and 50
    test images.

    Examples
    --------
    >>> from captum_latent import zoo
    >>> ds = zoo.faces()
    >>> ds.classes, tuple(ds.test.images.shape)
    (('non-face', 'face'), (50, 1, 25, 25))
    """
    from skimage.data import lfw_subset

    raw = lfw_subset()  # (200, 25, 25) float64 in [0, 1]: 100 faces first, then 100 non-faces
    images = torch.as_tensor(raw, dtype=torch.float32).unsqueeze(1).clamp(0.0, 1.0)
    labels = np.concatenate([np.ones(100, dtype=np.int64), np.zeros(100, dtype=np.int64)])
    return _make_dataset("faces", images, labels, ("non-face", "face"), 0.25)


def photograph(name: str = "astronaut", size: int | tuple[int, int] = 224) -> torch.Tensor:
    """One of scikit-image's colour photographs as a ``(3, H, W)`` float32 tensor in [0, 1].

    Parameters
    ----------
    name : str, default "astronaut"
        One of :data:`PHOTOGRAPHS`.
    size : int or (int, int), default 224
        Output side (square) or ``(height, width)``; the image is resized with anti-aliasing.

    Examples
    --------
    >>> from captum_latent import zoo
    >>> tuple(zoo.photograph("chelsea", size=64).shape)
    (3, 64, 64)
    """
    if name not in PHOTOGRAPHS:
        raise ValueError(f"name must be one of {PHOTOGRAPHS}, got {name!r}")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(s, int) and s > 0 for s in hw):
        raise ValueError(f"size must be a positive int or a pair of them, got {size!r}")
    import skimage.data
    from skimage.transform import resize

    array = getattr(skimage.data, name)()[..., :3]
    resized = resize(array, hw, anti_aliasing=True, preserve_range=False)  # float64 in [0, 1]
    return torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)), dtype=torch.float32)
