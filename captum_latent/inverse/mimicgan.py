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

from captum_latent._validation import check_image_tensor, check_in_range, probe_generator
from captum_latent.core import CallableObjective, Clip, LatentSearch, RMSprop
from captum_latent.inverse.surrogate import IdentitySurrogate, ShallowSurrogate

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

    def __post_init__(self) -> None:
        for name in ("lambda_identity", "lambda_adv"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("lr_surrogate", "lr_codes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("outer_iterations", "surrogate_steps", "code_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
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
    "digits": MimicGANConfig(0.0, 0.0, 3e-3, 2e-2),
    "digits_binary": MimicGANConfig(0.0, 0.0, 5e-4, 2e-2, outer_iterations=8,
                                    surrogate_steps=5),
    "digits_blur_negative": MimicGANConfig(0.0, 0.0, 1e-3, 2e-2, outer_iterations=6,
                                           surrogate_steps=10),
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
    """

    images: torch.Tensor
    codes: torch.Tensor
    surrogate: nn.Module
    mimicked: torch.Tensor
    history: list[float] = field(default_factory=list)


class MimicGAN:
    """Blind recovery of corrupted images: estimate the corruption and the clean images jointly.

    Parameters
    ----------
    generator : nn.Module
        Frozen generator ``(B, d) -> (B, C, H, W)`` trained on clean images.
    discriminator : nn.Module, optional
        ``(B, C, H, W) -> (B,)`` real/fake logits; needed when ``lambda_adv > 0``.
    surrogate : {"shallow", "identity"} or nn.Module, default "shallow"
        The corruption model ``f_hat``; a module is copied, never modified in place.
    config : MimicGANConfig or str, default "digits"
        Hyper-parameters or a key of :data:`PRESETS`.
    batchnorm : {"eval", "batch", "as_is"}, default "eval"
        Batch-norm mode of the generator during the code steps.
    min_observations : int, default 25
        Smallest batch :meth:`recover` accepts with a learnable surrogate (the paper: the
        surrogate needs about 25 observations).
    device : str or torch.device, default "cpu"
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
        device: torch.device | str = "cpu",
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
        if not (isinstance(surrogate, nn.Module) or surrogate in ("shallow", "identity")):
            raise ValueError(f"surrogate must be 'shallow', 'identity' or an nn.Module, got "
                             f"{surrogate!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.config = config
        self.device = torch.device(device)
        self._value_range: tuple[float, float] | None = None
        self.min_observations = int(min_observations)
        self.show_progress = show_progress
        self.search = LatentSearch(
            generator, optimizer=RMSprop(lr=config.lr_codes), batchnorm=batchnorm,
            projection=Clip(*config.code_range) if config.code_range else None,
            max_iterations=max(config.code_steps, 1), device=self.device,
        )
        self.image_shape = tuple(self.search.image_shape)
        if surrogate == "shallow":
            with torch.random.fork_rng(devices=[]):  # the same initial surrogate every time,
                torch.manual_seed(0)  # without touching the caller's global RNG
                surrogate = ShallowSurrogate(self.image_shape)
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
            Seed of the initial codes.
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
        gen = torch.Generator(self.device).manual_seed(
            int(torch.randint(0, 2**62, (1,)).item()) if seed is None else seed)
        f_hat = copy.deepcopy(template).to(self.device)
        f_hat.train(learnable)
        opt = torch.optim.RMSprop(f_hat.parameters(), lr=cfg.lr_surrogate) if learnable else None
        n = y.shape[0]
        z = self._initial_codes(n, gen)
        history: list[float] = []
        dist = _DISTANCES[cfg.observation_loss]

        def code_loss(images: torch.Tensor, codes: torch.Tensor,
                      problems: torch.Tensor) -> torch.Tensor:
            target = y.index_select(0, problems)
            mimic = f_hat(images)
            loss = dist(target, mimic).flatten(1).mean(1)
            if cfg.lambda_identity:
                loss = loss + cfg.lambda_identity * (
                    dist(target, images).flatten(1).mean(1)
                    + dist(mimic, images).flatten(1).mean(1))
            return loss + cfg.lambda_adv * self._adv(images)

        objective = CallableObjective(code_loss, n_problems=n)
        bar = tqdm(total=cfg.outer_iterations, disable=not self.show_progress, desc="MimicGAN",
                   unit="alternation")
        for _ in range(cfg.outer_iterations):
            if opt is not None and cfg.surrogate_steps:
                with torch.no_grad():
                    current = self._generate(z)
                for _ in range(cfg.surrogate_steps):
                    mimic = f_hat(current)
                    loss = dist(y, mimic).mean()
                    if cfg.lambda_identity:
                        loss = loss + cfg.lambda_identity * dist(mimic, current).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            if cfg.code_steps:
                # the core differentiates with respect to the codes only: neither the
                # generator's nor the surrogate's parameters are touched by this step
                result = self.search.search(objective, initial_codes=z,
                                            max_iterations=cfg.code_steps, generator=gen)
                z = result.codes.reshape(n, -1)
                history.append(float(result.losses.mean()))
            bar.update(1)
        bar.close()
        f_hat.eval()
        with torch.no_grad():
            images = self._generate(z)
            mimicked = f_hat(images)
        return MimicGANResult(images=images, codes=z, surrogate=f_hat, mimicked=mimicked,
                              history=history)

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        from captum_latent.core import batchnorm_mode

        with batchnorm_mode(self.generator, self.search.batchnorm):
            return self.generator(z)
