"""Image priors for DISC (paper §3.2): TV + L2, deep image prior (U-Net) and INR.

A prior is an immutable recipe. :meth:`ImagePrior.build` turns it into a
:class:`PriorState`: an ``nn.Module`` that holds one set of weights *per query* (batched, so
``B`` queries are optimised together without a Python loop) and renders the ``B`` images.

* :class:`TVL2Prior` -- the image itself is the parameter; ``R = tv * TV + l2 * L2`` (Eq. 4).
* :class:`DeepImagePrior` -- a small U-Net with per-query weights (grouped convolutions),
  fed with fixed noise drawn from ``U[-1, 1]``.
* :class:`INRPrior` -- Fourier features of the pixel coordinates (256 frequencies drawn from
  ``N(0, 100)``) followed by SIREN layers, per-query weights applied with ``torch.bmm``.

DIP and INR states are first fitted to reproduce their query (``fit_steps`` Adam steps).
Because a finite fit never reproduces the query exactly, the rendered counterfactual is
*anchored*: ``x_bar = clip(x + f_theta(z) - f_theta0(z), 0, 1)`` with ``theta0`` the fitted
weights, so optimisation starts exactly at the query and every change is a change of the
prior's weights. Set ``anchor=False`` for the plain ``x_bar = f_theta(z)``.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DeepImagePrior", "INRPrior", "ImagePrior", "PriorState", "TVL2Prior"]


def _check_queries(queries: torch.Tensor) -> None:
    if not isinstance(queries, torch.Tensor):
        raise TypeError(f"queries must be a torch.Tensor, got {type(queries).__name__}")
    if queries.ndim != 4:
        raise ValueError(f"queries must have shape (B, C, H, W), got {tuple(queries.shape)}")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero) or not math.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")


def _count(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def total_variation(images: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Isotropic total variation of each image (Eq. 4), summed over channels; shape ``(B,)``."""
    dx = images[..., :-1, 1:] - images[..., :-1, :-1]
    dy = images[..., 1:, :-1] - images[..., :-1, :-1]
    return torch.sqrt(dx * dx + dy * dy + eps).flatten(1).sum(1)


class PriorState(nn.Module, abc.ABC):
    """Per-query weights of a prior for a batch of ``B`` queries; ``forward()`` renders them.

    Attributes
    ----------
    layers : list of list of nn.Parameter
        Parameter groups in forward order ("layers" for progressive optimisation, §3.4).
    """

    layers: list[list[nn.Parameter]]

    @abc.abstractmethod
    def forward(self) -> torch.Tensor:
        """The current ``(B, C, H, W)`` images in [0, 1]."""

    def regularizer(self, images: torch.Tensor) -> torch.Tensor:
        """Explicit prior penalty ``R(x_bar)`` per image, shape ``(B,)`` (zero by default)."""
        return images.new_zeros(images.shape[0])

    def project(self) -> None:
        """Called after every optimiser step (e.g. to keep pixels in [0, 1])."""


class ImagePrior(abc.ABC):
    """Recipe for a :class:`PriorState`; immutable, so one prior serves many calls.

    Attributes
    ----------
    lr : float
        Default learning rate of the counterfactual optimisation with this prior.
    """

    lr: float

    @abc.abstractmethod
    def build(self, queries: torch.Tensor, generator: torch.Generator) -> PriorState:
        """Return a state rendering ``queries`` (B, C, H, W) at initialisation."""


# --------------------------------------------------------------------------- TV + L2 (pixels)
class _PixelState(PriorState):
    def __init__(self, queries: torch.Tensor, tv_weight: float, l2_weight: float) -> None:
        super().__init__()
        self.pixels = nn.Parameter(queries.detach().clone())
        self.layers = [[self.pixels]]
        self.tv_weight = tv_weight
        self.l2_weight = l2_weight

    def forward(self) -> torch.Tensor:
        return self.pixels

    def regularizer(self, images: torch.Tensor) -> torch.Tensor:
        l2 = images.flatten(1).norm(dim=1)
        return self.tv_weight * total_variation(images) + self.l2_weight * l2

    @torch.no_grad()
    def project(self) -> None:
        self.pixels.clamp_(0.0, 1.0)


