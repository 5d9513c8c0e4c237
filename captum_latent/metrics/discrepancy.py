"""Classifier discrepancy (DISC paper §3.5).

Given real images of class 0 (``X0``) and class 1 (``X1``) and counterfactuals of ``X0`` for
class 1, train a reference classifier ``F`` on ``[X0, X1]`` and a second classifier ``F^c`` on
``[X0, counterfactuals]`` with the same recipe and seed; the discrepancy is
``Acc(F, X_test) - Acc(F^c, X_test)``. Counterfactuals that carry the target class's real
signature give ``F^c`` a decision boundary close to ``F``'s, hence a small discrepancy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ClassifierDiscrepancy", "DiscrepancyTrainer", "classifier_discrepancy"]


@dataclass(frozen=True)
class ClassifierDiscrepancy:
    """Result of :func:`classifier_discrepancy`.

    Attributes
    ----------
    discrepancy : float
        ``reference_accuracy - counterfactual_accuracy``.
    reference_accuracy : float
        Test accuracy of ``F`` (trained on real ``[X0, X1]``), mean over repeats.
    counterfactual_accuracy : float
        Test accuracy of ``F^c`` (trained on ``[X0, counterfactuals]``), mean over repeats.
    repeats : int
        Number of training seeds averaged.
    per_repeat : tuple of float
        The discrepancy of each training seed (their mean is ``discrepancy``).
    """

    discrepancy: float
    reference_accuracy: float
    counterfactual_accuracy: float
    repeats: int = 1
    per_repeat: tuple[float, ...] = ()

    @property
    def std(self) -> float:
        """Sample standard deviation of ``per_repeat`` (0 for a single repeat).

        With few training images ``F^c`` can settle on a rule that does not transfer for some
        seeds and not for others, so report ``discrepancy`` with this spread."""
        n = len(self.per_repeat)
        if n < 2:
            return 0.0
        mean = sum(self.per_repeat) / n
        return (sum((v - mean) ** 2 for v in self.per_repeat) / (n - 1)) ** 0.5


@dataclass(frozen=True)
class DiscrepancyTrainer:
    """How ``F`` and ``F^c`` are trained: a small two-class :class:`~captum_latent.zoo.SmallCNN`,
    Adam, full-data epochs in seeded random order (deterministic, global state untouched).

    Parameters
    ----------
    epochs : int, default 30
    batch_size : int, default 32
    lr : float, default 2e-3
    width : int, default 8
        Channels of the first conv block.
    hidden : int, default 32
        Units of the hidden layer.
    seed : int, default 0
    device : str, default "cpu"

    Examples
    --------
    >>> import torch
    >>> x = torch.cat([torch.zeros(8, 1, 8, 8), torch.ones(8, 1, 8, 8)])
    >>> y = torch.cat([torch.zeros(8), torch.ones(8)]).long()
    >>> model = DiscrepancyTrainer(epochs=20).fit(x, y)
    >>> (model(x).argmax(1) == y).float().mean().item()
    1.0
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    width: int = 8
    hidden: int = 32
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "width", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.lr, (int, float)) or self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")

    def fit(self, images: torch.Tensor, labels: torch.Tensor) -> nn.Module:
        """Train a fresh two-class model on ``images`` / ``labels``; returned in eval mode."""
        from captum_latent.zoo import SmallCNN

        device = torch.device(self.device)
        images, labels = images.detach().to(device), labels.to(device)
        _, c, h, _ = images.shape
        cuda = [device] if device.type == "cuda" else []
        # initialisation and dropout masks come from a forked, seeded global state
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(self.seed)
            model = SmallCNN(c, 2, h, width=self.width, hidden=self.hidden).to(device)
            gen = torch.Generator().manual_seed(self.seed)
            opt = torch.optim.Adam(model.parameters(), lr=self.lr)
            model.train()
            n = len(labels)
            for _ in range(self.epochs):
                order = torch.randperm(n, generator=gen).to(device)
                for start in range(0, n, self.batch_size):
                    idx = order[start:start + self.batch_size]
                    loss = F.cross_entropy(model(images[idx]), labels[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        return model.eval()


def _images(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != 4 or t.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, C, H, W) batch, got {tuple(t.shape)}")


@torch.no_grad()
def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((model(images).argmax(1) == labels).float().mean())


def classifier_discrepancy(
    x0: torch.Tensor, x1: torch.Tensor, counterfactuals: torch.Tensor,
    test_images: torch.Tensor, test_labels: torch.Tensor,
    trainer: DiscrepancyTrainer | None = None, repeats: int = 1,
) -> ClassifierDiscrepancy:
    """Classifier discrepancy of counterfactuals (§3.5).

    Parameters
    ----------
    x0, x1 : torch.Tensor
        Real training images of class 0 (the queries' class) and class 1 (the target class).
    counterfactuals : torch.Tensor
        Counterfactuals of ``x0`` for class 1.
    test_images, test_labels : torch.Tensor
        Common test set; labels in {0, 1}.
    trainer : DiscrepancyTrainer, optional
        Training recipe shared by ``F`` and ``F^c``.
    repeats : int, default 1
        Train both classifiers with seeds ``trainer.seed + r``, ``r < repeats``, and average
        the accuracies (small training sets make a single run noisy).

    Returns
    -------
    ClassifierDiscrepancy

    Examples
    --------
    >>> import torch
    >>> x0, x1 = torch.zeros(8, 1, 8, 8), torch.ones(8, 1, 8, 8)
    >>> test = torch.cat([x0[:4], x1[:4]]); labels = torch.tensor([0] * 4 + [1] * 4)
    >>> cd = classifier_discrepancy(x0, x1, x1.clone(), test, labels,
    ...                             DiscrepancyTrainer(epochs=20))
    >>> cd.discrepancy
    0.0
    """
    for name, t in (("x0", x0), ("x1", x1), ("counterfactuals", counterfactuals),
                    ("test_images", test_images)):
        _images(name, t)
    shapes = {tuple(t.shape[1:]) for t in (x0, x1, counterfactuals, test_images)}
    if len(shapes) != 1:
        raise ValueError(f"all image batches must share (C, H, W), got {sorted(shapes)}")
    if not isinstance(test_labels, torch.Tensor) or test_labels.shape != (len(test_images),):
        raise ValueError("test_labels must be a tensor of shape (len(test_images),)")
    if not bool(((test_labels == 0) | (test_labels == 1)).all()):
        raise ValueError("test_labels must be 0 (class of x0) or 1 (target class)")
    trainer = DiscrepancyTrainer() if trainer is None else trainer
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    device = torch.device(trainer.device)
    test_images, test_labels = test_images.to(device), test_labels.to(device)

    def labelled(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.cat([torch.zeros(len(a)), torch.ones(len(b))]).long()
        return torch.cat([a.to(device), b.to(device)]), y

    real, fake = labelled(x0, x1), labelled(x0, counterfactuals)
    ref, cf = [], []
    for r in range(repeats):
        seeded = dataclasses.replace(trainer, seed=trainer.seed + r)
        ref.append(_accuracy(seeded.fit(*real), test_images, test_labels))
        cf.append(_accuracy(seeded.fit(*fake), test_images, test_labels))
    ref_acc, cf_acc = sum(ref) / repeats, sum(cf) / repeats
    return ClassifierDiscrepancy(ref_acc - cf_acc, ref_acc, cf_acc, repeats,
                                 tuple(a - b for a, b in zip(ref, cf)))
