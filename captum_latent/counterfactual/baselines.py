"""A pixel-space counterfactual (Wachter et al.), the baseline DISC is compared with."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from captum_latent.validation import check_image_tensor

__all__ = ["pixel_counterfactuals"]


def pixel_counterfactuals(
    classifier: nn.Module, queries: torch.Tensor, target: int | Sequence[int] | torch.Tensor,
    *, l1: float = 0.0, lr: float = 0.01, max_steps: int = 300,
) -> torch.Tensor:
    """Counterfactuals found by Adam on the pixels: cross-entropy to the target plus
    ``l1 * sum |x_bar - x|``, each query stopped at its first step classified as its target.

    Valid for the explained classifier but, as a rule, a nudge that fools only it: compare with
    :func:`captum_latent.metrics.judge_agreement` (docs/methods/disc.md).

    Parameters
    ----------
    classifier : nn.Module
        ``(B, C, H, W)`` images in [0, 1] to ``(B, K)`` logits (eval mode).
    queries : torch.Tensor
        ``(B, C, H, W)`` images in [0, 1].
    target : int, sequence of int or tensor
        Target class per query (one int for all).
    l1 : float, default 0.0
        Weight of the L1 penalty on the change (summed over pixels).
    lr : float, default 0.01
        Adam step size on the pixels.
    max_steps : int, default 300
        Queries not valid by then return their last image.

    Examples
    --------
    >>> import torch
    >>> with torch.random.fork_rng():
    ...     _ = torch.manual_seed(0)
    ...     model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    >>> x = torch.full((3, 1, 2, 2), 0.5)
    >>> cf = pixel_counterfactuals(model, x, 1 - model(x).argmax(1))
    >>> bool((model(cf).argmax(1) != model(x).argmax(1)).all())
    True
    """
    x = check_image_tensor("queries", queries).detach()
    t = torch.as_tensor(target, device=x.device).long().reshape(-1)
    t = t.expand(len(x)) if t.numel() == 1 else t
    if t.numel() != len(x):
        raise ValueError(f"target has {t.numel()} entries for {len(x)} queries")
    delta = torch.zeros_like(x, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    out, done = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
    with torch.enable_grad():
        for _ in range(max_steps):
            cf = (x + delta).clamp(0, 1)
            logits = classifier(cf)
            valid = (logits.argmax(1) == t) & ~done
            out[valid], done = cf[valid].detach(), done | valid
            if bool(done.all()):
                return out
            loss = F.cross_entropy(logits, t, reduction="none") \
                + l1 * (cf - x).abs().flatten(1).sum(1)
            opt.zero_grad()
            (loss * ~done).sum().backward(inputs=[delta])
            opt.step()
    out[~done] = (x + delta).clamp(0, 1)[~done].detach()
    return out