@dataclass(frozen=True)
class TVL2Prior(ImagePrior):
    """Image-space optimisation regularised by total variation and the image's L2 norm (Eq. 4).

    Parameters
    ----------
    tv_weight : float, default 0.01
        Weight of ``R_TV``.
    l2_weight : float, default 0.01
        Weight of ``R_l2``.
    lr : float, default 0.01
        Adam learning rate on the pixels (kept in [0, 1] by projection).

    Examples
    --------
    >>> import torch
    >>> state = TVL2Prior().build(torch.rand(2, 1, 8, 8), torch.Generator().manual_seed(0))
    >>> state().shape, len(state.layers)
    (torch.Size([2, 1, 8, 8]), 1)
    """

    tv_weight: float = 0.01
    l2_weight: float = 0.01
    lr: float = 0.01

    def __post_init__(self) -> None:
        _positive("tv_weight", self.tv_weight, allow_zero=True)
        _positive("l2_weight", self.l2_weight, allow_zero=True)
        _positive("lr", self.lr)

    def build(self, queries: torch.Tensor, generator: torch.Generator) -> PriorState:
        _check_queries(queries)
        return _PixelState(queries, self.tv_weight, self.l2_weight)


# --------------------------------------------------------------------------- fitted priors
def _uniform(shape: tuple[int, ...], bound: float, gen: torch.Generator,
             like: torch.Tensor) -> torch.Tensor:
    """``U[-bound, bound]`` drawn on the CPU from ``gen`` (device-independent), then moved."""
    out = torch.empty(shape).uniform_(-bound, bound, generator=gen)
    return out.to(device=like.device, dtype=like.dtype)


def _fit(state: _FittedState, queries: torch.Tensor, steps: int, lr: float) -> None:
    """Fit ``state`` (unanchored) to reproduce ``queries`` by Adam on the per-image MSE."""
    params = [p for group in state.layers for p in group]
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = F.mse_loss(state.render(), queries, reduction="none").flatten(1).mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


