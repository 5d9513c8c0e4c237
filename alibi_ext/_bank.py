"""A bank of free generator samples that starts GAN in-painting searches close to their goal.

In-painting (GANchors Eq. 8) searches a code ``z`` whose image matches the kept pixels of a
mask to a masked MSE below a threshold. From a random start that takes tens of gradient steps
per in-painting. The bank draws ``G(z_j)`` once per generator, ``z_j`` from the search's prior
(``N(0, I)`` by default), and for every mask measures all of them against the kept pixels with
one small matrix product (pixels that every mask of a request keeps or drops together are
summed first, so a superpixel mask costs ``K`` numbers per bank sample, not ``H x W``). Each
in-painting's search then starts from one of the mask's ``top_k`` nearest bank codes, chosen at
random, and stops after a few steps (often at once).

Why the nearest few and not any bank sample that already meets the threshold: those are draws
of the GAN *conditioned* on the kept pixels, which agree with the image more often than the
paper's in-paintings (random starts pushed onto the kept pixels); anchors accepted on them had
a lower precision on the paper's in-paintings (docs/benchmarks.md, "GAN anchors at the cost of
stitching").

Framework-free (torch only).
"""

from __future__ import annotations

import numpy as np
import torch

from captum_latent.core import LatentSearch
from captum_latent.validation import check_finite, check_int

__all__ = ["BankSession", "GeneratorBank"]

#: Default number of bank samples (``GANAnchorImage(bank_size=...)``): 1 s to make on a 2-core
#: CPU for the zoo digits GAN, 25 MiB.
DEFAULT_BANK_SIZE = 8192

#: Default number of nearest bank samples a search may start from.
DEFAULT_NEIGHBOURS = 8

#: Standard deviation of the noise added to a nearest bank code before its search starts.
DEFAULT_START_NOISE = 0.3

_ROWS = 512  # masks measured against the bank at once (a (rows, bank size) matrix)
_BANK_MEMORY = 256 * 2**20  # bytes of bank images at most: fewer samples for large images


