"""Stop rules: when a code's loss is good enough to harvest it.

A stop rule is bound once per search (``rule.bind(n_problems, samples_per_problem, device)``)
to a small stateful checker whose ``check(losses, problems)`` returns, for the codes currently
in flight, which ones are done and the threshold each was held to. The rule object itself is
never mutated, so one rule can serve many searches.

Also here: GANchors' threshold distribution (Alg. 2, :func:`sample_thresholds`) and the
sort-and-match of losses to thresholds (Alg. 3, :func:`match_thresholds`).
"""

from __future__ import annotations

import torch

from captum_latent.seeding import make_generator

__all__ = [
    "StopRule",
    "LossThreshold",
    "MatchedThresholds",
    "sample_thresholds",
    "match_thresholds",
]


class StopRule:
    """Base class of stop rules.

    Examples
    --------
    >>> import torch
    >>> class Below(StopRule):
    ...     def bind(self, n_problems, samples_per_problem, device):
    ...         return self
    ...     def check(self, losses, problems):
    ...         return losses < 0.1, torch.full_like(losses, 0.1)
    >>> bound = Below().bind(1, 1, "cpu")
    >>> bound.check(torch.tensor([0.0, 1.0]), torch.zeros(2, dtype=torch.long))[0]
    tensor([ True, False])
    """

    def bind(  # pragma: no cover - abstract
        self, n_problems: int, samples_per_problem: int, device: torch.device | str
    ) -> _BoundStop:
        raise NotImplementedError


