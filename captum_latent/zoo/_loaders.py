"""Cached loaders of the zoo's trained reference models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from captum_latent.zoo._cache import cache_path, load_or_train, model_entry, training_seed
from captum_latent.zoo.datasets import digits, faces
from captum_latent.zoo.models import DCGANDiscriminator, DCGANGenerator, SmallCNN, SmallMLP
from captum_latent.zoo.training import (
    ClassifierConfig,
    GANConfig,
    JudgeConfig,
    train_classifier,
    train_gan,
    train_judge,
)

#: Default training configurations (the cache key is a hash of these).
DIGITS_CLASSIFIER_CONFIG = ClassifierConfig(dataset="digits", epochs=20, max_shift=2)
FACES_CLASSIFIER_CONFIG = ClassifierConfig(
    dataset="faces", epochs=40, batch_size=32, max_shift=1, hflip=True
)


@dataclass
class GANPair:
    """A trained generator and its discriminator, with the metrics measured after training.

    Attributes
    ----------
    generator : DCGANGenerator
        ``(B, latent_dim)`` codes drawn from ``N(0, I)`` to ``(B, 1, 28, 28)`` images in [0, 1].
    discriminator : DCGANDiscriminator
        ``(B, 1, 28, 28)`` images to ``(B,)`` real/fake logits.
    metrics : dict
        Training time and sample quality (see :func:`generator_quality`).
    """

    generator: DCGANGenerator
    discriminator: DCGANDiscriminator
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim


def _frozen_eval(module: nn.Module, metrics: dict[str, Any]) -> nn.Module:
    module.eval()
    module.zoo_metrics = dict(metrics)  # type: ignore[assignment]
    return module


def _trained(path: Any, what: str, train: Callable[[], tuple[nn.Module, dict]],
             build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with the cached weights at ``path`` (trained by ``train()`` on first use)."""

    def first_use() -> dict:
        from captum_latent.zoo.training import _announce

        _announce(what, path)
        return model_entry(*train())

    entry = load_or_train(path, first_use)
    model = build()
    model.load_state_dict(entry["state_dict"])
    return _frozen_eval(model, entry["metrics"])


def _classifier(name: str, config: ClassifierConfig, progress: bool) -> SmallCNN:
    dataset = digits() if config.dataset == "digits" else faces()
    c, h, _ = dataset.image_shape
    return _trained(  # type: ignore[return-value]
        cache_path(f"{name}_classifier", config), f"the {name} classifier",
        lambda: train_classifier(dataset, config, progress=progress),
        lambda: SmallCNN(c, dataset.num_classes, h, width=config.width, hidden=config.hidden))


def digits_classifier(seed: int | None = None, progress: bool = True) -> SmallCNN:
    """The reference digits classifier: ``(B, 1, 28, 28)`` in [0, 1] to ``(B, 10)`` logits.

    Trained on :func:`~captum_latent.zoo.digits` on first use (about 20 s on 2 CPU cores),
    then loaded from the cache. Returned in eval mode on the CPU; every call returns a new
    copy. Its measured metrics are in ``model.zoo_metrics``.

    Parameters
    ----------
    seed : int, optional
        Training seed (each seed is cached separately); default ``$CAPTUM_LATENT_ZOO_SEED``,
        else 0 (see :func:`training_seed`).
    progress : bool, default True
        Show a progress bar while training.

    Examples
    --------
    >>> from captum_latent import zoo
    >>> model = zoo.digits_classifier()
    >>> model.zoo_metrics["test_accuracy"] >= 0.97
    True
    """
    config = ClassifierConfig(
        **{**DIGITS_CLASSIFIER_CONFIG.__dict__, "seed": training_seed(seed)}
    )
    return _classifier("digits", config, progress)


def faces_classifier(seed: int | None = None, progress: bool = True) -> SmallCNN:
    """The reference face / non-face classifier: ``(B, 1, 25, 25)`` to ``(B, 2)`` logits.

    Trained on :func:`~captum_latent.zoo.faces` on first use, then loaded from the cache.

    Examples
    --------
    >>> from captum_latent import zoo
    >>> model = zoo.faces_classifier()
    >>> model.zoo_metrics["test_accuracy"] >= 0.9
    True
    """
    config = ClassifierConfig(
        **{**FACES_CLASSIFIER_CONFIG.__dict__, "seed": training_seed(seed)}
    )
    return _classifier("faces", config, progress)


