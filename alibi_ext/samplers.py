"""Alibi ``AnchorImageSampler`` subclasses whose perturbations are GAN in-paintings.

The anchor search asks a sampler for ``num_samples`` perturbations of the image in which the
superpixels of a candidate anchor (and a random subset of the others, as in Alibi) are kept.
Alibi replaces the other superpixels by their mean colour or by a background image; these
samplers in-paint them with a GAN instead (GANchors Eq. 8), so the classifier is queried on
realistic images. Requests are served from per-anchor pools filled by large batched searches on
the latent-search core; coverage requests (``compute_labels=False``) only draw masks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from alibi.explainers.anchors.anchor_image import AnchorImageSampler
from torch import nn

from alibi_ext._bank import GeneratorBank
from alibi_ext._inpainting import GANInpainter

__all__ = ["DEFAULT_ENCODER_NOISE", "DEFAULT_ENCODER_XI", "DEFAULT_XI", "DiverseEncoderSampler",
           "GANInpaintingSampler"]

#: Default maximum masked MSE for images in [0, 1]; chosen from the sweep in
#: ``benchmarks/anchors.py --xi-sweep`` (see docs/benchmarks.md).
DEFAULT_XI = 0.01

#: Default noise on a diverse encoder's codes (``DiverseEncoderSampler(noise_std=...)``): with
#: :data:`DEFAULT_ENCODER_XI`, the pair that reached fresh GAN precision 0.95 fastest on the 20
#: tuning digits (docs/benchmarks.md, "The diverse encoder's new defaults").
DEFAULT_ENCODER_NOISE = 0.4

#: Default maximum masked MSE of the diverse encoder's in-paintings. Looser than
#: :data:`DEFAULT_XI`: the kept superpixels are copied from the image whatever the error, and
#: most noisy encoder codes are then in-paintings as they are, without a search step.
DEFAULT_ENCODER_XI = 0.04


@dataclass
class _Pool:
    images: list[np.ndarray] = field(default_factory=list)  # (n, H, W, C) chunks
    masks: list[np.ndarray] = field(default_factory=list)  # (n, K) chunks
    size: int = 0

    def push(self, images: np.ndarray, masks: np.ndarray) -> None:
        if len(images):
            self.images.append(images)
            self.masks.append(masks)
            self.size += len(images)

    def pop(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        images, masks = np.concatenate(self.images), np.concatenate(self.masks)
        self.images, self.masks = [images[n:]], [masks[n:]]
        self.size -= n
        return images[:n], masks[:n]


class GANInpaintingSampler(AnchorImageSampler):
    """Anchor sampler with GAN in-painting: kept superpixels from the image, the rest from
    ``(1 - A) G(z) + A x`` with ``||A x - A G(z)||^2 / |A| <= xi'``, ``xi' <= xi`` (Alg. 2).

    Usable on its own (``sampler((0, anchor), n)``) or through
    :class:`alibi_ext.GANAnchorImage`.

    Parameters
    ----------
    predictor : callable
        Channel-last numpy batch to predicted labels (Alibi's convention).
    segmentation_fn : callable
        Image to ``(H, W)`` integer superpixel labels ``0..K-1``.
    custom_segmentation : bool
        Whether ``segmentation_fn`` is user-supplied (Alibi's flag; grey images are repeated to
        three channels before a built-in segmentation).
    image : np.ndarray
        ``(H, W, C)`` image to explain, in the generator's output range.
    generator : nn.Module
        ``(B, d)`` codes to ``(B, C, H, W)`` images.
    xi : float, default :data:`DEFAULT_XI`
        Maximum masked MSE of an in-painting.
    p_sample : float, default 0.5
        Probability that a superpixel outside the anchor is in-painted (else kept).
    n_covered_ex : int, default 10
        Examples kept per anchor for the explanation (Alibi's parameter).
    pool_size : int, default 800
        Largest number of in-paintings made for one anchor in one batched search. An anchor's
        first request makes just what it needs; each further refill doubles, up to this.
    batchnorm : {"eval", "batch", "as_is"}, default "eval"
        Batch-norm mode of the core.
    max_iterations : int, default 400
        Gradient steps per code before it is dropped.
    device : str or torch.device, default "cpu"
    seed : int, optional
        Seed of masks, thresholds and codes.
    keep_examples : int or None, default 10
        In-paintings kept per anchor in :attr:`examples` (the first ones served); ``None``
        keeps every one served (memory grows with the search).
    latent_dim : int, optional
        Code size; default ``generator.latent_dim``, else inferred
        (:func:`captum_latent.core.infer_latent_dim`).
    bank : GeneratorBank, optional
        Free samples of ``generator`` (``alibi_ext.GeneratorBank``): each search starts near
        the bank samples closest to its kept pixels instead of from ``N(0, I)``, and a request
        makes exactly the in-paintings it needs (no pool growth).
    strict_xi : bool, default False
        What to do when three batched searches in a row make no in-painting of an anchor within
        ``xi`` (a region the generator cannot reproduce, e.g. a stroke it never draws). False:
        serve the closest in-paintings of those searches, whose kept pixels are still exactly
        the image's, with a ``RuntimeWarning``; from then on that anchor is served every
        in-painting its searches make. They are counted in ``stats["over_threshold"]`` and
        their anchors listed in :attr:`relaxed_anchors`. True: raise ``RuntimeError``.

    Examples
    --------
    >>> import numpy as np
    >>> from captum_latent import zoo
    >>> from alibi_ext import GANInpaintingSampler, QuickshiftSegmentation
    >>> gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    >>> def predict(x):
    ...     with torch.no_grad():
    ...         return clf(torch.as_tensor(x).permute(0, 3, 1, 2)).argmax(1).numpy()
    >>> image = zoo.digits().test.images[0].permute(1, 2, 0).numpy()
    >>> sampler = GANInpaintingSampler(predict, QuickshiftSegmentation(15), True, image,
    ...                                gan.generator, pool_size=64, seed=0)
    >>> covered_true, covered_false, labels, masks, _, _ = sampler((0, (3, 4)), 32)
    >>> masks.shape, bool(masks[:, [3, 4]].all())
    ((32, 15), True)
    """

    def __init__(
        self,
        predictor: Callable[[np.ndarray], np.ndarray],
        segmentation_fn: Callable[[np.ndarray], np.ndarray],
        custom_segmentation: bool,
        image: np.ndarray,
        generator: nn.Module,
        *,
        xi: float = DEFAULT_XI,
        p_sample: float = 0.5,
        n_covered_ex: int = 10,
        pool_size: int = 800,
        batchnorm: str = "eval",
        max_iterations: int = 400,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        keep_examples: int | None = 10,
        latent_dim: int | None = None,
        bank: GeneratorBank | None = None,
        strict_xi: bool = False,
    ) -> None:
        if keep_examples is not None and (isinstance(keep_examples, bool) or not isinstance(
                keep_examples, int) or keep_examples < 0):
            raise ValueError(f"keep_examples must be an int >= 0 or None (all), got "
                             f"{keep_examples!r}")
        if not isinstance(image, np.ndarray) or image.ndim != 3:
            raise ValueError(
                f"image must be a channel-last (H, W, C) numpy array, got "
                f"{type(image).__name__} of shape {getattr(image, 'shape', None)}"
            )
        if not np.isfinite(image).all():
            raise ValueError("image contains NaN or Inf")
        if not 0.0 <= p_sample <= 1.0:
            raise ValueError(f"p_sample must be in [0, 1], got {p_sample!r}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be a positive int, got {pool_size!r}")
        self.inpainter = GANInpainter(generator, xi=xi, latent_dim=latent_dim,
                                      batchnorm=batchnorm, max_iterations=max_iterations,
                                      device=device)
        c, h, w = self.inpainter.image_shape
        if image.shape != (h, w, c):
            raise ValueError(
                f"image has shape {image.shape} but the generator makes (H, W, C) = {(h, w, c)} "
                "images (Alibi images are channel-last)"
            )
        super().__init__(predictor, segmentation_fn, custom_segmentation, image,
                         images_background=None, p_sample=p_sample, n_covered_ex=n_covered_ex)
        self.xi = float(xi)
        self.pool_size = pool_size
        self._rng = np.random.default_rng(seed)
        self._torch_gen = torch.Generator(self.inpainter.search.device).manual_seed(
            int(self._rng.integers(2**62))
        )
        self._image_t = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)),
                                        dtype=torch.float32)
        if bank is not None and not isinstance(bank, GeneratorBank):
            raise TypeError(f"bank must be a GeneratorBank, got {type(bank).__name__}")
        self.bank = bank
        self._bank_session = None if bank is None else bank.session(self._image_t)
        self._segments_t = torch.as_tensor(self.segments, dtype=torch.long)
        self._pools: dict[tuple[int, ...], _Pool] = {}
        self._refills: dict[tuple[int, ...], int] = {}
        self.strict_xi = bool(strict_xi)
        # in-paintings above their threshold from each anchor's latest search, closest first
        self._spare: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._relaxed: dict[tuple[int, ...], None] = {}  # an ordered set
        #: statistics: batched searches run, in-paintings made, dropped, samples served,
        #: gradient steps spent, in-paintings whose bank start already met its threshold,
        #: in-paintings served above their threshold (``strict_xi=False``)
        self.stats = {"searches": 0, "generated": 0, "dropped": 0, "served": 0,
                      "steps": 0, "from_bank": 0, "over_threshold": 0}
        self.keep_examples = keep_examples
        self._examples: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = {}

    # -- masks (never touch the generator) -------------------------------------------------
    def _choose_superpixels(self, num_samples: int, p_sample: float = 0.5) -> np.ndarray:
        """``(num_samples, K)`` binary rows, 1 = superpixel kept (seeded, no global state)."""
        n_features = len(self.segment_labels)
        return (self._rng.random((num_samples, n_features)) >= p_sample).astype(np.int64)

    # -- images ----------------------------------------------------------------------------
    def _prior(self, masks: torch.Tensor):  # overridden by DiverseEncoderSampler
        return None

    @property
    def _near_starts(self) -> bool:
        """Whether searches start near their goal (a bank here, an encoder in the subclass):
        in-paintings are then cheap enough to make exactly as many as are asked for."""
        return self.bank is not None

    def _refill(self, requests: dict[tuple[int, ...], int]) -> None:
        """One batched search in-painting ``n`` masks for each ``anchor -> n`` of ``requests``."""
        anchors = list(requests)
        rows = self._choose_superpixels(sum(requests.values()), p_sample=self.p_sample)
        owner = np.repeat(np.arange(len(anchors)), [requests[a] for a in anchors])
        for i, anchor in enumerate(anchors):
            rows[np.ix_(owner == i, list(anchor))] = 1
        rows_t = torch.as_tensor(rows, dtype=torch.bool)
        pixel_masks = rows_t[:, self._segments_t].unsqueeze(1)  # (n, 1, H, W)
        device = self.inpainter.search.device
        result = self.inpainter.inpaint(
            self._image_t, pixel_masks, prior=self._prior(pixel_masks.to(device)),
            generator=self._torch_gen, bank=self._bank_session, near_starts=self._near_starts,
        )
        ok = result.converged.cpu().numpy()
        images = result.images.permute(0, 2, 3, 1).cpu().numpy().astype(self.image.dtype)
        self.stats["searches"] += 1
        self.stats["generated"] += int(ok.sum())
        self.stats["dropped"] += int((~ok).sum())
        steps = result.iterations.cpu()
        self.stats["steps"] += int(steps.sum())
        self.stats["from_bank"] += int((steps == 0).sum()) if self.bank is not None else 0
        errors = result.errors.cpu().numpy()
        for i, anchor in enumerate(anchors):
            pool = self._pools.setdefault(anchor, _Pool())
            self._refills[anchor] = self._refills.get(anchor, 0) + 1
            over = np.flatnonzero((owner == i) & ~ok)
            over = over[np.argsort(errors[over], kind="stable")]
            if anchor in self._relaxed:  # served whatever its searches make
                pool.push(images[(owner == i) & ok], rows[(owner == i) & ok])
                pool.push(images[over], rows[over])
                self.stats["over_threshold"] += len(over)
            else:
                pool.push(images[(owner == i) & ok], rows[(owner == i) & ok])
                self._spare[anchor] = (images[over], rows[over])

    @property
    def relaxed_anchors(self) -> list[tuple[int, ...]]:
        """Anchors served in-paintings above ``xi`` (``strict_xi=False``), in the order found."""
        return list(self._relaxed)

    def _relax(self, key: tuple[int, ...]) -> None:
        """Serve ``key`` its closest in-paintings above the threshold from now on."""
        if self.strict_xi:
            raise RuntimeError(
                f"no in-painting of anchor {key} reached the masked error threshold "
                f"xi={self.xi} in 3 batched searches; raise xi or max_iterations, or pass "
                "strict_xi=False to serve the closest ones"
            )
        self._relaxed[key] = None
        images, masks = self._spare.pop(key, (np.zeros((0, *self.image.shape)),
                                              np.zeros((0, len(self.segment_labels)), int)))
        self._pools[key].push(images.astype(self.image.dtype), masks)
        self.stats["over_threshold"] += len(images)
        warnings.warn(
            f"no in-painting of anchor {key} reached the masked error threshold xi={self.xi} in "
            f"3 batched searches (the generator cannot reproduce its kept pixels closely): "
            f"serving the closest in-paintings above it (sampler.stats['over_threshold']); "
            "raise xi or max_iterations, or pass strict_xi=True to stop instead",
            RuntimeWarning, stacklevel=3,
        )

    def _shortfall(self, anchor: tuple[int, ...], num_samples: int) -> int:
        """How many in-paintings to make for ``anchor`` so that ``num_samples`` can be served:
        the missing ones, or more for an anchor the search keeps asking about (the pool doubles
        with each refill, up to ``pool_size``)."""
        have = self._pools[anchor].size if anchor in self._pools else 0
        if have >= num_samples:
            return 0
        if self._near_starts:  # in-paintings are cheap to make on demand: make no extras
            return num_samples - have
        growth = num_samples * 2 ** self._refills.get(anchor, 0)
        return max(num_samples - have, min(self.pool_size, growth))

    def prefetch(self, anchors: list[tuple], num_samples: int) -> None:
        """Fill the pools of all ``anchors`` with one batched search (called by
        :class:`alibi_ext.GANAnchorImage` before each round of the beam search)."""
        keys = [tuple(sorted(int(a) for a in anchor)) for anchor in anchors]
        requests = {k: self._shortfall(k, num_samples) for k in dict.fromkeys(keys)}
        requests = {k: n for k, n in requests.items() if n > 0}
        if requests:
            self._refill(requests)

    def perturbation(self, anchor: tuple, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """``num_samples`` in-paintings keeping ``anchor``: ``(n, H, W, C)`` images and
        ``(n, K)`` kept-superpixel rows."""
        key = tuple(sorted(int(a) for a in anchor))
        failures = 0
        while (missing := self._shortfall(key, num_samples)) > 0:
            before = self._pools[key].size if key in self._pools else 0
            if failures:  # the last search made nothing: ask for more masks before giving up
                missing = min(max(missing, 16) * 2 ** (failures - 1), max(missing,
                                                                        self.pool_size))
            self._refill({key: missing})
            failures = failures + 1 if self._pools[key].size == before else 0
            if failures >= 3:
                self._relax(key)
                failures = 0
        images, masks = self._pools[key].pop(num_samples)
        self.stats["served"] += num_samples
        kept = self._examples.setdefault(key, [])
        room = len(images) if self.keep_examples is None else \
            self.keep_examples - sum(len(chunk) for chunk, _ in kept)
        if room > 0:
            kept.append((images[:room], masks[:room]))
        return images, masks

    @property
    def examples(self) -> dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]]:
        """The first in-paintings served for each anchor (at most ``keep_examples``; all with
        ``None``): ``anchor -> (images (n, H, W, C), kept superpixels (n, K))``."""
        return {key: (np.concatenate([i for i, _ in chunks]),
                      np.concatenate([m for _, m in chunks]))
                for key, chunks in self._examples.items() if chunks}


class DiverseEncoderSampler(GANInpaintingSampler):
    """:class:`GANInpaintingSampler` whose searches start from a diverse encoder's codes plus
    noise (GANchors §4.2) instead of ``N(0, I)``. Its other parameters are those of
    :class:`GANInpaintingSampler` (keyword-only).

    Parameters
    ----------
    encoder : captum_latent.generative.DiverseEncoder
        Trained on masked images of the generator's domain
        (:func:`captum_latent.generative.train_diverse_encoder`).
    noise_std : float, default :data:`DEFAULT_ENCODER_NOISE`
        Standard deviation of the noise added to the encoder's codes: more noise, more varied
        in-paintings (an encoder's codes alone reproduce the digit, so that a one-superpixel
        anchor looks sufficient when it is not), and more search steps.
    xi : float, default :data:`DEFAULT_ENCODER_XI`
        Maximum masked MSE of an in-painting (looser than the bank sampler's
        :data:`DEFAULT_XI`: on the zoo digits the anchors found this way held on strict, fresh
        in-paintings, docs/benchmarks.md).
    """

    def __init__(
        self,
        predictor: Callable[[np.ndarray], np.ndarray],
        segmentation_fn: Callable[[np.ndarray], np.ndarray],
        custom_segmentation: bool,
        image: np.ndarray,
        generator: nn.Module,
        *,
        encoder: nn.Module,
        noise_std: float = DEFAULT_ENCODER_NOISE,
        xi: float = DEFAULT_ENCODER_XI,
        p_sample: float = 0.5,
        n_covered_ex: int = 10,
        pool_size: int = 800,
        batchnorm: str = "eval",
        max_iterations: int = 400,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        keep_examples: int | None = 10,
        latent_dim: int | None = None,
        strict_xi: bool = False,
    ) -> None:
        from captum_latent.generative.diverse_encoder import DiverseEncoder

        if not isinstance(encoder, DiverseEncoder):
            raise TypeError(f"encoder must be a DiverseEncoder, got {type(encoder).__name__}")
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        self.encoder = encoder
        self.noise_std = float(noise_std)
        super().__init__(predictor, segmentation_fn, custom_segmentation, image, generator,
                         xi=xi, p_sample=p_sample, n_covered_ex=n_covered_ex,
                         pool_size=pool_size, batchnorm=batchnorm,
                         max_iterations=max_iterations, device=device, seed=seed,
                         keep_examples=keep_examples, latent_dim=latent_dim,
                         strict_xi=strict_xi)
        if tuple(encoder.image_shape) != self.inpainter.image_shape:
            raise ValueError(
                f"encoder.image_shape {tuple(encoder.image_shape)} differs from the generator's "
                f"{self.inpainter.image_shape}"
            )

    @property
    def _near_starts(self) -> bool:
        return True

    def _prior(self, masks: torch.Tensor):
        from captum_latent.generative.diverse_encoder import EncoderInitialiser

        image = self._image_t.to(masks.device)[None].expand(masks.shape[0], -1, -1, -1)
        return EncoderInitialiser(self.encoder, image, masks.float(), noise_std=self.noise_std)
