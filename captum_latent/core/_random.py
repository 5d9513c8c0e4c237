"""Seeded ``torch.Generator`` construction shared by the core (never global RNG state)."""

from __future__ import annotations

import torch


def _make_generator(
    generator: torch.Generator | None, seed: int | None, device: torch.device | str
) -> torch.Generator:
    """One ``torch.Generator`` from ``generator=`` or ``seed=``; OS entropy when neither."""
    if generator is not None and seed is not None:
        raise TypeError("give at most one of generator= and seed=")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if generator.device.type != torch.device(device).type:
            raise ValueError(
                f"generator is on {generator.device} but the work runs on {device}; "
                "create the torch.Generator on that device"
            )
        return generator
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        gen.manual_seed(seed)
    return gen
