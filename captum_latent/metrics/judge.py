"""Does a classifier that was not explained believe the counterfactual?

A counterfactual explains only if it shows a real change of class, not a nudge that fools just
the explained model. :func:`judge_agreement` asks an independent classifier, the *judge* (the
user's own, or :func:`captum_latent.zoo.digits_judge`), whether it sees the target class;
:func:`mean_absolute_change` is the size of the change it is weighed against.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from captum_latent.validation import check_image_tensor, class_scores

__all__ = ["judge_agreement", "judge_verdicts", "mean_absolute_change"]


def _targets(target: int | Sequence[int] | torch.Tensor, n: int, n_classes: int
             ) -> torch.Tensor:
    if isinstance(target, bool):
        raise TypeError("target must be an int, a sequence of ints or a tensor, got bool")
    if isinstance(target, int):
        out = torch.full((n,), target, dtype=torch.long)
    else:
        out = torch.as_tensor(target)
        if out.dtype.is_floating_point or out.dtype == torch.bool:
            raise TypeError(f"target must hold integers, got dtype {out.dtype}")
        out = out.long().reshape(-1)
        if out.numel() != n:
            raise ValueError(f"target has {out.numel()} entries for {n} counterfactuals")
    if n and (out.min() < 0 or out.max() >= n_classes):
        raise ValueError(f"target classes must be in [0, {n_classes - 1}] (the judge's "
                         f"classes), got {sorted(set(out.tolist()))}")
    return out


def judge_verdicts(judge: nn.Module, counterfactuals: torch.Tensor,
                   target: int | Sequence[int] | torch.Tensor, *, batch_size: int = 512
                   ) -> torch.Tensor:
    """``(B,)`` bool: the judge's predicted class is the target class.

    Parameters
    ----------
    judge : nn.Module
        An independent classifier ``(B, C, H, W)`` to ``(B, K)`` scores, in eval mode, on the
        counterfactuals' device (not the explained model: a counterfactual that fools only
        the model it was made for is not a change of class).
    counterfactuals : torch.Tensor
        ``(B, C, H, W)`` images in the judge's input range.
    target : int, sequence of int or tensor
        Target class of each counterfactual (one int for all).
    batch_size : int, default 512
        Images judged at a time.
    """
    x = check_image_tensor("counterfactuals", counterfactuals)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    scores = torch.cat([class_scores("judge", judge, x[i:i + batch_size],
                                     when="on the counterfactuals")
                        for i in range(0, len(x), batch_size)])
    targets = _targets(target, len(x), scores.shape[1]).to(scores.device)
    return scores.argmax(1) == targets


def judge_agreement(judge: nn.Module, counterfactuals: torch.Tensor,
                    target: int | Sequence[int] | torch.Tensor, *, batch_size: int = 512
                    ) -> float:
    """Fraction of counterfactuals that an independent classifier puts in their target class.

    Read it next to the explained model's validity (which it cannot exceed by much for a good
    counterfactual) and the size of the change (:func:`mean_absolute_change`): a method that
    changes nothing visible can be valid for the explained model and still score 0 here.
    Parameters as in :func:`judge_verdicts`.

    Examples
    --------
    >>> import torch
    >>> judge = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    >>> with torch.no_grad():
    ...     _ = judge[1].weight.copy_(torch.tensor([[1.0, 1, 1, 1], [-1, -1, -1, -1]]))
    ...     _ = judge[1].bias.zero_()
    >>> images = torch.stack([torch.ones(1, 2, 2), -torch.ones(1, 2, 2)])
    >>> judge_agreement(judge, images, 1)  # the judge sees class 0, then class 1
    0.5
    """
    return float(judge_verdicts(judge, counterfactuals, target,
                                batch_size=batch_size).float().mean())


def mean_absolute_change(queries: torch.Tensor, counterfactuals: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean absolute difference per image, ``mean |x_bar - x|`` over pixels and
    channels (the "mean change" the judge's verdicts are weighed against).

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(2, 1, 2, 2)
    >>> mean_absolute_change(x, x + torch.tensor([0.0, -0.5]).view(2, 1, 1, 1)).tolist()
    [0.0, 0.5]
    """
    for name, t in (("queries", queries), ("counterfactuals", counterfactuals)):
        check_image_tensor(name, t)
    if queries.shape != counterfactuals.shape:
        raise ValueError(f"queries {tuple(queries.shape)} and counterfactuals "
                         f"{tuple(counterfactuals.shape)} must have the same shape")
    return (counterfactuals - queries).abs().flatten(1).mean(1)
