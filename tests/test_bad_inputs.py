"""The bad-input table: every public entry point rejects misuse early and clearly.

Each row calls one entry point with one mistake a user makes (wrong rank or shape, Alibi's
channel-last arrays given to a Captum class or the reverse, wrong dtype, NaN/Inf, values outside
the generator's range, mismatched devices, a target out of range, a generator whose images do not
match, empty batches, bad settings) and expects a ``ValueError`` or ``TypeError`` whose message
names the argument and what was expected. The models are wrapped in call counters: the error must
come before any expensive work (no classifier or generator call beyond a construction probe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import nn

from alibi_ext import DISC, GANAnchorImage, GANInpaintingSampler, QuickshiftSegmentation
from captum_latent import zoo
from captum_latent.attr import LEG, LEGTV
from captum_latent.counterfactual import DISCGenerator
from captum_latent.generative import GeneratorReversal, pag_score
from captum_latent.inverse import MimicGAN, MimicGANDefense


class _Counting(nn.Module):
    """Counts forward calls of the wrapped model (to show no expensive work was done)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0
        if hasattr(inner, "latent_dim"):
            self.latent_dim = inner.latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


@dataclass
class _Context:
    classifier: _Counting
    generator: _Counting
    predict: Callable[[np.ndarray], np.ndarray]
    image_hwc: np.ndarray
    image_chw: torch.Tensor
    batch: torch.Tensor
    objects: dict[str, Any] = field(default_factory=dict)

    def build(self, name: str, factory: Callable[[], Any]) -> Any:
        if name not in self.objects:
            self.objects[name] = factory()
        return self.objects[name]

    # explainers built once per module, after which calls are counted
    def leg(self) -> LEG:
        return self.build("leg", lambda: LEG(self.classifier))

    def legtv(self) -> LEGTV:
        return self.build("legtv", lambda: LEGTV(self.classifier))

    def anchor(self) -> GANAnchorImage:
        return self.build("anchor", lambda: GANAnchorImage(
            self.predict, (28, 28, 1), self.generator, seed=0))

    def mimic(self) -> MimicGAN:
        return self.build("mimic", lambda: MimicGAN(self.generator))

    def reversal(self) -> GeneratorReversal:
        return self.build("reversal", lambda: GeneratorReversal(self.generator))

    def disc(self) -> DISC:
        return self.build("disc", lambda: DISC(self.classifier, shape=(28, 28, 1)))


@pytest.fixture(scope="module")
def ctx(digits_classifier, digits_gan, digits_data) -> _Context:
    classifier = _Counting(digits_classifier)
    generator = _Counting(digits_gan.generator)

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            images = torch.as_tensor(x).permute(0, 3, 1, 2)
            return torch.softmax(digits_classifier(images), 1).numpy()

    image = digits_data.test.images[0]
    context = _Context(classifier, generator, predict, image.permute(1, 2, 0).numpy(), image,
                       digits_data.test.images[:2].clone())
    for build in (context.leg, context.legtv, context.anchor, context.mimic, context.reversal,
                  context.disc):
        build()  # explainers exist before the calls are counted
    return context


