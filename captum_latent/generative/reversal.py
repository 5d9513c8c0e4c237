"""Generator reversal (flexible-priors paper, Alg. 1) on the latent-search core."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from captum_latent.core import (
    Adam,
    LatentPrior,
    LatentSearch,
    LossThreshold,
    Reconstruction,
    RowwiseOptimizer,
    probe_generator,
)
from captum_latent.validation import check_image_tensor, check_in_range

__all__ = ["GeneratorReversal", "ReversalResult"]


@dataclass(frozen=True)
class ReversalResult:
    """Codes found by :meth:`GeneratorReversal.reverse`, one per input image.

    Attributes
    ----------
    codes : torch.Tensor
        ``(n, d)`` codes ``z`` with ``G(z) ~ x``.
    reconstructions : torch.Tensor
        ``(n, C, H, W)`` images ``G(z)`` (batch-norm as configured, eval by default).
    mse : torch.Tensor
        ``(n,)`` per-image mean squared error of the reconstructions.
    iterations : torch.Tensor
        ``(n,)`` gradient steps used per image.
    restarts : torch.Tensor
        ``(n,)`` random restarts used per image.
    converged : torch.Tensor
        ``(n,)`` whether the image reached ``tolerance``.
    """

    codes: torch.Tensor
    reconstructions: torch.Tensor
    mse: torch.Tensor
    iterations: torch.Tensor
    restarts: torch.Tensor
    converged: torch.Tensor


class GeneratorReversal:
    """Map images back to latent codes by gradient descent through a frozen generator.

    Solves ``min_z ||G(z) - x||^2`` for every image at once (paper Alg. 1), stopping an image
    once its MSE reaches ``tolerance``; images that stall are restarted from the prior.

    Parameters
    ----------
    generator : nn.Module
        Any module mapping ``(B, d)`` codes to ``(B, C, H, W)`` images.
    latent_dim : int, optional
        Defaults to ``generator.latent_dim``.
    prior : LatentPrior, optional
        Initial codes; default ``StandardNormal(latent_dim)``.
    optimizer : RowwiseOptimizer, optional
        Default ``Adam(lr=0.05)`` (0.05 is the paper's reversal step size).
    tolerance : float
        Per-image MSE at which an image is done.
    max_iterations : int
        Step budget per image.
    restart_patience : int, optional
        Steps without relative improvement before a restart (``None``: never).
    batchnorm : {"eval", "batch", "as_is"}
        Default ``"eval"``: the codes then reproduce the images when the generator is called
        in eval mode (batch statistics would make ``G(z)`` depend on the other codes).
    batch_size, device, autocast_dtype
        Passed to :class:`~captum_latent.core.LatentSearch`.

    Examples
    --------
    >>> import torch
    >>> nn = torch.nn
    >>> g = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Unflatten(1, (1, 4, 4)))
    >>> x = g(torch.randn(5, 3, generator=torch.Generator().manual_seed(0))).detach()
    >>> result = GeneratorReversal(g, latent_dim=3, tolerance=1e-6).reverse(x, seed=0)
    >>> bool((result.mse <= 1e-6).all()), result.codes.shape
    (True, torch.Size([5, 3]))
    """

    def __init__(
        self,
        generator: nn.Module,
        *,
        latent_dim: int | None = None,
        prior: LatentPrior | None = None,
        optimizer: RowwiseOptimizer | None = None,
        tolerance: float = 1e-5,
        max_iterations: int = 2000,
        restart_patience: int | None = 300,
        batchnorm: str = "eval",
        batch_size: int = 4096,
        device: torch.device | str = "cpu",
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
            raise ValueError(f"tolerance must be a non-negative number, got {tolerance!r}")
        self.tolerance = float(tolerance)
        self._value_range: tuple[float, float] | None = None
        self.search = LatentSearch(
            generator,
            latent_dim=latent_dim,
            prior=prior,
            optimizer=Adam(lr=0.05) if optimizer is None else optimizer,
            batchnorm=batchnorm,
            max_iterations=max_iterations,
            restart_patience=restart_patience,
            batch_size=batch_size,
            device=device,
            autocast_dtype=autocast_dtype,
        )

    @property
    def generator(self) -> nn.Module:
        return self.search.generator

    @property
    def latent_dim(self) -> int:
        return self.search.latent_dim

    def reverse(
        self,
        images: torch.Tensor,
        *,
        initial_codes: torch.Tensor | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        show_progress: bool = False,
    ) -> ReversalResult:
        """Find codes for ``images`` of shape ``(n, C, H, W)`` (or one ``(C, H, W)`` image).

        Parameters
        ----------
        images : torch.Tensor
            Images in the generator's output range and shape.
        initial_codes : torch.Tensor, optional
            ``(n, d)`` starting codes instead of prior draws.
        seed, generator
            Randomness for initial and restart codes.
        show_progress : bool
            Show a tqdm bar.
        """
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.dim() == 3:
            images = images.unsqueeze(0)
        check_image_tensor("images", images, chw=self.search.image_shape,
                           device=self.search.device)
        if self._value_range is None:
            _, low, high = probe_generator(self.search.generator, self.search.latent_dim,
                                           self.search.device, n=16)
            self._value_range = (low, high)
        check_in_range("images", images, *self._value_range, what="the generator's images")
        images = images.detach().to(device=self.search.device, dtype=torch.float32)
        result = self.search.search(
            Reconstruction(images),
            stop=LossThreshold(self.tolerance),
            initial_codes=initial_codes,
            seed=seed,
            generator=generator,
            show_progress=show_progress,
        )
        return ReversalResult(
            codes=result.codes[:, 0],
            reconstructions=result.images[:, 0],
            mse=result.losses[:, 0],
            iterations=result.iterations[:, 0],
            restarts=result.restarts[:, 0],
            converged=result.converged[:, 0],
        )
