"""Learned, data-induced latent priors (flexible-priors paper §3).

Both fit reverted codes (see :class:`~captum_latent.generative.GeneratorReversal`) and plug in
wherever the core draws initial codes (``LatentSearch(prior=...)``), since both are
:class:`~captum_latent.core.LatentPrior` s:

- :class:`GaussianPrior`: full-covariance Gaussian, the cheap baseline;
- :class:`PGANPrior`: the paper's PGAN, a secondary MLP GAN ``h: z' -> z`` trained on codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from captum_latent.core import LatentPrior
from captum_latent.seeding import make_generator

__all__ = ["GaussianPrior", "PGANPrior", "PGANConfig"]


def _check_codes(codes: torch.Tensor, min_rows: int = 2) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.dim() != 2 or codes.shape[0] < min_rows:
        raise ValueError(
            f"codes must have shape (n, d) with n >= {min_rows}, got {tuple(codes.shape)}"
        )
    if not codes.is_floating_point() or not bool(torch.isfinite(codes).all()):
        raise ValueError("codes must be finite floating-point values")
    return codes.detach().float()


class GaussianPrior(LatentPrior):
    """``z ~ N(mean, covariance)`` with full covariance.

    Parameters
    ----------
    mean : torch.Tensor
        ``(d,)``.
    covariance : torch.Tensor
        ``(d, d)`` symmetric positive definite.

    Examples
    --------
    >>> import torch
    >>> scale = torch.tensor([1.0, 2.0, 0.5])
    >>> codes = torch.randn(500, 3, generator=torch.Generator().manual_seed(0)) * scale
    >>> prior = GaussianPrior.fit(codes)
    >>> z = prior.sample(torch.zeros(20000, dtype=torch.long), torch.Generator().manual_seed(1))
    >>> [round(v, 1) for v in z.std(0).tolist()]
    [1.0, 2.0, 0.5]
    """

    def __init__(self, mean: torch.Tensor, covariance: torch.Tensor) -> None:
        if not isinstance(mean, torch.Tensor) or mean.dim() != 1:
            raise ValueError(f"mean must be a (d,) tensor, got {getattr(mean, 'shape', mean)!r}")
        d = mean.shape[0]
        super().__init__(d)
        if not isinstance(covariance, torch.Tensor) or tuple(covariance.shape) != (d, d):
            raise ValueError(
                f"covariance must be a ({d}, {d}) tensor, got "
                f"{getattr(covariance, 'shape', type(covariance).__name__)}"
            )
        cov = covariance.detach().double()
        chol, info = torch.linalg.cholesky_ex(0.5 * (cov + cov.T))
        if int(info) != 0:
            raise ValueError("covariance must be symmetric positive definite")
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("covariance", cov.float())
        self.register_buffer("scale_tril", chol.float())

    @classmethod
    def fit(cls, codes: torch.Tensor, *, ridge: float = 1e-6) -> GaussianPrior:
        """Maximum-likelihood mean and covariance of ``codes`` (``ridge`` added to the diagonal)."""
        z = _check_codes(codes, 2).double()
        if not ridge >= 0:
            raise ValueError(f"ridge must be non-negative, got {ridge!r}")
        mean = z.mean(0)
        centred = z - mean
        cov = centred.T @ centred / z.shape[0]
        cov = cov + ridge * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
        return cls(mean.float(), cov)

    def sample(self, problems: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        eps = torch.randn(len(problems), self.latent_dim, generator=generator,
                          device=problems.device)
        return self.mean + eps @ self.scale_tril.T


class _MLP(nn.Sequential):
    def __init__(self, sizes: list[int], *, last_activation: bool = False) -> None:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2 or last_activation:
                layers.append(nn.LeakyReLU(0.2))
        super().__init__(*layers)


@dataclass(frozen=True)
class PGANConfig:
    """Training settings of :meth:`PGANPrior.fit`.

    The paper (App. E) uses 4 FC layers per network, RMSprop with step 3e-4 and mini-batches
    of 100. The defaults keep the architecture, optimiser and batch, and use step 1e-3 with an
    R1 penalty and the residual parametrisation: on the zoo digits GAN this was the setting
    whose samples beat ``N(0, I)`` on both classifier confidence and PAG (see
    ``docs/methods/latent_search.md``).

    Attributes
    ----------
    noise_dim : int or None
        Dimension of the auxiliary noise ``z'`` (default: the code dimension).
    hidden : int
        Width of the hidden layers of both networks.
    layers : int
        Fully connected layers per network.
    steps : int
        Discriminator/generator update pairs.
    batch_size : int
        Mini-batch size.
    lr : float
        Step size of both networks.
    optimizer : {"rmsprop", "adam"}
        RMSprop (the paper) or Adam with ``betas=(0.5, 0.9)``.
    r1_penalty : float
        Weight ``gamma`` of the R1 gradient penalty ``gamma / 2 * ||grad D(real)||^2``
        (Mescheder et al., 2018) on the discriminator; 0 disables it.
    residual : bool
        Parametrise ``h(z') = z' + MLP(z')`` in coordinates whitened by the full-covariance
        Gaussian fit, so the PGAN starts from the Gaussian baseline and learns a correction
        (plain MLP GANs on a few hundred codes collapse directions, measured in
        ``docs/methods/latent_search.md``).
    """

    noise_dim: int | None = None
    hidden: int = 128
    layers: int = 4
    steps: int = 1500
    batch_size: int = 100
    lr: float = 1e-3
    optimizer: str = "rmsprop"
    r1_penalty: float = 1.0
    residual: bool = True

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.layers < 2:
            raise ValueError(f"layers must be at least 2, got {self.layers}")
        bad_noise = not isinstance(self.noise_dim, int) or self.noise_dim < 1
        if self.noise_dim is not None and bad_noise:
            raise ValueError(f"noise_dim must be a positive int or None, got {self.noise_dim!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(f"optimizer must be 'rmsprop' or 'adam', got {self.optimizer!r}")
        if not self.r1_penalty >= 0:
            raise ValueError(f"r1_penalty must be >= 0, got {self.r1_penalty!r}")


class PGANPrior(LatentPrior):
    """The paper's PGAN prior: ``z = h(z')``, ``z' ~ N(0, I)``, with ``h`` trained as a GAN.

    Parameters
    ----------
    mapping : nn.Module
        ``h``: ``(n, noise_dim)`` noise to ``(n, latent_dim)`` codes.
    noise_dim : int
        Dimension of ``z'``.
    latent_dim : int
        Dimension of the codes ``h`` produces.

    Attributes
    ----------
    losses : list of tuple
        ``(discriminator_loss, generator_loss)`` every 100 steps of :meth:`fit`.

    Examples
    --------
    >>> import torch
    >>> codes = torch.randn(256, 2, generator=torch.Generator().manual_seed(0)) * 0.3 + 2.0
    >>> prior = PGANPrior.fit(codes, config=PGANConfig(hidden=16, steps=50), seed=0)
    >>> z = prior.sample(torch.zeros(1000, dtype=torch.long), torch.Generator().manual_seed(1))
    >>> bool((z.mean(0) - 2.0).abs().max() < 0.5)
    True
    """

    def __init__(self, mapping: nn.Module, noise_dim: int, latent_dim: int) -> None:
        super().__init__(latent_dim)
        if not isinstance(mapping, nn.Module):
            raise TypeError(f"mapping must be a torch.nn.Module, got {type(mapping).__name__}")
        if isinstance(noise_dim, bool) or not isinstance(noise_dim, int) or noise_dim < 1:
            raise ValueError(f"noise_dim must be a positive int, got {noise_dim!r}")
        self.mapping = mapping
        self.noise_dim = noise_dim
        self.losses: list[tuple[float, float]] = []

    def sample(self, problems: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(len(problems), self.noise_dim, generator=generator,
                            device=problems.device)
        with torch.no_grad():
            return self.mapping(noise).float()

    @classmethod
    def fit(
        cls,
        codes: torch.Tensor,
        *,
        config: PGANConfig | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> PGANPrior:
        """Train a PGAN on ``(n, d)`` reverted codes (non-saturating GAN loss, RMSprop).

        The codes are whitened with their full-covariance Gaussian fit for training and the
        mapping's output is mapped back, so the MLPs see unit-scale data whatever the codes.
        """
        config = PGANConfig() if config is None else config
        if not isinstance(config, PGANConfig):
            raise TypeError(f"config must be a PGANConfig, got {type(config).__name__}")
        device = torch.device(device)
        z = _check_codes(codes, 2).to(device)
        gen = make_generator(generator=generator, seed=seed, device=device)
        d = z.shape[1]
        noise_dim = config.noise_dim or d
        # whiten with the full-covariance Gaussian fit: the GAN learns what the Gaussian misses
        gauss = GaussianPrior.fit(z, ridge=1e-4)
        mean, chol = gauss.mean, gauss.scale_tril
        data = torch.linalg.solve_triangular(chol, (z - mean).T, upper=False).T
        widths = [config.hidden] * (config.layers - 1)
        if config.residual and noise_dim < d:
            raise ValueError(f"residual PGAN needs noise_dim >= latent_dim={d}, got {noise_dim}")
        mlp = _MLP([noise_dim, *widths, d]).to(device)
        h = _Residual(mlp, d) if config.residual else mlp
        disc = _MLP([d, *widths, 1]).to(device)
        _init_linear_layers(h, gen)
        _init_linear_layers(disc, gen)
        if config.optimizer == "adam":
            opt_h = torch.optim.Adam(h.parameters(), lr=config.lr, betas=(0.5, 0.9))
            opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(0.5, 0.9))
        else:
            opt_h = torch.optim.RMSprop(h.parameters(), lr=config.lr)
            opt_d = torch.optim.RMSprop(disc.parameters(), lr=config.lr)
        losses: list[tuple[float, float]] = []
        n = data.shape[0]
        for step in range(config.steps):
            idx = torch.randint(0, n, (config.batch_size,), generator=gen, device=device)
            real = data[idx].requires_grad_(config.r1_penalty > 0)
            noise = torch.randn(config.batch_size, noise_dim, generator=gen, device=device)
            fake = h(noise)
            real_logits = disc(real)
            d_loss = F.softplus(-real_logits).mean() + F.softplus(disc(fake.detach())).mean()
            if config.r1_penalty > 0:
                (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
                d_loss = d_loss + 0.5 * config.r1_penalty * grad.square().sum(1).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = F.softplus(-disc(fake)).mean()
            opt_h.zero_grad()
            g_loss.backward()
            opt_h.step()
            if step % 100 == 0 or step == config.steps - 1:
                losses.append((float(d_loss.detach()), float(g_loss.detach())))
        mapping = nn.Sequential(h, _Affine(mean, chol)).eval()
        for p in mapping.parameters():
            p.requires_grad_(False)
        prior = cls(mapping, noise_dim, d)
        prior.losses = losses
        return prior


def _init_linear_layers(module: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default Linear initialisation, drawn from ``gen`` instead of global state."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                bound = 1.0 / layer.in_features**0.5
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.uniform_(-bound, bound, generator=gen)


class _Affine(nn.Module):
    """``x -> shift + x @ matrix^T`` (undo the whitening)."""

    def __init__(self, shift: torch.Tensor, matrix: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("shift", shift.detach().clone())
        self.register_buffer("matrix", matrix.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shift + x @ self.matrix.T


class _Residual(nn.Module):
    """``z' -> z'[:, :d] + mlp(z')``: starts near the whitened Gaussian, cannot lose rank."""

    def __init__(self, mlp: nn.Module, d: int) -> None:
        super().__init__()
        self.mlp = mlp
        self.d = d

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return noise[:, : self.d] + self.mlp(noise)


