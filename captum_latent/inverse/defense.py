"""``MimicGANDefense``: clean a batch with MimicGAN, then classify it."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from captum_latent.inverse.mimicgan import MimicGAN
from captum_latent.validation import call_model, check_model_output


class MimicGANDefense(nn.Module):
    """Clean-then-classify: ``classifier(MimicGAN(x))`` as an ``nn.Module``.

    Because it is an ordinary module returning the classifier's outputs, Captum attributions
    and Alibi explainers run on the defended model unchanged. Gradients pass through the
    cleaning step as the identity (the straight-through / BPDA convention): the attribution of
    ``x`` is the classifier's gradient at the cleaned image.

    The surrogate needs about 25 observations. Call :meth:`fit` once on a batch of corrupted
    inputs to learn it; afterwards any batch (even a single image) is cleaned with that
    surrogate fixed. Before :meth:`fit`, a batch of at least ``mimicgan.min_observations``
    images fits its own surrogate, and a smaller one is cleaned by PGD (identity surrogate),
    with a warning once.

    Parameters
    ----------
    classifier : nn.Module
        Maps cleaned images to outputs (logits or probabilities).
    mimicgan : MimicGAN
        The cleaner (use :meth:`MimicGAN.pgd` for a Defense-GAN defence).
    seed : int, default 0
        Seed of every cleaning call (the defence is deterministic).

    Examples
    --------
    >>> import torch
    >>> from captum_latent import zoo
    >>> from captum_latent.inverse import MimicGAN, MimicGANDefense, corruptions
    >>> gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    >>> defended = MimicGANDefense(clf, MimicGAN(gan.generator, config="digits"))
    >>> x = corruptions.drop_pixels(zoo.digits().test.images[:32], seed=0)
    >>> _ = defended.fit(x)
    >>> defended(x[:3]).shape
    torch.Size([3, 10])
    """

    def __init__(self, classifier: nn.Module, mimicgan: MimicGAN, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be a torch.nn.Module, got "
                            f"{type(classifier).__name__}")
        if not isinstance(mimicgan, MimicGAN):
            raise TypeError(f"mimicgan must be a MimicGAN, got {type(mimicgan).__name__}")
        probe = torch.zeros(2, *mimicgan.image_shape, device=mimicgan.device)
        with torch.no_grad():
            out = call_model("classifier", classifier, probe,
                             when="(two blank images of the generator's shape; the probe call)")
        check_model_output("classifier", out, when="on blank images (the probe call)")
        self.classifier = classifier
        self.mimicgan = mimicgan
        self.seed = seed
        self.surrogate: nn.Module | None = None
        self._warned = False

    def fit(self, observations: torch.Tensor) -> MimicGANDefense:
        """Learn the corruption surrogate on ``observations`` (at least ``min_observations``)."""
        self.surrogate = self.mimicgan.recover(observations, seed=self.seed).surrogate
        return self

    def clean(self, x: torch.Tensor) -> torch.Tensor:
        """The cleaned images ``G(z)`` for the batch ``x``."""
        m = self.mimicgan
        if self.surrogate is not None:
            return m.recover(x, surrogate=self.surrogate, fit_surrogate=False,
                             seed=self.seed).images
        learnable = any(p.requires_grad for p in m.surrogate_template.parameters())
        if learnable and x.shape[0] < m.min_observations:
            if not self._warned:
                warnings.warn(
                    f"MimicGANDefense: a batch of {x.shape[0]} < {m.min_observations} images "
                    "before fit(): cleaning it with PGD (identity surrogate)", stacklevel=3)
                self._warned = True
            from captum_latent.inverse.surrogate import IdentitySurrogate

            return m.recover(x, surrogate=IdentitySurrogate(), fit_surrogate=False,
                             seed=self.seed).images
        return m.recover(x, seed=self.seed).images

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cleaned = self.clean(x.detach()).detach().to(x.dtype)
        straight_through = x + (cleaned - x).detach()
        out = call_model("classifier", self.classifier, straight_through,
                         when="(the cleaned images)")
        check_model_output("classifier", out, when=f"on {x.shape[0]} cleaned images")
        return out
