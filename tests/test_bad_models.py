"""The bad-model table: every explainer that evaluates a user's model says, in its own words,
what is wrong when the model fails on the input, returns NaN/Inf, or returns one number per
image where the method needs one per class.

Each row builds one explainer around one broken model and explains one zoo digit. Expected: a
``ValueError`` (or ``TypeError``) whose message names the model argument and the failing call
(the input's shape for a model that raises, how many NaN/Inf values for a non-finite one), with
the model's own exception kept as ``__cause__``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import nn

from alibi_ext import DISC, GANAnchorImage
from captum_latent.attr import LEG, LEGTV
from captum_latent.counterfactual import DISCGenerator, PixelSemantics, TVL2Prior
from captum_latent.inverse import MimicGAN, MimicGANDefense


class _Linear(nn.Module):
    """A seeded linear classifier of 1x28x28 images (10 logits)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class _NaNWhenPerturbed(_Linear):
    """Finite on images in [0, 1]; NaN in one logit as soon as a pixel leaves [0, 1] (so the
    first calls succeed and a later, perturbed call is the one that fails)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        bad = ((x < 0) | (x > 1)).flatten(1).any(dim=1)
        out[bad, 0] = float("nan")
        return out


class _AlwaysInf(_Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        out[:, 0] = float("inf")
        return out


class _RGBOnly(nn.Module):
    """A network for 3-channel images: fails inside torch on 1-channel digits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


class _OneScore(_Linear):
    """One logit per image, shape ``(N,)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[:, 0]


def _predict(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """Alibi-style predictor: channel-last numpy to class probabilities (or the model's 1-D
    output as is)."""

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.as_tensor(x).permute(0, 3, 1, 2))
        return torch.softmax(out, 1).numpy() if out.dim() == 2 else out.numpy()

    return predict


@pytest.fixture(scope="module")
def image(digits_data) -> torch.Tensor:
    return digits_data.test.images[:1].clone()


def _leg(model, image, gan):
    return LEG(model).attribute(image, target=0, n_samples=20, seed=0)


def _legtv(model, image, gan):
    return LEGTV(model).attribute(image, target=0, n_samples=20, seed=0)


def _anchors(model, image, gan):
    explainer = GANAnchorImage(_predict(model), (28, 28, 1), gan.generator, seed=0)
    return explainer.explain(image[0].permute(1, 2, 0).numpy(), max_anchor_size=1)


def _disc(model, image, gan):
    return DISC(model, shape=(28, 28, 1), prior=TVL2Prior(), semantics=PixelSemantics()).explain(
        image.permute(0, 2, 3, 1).numpy(), target_class=1)


def _disc_generator(model, image, gan):
    generator = DISCGenerator(model, prior=TVL2Prior(), semantics=PixelSemantics())
    return generator.generate(image, 1, seed=0)


def _defense(model, image, gan):
    return MimicGANDefense(model, MimicGAN.pgd(gan.generator))(image)


EXPLAINERS: dict[str, tuple[Callable[..., Any], str]] = {
    # name -> (call, the name of the model argument in the messages)
    "LEG": (_leg, "forward_func"),
    "LEGTV": (_legtv, "forward_func"),
    "GANAnchorImage": (_anchors, "predictor"),
    "DISC": (_disc, "predictor_model"),
    "DISCGenerator": (_disc_generator, "classifier"),
    "MimicGANDefense": (_defense, "classifier"),
}


@pytest.mark.parametrize("explainer", list(EXPLAINERS))
def test_model_failing_on_the_input_is_wrapped_with_the_input_shape(explainer, image,
                                                                     digits_gan):
    call, name = EXPLAINERS[explainer]
    shape = r"shape \([12], (1, 28, 28|28, 28, 1)\)"
    with pytest.raises(ValueError, match=rf"{name} failed on .*{shape}"
                       ) as info:
        call(_RGBOnly(), image, digits_gan)
    assert isinstance(info.value.__cause__, RuntimeError)  # torch's own error, kept


@pytest.mark.parametrize("explainer", list(EXPLAINERS))
def test_non_finite_model_outputs_are_rejected_with_counts(explainer, image, digits_gan):
    call, name = EXPLAINERS[explainer]
    pattern = rf"{name} returned \d+ NaN and \d+ Inf values among \d+ outputs"
    with pytest.raises(ValueError, match=pattern):
        call(_AlwaysInf(), image, digits_gan)


def test_leg_names_the_perturbed_call_that_returned_nan(image):
    """The unperturbed image is fine; the perturbed copies are not: the message says which."""
    with pytest.raises(ValueError, match=r"forward_func returned [1-9]\d* NaN .* on perturbations"):
        LEG(_NaNWhenPerturbed()).attribute(image, target=0, n_samples=20, seed=0,
                                           perturbations_per_eval=5)


@pytest.mark.parametrize("explainer", ["LEG", "LEGTV"])
def test_leg_explains_one_output_per_example_without_a_target(explainer, image):
    cls = LEG if explainer == "LEG" else LEGTV
    with pytest.raises(ValueError, match=r"one number per example.*target=None"):
        cls(_OneScore()).attribute(image, target=0, n_samples=20, seed=0)
    attr = cls(_OneScore()).attribute(image, n_samples=50, seed=0)  # target=None: that number
    assert attr.shape == image.shape and torch.isfinite(attr).all()


def test_anchors_refuse_one_score_per_image_but_take_labels(image, digits_gan):
    with pytest.raises(ValueError, match=r"predictor returned one non-integer number per image"):
        _anchors(_OneScore(), image, digits_gan)

    def labels(x: np.ndarray) -> np.ndarray:  # Alibi's other convention: class labels
        return _predict(_Linear())(x).argmax(axis=1)

    explainer = GANAnchorImage(labels, (28, 28, 1), digits_gan.generator, seed=0)
    assert explainer.predictor(np.zeros((3, 28, 28, 1), np.float32)).shape == (3,)


@pytest.mark.parametrize("explainer", ["DISC", "DISCGenerator"])
def test_disc_needs_one_score_per_class(explainer, image, digits_gan):
    call, name = EXPLAINERS[explainer]
    with pytest.raises(ValueError, match=rf"{name} returns one number per image.*K >= 2"):
        call(_OneScore(), image, digits_gan)
