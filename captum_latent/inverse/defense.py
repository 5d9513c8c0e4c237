"""``MimicGANDefense``: clean a batch with MimicGAN, then classify it."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from captum_latent.inverse.mimicgan import MimicGAN, MimicGANResult
from captum_latent.inverse.occlusion import OcclusionTest, find_occlusions, reconstruct_around
from captum_latent.validation import (
    call_model,
    check_fraction,
    check_model_output,
    class_scores,
)

_ON_UNTRUSTED = ("pass", "warn")
_OCCLUSION_TEST = OcclusionTest()


@dataclass
class DefenseOutcome:
    """What :meth:`MimicGANDefense.defend` did with a batch.

    Attributes
    ----------
    images : torch.Tensor
        ``(N, C, H, W)`` what the classifier sees: MimicGAN's recovery where its surrogate
        explains the observation (``explained``), PGD's elsewhere (reconstructed around the
        occluded patch where ``repaired``), and the observation itself where the recovery is
        untrusted and ``on_untrusted="pass"``.
    recovered : torch.Tensor
        ``(N, C, H, W)`` MimicGAN's recoveries (the fitted surrogate); PGD's where MimicGAN
        did not run (a PGD cleaner, or a small batch before :meth:`MimicGANDefense.fit`).
    identity_recovered : torch.Tensor
        ``(N, C, H, W)`` PGD's recoveries (no corruption model).
    observation_errors : torch.Tensor
        ``(N,)`` how far MimicGAN's surrogate is from reproducing each observation.
    identity_errors : torch.Tensor
        ``(N,)`` the same for PGD (the generator's image itself against the observation).
    typicality : torch.Tensor
        ``(N,)`` two-sided typicality of MimicGAN's codes under the prior.
    explained : torch.Tensor
        ``(N,)`` bool: the surrogate explains the observation clearly better than no
        corruption at all (``observation_errors <= explain_ratio * identity_errors``), within
        the error range of the batch it was fitted on, and (when ``min_typicality > 0``) with
        a typical code. MimicGAN's recovery is used there, PGD's elsewhere.
    trusted : torch.Tensor
        ``(N,)`` bool: see :class:`MimicGANDefense`.
    passed_through : torch.Tensor
        ``(N,)`` bool: the classifier saw the observation unchanged.
    repaired : torch.Tensor
        ``(N,)`` bool: PGD's recovery was to be used but left an occlusion (clustered pixels
        it cannot explain, :func:`~captum_latent.inverse.occlusion.find_occlusions`); the
        classifier saw the observation with the occluded patch reconstructed from the rest
        (:func:`~captum_latent.inverse.occlusion.reconstruct_around`).
    """

    images: torch.Tensor
    recovered: torch.Tensor
    identity_recovered: torch.Tensor
    observation_errors: torch.Tensor
    identity_errors: torch.Tensor
    typicality: torch.Tensor
    explained: torch.Tensor
    trusted: torch.Tensor
    passed_through: torch.Tensor
    repaired: torch.Tensor


def _robust_threshold(errors: torch.Tensor, spread: float) -> float:
    """``median + spread * 1.4826 * MAD`` of a batch's observation errors: the errors of the
    corruption the surrogate was fitted on, with room for their own scatter."""
    median = errors.median()
    mad = (errors - median).abs().median()
    return float(median + spread * 1.4826 * mad.clamp_min(1e-3 * median.abs() + 1e-12))


class MimicGANDefense(nn.Module):
    """Clean-then-classify with MimicGAN, which does no harm where it cannot help.

    ``MimicGANDefense(classifier, mimicgan)`` is an ``nn.Module`` returning the classifier's
    outputs, so Captum attributions and Alibi explainers run on the defended model unchanged.
    Gradients pass through the cleaning step as the identity (the straight-through / BPDA
    convention): the attribution of ``x`` is the classifier's gradient at the cleaned image.

    Every batch is recovered twice: by MimicGAN (its fitted surrogate, the corruption model)
    and by PGD / Defense-GAN (no corruption model, about a tenth of the cost). Per image
    (:meth:`defend`):

    1. **Which recovery.** MimicGAN's where its surrogate *explains* the observation: it
       reproduces the observation clearly better than the generator's image alone does
       (``observation_errors <= explain_ratio * identity_errors``) and within the error range
       of the batch it was fitted on (``error_threshold``: that batch's median plus
       ``error_spread`` robust standard deviations, which flags the odd images of a mixed
       batch). PGD's everywhere else (a corruption the surrogate does not model: adversarial
       noise, nothing at all).
    2. **Whether to trust it.** A MimicGAN recovery is *untrusted* when it changes the
       classifier's answer and the classifier is less sure of it than of the observation or
       than of a typical image of the generator (``clear_confidence``: the median of the
       classifier's top probability on 256 of the generator's images, calibrated once): the
       surrogate then most likely explains the observation with a different or a blurred
       image (a shallow surrogate mimicking a translation; codes collapsed to the "average
       digit"). PGD's recoveries are not put to this test: an adversarial example is exactly
       an observation the classifier is sure of and wrong about. With
       ``on_untrusted="pass"`` the classifier sees the observation itself; with ``"warn"`` the
       recovery anyway. Either way a ``RuntimeWarning`` says how many, and :attr:`stats`
       counts them over all calls (``surrogate_used``, ``identity_used`` and
       ``passed_through`` add up to ``images``).
    3. **Occlusions.** Where PGD's recovery is to be used, its residual is tested for an
       occlusion: pixels it misses by much that are clustered into patches rather than
       scattered like noise (:func:`~captum_latent.inverse.occlusion.find_occlusions`). A
       whole-image reconstruction fits the patch too and loses the digit (on the paper's
       noise cross PGD is less accurate than the occluded observations), so an occluded
       image is reconstructed from the pixels outside the grown patch instead, and the
       classifier sees the observation with the patch filled in (``stats["repaired"]``, a
       part of ``identity_used``). ``occlusions=None`` turns this step off.

    Each recovery also gets a typicality score (how typical its code is under the prior,
    calibrated on prior draws). It is reported and, with ``min_typicality > 0``, required of
    an explained recovery; it is off by default because on the zoo digits it does not tell
    good recoveries from bad ones: the recoveries that help most (dropped pixels, blur +
    negative) and a fifth to a half of the recoveries of uncorrupted digits have codes less
    typical than 0.01 (docs/methods/mimicgan.md, "Doing no harm").

    The surrogate needs about 25 observations. Call :meth:`fit` once on a batch of corrupted
    inputs to learn it; afterwards any batch (even a single image) is cleaned with that
    surrogate fixed. Before :meth:`fit`, a batch of at least ``mimicgan.min_observations``
    images fits its own surrogate (and calibrates its own error threshold), and a smaller one
    is cleaned by PGD alone, with a warning once.

    Parameters
    ----------
    classifier : nn.Module
        Maps cleaned images to outputs (logits or probabilities).
    mimicgan : MimicGAN
        The cleaner (``surrogate="affine"`` for corruptions that may move the image;
        :meth:`MimicGAN.pgd` for a plain Defense-GAN defence).
    seed : int, default 0
        Seed of every cleaning call (the defence is deterministic).
    on_untrusted : {"pass", "warn"}, default "pass"
        An untrusted recovery: give the classifier the observation unchanged, or only warn.
    explain_ratio : float, default 0.75
        How much better than the generator's image alone (ratio of observation errors) the
        surrogate must reproduce an observation for MimicGAN's recovery to be used, in (0, 1].
    error_spread : float, default 5.0
        Robust standard deviations above the fit batch's median observation error that an
        explained observation may reach (``math.inf``: not checked).
    min_typicality : float, default 0.0
        Smallest typicality of an explained recovery's code, in [0, 1) (0: not checked).
    occlusions : OcclusionTest or None, default OcclusionTest()
        Thresholds of step 3; ``None``: PGD's recoveries are used as they are.

    Attributes
    ----------
    stats : dict
        Counts over all calls: ``images``, ``surrogate_used``, ``identity_used``,
        ``passed_through``, ``untrusted``, ``repaired``.
    error_threshold : float or None
        Calibrated by :meth:`fit`.
    clear_confidence : float
        Calibrated at construction (see above).
    value_scale : float
        Width of the generator's pixel range (over its prior images, at construction): the
        unit of :attr:`OcclusionTest.outlier_level` in step 3.

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
    >>> sorted(defended.stats)
    ['identity_used', 'images', 'passed_through', 'repaired', 'surrogate_used', 'untrusted']
    """

    def __init__(self, classifier: nn.Module, mimicgan: MimicGAN, seed: int = 0, *,
                 on_untrusted: str = "pass", explain_ratio: float = 0.75,
                 error_spread: float = 5.0, min_typicality: float = 0.0,
                 occlusions: OcclusionTest | None = _OCCLUSION_TEST) -> None:
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be a torch.nn.Module, got "
                            f"{type(classifier).__name__}")
        if not isinstance(mimicgan, MimicGAN):
            raise TypeError(f"mimicgan must be a MimicGAN, got {type(mimicgan).__name__}")
        if on_untrusted not in _ON_UNTRUSTED:
            raise ValueError(f"on_untrusted must be one of {_ON_UNTRUSTED}, got "
                             f"{on_untrusted!r}")
        self.explain_ratio = check_fraction("explain_ratio", explain_ratio)
        self.min_typicality = check_fraction("min_typicality", min_typicality, closed_low=True)
        if self.min_typicality == 1:
            raise ValueError("min_typicality must be in [0, 1): 1 would distrust every code")
        if isinstance(error_spread, bool) or not isinstance(error_spread, (int, float)) \
                or not error_spread > 0:
            raise ValueError(f"error_spread must be a number > 0 (math.inf: not checked), got "
                             f"{error_spread!r}")
        self.error_spread = float(error_spread)
        if occlusions is not None and not isinstance(occlusions, OcclusionTest):
            raise TypeError(f"occlusions must be an OcclusionTest or None, got "
                            f"{type(occlusions).__name__}")
        self.occlusions = occlusions
        probe = torch.zeros(2, *mimicgan.image_shape, device=mimicgan.device)
        with torch.no_grad():
            out = call_model("classifier", classifier, probe,
                             when="(two blank images of the generator's shape; the probe call)")
        check_model_output("classifier", out, when="on blank images (the probe call)")
        self.classifier = classifier
        self.mimicgan = mimicgan
        self.identity = MimicGAN.pgd(mimicgan.generator, config=mimicgan.config,
                                     batchnorm=mimicgan.search.batchnorm,
                                     min_observations=mimicgan.min_observations,
                                     device=mimicgan.device)
        self.seed = seed
        self.on_untrusted = on_untrusted
        prior_images = mimicgan.prior_images()
        _, confidence = self._read(prior_images)
        self.clear_confidence = float(confidence.median())
        self.value_scale = float(prior_images.max() - prior_images.min()) or 1.0
        self.surrogate: nn.Module | None = None
        self.error_threshold: float | None = None
        self.stats = {"images": 0, "surrogate_used": 0, "identity_used": 0, "untrusted": 0,
                      "passed_through": 0, "repaired": 0}
        self._warned = False

    @property
    def _learnable(self) -> bool:
        return any(p.requires_grad for p in self.mimicgan.surrogate_template.parameters())

    def fit(self, observations: torch.Tensor) -> MimicGANDefense:
        """Learn the corruption surrogate on ``observations`` (at least ``min_observations``)
        and calibrate ``error_threshold`` on their observation errors."""
        result = self.mimicgan.recover(observations, seed=self.seed)
        self.surrogate = result.surrogate
        self.error_threshold = _robust_threshold(result.observation_errors, self.error_spread)
        return self

    def _recover(self, x: torch.Tensor) -> tuple[MimicGANResult | None, float]:
        """MimicGAN's recovery of ``x`` and the error threshold, or ``None`` (PGD alone)."""
        m = self.mimicgan
        if self.surrogate is not None:
            return (m.recover(x, surrogate=self.surrogate, fit_surrogate=False, seed=self.seed),
                    self.error_threshold)
        if not self._learnable:  # a PGD / Cowboy cleaner: nothing but the identity recovery
            return None, math.inf
        if x.shape[0] < m.min_observations:
            if not self._warned:
                warnings.warn(
                    f"MimicGANDefense: a batch of {x.shape[0]} < {m.min_observations} images "
                    "before fit(): cleaning it with PGD alone (identity surrogate)",
                    stacklevel=4)
                self._warned = True
            return None, math.inf
        result = m.recover(x, seed=self.seed)
        return result, _robust_threshold(result.observation_errors, self.error_spread)

    def _read(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The classifier's class and its probability for ``images``."""
        out = class_scores("classifier", self.classifier, images,
                           when=f"(reading {images.shape[0]} images)").float()
        probs = out if _are_probabilities(out) else out.softmax(1)
        confidence, label = probs.max(1)
        return label, confidence

    def defend(self, x: torch.Tensor) -> DefenseOutcome:
        """Recover the batch ``x`` twice, choose per image what the classifier sees (see the
        class description) and update :attr:`stats`."""
        result, threshold = self._recover(x)
        cleaner = self.identity if result is not None or self._learnable else self.mimicgan
        identity = cleaner.recover(x, seed=self.seed)
        pgd_images = identity.images.to(x.device, x.dtype)
        e_p = identity.observation_errors.to(x.device)
        if result is None:  # PGD alone: nothing to explain, nothing to distrust
            none = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            images, repaired = self._repair(x, pgd_images, identity.codes, ~none, cleaner)
            outcome = DefenseOutcome(
                images=images, recovered=pgd_images, identity_recovered=pgd_images,
                observation_errors=e_p, identity_errors=e_p,
                typicality=identity.typicality.to(x.device), explained=none, trusted=~none,
                passed_through=none, repaired=repaired)
            self._count(outcome, threshold)
            return outcome
        recovered = result.images.to(x.device, x.dtype)
        e_m = result.observation_errors.to(x.device)
        typical = result.typicality.to(x.device)
        explained = (e_m <= self.explain_ratio * e_p) & (e_m <= threshold)
        if self.min_typicality > 0:
            explained &= typical >= self.min_typicality
        label_m, conf_m = self._read(recovered)
        label_o, conf_o = self._read(x)
        unclear = (conf_m < conf_o) | (conf_m < self.clear_confidence)
        trusted = ~(explained & (label_m != label_o) & unclear)
        passed = ~trusted if self.on_untrusted == "pass" else torch.zeros_like(trusted)
        identity_images, repaired = self._repair(x, pgd_images, identity.codes, ~explained,
                                                 cleaner)
        chosen = torch.where(explained[:, None, None, None], recovered, identity_images)
        images = torch.where(passed[:, None, None, None], x, chosen)
        outcome = DefenseOutcome(
            images=images, recovered=recovered, identity_recovered=pgd_images,
            observation_errors=e_m, identity_errors=e_p, typicality=typical,
            explained=explained, trusted=trusted, passed_through=passed, repaired=repaired)
        self._count(outcome, threshold)
        return outcome

    def _repair(self, x: torch.Tensor, pgd_images: torch.Tensor, codes: torch.Tensor,
                used: torch.Tensor, cleaner: MimicGAN) -> tuple[torch.Tensor, torch.Tensor]:
        """Step 3: PGD's images with the occluded ones (among ``used``) reconstructed around
        their patches, and which were."""
        none = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        if self.occlusions is None or not bool(used.any()):
            return pgd_images, none
        occluded, patches = find_occlusions(x, pgd_images, value_scale=self.value_scale,
                                            test=self.occlusions)
        repaired = occluded.to(x.device) & used
        if not bool(repaired.any()):
            return pgd_images, none
        rows = torch.nonzero(repaired).squeeze(1)
        images = pgd_images.clone()
        images[rows] = reconstruct_around(cleaner.search, x[rows], patches[rows].to(x.device),
                                          codes[rows.to(codes.device)], seed=self.seed)
        return images, repaired

    def _count(self, outcome: DefenseOutcome, threshold: float) -> None:
        n, untrusted = outcome.images.shape[0], int((~outcome.trusted).sum())
        explained, passed = int(outcome.explained.sum()), int(outcome.passed_through.sum())
        self.stats["images"] += n
        self.stats["surrogate_used"] += explained - passed
        self.stats["identity_used"] += n - explained
        self.stats["untrusted"] += untrusted
        self.stats["passed_through"] += passed
        self.stats["repaired"] += int((outcome.repaired & ~outcome.passed_through).sum())
        if untrusted:
            action = ("passed them through unchanged" if self.on_untrusted == "pass"
                      else "classified the recoveries anyway (on_untrusted='warn')")
            warnings.warn(
                f"MimicGANDefense: {untrusted} of {n} MimicGAN recoveries cannot be trusted "
                "(each changes the classifier's answer, and the classifier is surer of the "
                f"observation or of a typical generator image); {action}",
                RuntimeWarning, stacklevel=4)

    def clean(self, x: torch.Tensor) -> torch.Tensor:
        """What the classifier sees for the batch ``x`` (:attr:`DefenseOutcome.images`)."""
        return self.defend(x).images

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cleaned = self.clean(x.detach()).detach().to(x.dtype)
        straight_through = x + (cleaned - x).detach()
        out = call_model("classifier", self.classifier, straight_through,
                         when="(the cleaned images)")
        check_model_output("classifier", out, when=f"on {x.shape[0]} cleaned images")
        return out


def _are_probabilities(out: torch.Tensor) -> bool:
    """Rows that are already probability vectors (non-negative, summing to 1)."""
    return bool((out >= 0).all() and torch.allclose(out.sum(1), torch.ones_like(out[:, 0]),
                                                    atol=1e-4))
