"""GAN in-painting of masked images on the latent-search core (GANchors Eq. 8, Alg. 2-3).

Framework-free (torch only): the Alibi samplers call it, and so can anyone else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from alibi_ext._bank import BankSession
from captum_latent.core import (
    LatentPrior,
    LatentSearch,
    LossThreshold,
    MaskedReconstruction,
    MatchedThresholds,
    sample_thresholds,
)
from captum_latent.validation import check_int

__all__ = ["GANInpainter", "InpaintingResult"]


@dataclass(frozen=True)
class InpaintingResult:
    """In-paintings of one image under ``N`` masks.

    Attributes
    ----------
    images : torch.Tensor
        ``(N, C, H, W)``: ``(1 - A) G(z) + A x`` -- kept pixels are exactly the image's.
    codes : torch.Tensor
        ``(N, d)`` latent codes.
    errors : torch.Tensor
        ``(N,)`` masked mean squared error ``||A x - A G(z)||^2 / |A|``.
    thresholds : torch.Tensor
        ``(N,)`` threshold each sample was held to (drawn by GANchors Alg. 2).
    converged : torch.Tensor
        ``(N,)`` bool, ``errors <= thresholds``.
    iterations : torch.Tensor
        ``(N,)`` gradient steps spent per sample.
    """

    images: torch.Tensor
    codes: torch.Tensor
    errors: torch.Tensor
    thresholds: torch.Tensor
    converged: torch.Tensor
    iterations: torch.Tensor


class GANInpainter:
    """Fill everything outside a mask with a GAN sample that matches the kept pixels.

    For each mask ``A`` it searches a code ``z`` with masked MSE ``||A x - A G(z)||^2/|A|``
    below a threshold ``xi' <= xi`` drawn from GANchors' Alg. 2, then returns
    ``(1 - A) G(z) + A x`` (Eq. 8). Many masks run as one batched search on the core; when all
    masks are equal, codes are matched to thresholds by sort-and-match (Alg. 3).

    Parameters
    ----------
    generator : nn.Module
        ``(B, d)`` codes to ``(B, C, H, W)`` images in the classifier's input range.
    xi : float
        Maximum masked MSE.
    latent_dim : int, optional
        Defaults to ``generator.latent_dim``.
    batchnorm : {"eval", "batch", "as_is"}, default "eval"
        Batch-norm mode of the core (see :class:`captum_latent.core.LatentSearch`).
    max_iterations : int, default 400
        Gradient steps per sample before giving up on it.
    restart_patience : int, optional, default 60
        Redraw a stalled code after this many steps without progress.
    lr : float, default 0.05
        Adam step size on the codes.
    batch_size : int, default 2048
        Codes optimised together.
    device : str or torch.device, default "cpu"
    bank_max_iterations : int or None, default 200
        Gradient steps of a search started from a bank sample (``inpaint(..., bank=...)``)
        before it is dropped (at most ``max_iterations``; ``None``: ``max_iterations``). A
        batched search lasts as long as its slowest member, and bank starts that reach their
        threshold do so early (on three zoo digits, 99% within 96-266 steps, most within 35),
        so the last 200 of 400 steps were spent almost only on in-paintings that never got
        there (docs/benchmarks.md, issue #17's cost tail).
    refine_lr : float, default 0.1
        Adam step size of searches that start near their goal (``inpaint(..., bank=...)`` or
        ``near_starts=True``): from bank starts it needed about a third fewer steps than 0.05
        (6 zoo digits x 200 masks, 8192 bank samples; 0.2 saved little more).

    Examples
    --------
    >>> import torch
    >>> from captum_latent import zoo
    >>> gan = zoo.digits_gan(progress=False)
    >>> x = zoo.digits().test.images[0]
    >>> masks = torch.zeros(4, 1, 28, 28, dtype=torch.bool); masks[:, :, 8:20, 8:20] = True
    >>> out = GANInpainter(gan.generator, xi=0.02).inpaint(x, masks, seed=0)
    >>> kept = x[None, :, 8:20, 8:20].expand(4, -1, -1, -1)
    >>> bool(torch.equal(out.images[:, :, 8:20, 8:20], kept))
    True
    """

    def __init__(
        self,
        generator: nn.Module,
        *,
        xi: float,
        latent_dim: int | None = None,
        batchnorm: str = "eval",
        max_iterations: int = 400,
        restart_patience: int | None = 60,
        lr: float = 0.05,
        batch_size: int = 2048,
        device: torch.device | str = "cpu",
        refine_lr: float = 0.1,
        bank_max_iterations: int | None = 200,
    ) -> None:
        if isinstance(xi, bool) or not isinstance(xi, (int, float)) or not xi > 0:
            raise ValueError(f"xi must be a positive float, got {xi!r}")
        from captum_latent.core import Adam

        self.xi = float(xi)
        self.refine_lr = float(refine_lr)
        self.bank_max_iterations = None if bank_max_iterations is None else check_int(
            "bank_max_iterations", bank_max_iterations, minimum=1)
        self._refine: LatentSearch | None = None
        self.search = LatentSearch(
            generator, latent_dim=latent_dim, batchnorm=batchnorm,
            max_iterations=max_iterations, restart_patience=restart_patience,
            optimizer=Adam(lr=lr), batch_size=batch_size, device=device,
        )

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of the generator's images."""
        return tuple(self.search.image_shape)

    def inpaint(
        self,
        image: torch.Tensor,
        masks: torch.Tensor,
        *,
        prior: LatentPrior | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        bank: BankSession | None = None,
        near_starts: bool = False,
    ) -> InpaintingResult:
        """In-paint ``image`` under each of ``masks``.

        Parameters
        ----------
        image : torch.Tensor
            ``(C, H, W)`` image to explain.
        masks : torch.Tensor
            ``(N, 1, H, W)`` or ``(N, H, W)`` boolean masks, True where the image is kept.
        prior : LatentPrior, optional
            Initial codes (e.g. a diverse-encoder initialiser); default the core's ``N(0, I)``.
        seed, generator
            Randomness of thresholds and initial codes (at most one).
        bank : BankSession, optional
            A bank of this generator's free samples measured against ``image``
            (``GeneratorBank(...).session(image)``): each in-painting's search starts from one
            of the bank samples nearest to its kept pixels instead of from ``prior`` (which
            then only serves restarts), with Adam at ``refine_lr``.
        """
        device = self.search.device
        if not isinstance(image, torch.Tensor) or tuple(image.shape) != self.image_shape:
            raise ValueError(
                f"image must be a tensor of shape {self.image_shape} (the generator's output), "
                f"got {tuple(getattr(image, 'shape', ()))}"
            )
        if not isinstance(masks, torch.Tensor):
            raise TypeError(f"masks must be a torch.Tensor, got {type(masks).__name__}")
        if masks.dim() == 3:
            masks = masks.unsqueeze(1)
        if masks.dim() != 4 or masks.shape[1] != 1 or masks.shape[2:] != image.shape[1:]:
            raise ValueError(
                f"masks must be (N, 1, H, W) with (H, W) = {tuple(image.shape[1:])}, "
                f"got {tuple(masks.shape)}"
            )
        if masks.shape[0] == 0:
            raise ValueError("masks is empty: ask for at least one in-painting")
        if masks.dtype != torch.bool:
            raise TypeError(f"masks must be boolean, got {masks.dtype}")
        if generator is None:
            generator = torch.Generator(device).manual_seed(
                int(torch.randint(0, 2**62, (1,)).item()) if seed is None else seed
            )
        n = masks.shape[0]
        image = image.to(device=device, dtype=torch.float32)
        masks = masks.to(device)
        empty = ~masks.flatten(1).any(1)
        if bool(empty.any()):  # nothing kept: any generator sample is a valid in-painting
            return self._with_empty_masks(image, masks, empty, prior, generator, bank,
                                          near_starts)
        thresholds = sample_thresholds(self.xi, n, generator=generator)
        if bank is not None:
            return self._from_bank(image, masks, thresholds, bank, prior, generator)
        shared = bool((masks == masks[:1]).all())
        if shared:  # one problem, N samples: Alg. 3's sort-and-match
            objective = MaskedReconstruction(image[None], masks[:1].float())
            stop = MatchedThresholds(thresholds[None])
            n_problems, per_problem = 1, n
        else:  # one problem per mask
            objective = MaskedReconstruction(image[None].expand(n, -1, -1, -1), masks.float())
            stop = LossThreshold(thresholds)
            n_problems, per_problem = n, 1
        search = self._refiner() if near_starts else self.search
        result = search.search(
            objective, n_problems=n_problems, samples_per_problem=per_problem, stop=stop,
            prior=prior, generator=generator,
        )
        return self._composite(image, masks, result)

    def _composite(self, image: torch.Tensor, masks: torch.Tensor, result) -> InpaintingResult:
        """The search's ``result`` for ``N`` masks as in-paintings: kept pixels from ``image``."""
        n = masks.shape[0]
        generated = result.images.reshape(n, *self.image_shape).to(image.device)
        images = torch.where(masks.expand_as(generated), image.expand_as(generated), generated)
        return InpaintingResult(
            images=images,
            codes=result.codes.reshape(n, -1),
            errors=result.losses.reshape(n),
            thresholds=result.thresholds.reshape(n),
            converged=result.converged.reshape(n),
            iterations=result.iterations.reshape(n),
        )

    def _refiner(self) -> LatentSearch:
        """The search that refines starts near their goal (bank, encoder): the in-painting
        search with Adam at ``refine_lr`` (a start near its goal tolerates a larger step)."""
        if self._refine is None:
            from captum_latent.core import Adam

            s = self.search
            self._refine = LatentSearch(
                s.generator, latent_dim=s.latent_dim, batchnorm=s.batchnorm,
                max_iterations=s.max_iterations, restart_patience=s.restart_patience,
                optimizer=Adam(lr=self.refine_lr), batch_size=s.batch_size, device=s.device,
            )
        return self._refine

    def _from_bank(
        self, image: torch.Tensor, masks: torch.Tensor, thresholds: torch.Tensor,
        bank: BankSession, prior: LatentPrior | None, generator: torch.Generator,
    ) -> InpaintingResult:
        """Searches started from the bank: one per mask, each held to its own threshold."""
        if bank.bank.search.latent_dim != self.search.latent_dim or \
                tuple(bank.bank.search.image_shape) != self.image_shape:
            raise ValueError("bank was made for another generator (code size or image shape)")
        n = masks.shape[0]
        starts = bank.starts(masks, generator)
        objective = MaskedReconstruction(image[None].expand(n, -1, -1, -1), masks.float())
        result = self._refiner().search(
            objective, n_problems=n, samples_per_problem=1, stop=LossThreshold(thresholds),
            initial_codes=starts, prior=prior, generator=generator,
            max_iterations=min(self.bank_max_iterations or self.search.max_iterations,
                               self.search.max_iterations),
        )
        return self._composite(image, masks, result)

    def _with_empty_masks(
        self, image: torch.Tensor, masks: torch.Tensor, empty: torch.Tensor,
        prior: LatentPrior | None, generator: torch.Generator, bank: BankSession | None,
        near_starts: bool,
    ) -> InpaintingResult:
        """In-paint the non-empty masks by search; draw free samples for the empty ones."""
        n, device = masks.shape[0], self.search.device
        rows = torch.nonzero(empty).squeeze(1)
        prior = prior if prior is not None else self.search.prior
        codes = prior.sample(rows, generator)  # problem i of the prior is mask i
        with torch.no_grad():
            free = self.search.generate(codes.float())
        out = InpaintingResult(
            images=torch.empty(n, *self.image_shape, device=device),
            codes=torch.empty(n, codes.shape[1], device=device),
            errors=torch.zeros(n, device=device),
            thresholds=torch.full((n,), self.xi, device=device),
            converged=torch.ones(n, dtype=torch.bool, device=device),
            iterations=torch.zeros(n, dtype=torch.long, device=device),
        )
        out.images[rows], out.codes[rows] = free, codes.float()
        if len(rows) < n:
            rest = torch.nonzero(~empty).squeeze(1)
            part = self.inpaint(image, masks[rest], prior=_SubsetPrior(prior, rest),
                                generator=generator, bank=bank, near_starts=near_starts)
            for name in ("images", "codes", "errors", "thresholds", "converged", "iterations"):
                getattr(out, name)[rest] = getattr(part, name)
        return out


class _SubsetPrior(LatentPrior):
    """A prior over a subset of another prior's problems: problem ``i`` is ``rows[i]``."""

    def __init__(self, prior: LatentPrior, rows: torch.Tensor) -> None:
        super().__init__(prior.latent_dim)
        self.prior = prior
        self.register_buffer("rows", rows)

    def sample(self, problems: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.prior.sample(self.rows.to(problems.device)[problems], generator)