class GeneratorBank:
    """``size`` free samples ``G(z_j)`` of a generator, made on first use and kept.

    Parameters
    ----------
    search : LatentSearch
        The in-painting search: its generator, batch-norm mode, device and code size.
    size : int
        Bank samples wanted; fewer when their images would exceed 256 MiB.
    seed : int, default 0
        Seed of the bank's codes.
    top_k : int, default 8
        Each search starts from one of its mask's ``top_k`` nearest bank codes, at random.

    Examples
    --------
    >>> import torch
    >>> from captum_latent import zoo
    >>> from alibi_ext import GANInpainter, GeneratorBank
    >>> inpainter = GANInpainter(zoo.digits_gan(progress=False).generator, xi=0.01)
    >>> bank = GeneratorBank(inpainter.search, 256, seed=0)
    >>> x = zoo.digits().test.images[0]
    >>> masks = torch.zeros(4, 1, 28, 28, dtype=torch.bool); masks[:, :, 8:20, 8:20] = True
    >>> out = inpainter.inpaint(x, masks, seed=0, bank=bank.session(x))
    >>> bank.codes.shape, bool(out.converged.all())
    (torch.Size([256, 32]), True)
    """

    def __init__(self, search: LatentSearch, size: int, *, seed: int = 0,
                 top_k: int = DEFAULT_NEIGHBOURS) -> None:
        if not isinstance(search, LatentSearch):
            raise TypeError(f"search must be a LatentSearch, got {type(search).__name__}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"bank size must be a positive int, got {size!r}")
        self.search = search
        per_image = 4 * int(torch.tensor(search.image_shape).prod())
        self.size = max(1, min(size, _BANK_MEMORY // per_image))
        self.seed = int(seed)
        self.top_k = check_int("top_k", top_k, minimum=1)
        self._codes: torch.Tensor | None = None
        self._flat: torch.Tensor | None = None

    @property
    def built(self) -> bool:
        """Whether the bank's images have been generated."""
        return self._codes is not None

    def _build(self) -> None:
        gen = torch.Generator(self.search.device).manual_seed(self.seed)
        problems = torch.arange(self.size, device=self.search.device)
        codes = self.search.prior.sample(problems, gen).float()
        self._flat = self.search.generate(codes).flatten(1)
        self._codes = codes

    @property
    def flat(self) -> torch.Tensor:
        """``(size, C * H * W)`` bank images, flattened."""
        if self._flat is None:
            self._build()
        return self._flat  # type: ignore[return-value]

    @property
    def codes(self) -> torch.Tensor:
        """``(size, d)`` codes of the bank."""
        if self._codes is None:
            self._build()
        return self._codes  # type: ignore[return-value]

    def session(self, image: torch.Tensor, *,
                start_noise: float = DEFAULT_START_NOISE) -> BankSession:
        """A :class:`BankSession` for in-paintings of ``image`` ``(C, H, W)``."""
        return BankSession(self, image, start_noise=start_noise)


class BankSession:
    """The bank measured against one image: hands out starting codes for its in-paintings.

    Parameters
    ----------
    bank : GeneratorBank
    image : torch.Tensor
        ``(C, H, W)``.
    start_noise : float, default :data:`DEFAULT_START_NOISE`
        Noise added to the start of a mask asked for before.
    """

    def __init__(self, bank: GeneratorBank, image: torch.Tensor, *,
                 start_noise: float = DEFAULT_START_NOISE) -> None:
        if not start_noise >= 0:
            raise ValueError(f"start_noise must be >= 0, got {start_noise!r}")
        shape = tuple(bank.search.image_shape)
        if not isinstance(image, torch.Tensor) or tuple(image.shape) != shape:
            raise ValueError(
                f"image must be a tensor of shape {shape} (the generator's images), got "
                f"{tuple(getattr(image, 'shape', ())) or type(image).__name__}"
            )
        check_finite("image", image)
        self.bank = bank
        self.image = image.to(device=bank.search.device, dtype=torch.float32)
        self.start_noise = float(start_noise)
        self._squared: torch.Tensor | None = None
        self._seen: set[bytes] = set()  # masks asked for so far

    def _squared_errors(self) -> torch.Tensor:
        if self._squared is None:
            self._squared = (self.bank.flat - self.image.reshape(1, -1)) ** 2  # (L, C*P)
        return self._squared

    def masked_errors(self, masks: torch.Tensor) -> torch.Tensor:
        """``(N, L)`` masked MSE of every bank image under each ``(N, 1, H, W)`` boolean mask
        (each keeps at least one pixel)."""
        squared = self._squared_errors()
        c = self.image.shape[0]
        pixels = masks.flatten(1)  # (N, P)
        # pixels kept or dropped by the same masks form one atom: errors are summed per atom
        atoms, owner = torch.unique(pixels.T, dim=0, return_inverse=True)  # (A, N), (P,)
        owner = owner.repeat(c)  # the same atom for each channel of a pixel
        per_atom = torch.zeros(squared.shape[0], atoms.shape[0], device=squared.device)
        per_atom.index_add_(1, owner, squared)
        weights = atoms.T.float()  # (N, A)
        sizes = torch.bincount(owner, minlength=atoms.shape[0]).float()  # entries per atom
        return (weights @ per_atom.T) / (weights @ sizes)[:, None]

    def starts(self, masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``(N, d)`` starting codes for the in-paintings of ``masks`` ``(N, 1, H, W)``: for
        each, one of its ``top_k`` nearest bank codes at random; a mask asked for before (in
        this call or an earlier one) adds Gaussian noise of ``start_noise`` to it, so that the
        in-paintings of one mask (an anchor alone, asked for again and again) do not share a
        handful of starts.
        A start that already meets its threshold stops its search at once."""
        n = masks.shape[0]
        keys = [bytes(row) for row in np.packbits(masks.flatten(1).cpu().numpy(), axis=1)]
        errors = torch.cat([self.masked_errors(chunk) for chunk in masks.split(_ROWS)])
        k = min(self.bank.top_k, self.bank.size)
        nearest = errors.topk(k, dim=1, largest=False).indices  # (N, k)
        choice = torch.randint(0, k, (n, 1), generator=generator, device=generator.device)
        pick = nearest.gather(1, choice.to(nearest.device)).squeeze(1)
        codes = self.bank.codes[pick].clone()
        seen = torch.zeros(n, dtype=torch.bool)
        for i, key in enumerate(keys):
            seen[i] = key in self._seen
            self._seen.add(key)
        noise = torch.randn(codes.shape, generator=generator, device=generator.device)
        seen = seen.to(codes.device)
        codes[seen] += self.start_noise * noise.to(codes.device)[seen]
        return codes
