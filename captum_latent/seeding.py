"""Seeded random generators, shared by every package (never numpy's or torch's global state).

Every public entry point that draws random numbers takes ``seed=`` or ``generator=``; this
module turns the pair into one ``torch.Generator``.
"""

from __future__ import annotations

import torch

__all__ = ["make_generator"]


def make_generator(
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Generator:
    """One ``torch.Generator`` from ``seed=`` or ``generator=`` (at most one; OS entropy when
    neither is given).

    Parameters
    ----------
    seed : int, optional
        Seed of a new generator.
    generator : torch.Generator, optional
        Used as it is.
    device : torch.device or str, optional
        Where the work runs: a new generator is created there, and a given one must live there.
        ``None``: a new generator on the CPU, and a given one is accepted on any device.

    Examples
    --------
    >>> from captum_latent.seeding import make_generator
    >>> a, b = make_generator(seed=3), make_generator(seed=3)
    >>> bool(torch.equal(torch.rand(2, generator=a), torch.rand(2, generator=b)))
    True
    """
    if generator is not None and seed is not None:
        raise ValueError("give at most one of seed= and generator=")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if device is not None and generator.device.type != torch.device(device).type:
            raise ValueError(
                f"generator is on {generator.device} but the work runs on {device}; "
                "create the torch.Generator on that device"
            )
        return generator
    gen = torch.Generator(device="cpu" if device is None else device)
    if seed is None:
        gen.seed()
    else:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        gen.manual_seed(seed)
    return gen
