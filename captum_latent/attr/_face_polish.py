"""Exact finishing step for the LEG-TV LP: the optimal face read off a dual iterate.

For the edge functions ``h_e(w) = |w| + indicator([lo_e, hi_e])`` complementary slackness says
``w_e`` maximises ``y_e w - h_e(w)`` for an optimal dual ``y``. Away from the kinks ``y_e = +-1``
that maximiser is unique (``0``, ``lo_e`` or ``hi_e``): the edge is *determined*; at a kink it
is any value of a sign-consistent interval: the edge is *free*. Every ``g`` whose differences
meet these interval constraints is optimal. Finding one is a system of difference constraints,
solved by the same min-plus scans as the primal repair (``_admm._greatest_below``): they
converge to a point of the face, or keep decreasing (a negative cycle) when the classification
was wrong. The caller checks feasibility and compares objectives, so a wrong classification
can only cost time.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _face_bounds(y: Tensor, lo: Tensor, hi: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """Per edge ``lower <= (D g)_e <= upper`` on the face that ``y`` identifies.

    An edge is determined when ``y_e`` is at least ``tau`` away from the kink of its ``h_e``
    (``|y| = 1`` where ``0`` is in the box, ``y = 1`` where the box is positive, ``y = -1``
    where it is negative); pads (``lo = hi = 0``) stay ``[0, 0]``.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.attr._face_polish import _face_bounds
    >>> y = torch.tensor([[2.0, 0.2, 0.999]])
    >>> lo, hi = torch.tensor([[-1.0, -1.0, -1.0]]), torch.tensor([[3.0, 3.0, 3.0]])
    >>> _face_bounds(y, lo, hi, 0.1)
    (tensor([[3., 0., 0.]]), tensor([[3., 0., 3.]]))
    """
    zero = torch.zeros_like(lo)
    zero_inside = (lo <= 0) & (hi >= 0)
    positive = lo > 0
    target = torch.where(
        y > 1, hi, torch.where(y < -1, lo, torch.where(zero_inside, zero,
                                                       torch.where(positive, lo, hi)))
    )
    confidence = torch.where(
        zero_inside, (y.abs() - 1).abs(), torch.where(positive, (y - 1).abs(), (y + 1).abs())
    )
    determined = confidence >= tau
    lower = torch.where(determined, target, torch.where(zero_inside & (y > 0), zero, lo))
    upper = torch.where(determined, target, torch.where(zero_inside & (y < 0), zero, hi))
    return lower, upper
