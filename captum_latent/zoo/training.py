"""Deterministic in-process training of the zoo's reference models.

Training runs under :func:`torch.random.fork_rng`, so it is reproducible by seed and leaves the
caller's global random state untouched.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from captum_latent.zoo._trainer import fit_minibatches, seeded
from captum_latent.zoo.datasets import ImageDataset
from captum_latent.zoo.models import DCGANDiscriminator, DCGANGenerator, SmallCNN


@dataclass(frozen=True)
class ClassifierConfig:
    """Training configuration of a :class:`~captum_latent.zoo.SmallCNN` (hashed for the cache)."""

    dataset: str
    seed: int = 0
    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    width: int = 32
    hidden: int = 128
    max_shift: int = 2  # random translation augmentation, in pixels
    hflip: bool = False  # random horizontal flips (faces)

    def __post_init__(self) -> None:
        _check_ints(self, ("seed", "epochs", "batch_size", "width", "hidden", "max_shift"))


@dataclass(frozen=True)
class JudgeConfig:
    """Training configuration of a :class:`~captum_latent.zoo.SmallMLP` judge (hashed for the
    cache)."""

    dataset: str
    seed: int = 0
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: tuple[int, ...] = (256, 128)
    max_shift: int = 2
    hflip: bool = False

    def __post_init__(self) -> None:
        _check_ints(self, ("seed", "epochs", "batch_size", "max_shift"))


@dataclass(frozen=True)
class GANConfig:
    """Training configuration of the digits DCGAN (hashed for the cache)."""

    latent_dim: int = 32
    seed: int = 0
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    base_channels: int = 32
    real_label: float = 0.9  # one-sided label smoothing

    def __post_init__(self) -> None:
        _check_ints(self, ("latent_dim", "seed", "steps", "batch_size", "base_channels"))
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")


def _check_ints(config: object, names: tuple[str, ...]) -> None:
    """Zoo settings are ints >= 0 (checked before anything is trained or hashed)."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def _announce(what: str, path: object) -> None:
    print(
        f"captum-latent zoo: training {what} (first use; cached afterwards at {path})",
        file=sys.stderr,
        flush=True,
    )


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` (evaluated in eval mode, ``batch_size`` images at a time;
    the model's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = model(images[start : start + batch_size])
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(labels), 1)


def _fit_classifier(
    build: Callable[[], nn.Module], dataset: ImageDataset,
    config: ClassifierConfig | JudgeConfig, what: str, progress: bool,
) -> tuple[nn.Module, dict[str, float]]:
    """Cross-entropy training of ``build()`` (made under the config's seed) on
    ``dataset.train`` with AdamW and a one-cycle schedule; returns the model and its metrics."""
    with seeded(config.seed) as gen:
        model = build()
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        x, y = dataset.train.images, dataset.train.labels
        start = time.perf_counter()
        fit_minibatches(
            model, x, y, lambda xb, yb: F.cross_entropy(model(xb), yb), opt,
            lambda o, total: torch.optim.lr_scheduler.OneCycleLR(
                o, max_lr=config.lr, total_steps=total),
            epochs=config.epochs, batch_size=config.batch_size, gen=gen,
            max_shift=config.max_shift, hflip=config.hflip,
            desc=f"zoo: {dataset.name} {what}", progress=progress,
        )
    metrics = {
        "train_accuracy": accuracy(model, x, y),
        "test_accuracy": accuracy(model, dataset.test.images, dataset.test.labels),
        "train_seconds": time.perf_counter() - start,
    }
    return model, metrics


def train_classifier(
    dataset: ImageDataset, config: ClassifierConfig, progress: bool = True
) -> tuple[SmallCNN, dict[str, float]]:
    """Train a :class:`SmallCNN` on ``dataset.train``; returns the model and its metrics."""
    c, h, _ = dataset.image_shape
    return _fit_classifier(  # type: ignore[return-value]
        lambda: SmallCNN(c, dataset.num_classes, h, width=config.width, hidden=config.hidden),
        dataset, config, "classifier", progress)


def train_judge(
    dataset: ImageDataset, config: JudgeConfig, progress: bool = True
) -> tuple[nn.Module, dict[str, float]]:
    """Train a :class:`SmallMLP` judge on ``dataset.train``; returns the model and its metrics."""
    from captum_latent.zoo.models import SmallMLP

    c, h, w = dataset.image_shape
    return _fit_classifier(
        lambda: SmallMLP(c * h * w, dataset.num_classes, hidden=tuple(config.hidden)),
        dataset, config, "judge", progress)


def train_gan(
    dataset: ImageDataset, config: GANConfig, progress: bool = True,
    evaluate: Callable[[DCGANGenerator], dict[str, float]] | None = None,
) -> tuple[DCGANGenerator, DCGANDiscriminator, dict[str, float]]:
    """Train the DCGAN pair on ``dataset.train.images`` (non-saturating loss, Adam)."""
    with seeded(config.seed) as gen:
        g = DCGANGenerator(config.latent_dim, config.base_channels)
        d = DCGANDiscriminator(config.base_channels)
        for m in [*g.modules(), *d.modules()]:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        betas = (config.beta1, 0.999)
        opt_g = torch.optim.Adam(g.parameters(), lr=config.lr, betas=betas)
        opt_d = torch.optim.Adam(d.parameters(), lr=config.lr, betas=betas)
        x = dataset.train.images
        n, bs = x.shape[0], config.batch_size
        real_t = torch.full((bs,), config.real_label)
        fake_t = torch.zeros(bs)
        start = time.perf_counter()
        bar = tqdm(total=config.steps, disable=not progress, desc="zoo: digits DCGAN",
                   unit="step", leave=False)
        g.train()
        d.train()
        for step in range(config.steps):
            idx = torch.randint(0, n, (bs,), generator=gen)
            real = x[idx]
            z = torch.randn(bs, config.latent_dim, generator=gen)
            fake = g(z)
            loss_d = F.binary_cross_entropy_with_logits(d(real), real_t) + \
                F.binary_cross_entropy_with_logits(d(fake.detach()), fake_t)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(d(fake), torch.ones(bs))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(d=f"{loss_d.item():.2f}", g=f"{loss_g.item():.2f}", refresh=False)
        bar.close()
        g.eval()
        d.eval()
    metrics = {"train_seconds": time.perf_counter() - start}
    if evaluate is not None:
        metrics.update(evaluate(g))
    return g, d, metrics