def _nan(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[3] = float("nan")
    return x


def _inf(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[5] = float("inf")
    return x


def _observations(ctx: _Context, n: int = 25) -> torch.Tensor:
    return ctx.batch[:1].expand(n, -1, -1, -1).clone()


V, T = ValueError, TypeError

# (id, call, expected exception, regex the message must match)
CASES: list[tuple[str, Callable[[_Context], Any], type, str]] = [
    # -- LEG / LEG-TV (Captum: channel-first tensors) ------------------------------------
    ("leg-rank-2", lambda c: c.leg().attribute(c.batch[0, 0], target=0), V,
     r"inputs.*\(N, C, H, W\)"),
    ("leg-channel-last", lambda c: c.leg().attribute(c.batch.permute(0, 2, 3, 1), target=0), V,
     r"inputs.*channel-last"),
    ("leg-numpy", lambda c: c.leg().attribute(c.batch.numpy(), target=0), T,
     r"inputs.*torch.Tensor"),
    ("leg-int-dtype", lambda c: c.leg().attribute((c.batch * 16).long(), target=0), T,
     r"inputs.*floating"),
    ("leg-nan", lambda c: c.leg().attribute(_nan(c.batch), target=0), V, r"inputs.*NaN"),
    ("leg-inf", lambda c: c.leg().attribute(_inf(c.batch), target=0), V, r"inputs.*Inf"),
    ("leg-empty", lambda c: c.leg().attribute(c.batch[:0], target=0), V, r"inputs.*empty"),
    ("leg-target-range", lambda c: c.leg().attribute(c.batch, target=10, n_samples=4), V,
     r"target.*10.*outputs"),
    ("leg-target-length", lambda c: c.leg().attribute(c.batch, target=[1, 2, 3]), V,
     r"target.*\(2\).*3"),
    ("leg-negative-target", lambda c: c.leg().attribute(c.batch, target=-1, n_samples=4), V,
     r"target"),
    ("leg-n-samples", lambda c: c.leg().attribute(c.batch, target=0, n_samples=0), V, r"n_samples"),
    ("leg-sigma2", lambda c: c.leg().attribute(c.batch, target=0, sigma2=-1.0), V, r"sigma2"),
    ("leg-grid-larger", lambda c: c.leg().attribute(c.batch, target=0, grid_size=(56, 56)), V,
     r"grid_size"),
    ("leg-device", lambda c: c.leg().attribute(c.batch.to("meta"), target=0), V,
     r"inputs.*device"),
    ("leg-forward-func", lambda c: LEG("model"), T, r"forward_func.*callable"),
    ("legtv-k-l", lambda c: c.legtv().attribute(c.batch, target=0, k_l=-0.1), V, r"k_l"),
    ("legtv-penalty", lambda c: c.legtv().attribute(c.batch, target=0, penalty="huge"), V,
     r"penalty"),
    # -- GANAnchorImage and its samplers (Alibi: channel-last numpy) ----------------------
    ("anchor-channel-first", lambda c: c.anchor().explain(c.image_chw.numpy()), V,
     r"image.*channel-first"),
    ("anchor-tensor", lambda c: c.anchor().explain(c.image_chw), T, r"image.*channel-last numpy"),
    ("anchor-nan", lambda c: c.anchor().explain(_nan(torch.as_tensor(c.image_hwc)).numpy()), V,
     r"image.*NaN"),
    ("anchor-range-255", lambda c: c.anchor().explain(c.image_hwc * 255), V,
     r"image.*range.*generator"),
    ("anchor-int-dtype", lambda c: c.anchor().explain((c.image_hwc * 16).astype(np.int64)), T,
     r"image.*float"),
    ("anchor-wrong-size", lambda c: c.anchor().explain(np.zeros((32, 32, 1), np.float32)), V,
     r"image.*\(28, 28, 1\)"),
    ("anchor-batch", lambda c: c.anchor().explain(c.image_hwc[None]), V, r"image.*one image"),
    ("anchor-threshold", lambda c: c.anchor().explain(c.image_hwc, threshold=1.5), V,
     r"threshold"),
    ("anchor-generator-shape",
     lambda c: GANAnchorImage(c.predict, (32, 32, 1), c.generator), V,
     r"generator.*\(1, 28, 28\).*image_shape"),
    ("anchor-image-shape", lambda c: GANAnchorImage(c.predict, (28, 28), c.generator), V,
     r"image_shape.*\(H, W, C\)"),
    ("anchor-sampler", lambda c: GANAnchorImage(c.predict, (28, 28, 1), c.generator,
                                                sampler="magic"), V, r"sampler"),
    ("anchor-xi", lambda c: GANAnchorImage(c.predict, (28, 28, 1), c.generator, xi=-1.0), V,
     r"xi"),
    ("anchor-no-generator", lambda c: GANAnchorImage(c.predict, (28, 28, 1)), T, r"generator"),
    ("sampler-channel-first", lambda c: GANInpaintingSampler(
        c.predict, QuickshiftSegmentation(15), True, c.image_chw.numpy(), c.generator), V,
     r"image.*channel"),
    # -- MimicGAN and its defence -----------------------------------------------------------
    ("mimic-too-few", lambda c: c.mimic().recover(_observations(c, 10)), V,
     r"observations.*25"),
    ("mimic-channel-last", lambda c: c.mimic().recover(_observations(c).permute(0, 2, 3, 1)), V,
     r"observations.*channel-last"),
    ("mimic-numpy", lambda c: c.mimic().recover(_observations(c).numpy()), T,
     r"observations.*torch.Tensor"),
    ("mimic-nan", lambda c: c.mimic().recover(_nan(_observations(c))), V, r"observations.*NaN"),
    ("mimic-range-255", lambda c: c.mimic().recover(_observations(c) * 255), V,
     r"observations.*range.*generator"),
    ("mimic-size", lambda c: c.mimic().recover(torch.rand(25, 1, 32, 32)), V,
     r"observations.*1, 28, 28\)"),
    ("mimic-device", lambda c: c.mimic().recover(_observations(c).to("meta")), V,
     r"observations.*device"),
    ("mimic-preset", lambda c: MimicGAN(c.generator, config="celeba-hd"), V, r"config"),
    ("mimic-generator", lambda c: MimicGAN("generator"), T, r"generator.*nn.Module"),
    ("defense-classifier", lambda c: MimicGANDefense("clf", c.mimic()), T, r"classifier"),
    ("defense-channel-last", lambda c: MimicGANDefense(c.classifier, c.mimic())(
        _observations(c).permute(0, 2, 3, 1)), V, r"channel-last"),
    # -- generator reversal and the PAG score -----------------------------------------------
    ("reversal-size", lambda c: c.reversal().reverse(torch.rand(2, 1, 32, 32)), V,
     r"images.*1, 28, 28\)"),
    ("reversal-empty", lambda c: c.reversal().reverse(c.batch[:0]), V, r"images.*empty"),
    ("reversal-nan", lambda c: c.reversal().reverse(_nan(c.batch)), V, r"images.*NaN"),
    ("reversal-channel-last", lambda c: c.reversal().reverse(c.batch.permute(0, 2, 3, 1)), V,
     r"images.*channel-last"),
    ("reversal-device", lambda c: c.reversal().reverse(c.batch.to("meta")), V,
     r"images.*device"),
    ("reversal-range", lambda c: c.reversal().reverse(c.batch * 255), V,
     r"images.*range.*generator"),
    ("reversal-bad-generator", lambda c: GeneratorReversal(nn.Linear(32, 10), latent_dim=32), V,
     r"generator.*\(B, C, H, W\)"),
    ("pag-rank", lambda c: pag_score(torch.randn(10)), V, r"codes"),
    # -- DISC (Alibi: channel-last numpy) ---------------------------------------------------
    ("disc-channel-first", lambda c: c.disc().explain(c.batch.numpy()), V,
     r"X.*channel-first"),
    ("disc-tensor", lambda c: c.disc().explain(c.batch.permute(0, 2, 3, 1)), T, r"X.*numpy"),
    ("disc-target-range", lambda c: c.disc().explain(c.image_hwc[None], target_class=12), V,
     r"target_class.*12"),
    ("disc-nan", lambda c: c.disc().explain(_nan(torch.as_tensor(c.image_hwc)).numpy()[None]), V,
     r"X.*NaN"),
    ("disc-range-255", lambda c: c.disc().explain(c.image_hwc[None] * 255), V, r"X.*\[0, 1\]"),
    ("disc-empty", lambda c: c.disc().explain(np.zeros((0, 28, 28, 1), np.float32)), V,
     r"X.*empty"),
    ("disc-model", lambda c: DISC("model"), T, r"predictor_model"),
    ("disc-generator-rank", lambda c: DISCGenerator(c.classifier).generate(c.batch[0], 1), V,
     r"queries.*\(B, C, H, W\)"),
    # -- the zoo ------------------------------------------------------------------------------
    ("zoo-digits-size", lambda c: zoo.digits(size=0), V, r"size"),
    ("zoo-photograph-name", lambda c: zoo.photograph("no-such-photo"), V, r"name.*astronaut"),
    ("zoo-classifier-seed", lambda c: zoo.digits_classifier(seed="zero"), T, r"seed"),
]


def test_table_has_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("call, error, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_early_and_clearly(ctx, call, error, match) -> None:
    ctx.classifier.calls = ctx.generator.calls = 0
    with pytest.raises(error, match=match) as info:
        call(ctx)
    assert type(info.value) in (ValueError, TypeError), type(info.value)
    # no expensive work: at most a construction probe of each model on a tiny batch
    assert ctx.classifier.calls <= 2 and ctx.generator.calls <= 2, (
        ctx.classifier.calls, ctx.generator.calls)
