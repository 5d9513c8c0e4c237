"""``GANAnchorImage``: Alibi's AnchorImage with realistic GAN in-painting perturbations."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from alibi.api.interfaces import Explanation
from alibi.explainers import AnchorImage
from alibi.explainers.anchors.anchor_base import AnchorBaseBeam
from alibi.explainers.anchors.anchor_image import AnchorImageSampler
from torch import nn

from alibi_ext._bank import DEFAULT_BANK_SIZE, DEFAULT_NEIGHBOURS, GeneratorBank
from alibi_ext._dataset import GANAnchorDatasetAdapter
from alibi_ext._inpainting import GANInpainter
from alibi_ext.samplers import (
    DEFAULT_ENCODER_NOISE,
    DEFAULT_ENCODER_XI,
    DEFAULT_XI,
    DiverseEncoderSampler,
    GANInpaintingSampler,
)
from alibi_ext.segmentation import QuickshiftSegmentation
from captum_latent.adapters import register_adapter
from captum_latent.core import infer_latent_dim, probe_generator
from captum_latent.persistence import module_from_record, module_record
from captum_latent.validation import call_model as _call_model
from captum_latent.validation import check_fraction as _check_fraction
from captum_latent.validation import check_image_array as _check_image_array
from captum_latent.validation import check_in_range as _check_in_range
from captum_latent.validation import check_int as _check_int
from captum_latent.validation import check_model_output as _check_model_output

__all__ = ["GANAnchorImage", "SAMPLERS"]

#: Names accepted by ``GANAnchorImage(sampler=...)``.
SAMPLERS = ("gan", "diverse_encoder", "alibi")


class _CountingPredictor:
    """Wraps a predictor and counts the images it was called on."""

    def __init__(self, predictor: Callable[[np.ndarray], np.ndarray]) -> None:
        self.predictor = predictor
        self.calls = 0
        self.images = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.images += len(x)
        return self.predictor(x)


class _CheckedPredictor:
    """The user's predictor as the anchor search needs it: class labels ``(N,)`` for a batch of
    ``N`` images, with the predictor's failures and non-finite outputs reported in our words.

    ``(N, K)`` outputs (probabilities or scores) become their argmax, as Alibi does; ``(N,)``
    outputs are taken as class labels (Alibi's convention) and must be whole numbers.
    """

    def __init__(self, predictor: Callable[[np.ndarray], np.ndarray]) -> None:
        self.predictor = predictor

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = _call_model("predictor", self.predictor, x)
        if isinstance(out, torch.Tensor):
            raise TypeError(
                "predictor must return a numpy array (Alibi's convention), got a torch.Tensor: "
                "end it with .detach().cpu().numpy()"
            )
        if not isinstance(out, np.ndarray):
            raise TypeError(f"predictor must return a numpy array, got {type(out).__name__}")
        _check_model_output("predictor", out, when=f"on a batch of {len(x)} images")
        if out.ndim == 0 or out.shape[0] != len(x):
            raise ValueError(
                f"predictor returned shape {out.shape} for a batch of {len(x)} images: it must "
                "return one row of class probabilities (N, K), or one class label (N,), per image"
            )
        if out.ndim == 2:
            return np.argmax(out, axis=1)
        if out.ndim == 1:
            if np.issubdtype(out.dtype, np.floating) and not np.array_equal(out, np.round(out)):
                raise ValueError(
                    f"predictor returned one non-integer number per image (shape {out.shape}, "
                    f"e.g. {float(out[0]):.4g}); anchors read a 1-D output as class labels, so a "
                    "score or a probability of one class cannot be explained: return (N, K) class "
                    "probabilities (for one score p, np.stack([1 - p, p], axis=1))"
                )
            return out.astype(np.int64)
        raise ValueError(
            f"predictor returned shape {out.shape} for a batch of {len(x)} images: expected "
            "(N, K) class probabilities or (N,) class labels"
        )


class _PrefetchingBeam(AnchorBaseBeam):
    """Alibi's beam search, unchanged, except that before each round it lets a sampler with a
    ``prefetch`` method in-paint for every candidate anchor of the round in one batched search.
    """

    def draw_samples(self, anchors: list, batch_size: int):  # type: ignore[override]
        prefetch = getattr(self.sample_fcn, "prefetch", None)
        if prefetch is not None:
            prefetch([tuple(self.state["t_order"].get(a, list(a))) for a in anchors], batch_size)
        return super().draw_samples(anchors, batch_size)


class GANAnchorImage(AnchorImage):
    """Alibi ``AnchorImage`` whose perturbations are GAN in-paintings (GANchors).

    ``explain()`` keeps Alibi's signature, its KL-LUCB beam search (``AnchorBaseBeam``) and its
    ``Explanation`` (``anchor``, ``segments``, ``precision``, ``coverage``, ``raw``); the
    ``covered_true``/``covered_false`` examples are GAN in-paintings, and the explanation adds
    ``data["gan_samples"]`` (the in-paintings used for the returned anchor, their kept
    superpixels) and ``data["sampler_stats"]``.

    Parameters
    ----------
    predictor : callable
        Channel-last numpy batch ``(N, H, W, C)`` to class probabilities or labels.
    image_shape : tuple
        ``(H, W, C)``.
    generator : nn.Module
        ``(B, d)`` codes to ``(B, C, H, W)`` images in the predictor's input range. Not
        needed with ``sampler="alibi"``.
    dtype : numpy type, default np.float32
    segmentation_fn : str or callable, default :class:`QuickshiftSegmentation` (15 segments)
        Alibi's ``'slic'``, ``'felzenszwalb'``, ``'quickshift'`` or a callable.
    segmentation_kwargs : dict, optional
        For a built-in segmentation name.
    sampler : {"gan", "diverse_encoder", "alibi"}, default "gan"
        GAN in-painting (searches started from a bank of generator samples, or from ``N(0, I)``
        with ``bank_size=None``), from a diverse encoder's codes, or Alibi's own sampler (mean
        superpixel or ``images_background``) for comparison.
    encoder : DiverseEncoder, optional
        Required with ``sampler="diverse_encoder"``.
    xi : float, optional
        Maximum masked MSE of an in-painting; default :data:`alibi_ext.samplers.DEFAULT_XI`
        (0.01), or :data:`alibi_ext.samplers.DEFAULT_ENCODER_XI` (0.04) with
        ``sampler="diverse_encoder"``.
    batchnorm : {"eval", "batch", "as_is"}, default "eval"
        Batch-norm mode of the latent search.
    pool_size : int, default 800
        Most in-paintings made for one anchor in one batched search. Without a bank, an
        anchor's pool doubles with each request up to this; with one, exactly what is asked
        for is made.
    max_iterations : int, default 400
        Gradient steps per code.
    device : str or torch.device, default "cpu"
    images_background : np.ndarray, optional
        Only with ``sampler="alibi"``.
    seed : int, optional
        Seed of masks, thresholds and codes. Unlike Alibi's, it does not touch numpy's global
        random state.
    latent_dim : int, optional
        Size ``d`` of the generator's ``(B, d)`` codes; default ``generator.latent_dim``, else
        the input size of its first layer, checked by one call
        (:func:`captum_latent.core.infer_latent_dim`).
    bank_size : int or None, default 8192
        With ``sampler="gan"``: free generator samples made once per explainer (about 1 s and
        25 MiB for a 28x28 GAN on a 2-core CPU, at the first explanation) and shared by all its
        explanations; each in-painting's search starts from one of the 8 bank samples nearest
        to the kept pixels and needs a few steps instead of tens. ``None``: the paper's
        searches from ``N(0, I)`` (on the zoo digits 17.5 times the cost of Alibi's random
        stitching; with the bank, about the same median cost; docs/benchmarks.md).
    bank_neighbours : int, default 8
        Each search starts from one of the ``bank_neighbours`` bank samples nearest to its kept
        pixels, at random: more neighbours, more varied in-paintings and more steps.
    encoder_noise_std : float, default :data:`alibi_ext.samplers.DEFAULT_ENCODER_NOISE`
        With ``sampler="diverse_encoder"``: standard deviation of the noise added to the
        encoder's codes (more noise, more varied in-paintings and more steps; 0.4 with ``xi``
        0.04 was the fastest way to fresh precision 0.95 on the zoo digits, 0.1 the former
        default, a quick look that over-states precision).
    strict_xi : bool, default False
        When three searches in a row make no in-painting of a candidate anchor within ``xi``
        (a region the generator cannot reproduce): False serves the closest in-paintings above
        ``xi`` with a ``RuntimeWarning`` and goes on (counted in
        ``data["sampler_stats"]["over_threshold"]``, anchors listed in
        ``data["sampler_stats"]["relaxed_anchors"]``); True raises ``RuntimeError``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from captum_latent import zoo
    >>> from alibi_ext import GANAnchorImage
    >>> gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    >>> def predict(x):
    ...     with torch.no_grad():
    ...         return torch.softmax(clf(torch.as_tensor(x).permute(0, 3, 1, 2)), 1).numpy()
    >>> explainer = GANAnchorImage(predict, (28, 28, 1), gan.generator, seed=0)
    >>> image = zoo.digits().test.images[0].permute(1, 2, 0).numpy()
    >>> explanation = explainer.explain(image, threshold=0.9, stop_on_first=True,
    ...                                 max_anchor_size=3)  # doctest: +SKIP
    >>> explanation.precision >= 0.9  # doctest: +SKIP
    True

    Saving works through Alibi (``explainer.save(path)`` or ``alibi.saving.save_explainer``,
    then ``alibi.saving.load_explainer(path, predictor)``); the generator and the encoder are
    stored as state dicts with a weightless architecture skeleton
    (:mod:`captum_latent.persistence`), the predictor is not stored. A loaded explainer gives
    the same explanations as the saved one would have (same seed, same call count).
    """

    _MODULE_ATTRIBUTES = ("generator", "encoder")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_bank"] = None  # remade on first use
        for name in self._MODULE_ATTRIBUTES:
            if isinstance(state.get(name), nn.Module):
                state[name] = {"__captum_latent_module__": module_record(state[name])}
        return state

    def __setstate__(self, state: dict) -> None:
        for name in self._MODULE_ATTRIBUTES:
            value = state.get(name)
            if isinstance(value, dict) and "__captum_latent_module__" in value:
                device = state.get("device", "cpu")
                state[name] = module_from_record(value["__captum_latent_module__"], device)
        if state.get("device") is not None and state["device"].type == "cuda" \
                and not torch.cuda.is_available():
            state["device"] = torch.device("cpu")
        self.__dict__.update(state)
        self._generator_bank()

    def __init__(
        self,
        predictor: Callable[[np.ndarray], np.ndarray],
        image_shape: tuple,
        generator: nn.Module | None = None,
        dtype: type[np.generic] = np.float32,
        segmentation_fn: Any = None,
        segmentation_kwargs: dict | None = None,
        sampler: str = "gan",
        encoder: nn.Module | None = None,
        xi: float | None = None,
        batchnorm: str = "eval",
        pool_size: int = 800,
        max_iterations: int = 400,
        device: torch.device | str = "cpu",
        images_background: np.ndarray | None = None,
        seed: int | None = None,
        latent_dim: int | None = None,
        bank_size: int | None = DEFAULT_BANK_SIZE,
        bank_neighbours: int = DEFAULT_NEIGHBOURS,
        encoder_noise_std: float = DEFAULT_ENCODER_NOISE,
        strict_xi: bool = False,
    ) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if sampler != "alibi" and not isinstance(generator, nn.Module):
            raise TypeError(
                f"generator must be a torch.nn.Module for sampler={sampler!r}, got "
                f"{type(generator).__name__}"
            )
        if sampler == "diverse_encoder" and encoder is None:
            raise TypeError("sampler='diverse_encoder' needs encoder=<a trained DiverseEncoder>")
        if images_background is not None and sampler != "alibi":
            raise ValueError("images_background is only used by sampler='alibi'")
        if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3 or not all(
            isinstance(v, (int, np.integer)) and v > 0 for v in image_shape
        ):
            raise ValueError(f"image_shape must be (H, W, C) positive ints, got {image_shape!r}")
        if xi is None:
            xi = DEFAULT_ENCODER_XI if sampler == "diverse_encoder" else DEFAULT_XI
        if isinstance(xi, bool) or not isinstance(xi, (int, float)) or not xi > 0:
            raise ValueError(f"xi must be a positive float (a masked MSE), got {xi!r}")
        _check_int("pool_size", pool_size, minimum=1)
        _check_int("max_iterations", max_iterations, minimum=1)
        self._value_range: tuple[float, float] | None = None
        if latent_dim is not None:
            _check_int("latent_dim", latent_dim, minimum=1)
        if bank_size is not None:
            _check_int("bank_size", bank_size, minimum=1)
        _check_int("bank_neighbours", bank_neighbours, minimum=1)
        if isinstance(encoder_noise_std, bool) or not isinstance(encoder_noise_std, (int, float)) \
                or not encoder_noise_std >= 0:
            raise ValueError(f"encoder_noise_std must be a float >= 0, got {encoder_noise_std!r}")
        if sampler != "alibi":
            latent_dim = latent_dim or infer_latent_dim(generator, device)
            self._value_range = self._check_generator(generator, tuple(image_shape), device,
                                                      latent_dim)
        if segmentation_fn is None:
            segmentation_fn = QuickshiftSegmentation(15)
        state = np.random.get_state()  # AnchorImage seeds numpy's global RNG: undo that
        try:
            super().__init__(predictor, tuple(image_shape), dtype=dtype,
                             segmentation_fn=segmentation_fn,
                             segmentation_kwargs=segmentation_kwargs,
                             images_background=images_background, seed=None)
        finally:
            np.random.set_state(state)
        self.generator = generator
        self.sampler_name = sampler
        self.encoder = encoder
        self.xi = float(xi)
        self.batchnorm = batchnorm
        self.pool_size = pool_size
        self.max_iterations = max_iterations
        self.device = torch.device(device)
        self.seed = seed
        self.latent_dim = latent_dim
        self.bank_size = bank_size
        self.bank_neighbours = bank_neighbours
        self.encoder_noise_std = float(encoder_noise_std)
        self.strict_xi = bool(strict_xi)
        self._bank_seed = 0 if seed is None else int(seed)
        self._bank: GeneratorBank | None = None
        self._generator_bank()  # made now (its images later), so the explainer's models are fixed
        self._explain_count = 0
        self.meta["name"] = type(self).__name__
        self.meta["params"].update(
            sampler=sampler, xi=self.xi, batchnorm=batchnorm, pool_size=pool_size,
            max_iterations=max_iterations, seed=seed, bank_size=bank_size,
            bank_neighbours=bank_neighbours, encoder_noise_std=self.encoder_noise_std,
            strict_xi=self.strict_xi,
        )

    def _make_sampler(
        self, image: np.ndarray, p_sample: float, n_covered_ex: int,
        n_gan_samples: int | None = 4,
    ) -> AnchorImageSampler:
        common = dict(predictor=self.predictor, segmentation_fn=self.segmentation_fn,
                      custom_segmentation=self.custom_segmentation, image=image,
                      p_sample=p_sample, n_covered_ex=n_covered_ex)
        if self.sampler_name == "alibi":
            return AnchorImageSampler(images_background=self.images_background, **common)
        seed = None if self.seed is None else self.seed + self._explain_count
        gan = dict(generator=self.generator, xi=self.xi, pool_size=self.pool_size,
                   batchnorm=self.batchnorm, max_iterations=self.max_iterations,
                   device=self.device, seed=seed,
                   latent_dim=getattr(self, "latent_dim", None), keep_examples=n_gan_samples,
                   strict_xi=getattr(self, "strict_xi", False))
        if self.sampler_name == "diverse_encoder":
            return DiverseEncoderSampler(
                encoder=self.encoder, noise_std=getattr(self, "encoder_noise_std",
                                                        DEFAULT_ENCODER_NOISE), **common, **gan)
        return GANInpaintingSampler(**common, **gan, bank=self._generator_bank())

    def _generator_bank(self) -> GeneratorBank | None:
        """The bank of free generator samples, shared by every explanation of this explainer
        (its images are made on first use and not saved: a loaded explainer makes them again)."""
        size = getattr(self, "bank_size", None)
        if size is None or self.sampler_name != "gan":
            return None
        if getattr(self, "_bank", None) is None:
            search = GANInpainter(self.generator, xi=self.xi, latent_dim=self.latent_dim,
                                  batchnorm=self.batchnorm, device=self.device).search
            self._bank = GeneratorBank(search, size, seed=getattr(self, "_bank_seed", 0),
                                       top_k=getattr(self, "bank_neighbours", DEFAULT_NEIGHBOURS))
        return self._bank

    def explain(  # type: ignore[override]
        self,
        image: np.ndarray,
        p_sample: float = 0.5,
        threshold: float = 0.95,
        delta: float = 0.1,
        tau: float = 0.15,
        batch_size: int = 100,
        coverage_samples: int = 10000,
        beam_size: int = 1,
        stop_on_first: bool = False,
        max_anchor_size: int | None = None,
        min_samples_start: int = 100,
        n_covered_ex: int = 4,
        binary_cache_size: int = 10000,
        cache_margin: int = 1000,
        verbose: bool = False,
        verbose_every: int = 1,
        n_gan_samples: int | None = 4,
        **kwargs: Any,
    ) -> Explanation:
        """Explain ``image`` with an anchor; same parameters as ``AnchorImage.explain``.

        The perturbations are GAN in-paintings (unless ``sampler="alibi"``); see the class
        docstring for the extra keys of the returned ``Explanation``.

        Parameters
        ----------
        n_covered_ex : int, default 4
            Alibi's: covered examples (here GAN in-paintings) stored per anchor size in
            ``raw["examples"]``. Alibi's default of 10 made the JSON of a 4-superpixel anchor of
            one 28x28 digit 1.1 MB; 4 keeps it proportionate.
        n_gan_samples : int or None, default 4
            In-paintings of the returned anchor kept in ``data["gan_samples"]``: a handful by
            default, so that ``to_json()`` stays proportionate; ``None`` keeps every one the
            search evaluated for that anchor (all anchors' in-paintings are held in memory
            during the search).
        """
        params = dict(locals())
        if n_gan_samples is not None:
            _check_int("n_gan_samples", n_gan_samples, minimum=0)
        for key in ("self", "image", "kwargs", "__class__"):
            params.pop(key, None)
        params.update(kwargs)
        image = self._check_image(image)
        _check_fraction("p_sample", p_sample)
        _check_fraction("threshold", threshold)
        _check_fraction("delta", delta)
        _check_fraction("tau", tau)
        for name in ("batch_size", "coverage_samples", "beam_size", "min_samples_start"):
            _check_int(name, params[name], minimum=1)
        if max_anchor_size is not None:
            _check_int("max_anchor_size", max_anchor_size, minimum=1)
        counting = _CountingPredictor(self.predictor)
        original, self.predictor = self.predictor, counting
        numpy_state = np.random.get_state()
        if self.sampler_name == "alibi" and self.seed is not None:
            # Alibi's own sampler draws from numpy's global RNG: seed it for this call only
            np.random.seed(self.seed + self._explain_count)
        try:
            sampler = self._make_sampler(image, p_sample, n_covered_ex, n_gan_samples)
            self._explain_count += 1
            mab = _PrefetchingBeam(samplers=[sampler], sample_cache_size=binary_cache_size,
                                 cache_margin=cache_margin, **kwargs)
            result: Any = mab.anchor_beam(
                desired_confidence=threshold, delta=delta, epsilon=tau, batch_size=batch_size,
                coverage_samples=coverage_samples, beam_size=beam_size,
                stop_on_first=stop_on_first, max_anchor_size=max_anchor_size,
                min_samples_start=min_samples_start, verbose=verbose,
                verbose_every=verbose_every, **kwargs,
            )
        finally:
            self.predictor = original
            np.random.set_state(numpy_state)
        explanation = self._build_explanation(image, result, sampler.instance_label, params,
                                              sampler)
        stats = {"predictor_calls": counting.calls, "predictor_images": counting.images}
        if isinstance(sampler, GANInpaintingSampler):
            stats.update(sampler.stats)
            stats["relaxed_anchors"] = sampler.relaxed_anchors
            anchor = tuple(sorted(int(f) for f in result["feature"]))
            none = (np.zeros((0, *image.shape)), np.zeros((0, len(sampler.segment_labels))))
            images, kept = sampler.examples.get(anchor, none)
            explanation.data["gan_samples"] = {"images": images, "kept_superpixels": kept}
        explanation.data["sampler_stats"] = stats
        return explanation

    def explain_seeded(self, image: np.ndarray, seed: int, **kwargs: Any) -> Explanation:
        """``explain(image, **kwargs)`` as the first explanation of this explainer seeded with
        ``seed`` (its own ``seed`` and call count are left as they were): what
        :func:`~captum_latent.distributed.explain_dataset` runs for each item."""
        saved = (self.seed, self._explain_count)
        self.seed, self._explain_count = seed, 0
        try:
            return self.explain(image, **kwargs)
        finally:
            self.seed, self._explain_count = saved

    def _transform_predictor(self, predictor: Callable) -> Callable:
        """Replaces Alibi's: checks the predictor on one blank image now (clear errors for a
        predictor that fails, returns NaN/Inf or 1-D scores), then labels every batch."""
        if not callable(predictor):
            raise TypeError(f"predictor must be callable, got {type(predictor).__name__}")
        checked = _CheckedPredictor(predictor)
        checked(np.zeros((1, *self.image_shape), dtype=self.dtype))
        return checked

    @staticmethod
    def _check_generator(
        generator: nn.Module, image_shape: tuple, device: torch.device | str, latent_dim: int
    ) -> tuple[float, float]:
        """The generator makes ``image_shape`` images; returns its tolerated value range."""
        h, w, c = (int(v) for v in image_shape)
        shape, low, high = probe_generator(generator, latent_dim, device, n=16)
        if shape != (c, h, w):
            raise ValueError(
                f"generator makes images of shape {shape} (C, H, W) but "
                f"image_shape={tuple(image_shape)} asks for {(c, h, w)} (C, H, W)"
            )
        return low, high

    def _check_image(self, image: Any) -> np.ndarray:
        image = _check_image_array("image", image, hwc=self.image_shape, batched=False)
        if self._value_range is not None:
            _check_in_range("image", image, *self._value_range, what="the generator's images")
        return image.astype(self.dtype, copy=False)


register_adapter(GANAnchorImage, GANAnchorDatasetAdapter)