class _FittedState(PriorState):
    """A network prior with an optional anchor (the query minus its fitted reconstruction)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("offset", None)

    @abc.abstractmethod
    def render(self) -> torch.Tensor:
        """The network output ``f_theta(z)``, shape ``(B, C, H, W)``."""

    def _finish(self, queries: torch.Tensor, steps: int, lr: float, anchor: bool) -> None:
        _fit(self, queries, steps, lr)
        if anchor:
            with torch.no_grad():
                self.offset = queries - self.render()

    def forward(self) -> torch.Tensor:
        out = self.render()
        if self.offset is None:
            return out
        return (out + self.offset).clamp(0.0, 1.0)


# --------------------------------------------------------------------------- INR
class _INRState(_FittedState):
    def __init__(self, queries: torch.Tensor, prior: INRPrior, gen: torch.Generator) -> None:
        super().__init__()
        b, c, h, w = queries.shape
        self.shape = (b, c, h, w)
        freqs = torch.randn(prior.n_frequencies, 2, generator=gen) * math.sqrt(prior.variance)
        ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        coords = torch.stack([ys.flatten(), xs.flatten()], 1)  # (HW, 2) in [0, 1]^2
        proj = 2 * math.pi * coords @ freqs.T
        feats = torch.cat([torch.cos(proj), torch.sin(proj)], 1)  # (HW, 2F)
        self.register_buffer("features", feats.to(queries))
        self.omega0 = prior.omega0
        widths = [2 * prior.n_frequencies, *([prior.hidden] * prior.n_layers), c]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            # SIREN initialisation (Sitzmann et al.): hidden-layer bound sqrt(6 / n) / omega0
            last = i == len(widths) - 2
            bound = math.sqrt(6 / n_in) / (1.0 if last else self.omega0)
            self.weights.append(nn.Parameter(_uniform((b, n_in, n_out), bound, gen, queries)))
            self.biases.append(nn.Parameter(_uniform((b, 1, n_out), 1 / math.sqrt(n_in), gen,
                                                     queries)))
        self.layers = [[wt, bs] for wt, bs in zip(self.weights, self.biases)]
        self._finish(queries, prior.fit_steps, prior.fit_lr, prior.anchor)

    def render(self) -> torch.Tensor:
        b, c, h, w = self.shape
        x = self.features.expand(b, -1, -1)
        n = len(self.weights)
        for i, (wt, bs) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bs, x, wt)
            if i < n - 1:
                x = torch.sin(self.omega0 * x)
        return torch.sigmoid(x).transpose(1, 2).reshape(b, c, h, w)


@dataclass(frozen=True)
class INRPrior(ImagePrior):
    """Implicit neural representation: Fourier features + SIREN layers, one network per query.

    ``x_bar(v) = sigmoid(W_L sin(omega0 (... sin(omega0 (W_1 z(v) + b_1)) ...)) + b_L)`` with
    ``z(v) = [cos(2 pi B v), sin(2 pi B v)]``, ``v`` the pixel coordinates in ``[0, 1]^2`` and
    the rows of ``B`` drawn from ``N(0, variance I)`` (paper: 256 frequencies, variance 100).

    Parameters
    ----------
    n_frequencies : int, default 256
        Number of random frequencies (the Fourier mapping has twice as many features).
    variance : float, default 100.0
        Variance of the Gaussian the frequencies are drawn from.
    hidden : int, default 64
        Width of the SIREN layers.
    n_layers : int, default 2
        Number of SIREN (sine) layers; a linear output layer follows.
    omega0 : float, default 1.0
        SIREN frequency factor. SIREN's 30 is meant for raw coordinates; on top of Fourier
        features it made the counterfactual changes high-frequency noise (docs/methods/disc.md).
    fit_steps : int, default 150
        Adam steps fitting each network to its query before the counterfactual search.
    fit_lr : float, default 1e-3
        Learning rate of that fit.
    anchor : bool, default True
        Add the fit residual back so optimisation starts exactly at the query (module doc).
    lr : float, default 3e-4
        Default learning rate of the counterfactual optimisation.

    Notes
    -----
    The frequencies are in cycles per image side. The paper's variance 100 was chosen for
    96x96 images; on 28x28 images it puts much of the mapping near the Nyquist frequency.
    :func:`~captum_latent.counterfactual.presets.table1_generator` therefore scales it to
    ``100 * (side / 96)^2`` (the same frequencies per pixel) unless told otherwise.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(2, 1, 8, 8)
    >>> state = INRPrior(n_frequencies=16, hidden=16, fit_steps=5).build(
    ...     x, torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(state(), x, atol=1e-5)), len(state.layers)
    (True, 3)
    """

    n_frequencies: int = 256
    variance: float = 100.0
    hidden: int = 64
    n_layers: int = 2
    omega0: float = 1.0
    fit_steps: int = 150
    fit_lr: float = 1e-3
    anchor: bool = True
    lr: float = 3e-4

    def __post_init__(self) -> None:
        _count("n_frequencies", self.n_frequencies)
        _positive("variance", self.variance)
        _count("hidden", self.hidden)
        _count("n_layers", self.n_layers)
        _positive("omega0", self.omega0)
        _count("fit_steps", self.fit_steps, minimum=0)
        _positive("fit_lr", self.fit_lr)
        _positive("lr", self.lr)

    def build(self, queries: torch.Tensor, generator: torch.Generator) -> PriorState:
        _check_queries(queries)
        return _INRState(queries.detach(), self, generator)


# --------------------------------------------------------------------------- deep image prior
class _BatchedConv(nn.Module):
    """A 3x3 (or 1x1) convolution with its own weights for every image of the batch."""

    def __init__(self, b: int, c_in: int, c_out: int, k: int, stride: int, gen: torch.Generator,
                 like: torch.Tensor) -> None:
        super().__init__()
        bound = 1 / math.sqrt(c_in * k * k)  # torch's default Conv2d initialisation range
        self.weight = nn.Parameter(_uniform((b, c_out, c_in, k, k), bound, gen, like))
        self.bias = nn.Parameter(_uniform((b, c_out), bound, gen, like))
        self.stride = stride
        self.padding = k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        weight = self.weight.reshape(-1, *self.weight.shape[2:])
        out = F.conv2d(x.reshape(1, b * c, h, w), weight, self.bias.reshape(-1),
                       stride=self.stride, padding=self.padding, groups=b)
        return out.reshape(b, -1, *out.shape[2:])


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(F.instance_norm(x), 0.2)


class _UNetState(_FittedState):
    def __init__(self, queries: torch.Tensor, prior: DeepImagePrior,
                 gen: torch.Generator) -> None:
        super().__init__()
        b, c, h, w = queries.shape
        c1, c2 = prior.channels
        noise = torch.empty(b, prior.input_channels, h, w).uniform_(-1, 1, generator=gen)
        self.register_buffer("noise", noise.to(queries))

        def conv(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> _BatchedConv:
            return _BatchedConv(b, c_in, c_out, k, stride, gen, queries)

        self.enc1 = conv(prior.input_channels, c1)
        self.down = conv(c1, c2, stride=2)
        self.enc2 = conv(c2, c2)
        self.dec1 = conv(c2 + c1, c1)
        self.out = conv(c1, c, k=1)
        mods = [self.enc1, self.down, self.enc2, self.dec1, self.out]
        self.layers = [[m.weight, m.bias] for m in mods]
        self._finish(queries, prior.fit_steps, prior.fit_lr, prior.anchor)

    def render(self) -> torch.Tensor:
        skip = _act(self.enc1(self.noise))
        deep = _act(self.enc2(_act(self.down(skip))))
        up = F.interpolate(deep, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(self.out(_act(self.dec1(torch.cat([up, skip], 1)))))


@dataclass(frozen=True)
class DeepImagePrior(ImagePrior):
    """Deep image prior: a two-level U-Net ``f_theta(z)`` with per-query weights.

    ``enc1 (3x3) -> down (3x3, stride 2) -> enc2 (3x3) -> bilinear up, concat skip ->
    dec1 (3x3) -> out (1x1) -> sigmoid``, instance normalisation and LeakyReLU(0.2) between
    layers; the input ``z`` is fixed noise from ``U[-1, 1]`` (paper §4). Queries in a batch
    run together through grouped convolutions.

    Parameters
    ----------
    channels : tuple of int, default (16, 32)
        Channels at full and at half resolution.
    input_channels : int, default 8
        Channels of the noise input.
    fit_steps : int, default 150
        Adam steps fitting each network to its query first.
    fit_lr : float, default 0.01
        Learning rate of that fit.
    anchor : bool, default True
        Add the fit residual back so optimisation starts exactly at the query.
    lr : float, default 1e-3
        Default learning rate of the counterfactual optimisation.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(3, 1, 9, 9)
    >>> state = DeepImagePrior(channels=(4, 8), fit_steps=2).build(
    ...     x, torch.Generator().manual_seed(0))
    >>> state().shape, len(state.layers)
    (torch.Size([3, 1, 9, 9]), 5)
    """

    channels: tuple[int, int] = (16, 32)
    input_channels: int = 8
    fit_steps: int = 150
    fit_lr: float = 0.01
    anchor: bool = True
    lr: float = 1e-3

    def __post_init__(self) -> None:
        if len(self.channels) != 2:
            raise ValueError(f"channels must be a pair (c1, c2), got {self.channels!r}")
        for i, ch in enumerate(self.channels):
            _count(f"channels[{i}]", ch)
        _count("input_channels", self.input_channels)
        _count("fit_steps", self.fit_steps, minimum=0)
        _positive("fit_lr", self.fit_lr)
        _positive("lr", self.lr)

    def build(self, queries: torch.Tensor, generator: torch.Generator) -> PriorState:
        _check_queries(queries)
        return _UNetState(queries.detach(), self, generator)