class _BoundStop:
    def check(  # pragma: no cover - abstract
        self, losses: torch.Tensor, problems: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def _as_float_tensor(name: str, value: float | torch.Tensor) -> torch.Tensor:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number or tensor, got bool")
    if isinstance(value, (int, float)):
        value = torch.tensor([float(value)])
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a number or a torch.Tensor, got {type(value).__name__}")
    value = value.detach().float()
    if bool(torch.isnan(value).any()) or bool((value < 0).any()):
        raise ValueError(f"{name} must be non-negative and not NaN")
    return value


class LossThreshold(StopRule):
    """Stop a code once ``loss <= threshold`` (one threshold, or one per problem).

    Parameters
    ----------
    threshold : float or torch.Tensor
        Scalar, or shape ``(P,)`` with one threshold per problem.

    Examples
    --------
    >>> import torch
    >>> bound = LossThreshold(torch.tensor([0.1, 0.5])).bind(2, 4, "cpu")
    >>> bound.check(torch.tensor([0.3, 0.3]), torch.tensor([0, 1]))[0]
    tensor([False,  True])
    """

    def __init__(self, threshold: float | torch.Tensor) -> None:
        value = _as_float_tensor("threshold", threshold)
        if value.dim() > 1:
            raise ValueError(f"threshold must be a scalar or (P,), got shape {tuple(value.shape)}")
        self.threshold = value.reshape(-1)

    def bind(
        self, n_problems: int, samples_per_problem: int, device: torch.device | str
    ) -> _BoundStop:
        if self.threshold.numel() not in (1, n_problems):
            raise ValueError(
                f"threshold has {self.threshold.numel()} entries but the search has "
                f"{n_problems} problems"
            )
        return _BoundLossThreshold(self.threshold.to(device))


class _BoundLossThreshold(_BoundStop):
    def __init__(self, threshold: torch.Tensor) -> None:
        self.threshold = threshold

    def check(
        self, losses: torch.Tensor, problems: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.threshold.numel() == 1:
            thr = self.threshold.expand_as(losses)
        else:
            thr = self.threshold.index_select(0, problems)
        return losses <= thr, thr


def sample_thresholds(
    xi: float | torch.Tensor,
    n: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """Draw thresholds ``0 <= xi' <= xi`` from GANchors' distribution (Alg. 2).

    ``xi' ~ N(xi, (xi / 6)^2)``; draws outside ``[0, 2 xi]`` are rejected and draws above
    ``xi`` are folded below it, so most thresholds sit close to ``xi`` and their density falls
    off like a half-normal of scale ``xi / 6``.

    Notes
    -----
    Taken literally, Alg. 2 line 8 (``xi' <- xi - xi'``) maps ``xi' in (xi, 2 xi]`` to a
    negative number, unusable as an error threshold. We use the mirror image ``2 xi - xi'``
    (fold the upper half of the normal onto the lower half), which keeps the stated intent.

    Parameters
    ----------
    xi : float or torch.Tensor
        Maximum threshold; a tensor of shape ``(P,)`` gives ``(P, n)`` thresholds.
    n : int
        Thresholds per ``xi``.
    generator, seed
        Source of randomness (give at most one); CPU unless ``generator`` says otherwise.

    Returns
    -------
    torch.Tensor
        ``(n,)`` for a scalar ``xi``, else ``(P, n)``, on the generator's device.

    Examples
    --------
    >>> t = sample_thresholds(0.05, 1000, seed=0)
    >>> bool((t <= 0.05).all() and (t >= 0).all()), bool(0.04 < t.mean() < 0.05)
    (True, True)
    """
    device = generator.device if generator is not None else "cpu"
    gen = make_generator(generator=generator, seed=seed, device=device)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    scalar = isinstance(xi, (int, float)) or (isinstance(xi, torch.Tensor) and xi.dim() == 0)
    xi_t = _as_float_tensor("xi", xi).to(gen.device).reshape(-1, 1)
    rows = xi_t.shape[0]
    while True:  # rejection has probability 2e-9 per draw: one pass almost surely suffices
        draws = xi_t + xi_t / 6 * torch.randn(rows, n + 8, generator=gen, device=gen.device)
        valid = (draws >= 0) & (draws <= 2 * xi_t)
        draws = torch.where(draws > xi_t, 2 * xi_t - draws, draws)
        rank = torch.cumsum(valid, 1) - 1
        if bool((rank[:, -1] >= n - 1).all()):
            break
    keep = valid & (rank < n)
    out = draws[keep].reshape(rows, n)
    return out[0] if scalar else out


def match_thresholds(
    losses: torch.Tensor,
    problems: torch.Tensor,
    pool: torch.Tensor,
    pool_problems: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort-and-match losses to thresholds within each problem (GANchors Alg. 3).

    Within each problem, the code with the smallest loss gets the largest available threshold,
    the next one the next largest, and so on (losses increasing, thresholds decreasing). When a
    problem has more thresholds ``r`` than codes in flight ``s`` (the engine streams requests
    larger than its batch), code of rank ``k`` gets the pool threshold of rank
    ``floor(k r / s)``, so matched thresholds are spread over the whole pool rather than
    taken from its top; with ``r == s`` this is exactly Alg. 3. Fully vectorised.

    Parameters
    ----------
    losses, problems : torch.Tensor
        ``(B,)`` losses of the codes in flight and their problem indices.
    pool, pool_problems : torch.Tensor
        ``(R,)`` unused thresholds and their problem indices; every problem in ``problems``
        must have at least as many thresholds as codes.

    Returns
    -------
    thresholds : torch.Tensor
        ``(B,)`` threshold matched to each code.
    pool_index : torch.Tensor
        ``(B,)`` position in ``pool`` of each matched threshold (distinct within a problem).

    Examples
    --------
    >>> import torch
    >>> one = torch.zeros(3, dtype=torch.long)
    >>> thr, idx = match_thresholds(torch.tensor([0.3, 0.1, 0.2]), one,
    ...                             torch.tensor([0.15, 0.25, 0.35]), one)
    >>> thr
    tensor([0.1500, 0.3500, 0.2500])
    """
    n_groups = int(torch.maximum(problems.max(), pool_problems.max()).item()) + 1
    loss_rank, loss_count = _rank_within(losses, problems, n_groups, descending=False)
    pool_rank, pool_count = _rank_within(pool, pool_problems, n_groups, descending=True)
    s = loss_count.index_select(0, problems)
    r = pool_count.index_select(0, problems)
    if bool((r < s).any()):
        raise ValueError("every problem needs at least as many thresholds as codes in flight")
    target_rank = torch.div(loss_rank * r, s, rounding_mode="floor")
    pool_start = torch.cumsum(pool_count, 0) - pool_count
    # sorted position (problem-major, value descending) -> original pool position
    sorted_to_pool = torch.empty_like(pool_rank)
    sorted_to_pool[pool_start.index_select(0, pool_problems) + pool_rank] = torch.arange(
        len(pool), device=pool.device
    )
    pool_index = sorted_to_pool[pool_start.index_select(0, problems) + target_rank]
    return pool.index_select(0, pool_index), pool_index


def _rank_within(
    values: torch.Tensor, groups: torch.Tensor, n_groups: int, *, descending: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank of each value inside its group, and the size of every group."""
    order = torch.argsort(values, descending=descending, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    counts = torch.bincount(groups, minlength=n_groups)
    starts = torch.cumsum(counts, 0) - counts
    sorted_groups = groups[order]
    ranks_sorted = torch.arange(len(values), device=values.device) - starts[sorted_groups]
    ranks = torch.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks, counts


class MatchedThresholds(StopRule):
    """Per-sample thresholds matched to codes by sort-and-match (GANchors Alg. 3).

    Each problem has ``N`` thresholds (e.g. from :func:`sample_thresholds`); at every check the
    codes in flight are matched to the unused thresholds of their problem, a code whose loss is
    below its match is harvested and that threshold is consumed.

    Parameters
    ----------
    thresholds : torch.Tensor
        ``(P, N)`` thresholds, ``N`` = samples per problem (or ``(N,)`` for one problem).

    Examples
    --------
    >>> import torch
    >>> rule = MatchedThresholds(torch.tensor([[0.1, 0.3]]))
    >>> bound = rule.bind(1, 2, "cpu")
    >>> bound.check(torch.tensor([0.2, 0.5]), torch.tensor([0, 0]))
    (tensor([ True, False]), tensor([0.3000, 0.1000]))
    """

    def __init__(self, thresholds: torch.Tensor) -> None:
        value = _as_float_tensor("thresholds", thresholds)
        if value.dim() == 1:
            value = value.unsqueeze(0)
        if value.dim() != 2:
            raise ValueError(f"thresholds must be (P, N) or (N,), got shape {tuple(value.shape)}")
        self.thresholds = value

    def bind(
        self, n_problems: int, samples_per_problem: int, device: torch.device | str
    ) -> _BoundStop:
        if tuple(self.thresholds.shape) != (n_problems, samples_per_problem):
            raise ValueError(
                f"thresholds must have shape (n_problems, samples_per_problem) = "
                f"({n_problems}, {samples_per_problem}), got {tuple(self.thresholds.shape)}"
            )
        return _BoundMatched(self.thresholds.to(device))


class _BoundMatched(_BoundStop):
    def __init__(self, thresholds: torch.Tensor) -> None:
        p, n = thresholds.shape
        self.values = thresholds.reshape(-1)
        self.groups = torch.arange(p, device=thresholds.device).repeat_interleave(n)
        self.unused = torch.ones_like(self.values, dtype=torch.bool)

    def check(
        self, losses: torch.Tensor, problems: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        free = torch.nonzero(self.unused).squeeze(1)
        thr, idx = match_thresholds(
            losses, problems, self.values.index_select(0, free), self.groups.index_select(0, free)
        )
        done = losses <= thr
        self.unused[free[idx[done]]] = False
        return done, thr
