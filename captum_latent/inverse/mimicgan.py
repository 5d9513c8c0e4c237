"""MimicGAN: blind image recovery with a GAN prior and a corruption-mimicking surrogate.

Alternating optimisation (paper Alg. 1): ``T1`` RMSprop steps on the surrogate ``f_hat`` with
the current estimates ``G(z_j)`` fixed, then ``T2`` steps on the codes through the latent-search
core with ``f_hat`` fixed, codes clipped to a box; repeated ``T`` times. The loss (Eq. 3) is

``L = L_obs + lambda_adv L_adv + lambda_I L_I`` with ``L_obs = |Y - f_hat(G(z))|_1``,
``L_adv = log(1 - D(G(z)))`` and ``L_I = |Y - G(z)|_1 + |f_hat(G(z)) - G(z)|_1``
(means over pixels instead of sums, so learning rates do not depend on the image size).
PGD / Defense-GAN is the special case ``f_hat = I, lambda_I = 0``; "Cowboy" adds the
discriminator term.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from captum_latent.adapters import register_adapter
from captum_latent.core import CallableObjective, Clip, LatentSearch, RMSprop, probe_generator
from captum_latent.inverse._dataset import MimicGANDatasetAdapter
from captum_latent.inverse.surrogate import (
    AffineSurrogate,
    IdentitySurrogate,
    ShallowSurrogate,
)
from captum_latent.validation import (
    check_image_tensor,
    check_in_range,
    module_device,
)

__all__ = ["PRESETS", "MimicGAN", "MimicGANConfig", "MimicGANResult"]


@dataclass(frozen=True)
class MimicGANConfig:
    """Hyper-parameters of MimicGAN (paper Table 1 names in brackets).

    Attributes
    ----------
    lambda_identity : float
        Weight of the identity loss [lambda_I].
    lambda_adv : float
        Weight of the discriminator loss [lambda_adv]; needs a discriminator when > 0.
    lr_surrogate : float
        RMSprop step of the surrogate [gamma_s].
    lr_codes : float
        RMSprop step of the codes [gamma_g].
    outer_iterations : int
        Alternations [T].
    surrogate_steps : int
        Surrogate steps per alternation [T1].
    code_steps : int
        Code steps per alternation [T2].
    code_range : tuple of float or None
        Box the codes are clipped to (paper: [-1, 1]); ``None`` disables clipping.
    observation_loss : {"l1", "l2"}
        Pixel distance of ``L_obs`` and ``L_I``: the paper's ``"l1"`` (mean absolute error) or
        ``"l2"`` (mean squared error). Use ``"l2"`` for corruptions that replace more than half
        of the pixels by a value unrelated to the image (e.g. 70% dropped pixels): there the
        best deterministic L1 mimic outputs the fill value whatever the image (the per-pixel
        median), so the codes get no gradient, whereas the L2 mimic is the conditional mean
        ``(1 - p) x + p * fill``, which the surrogate can represent and which is fitted best by
        the clean ``x`` (see docs/methods/mimicgan.md).
    restarts : int
        Surrogate initialisations tried (not in the paper, which uses one). With ``restarts``
        = R > 1 each initialisation runs the first ``restart_alternations`` alternations from
        the same initial codes, and only the one with the lowest observation loss
        ``mean |Y - f_hat(G(z))|`` (or squared, see ``observation_loss``) at that point is
        continued. Initialisation 0 is the surrogate given to :class:`MimicGAN`, initialisation
        k >= 1 a copy re-initialised (``reset_parameters`` of its modules) from torch seed
        ``1000 * seed + k``, where ``seed`` is :meth:`MimicGAN.recover`'s, so the choice is
        deterministic under a seed. The choice uses the observations only (no labels, no
        clean images). Cost: ``R * restart_alternations + outer_iterations -
        restart_alternations`` alternations instead of ``outer_iterations``. Ignored when the
        surrogate is not fitted (PGD, ``fit_surrogate=False``).
    restart_alternations : int
        Alternations after which the restarts are compared (at most ``outer_iterations``).
    """

    lambda_identity: float = 0.0
    lambda_adv: float = 0.0
    lr_surrogate: float = 1e-3
    lr_codes: float = 1e-2
    outer_iterations: int = 15
    surrogate_steps: int = 10
    code_steps: int = 20
    code_range: tuple[float, float] | None = (-2.0, 2.0)
    observation_loss: str = "l1"
    restarts: int = 1
    restart_alternations: int = 1

    def __post_init__(self) -> None:
        for name in ("lambda_identity", "lambda_adv"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("lr_surrogate", "lr_codes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("outer_iterations", "surrogate_steps", "code_steps",
                     "restart_alternations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if isinstance(self.restarts, bool) or not isinstance(self.restarts, int) or \
                self.restarts < 1:
            raise ValueError(f"restarts must be a positive int, got {self.restarts!r}")
        if self.restarts > 1 and not 1 <= self.restart_alternations <= self.outer_iterations:
            raise ValueError(
                f"restart_alternations must be in [1, outer_iterations={self.outer_iterations}] "
                f"when restarts > 1, got {self.restart_alternations!r}")
        if self.code_range is not None and not self.code_range[1] > self.code_range[0]:
            raise ValueError(f"code_range must be (low, high) with high > low, got "
                             f"{self.code_range!r}")
        if self.observation_loss not in _DISTANCES:
            raise ValueError(f"observation_loss must be one of {sorted(_DISTANCES)}, got "
                             f"{self.observation_loss!r}")


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs()


def _l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).square()


_DISTANCES = {"l1": _l1, "l2": _l2}
_SURROGATES = ("shallow", "affine", "identity")
_TYPICALITY_DRAWS, _TYPICALITY_SEED = 4096, 12345


# The paper's Table 1 (CelebA tasks) and presets for the zoo digits' robust-classification
# corruptions, picked from sweeps of gamma_s, T1 and T on 128 *training* digits (the test
# digits are kept for the benchmark) over 4 surrogate initialisations, see
# docs/methods/mimicgan.md. The code box is [-2, 2] rather than the paper's [-1, 1] because the
# zoo's generator draws N(0, I) codes, not U(-1, 1) ones.
PRESETS: dict[str, MimicGANConfig] = {
    "gray_blur": MimicGANConfig(0.0, 0.0, 2e-4, 1e-3),
    "stylize": MimicGANConfig(0.0, 0.0, 8e-5, 4e-4),
    "negative": MimicGANConfig(0.0, 1e-4, 1e-3, 1e-3),
    "stuck_pixels": MimicGANConfig(1e-1, 1e-4, 4e-3, 3e-3),
    "occlusion": MimicGANConfig(1e-1, 1e-4, 4e-3, 3e-3),
    "inpainting": MimicGANConfig(1e-1, 1e-4, 4e-3, 3e-3),
    # generic digits preset, for an unknown corruption: the L2 loss (needed for dropped
    # pixels), a surrogate fast enough to learn blur + negative's sign flip but slow enough not
    # to drift on adversarial examples, and 4 surrogate initialisations of which the one with
    # the lowest observation loss after 1 alternation is kept (docs/methods/mimicgan.md)
    "digits": MimicGANConfig(0.0, 0.0, 1e-3, 2e-2, outer_iterations=8, surrogate_steps=10,
                             observation_loss="l2", restarts=4, restart_alternations=1),
    "digits_binary": MimicGANConfig(0.0, 0.0, 5e-4, 2e-2, outer_iterations=8,
                                    surrogate_steps=5),
    # 4 restarts: one surrogate initialisation in four never learns the sign flip, and it is
    # the one that mimics worst after the first alternation (docs/methods/mimicgan.md)
    "digits_blur_negative": MimicGANConfig(0.0, 0.0, 1e-3, 2e-2, outer_iterations=6,
                                           surrogate_steps=10, restarts=4),
    # L2, not L1: see MimicGANConfig.observation_loss; a slow surrogate (gamma_s = 2.5e-4):
    # at 1e-3 and above it drifts to images the classifier misreads (docs/methods/mimicgan.md)
    "digits_dropped_pixels": MimicGANConfig(0.0, 0.0, 2.5e-4, 2e-2, outer_iterations=12,
                                            surrogate_steps=5, observation_loss="l2"),
    # the defence (benchmarks/mimicgan.py --defence): a slow surrogate that stays near the
    # identity; tuned on FGSM / PGD (epsilon 0.1) attacks of 128 training digits
    "digits_adversarial": MimicGANConfig(0.0, 0.0, 5e-4, 2e-2, outer_iterations=12,
                                         surrogate_steps=5),
}


@dataclass
class MimicGANResult:
    """Outcome of :meth:`MimicGAN.recover`.

    Attributes
    ----------
    images : torch.Tensor
        ``(N, C, H, W)`` recovered images ``G(z_j)``.
    codes : torch.Tensor
        ``(N, d)`` their codes.
    surrogate : nn.Module
        The fitted corruption surrogate ``f_hat`` (a copy; identity for PGD).
    mimicked : torch.Tensor
        ``f_hat(G(z_j))``: the surrogate's reproduction of the observations.
    history : list of float
        Mean loss after every alternation.
    observation_errors : torch.Tensor
        ``(N,)`` how well the surrogate reproduces each observation: the mean pixel distance
        of the observation loss (``config.observation_loss``) between ``mimicked`` and the
        observation. A recovery that does not explain its observation cannot be trusted.
    typicality : torch.Tensor
        ``(N,)`` how typical each code is under the generator's prior, in (0, 1]: the
        two-sided tail fraction of prior draws whose standardised distance from the prior's
        centre is as extreme (a collapsed code near the centre, the "average digit", scores
        as low as one far out). Calibrated on 4096 prior draws passed through the same code
        box: a code drawn from the prior scores below ``t`` with probability ``t``.
    """

    images: torch.Tensor
    codes: torch.Tensor
    surrogate: nn.Module
    mimicked: torch.Tensor
    history: list[float] = field(default_factory=list)
    observation_errors: torch.Tensor | None = None
    typicality: torch.Tensor | None = None


class MimicGAN:
    """Blind recovery of corrupted images: estimate the corruption and the clean images jointly.

    Parameters
    ----------
    generator : nn.Module
        Frozen generator ``(B, d) -> (B, C, H, W)`` trained on clean images.
    discriminator : nn.Module, optional
        ``(B, C, H, W) -> (B,)`` real/fake logits; needed when ``lambda_adv > 0``.
    surrogate : {"shallow", "affine", "identity"} or nn.Module, default "shallow"
        The corruption model ``f_hat``; a module is copied, never modified in place.
        ``"affine"``: :class:`~captum_latent.inverse.AffineSurrogate`, a bounded shift,
        rotation and scaling shared by the batch before the shallow surrogate, for corruptions
        that may move the image (its warp starts where the observations' mass sits relative
        to the generator's images, and learns 20x faster than the convolutions). A module with
        a ``start_from(observations, generated)`` method is started that way; a submodule
        with an ``lr_multiplier`` attribute gets that multiple of ``lr_surrogate``.
    config : MimicGANConfig or str, default "digits"
        Hyper-parameters or a key of :data:`PRESETS`.
    batchnorm : {"eval", "batch", "as_is"}, default "eval"
        Batch-norm mode of the generator during the code steps.
    min_observations : int, default 25
        Smallest batch :meth:`recover` accepts with a learnable surrogate (the paper: the
        surrogate needs about 25 observations).
    device : str or torch.device, optional
        Where the codes, observations and surrogate live; default: the generator's device
        (that of its first parameter or buffer, else the CPU).
    show_progress : bool, default False

    Examples
    --------
    >>> import torch
    >>> from captum_latent import zoo
    >>> from captum_latent.inverse import MimicGAN, corruptions
    >>> gan = zoo.digits_gan(progress=False)
    >>> clean = zoo.digits().test.images[:32]
    >>> observed = corruptions.blur_negative(clean)
    >>> result = MimicGAN(gan.generator, config="digits").recover(observed, seed=0)
    >>> result.images.shape
    torch.Size([32, 1, 28, 28])
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        surrogate: str | nn.Module = "shallow",
        config: MimicGANConfig | str = "digits",
        *,
        batchnorm: str = "eval",
        min_observations: int = 25,
        device: torch.device | str | None = None,
        show_progress: bool = False,
    ) -> None:
        if isinstance(config, str):
            if config not in PRESETS:
                raise ValueError(f"config must be a MimicGANConfig or a preset in "
                                 f"{sorted(PRESETS)}, "
                                 f"got {config!r}")
            config = PRESETS[config]
        if not isinstance(config, MimicGANConfig):
            raise TypeError(f"config must be a MimicGANConfig or a preset name, got "
                            f"{type(config).__name__}")
        if not isinstance(generator, nn.Module):
            raise TypeError(f"generator must be a torch.nn.Module, got {type(generator).__name__}")
        if discriminator is not None and not isinstance(discriminator, nn.Module):
            raise TypeError(f"discriminator must be a torch.nn.Module, got "
                            f"{type(discriminator).__name__}")
        if config.lambda_adv > 0 and discriminator is None:
            raise ValueError("config.lambda_adv > 0 needs a discriminator")
        if not (isinstance(surrogate, nn.Module) or surrogate in _SURROGATES):
            raise ValueError(f"surrogate must be one of {_SURROGATES} or an nn.Module, got "
                             f"{surrogate!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.config = config
        if device is None:
            device = module_device(generator) or torch.device("cpu")
        self.device = torch.device(device)
        disc_device = module_device(discriminator)
        if disc_device is not None and disc_device.type != self.device.type:
            raise ValueError(f"discriminator is on {disc_device} but MimicGAN runs on "
                             f"{self.device}: move it with discriminator.to({str(self.device)!r})")
        self._value_range: tuple[float, float] | None = None
        self._radii: torch.Tensor | None = None  # typicality reference (lazily)
        self._prior_sample: torch.Tensor | None = None  # generator images (lazily)
        self.min_observations = int(min_observations)
        self.show_progress = show_progress
        self.search = LatentSearch(
            generator, optimizer=RMSprop(lr=config.lr_codes), batchnorm=batchnorm,
            projection=Clip(*config.code_range) if config.code_range else None,
            max_iterations=max(config.code_steps, 1), device=self.device,
        )
        self.image_shape = tuple(self.search.image_shape)
        if surrogate in ("shallow", "affine"):
            with torch.random.fork_rng(devices=[]):  # the same initial surrogate every time,
                torch.default_generator.manual_seed(0)  # without touching the caller's RNGs
                surrogate = (ShallowSurrogate(self.image_shape) if surrogate == "shallow"
                             else AffineSurrogate(self.image_shape))
        elif surrogate == "identity":
            surrogate = IdentitySurrogate()
        self.surrogate_template = surrogate

    # -- the paper's baselines -----------------------------------------------------------
    @classmethod
    def pgd(cls, generator: nn.Module, config: MimicGANConfig | str = "digits",
            **kwargs: Any) -> MimicGAN:
        """PGD / Defense-GAN: identity surrogate, ``lambda_I = lambda_adv = 0``."""
        config = PRESETS[config] if isinstance(config, str) else config
        return cls(generator, surrogate="identity",
                   config=replace(config, lambda_identity=0.0, lambda_adv=0.0), **kwargs)

    @classmethod
    def cowboy(cls, generator: nn.Module, discriminator: nn.Module,
               config: MimicGANConfig | str = "digits", lambda_adv: float = 1e-3,
               **kwargs: Any) -> MimicGAN:
        """The "Cowboy" defence: Defense-GAN plus the discriminator term (``lambda_adv``)."""
        config = PRESETS[config] if isinstance(config, str) else config
        return cls(generator, discriminator, surrogate="identity",
                   config=replace(config, lambda_identity=0.0, lambda_adv=lambda_adv), **kwargs)

    # -- recovery -------------------------------------------------------------------------
    def _check(self, observations: Any, learnable: bool) -> torch.Tensor:
        check_image_tensor("observations", observations, chw=self.image_shape,
                           device=self.device)
        if learnable and observations.shape[0] < self.min_observations:
            raise ValueError(
                f"MimicGAN needs at least min_observations={self.min_observations} observations "
                f"to fit its surrogate, got {observations.shape[0]}; pass more images, or a "
                "fitted surrogate with fit_surrogate=False"
            )
        if self._value_range is None:  # the corruption may leave the generator's range a
            # little (the surrogate models it); a wrong scale, e.g. [0, 255], is an error
            _, low, high = probe_generator(self.generator, self.search.latent_dim, self.device,
                                           n=16, margin=1.0)
            self._value_range = (low, high)
        check_in_range("observations", observations, *self._value_range,
                       what="the generator's images")
        return observations.to(self.device, torch.float32)

    def _initial_codes(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """Every code starts at the mean of 1000 prior draws (the paper's 'average sample')."""
        draws = self.search.prior.sample(torch.zeros(1000, dtype=torch.long, device=self.device),
                                         gen)
        return draws.mean(0, keepdim=True).expand(n, -1).clone()

    def typicality(self, codes: torch.Tensor) -> torch.Tensor:
        """``(N,)`` two-sided typicality of ``codes`` under the prior (see
        :attr:`MimicGANResult.typicality`)."""
        d = self.search.latent_dim
        if not isinstance(codes, torch.Tensor) or codes.dim() != 2 or codes.shape[1] != d:
            raise ValueError(f"codes must be a (N, {d}) tensor, got "
                             f"{tuple(getattr(codes, 'shape', ())) or type(codes).__name__}")
        if self._radii is None:
            gen = torch.Generator(self.device).manual_seed(_TYPICALITY_SEED)
            draws = self.search.prior.sample(
                torch.zeros(_TYPICALITY_DRAWS, dtype=torch.long, device=self.device), gen)
            if self.search.projection is not None:
                draws = self.search.projection(draws)
            self._centre, self._spread = draws.mean(0), draws.std(0).clamp_min(1e-6)
            self._radii = ((draws - self._centre) / self._spread).norm(dim=1).sort().values
        radius = ((codes.to(self.device) - self._centre) / self._spread).norm(dim=1)
        below = torch.searchsorted(self._radii, radius).float() / len(self._radii)
        return (2 * torch.minimum(below, 1 - below)).clamp(1 / len(self._radii), 1.0)

    def prior_images(self) -> torch.Tensor:
        """``(256, C, H, W)`` images of prior draws through the code box (a fixed seed, made
        once; the caller's RNGs untouched): what the generator typically makes. Surrogates that
        start from the observations' statistics compare them with these
        (``AffineSurrogate.start_from``), and :class:`MimicGANDefense` calibrates its
        ``clear_confidence`` on them.

        Examples
        --------
        >>> from captum_latent import zoo
        >>> from captum_latent.inverse import MimicGAN
        >>> MimicGAN(zoo.digits_gan(progress=False).generator).prior_images().shape
        torch.Size([256, 1, 28, 28])
        """
        if self._prior_sample is None:
            gen = torch.Generator(self.device).manual_seed(_TYPICALITY_SEED + 1)
            codes = self.search.prior.sample(
                torch.zeros(256, dtype=torch.long, device=self.device), gen)
            if self.search.projection is not None:
                codes = self.search.projection(codes)
            with torch.no_grad():
                self._prior_sample = self._generate(codes)
        return self._prior_sample

    def _adv(self, images: torch.Tensor) -> torch.Tensor:
        if self.config.lambda_adv == 0 or self.discriminator is None:
            return images.new_zeros(images.shape[0])
        return -F.softplus(self.discriminator(images).reshape(-1))  # log(1 - sigmoid(logit))

    def recover(
        self,
        observations: torch.Tensor,
        *,
        surrogate: nn.Module | None = None,
        fit_surrogate: bool = True,
        seed: int | None = None,
    ) -> MimicGANResult:
        """Recover clean images from ``observations`` (an unknown corruption of clean images).

        Parameters
        ----------
        observations : torch.Tensor
            ``(N, C, H, W)`` corrupted images, channel-first, ``N >= min_observations`` when the
            surrogate is fitted.
        surrogate : nn.Module, optional
            Start from this surrogate (e.g. one fitted on an earlier batch) instead of a copy of
            the constructor's.
        fit_surrogate : bool, default True
            Update the surrogate (MimicGAN); ``False`` keeps it fixed (z-steps only).
        seed : int, optional
            Seed of the initial codes and, with ``config.restarts > 1``, of the re-initialised
            surrogates (torch seeds ``1000 * seed + k``); ``None`` draws one from torch's
            global RNG.
        """
        with torch.enable_grad():  # optimisation works even when called under no_grad
            return self._recover(observations, surrogate, fit_surrogate, seed)

    def _recover(
        self, observations: torch.Tensor, surrogate: nn.Module | None, fit_surrogate: bool,
        seed: int | None,
    ) -> MimicGANResult:
        template = self.surrogate_template if surrogate is None else surrogate
        learnable = fit_surrogate and any(p.requires_grad for p in template.parameters())
        y = self._check(observations, learnable)
        cfg = self.config
        seed_ = int(torch.randint(0, 2**40, (1,)).item()) if seed is None else int(seed)
        gen = torch.Generator(self.device).manual_seed(seed_)
        z = self._initial_codes(y.shape[0], gen)
        restarts = cfg.restarts if learnable else 1
        bar = tqdm(total=cfg.outer_iterations + (restarts - 1) * cfg.restart_alternations,
                   disable=not self.show_progress, desc="MimicGAN", unit="alternation")
        if restarts == 1:
            run = _Run(self, y, template, learnable, z, gen)
            run.alternate(cfg.outer_iterations, bar)
        else:
            runs = []
            for k in range(restarts):
                start = template if k == 0 else _reinitialised(template, 1000 * seed_ + k)
                run = _Run(self, y, start, learnable, z, _copy_generator(gen))
                run.alternate(cfg.restart_alternations, bar)
                runs.append((run.observation_loss(), k, run))
            # the lowest observation loss wins (ties: the lowest index); the others are dropped
            run = min(runs, key=lambda item: item[:2])[2]
            del runs
            run.alternate(cfg.outer_iterations - cfg.restart_alternations, bar)
        bar.close()
        return run.result()

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        from captum_latent.core import batchnorm_mode

        with batchnorm_mode(self.generator, self.search.batchnorm):
            return self.generator(z)


def _copy_generator(gen: torch.Generator) -> torch.Generator:
    copy_ = torch.Generator(gen.device)
    copy_.set_state(gen.get_state())
    return copy_


def _reinitialised(template: nn.Module, seed: int) -> nn.Module:
    """A CPU copy of ``template`` whose modules' ``reset_parameters()`` ran from torch seed
    ``seed`` (the same values whatever the device; the caller's RNG state is left alone)."""
    module = copy.deepcopy(template).to("cpu")
    resettable = [m for m in module.modules() if callable(getattr(m, "reset_parameters", None))]
    if not resettable:
        raise ValueError(
            "restarts > 1 re-initialises the surrogate through its modules' "
            f"reset_parameters(), but {type(template).__name__} has none; use restarts=1")
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        for m in resettable:
            m.reset_parameters()
    return module


def _parameter_groups(module: nn.Module, lr: float) -> list[dict]:
    """RMSprop groups: a submodule's own parameters at ``lr * module.lr_multiplier`` when it
    has one (e.g. :class:`AffineWarp`), every other parameter at ``lr``."""
    fast, seen = [], set()
    for sub in module.modules():
        multiplier = getattr(sub, "lr_multiplier", None)
        if multiplier is not None:
            params = [p for p in sub.parameters(recurse=False) if id(p) not in seen]
            seen.update(id(p) for p in params)
            if params:
                fast.append({"params": params, "lr": lr * float(multiplier)})
    rest = [p for p in module.parameters() if id(p) not in seen]
    return ([{"params": rest, "lr": lr}] if rest else []) + fast


class _Run:
    """One MimicGAN optimisation: a surrogate, its optimiser, the codes and the history."""

    def __init__(self, owner: MimicGAN, y: torch.Tensor, template: nn.Module, learnable: bool,
                 z: torch.Tensor, gen: torch.Generator) -> None:
        self.owner, self.y, self.z, self.gen = owner, y, z, gen
        cfg = owner.config
        self.f_hat = copy.deepcopy(template).to(owner.device)
        self.f_hat.train(learnable)
        if learnable and callable(getattr(self.f_hat, "start_from", None)):
            self.f_hat.start_from(y, owner.prior_images())  # e.g. AffineSurrogate's warp
        self.opt = (torch.optim.RMSprop(_parameter_groups(self.f_hat, cfg.lr_surrogate))
                    if learnable else None)
        self.history: list[float] = []
        self.dist = _DISTANCES[cfg.observation_loss]
        self.objective = CallableObjective(self._code_loss, n_problems=y.shape[0])

    def _code_loss(self, images: torch.Tensor, codes: torch.Tensor,
                   problems: torch.Tensor) -> torch.Tensor:
        cfg, dist = self.owner.config, self.dist
        target = self.y.index_select(0, problems)
        mimic = self.f_hat(images)
        loss = dist(target, mimic).flatten(1).mean(1)
        if cfg.lambda_identity:
            loss = loss + cfg.lambda_identity * (
                dist(target, images).flatten(1).mean(1)
                + dist(mimic, images).flatten(1).mean(1))
        return loss + cfg.lambda_adv * self.owner._adv(images)

    def alternate(self, iterations: int, bar: Any) -> None:
        """``iterations`` alternations of ``T1`` surrogate steps and ``T2`` code steps."""
        owner, cfg, dist, y = self.owner, self.owner.config, self.dist, self.y
        n = y.shape[0]
        for _ in range(iterations):
            if self.opt is not None and cfg.surrogate_steps:
                with torch.no_grad():
                    current = owner._generate(self.z)
                for _ in range(cfg.surrogate_steps):
                    mimic = self.f_hat(current)
                    loss = dist(y, mimic).mean()
                    if cfg.lambda_identity:
                        loss = loss + cfg.lambda_identity * dist(mimic, current).mean()
                    self.opt.zero_grad(set_to_none=True)
                    loss.backward()
                    self.opt.step()
            if cfg.code_steps:
                # the core differentiates with respect to the codes only: neither the
                # generator's nor the surrogate's parameters are touched by this step
                result = owner.search.search(self.objective, initial_codes=self.z,
                                             max_iterations=cfg.code_steps, generator=self.gen)
                self.z = result.codes.reshape(n, -1)
                self.history.append(float(result.losses.mean()))
            bar.update(1)

    def observation_loss(self) -> float:
        """``mean dist(Y, f_hat(G(z)))`` with the surrogate in eval mode (the restart choice)."""
        training = self.f_hat.training
        self.f_hat.eval()
        with torch.no_grad():
            value = float(self.dist(self.y, self.f_hat(self.owner._generate(self.z))).mean())
        self.f_hat.train(training)
        return value

    def result(self) -> MimicGANResult:
        self.f_hat.eval()
        with torch.no_grad():
            images = self.owner._generate(self.z)
            mimicked = self.f_hat(images)
            errors = self.dist(self.y, mimicked).flatten(1).mean(1)
        return MimicGANResult(images=images, codes=self.z, surrogate=self.f_hat,
                              mimicked=mimicked, history=self.history,
                              observation_errors=errors,
                              typicality=self.owner.typicality(self.z))


register_adapter(MimicGAN, MimicGANDatasetAdapter)
