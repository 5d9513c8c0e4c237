from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_latent.core import LossThreshold, MatchedThresholds, match_thresholds, sample_thresholds


def test_threshold_distribution_matches_folded_normal() -> None:
    xi = 0.05
    t = sample_thresholds(xi, 200_000, seed=0)
    assert t.shape == (200_000,)
    assert bool((t >= 0).all()) and bool((t <= xi).all())
    # folded N(xi, (xi/6)^2): xi - |eps| * xi / 6 with eps standard normal
    expected_mean = xi - xi / 6 * math.sqrt(2 / math.pi)
    assert abs(float(t.mean()) - expected_mean) < 2e-5
    assert abs(float((xi - t).std()) - xi / 6 * math.sqrt(1 - 2 / math.pi)) < 2e-5


def test_threshold_sampling_per_problem_and_seeded() -> None:
    xi = torch.tensor([0.1, 1.0, 0.01])
    a = sample_thresholds(xi, 50, seed=3)
    assert a.shape == (3, 50)
    assert bool((a <= xi[:, None]).all())
    assert torch.equal(a, sample_thresholds(xi, 50, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(a, sample_thresholds(xi, 50, seed=4))
    with pytest.raises(ValueError, match="at most one"):
        sample_thresholds(0.1, 3, seed=1, generator=torch.Generator())


def _reference_match(losses, problems, pool, pool_problems):
    """Alg. 3 written plainly: per problem, losses increasing vs thresholds decreasing."""
    thr = torch.empty_like(losses)
    for p in problems.unique().tolist():
        rows = torch.nonzero(problems == p).squeeze(1)
        cand = pool[pool_problems == p].sort(descending=True).values
        order = losses[rows].argsort(stable=True)
        s, r = len(rows), len(cand)
        for k, row in enumerate(rows[order].tolist()):
            thr[row] = cand[(k * r) // s]
    return thr


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.floats(0, 1)), min_size=1, max_size=20),
    st.integers(0, 5),
    st.integers(0, 10_000),
)
def test_match_thresholds_equals_plain_alg3(rows, extra, seed) -> None:
    losses = torch.tensor([v for _, v in rows])
    problems = torch.tensor([p for p, _ in rows])
    gen = torch.Generator().manual_seed(seed)
    counts = torch.bincount(problems, minlength=4) + extra
    pool_problems = torch.arange(4).repeat_interleave(counts)
    pool = torch.rand(len(pool_problems), generator=gen)
    thr, idx = match_thresholds(losses, problems, pool, pool_problems)
    assert torch.equal(thr, _reference_match(losses, problems, pool, pool_problems))
    assert torch.equal(pool[idx], thr)
    assert len(set(idx.tolist())) == len(idx)  # no threshold used twice
    assert bool((pool_problems[idx] == problems).all())


def test_exact_pairing_when_pool_equals_batch() -> None:
    thr, _ = match_thresholds(
        torch.tensor([0.5, 0.1, 0.3]), torch.zeros(3, dtype=torch.long),
        torch.tensor([0.2, 0.4, 0.6]), torch.zeros(3, dtype=torch.long),
    )
    assert thr.tolist() == pytest.approx([0.2, 0.6, 0.4])


def test_matched_thresholds_consume_each_threshold_once() -> None:
    bound = MatchedThresholds(torch.tensor([[0.1, 0.2, 0.3]])).bind(1, 3, "cpu")
    problems = torch.zeros(3, dtype=torch.long)
    done, thr = bound.check(torch.tensor([0.15, 0.9, 0.05]), problems)
    assert done.tolist() == [True, False, True] and thr.tolist() == pytest.approx([0.2, 0.1, 0.3])
    done, thr = bound.check(torch.tensor([0.09]), problems[:1])
    assert done.tolist() == [True] and thr.tolist() == pytest.approx([0.1])


def test_loss_threshold_validation() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        LossThreshold(-1.0)
    with pytest.raises(ValueError, match="2 problems"):
        LossThreshold(torch.tensor([0.1, 0.2, 0.3])).bind(2, 1, "cpu")
    with pytest.raises(ValueError, match="samples_per_problem"):
        MatchedThresholds(torch.ones(2, 3)).bind(2, 4, "cpu")
