"""Memory estimate for one code in flight, used to chunk requests to a memory budget."""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["bytes_per_code"]


def bytes_per_code(
    forward: Callable[[torch.Tensor], torch.Tensor],
    latent_dim: int,
    *,
    device: torch.device | str,
    probe_batch: int = 3,
) -> int:
    """Estimate the bytes one code costs during a forward + backward through ``forward``.

    Counts the tensors autograd saves for backward (via ``saved_tensors_hooks``) on a probe
    batch, plus the engine's own per-code buffers (image, best image, gradient, code and
    optimiser state). Works the same on CPU and CUDA; it is an estimate, not a peak
    measurement (temporary workspaces of individual kernels are not counted).

    Examples
    --------
    >>> import torch
    >>> g = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
    >>> bytes_per_code(g, 8, device="cpu") > 16 * 4
    True
    """
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        if t.dim() > 0 and t.shape[0] == probe_batch:  # activations, not weights
            saved += t.numel() * t.element_size()
        return t

    z = torch.zeros(probe_batch, latent_dim, device=device, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward(z)
    image_bytes = out[0].numel() * 4
    per_code = saved / probe_batch + 3 * image_bytes + 8 * latent_dim * 4
    return int(per_code) + 1