#: Training configurations of the judges (independent classifiers of counterfactuals).
DIGITS_JUDGE_CONFIG = JudgeConfig(dataset="digits")
FACES_JUDGE_CONFIG = JudgeConfig(dataset="faces", epochs=60, batch_size=32, max_shift=1,
                                 hflip=True)


def _judge(config: JudgeConfig, progress: bool) -> SmallMLP:
    dataset = digits() if config.dataset == "digits" else faces()
    c, h, w = dataset.image_shape
    return _trained(  # type: ignore[return-value]
        cache_path(f"{config.dataset}_judge", config), f"the {config.dataset} judge",
        lambda: train_judge(dataset, config, progress=progress),
        lambda: SmallMLP(c * h * w, dataset.num_classes, hidden=tuple(config.hidden)))


def digits_judge(seed: int | None = None, progress: bool = True) -> SmallMLP:
    """An independent digits classifier to judge counterfactuals: a :class:`SmallMLP` (not the
    zoo's convolutional architecture) trained on the same training split. A counterfactual that
    only fools the explained model is rarely classified as its target by the judge
    (:func:`captum_latent.metrics.judge_agreement`).

    Examples
    --------
    >>> from captum_latent import zoo
    >>> zoo.digits_judge().zoo_metrics["test_accuracy"] >= 0.93
    True
    """
    config = JudgeConfig(**{**DIGITS_JUDGE_CONFIG.__dict__, "seed": training_seed(seed)})
    return _judge(config, progress)


def faces_judge(seed: int | None = None, progress: bool = True) -> SmallMLP:
    """An independent face / non-face classifier to judge counterfactuals (see
    :func:`digits_judge`).

    Examples
    --------
    >>> from captum_latent import zoo
    >>> zoo.faces_judge().zoo_metrics["test_accuracy"] >= 0.8
    True
    """
    config = JudgeConfig(**{**FACES_JUDGE_CONFIG.__dict__, "seed": training_seed(seed)})
    return _judge(config, progress)


@torch.no_grad()
def generator_quality(
    generator: nn.Module, classifier: nn.Module, n_samples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Score generator samples with a classifier.

    Returns the mean max-probability the classifier gives to ``n_samples`` images from
    ``N(0, I)`` codes, and the histogram of predicted classes.
    """
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n_samples, generator.latent_dim, generator=gen)
    probs = torch.softmax(classifier(generator(z)), dim=1)
    top = probs.max(dim=1)
    hist = torch.bincount(top.indices, minlength=probs.shape[1])
    return {
        "mean_max_probability": float(top.values.mean()),
        "class_histogram": [int(v) for v in hist],
        "n_samples": n_samples,
    }


def digits_gan(
    latent_dim: int = 32, seed: int | None = None, progress: bool = True
) -> GANPair:
    """The reference DCGAN for the zoo digits (generator + discriminator, with BatchNorm).

    Trained on the digits training split on first use (about a minute on 2 CPU cores), then
    loaded from the cache. Both networks are returned in eval mode; the generator maps
    ``N(0, I)`` codes of size ``latent_dim`` to ``1 x 28 x 28`` images in [0, 1].

    Parameters
    ----------
    latent_dim : int, default 32
        Size of the latent code.
    seed : int, optional
        Training seed; default :func:`training_seed`.
    progress : bool, default True
        Show a progress bar while training.

    Examples
    --------
    >>> import torch
    >>> from captum_latent import zoo
    >>> gan = zoo.digits_gan()
    >>> gan.generator(torch.randn(8, gan.latent_dim)).shape
    torch.Size([8, 1, 28, 28])
    """
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
    config = GANConfig(latent_dim=latent_dim, seed=training_seed(seed))
    path = cache_path("digits_dcgan", config)

    def train() -> dict:
        from captum_latent.zoo.training import _announce

        classifier = digits_classifier(progress=progress)
        _announce("the digits DCGAN", path)
        g, d, metrics = train_gan(digits(), config, progress=progress,
                                  evaluate=lambda gen: generator_quality(gen, classifier))
        return {"generator": g.state_dict(), "discriminator": d.state_dict(),
                "metrics": metrics}

    entry = load_or_train(path, train)
    g = DCGANGenerator(config.latent_dim, config.base_channels)
    g.load_state_dict(entry["generator"])
    d = DCGANDiscriminator(config.base_channels)
    d.load_state_dict(entry["discriminator"])
    metrics = entry["metrics"]
    return GANPair(_frozen_eval(g, metrics), _frozen_eval(d, metrics), dict(metrics))
