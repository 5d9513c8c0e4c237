"""The shared mini-batch trainer: the order of its random draws is what keeps cached models
reproducible, so it is pinned here against plain reference code (integer draws and copies
only, so the checks hold on every platform)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from captum_latent.zoo._trainer import fit_minibatches, random_hflip, random_shift, seeded


def _reference_shift(images, offsets, max_shift):
    h, w = images.shape[-2:]
    padded = F.pad(images, (max_shift,) * 4)
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


@pytest.mark.parametrize("paired", [False, True])
def test_random_shift_draws_offsets_in_the_documented_order(paired) -> None:
    images = torch.rand(7, 2, 5, 6)
    span = 2 * 2 + 1
    ref_gen = torch.Generator().manual_seed(3)
    if paired:  # one (row, column) pair per image (DEP, DUQ)
        offsets = torch.randint(0, span, (7, 2), generator=ref_gen).tolist()
    else:  # all rows, then all columns (zoo classifiers)
        dy = torch.randint(0, span, (7,), generator=ref_gen)
        dx = torch.randint(0, span, (7,), generator=ref_gen)
        offsets = torch.stack([dy, dx], 1).tolist()
    gen = torch.Generator().manual_seed(3)
    out = random_shift(images, 2, gen, paired_offsets=paired)
    assert torch.equal(out, _reference_shift(images, offsets, 2))
    assert torch.equal(gen.get_state(), ref_gen.get_state())  # nothing else drawn


def test_random_hflip_flips_where_a_coin_is_below_one_half() -> None:
    images = torch.rand(9, 1, 3, 4)
    coins = torch.rand(9, generator=torch.Generator().manual_seed(5))
    out = random_hflip(images, torch.Generator().manual_seed(5))
    for i in range(9):
        assert torch.equal(out[i], images[i].flip(-1) if coins[i] < 0.5 else images[i])


def test_fit_minibatches_skips_small_batches_and_hands_the_batch_to_after_step() -> None:
    x, y = torch.rand(65, 1, 4, 4), torch.arange(65) % 2
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen, after, totals = [], [], []

    def loss_fn(xb, yb):
        seen.append(xb)
        return F.cross_entropy(model(xb), yb)

    def scheduler(o, total):
        totals.append(total)
        return torch.optim.lr_scheduler.StepLR(o, total)

    fit_minibatches(model, x, y, loss_fn, opt, scheduler, epochs=2, batch_size=32,
                    gen=torch.Generator().manual_seed(0), min_batch=2,
                    after_step=lambda xb, yb: after.append(xb), progress=False)
    assert totals == [6]  # 3 batches per epoch, the last (one image) skipped
    assert [len(b) for b in seen] == [32, 32, 32, 32]
    assert len(after) == len(seen) and all(a is b for a, b in zip(after, seen))
    assert not model.training


def test_seeded_repeats_itself_and_leaves_the_global_stream_alone() -> None:
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    with seeded(4) as gen:
        first = torch.rand(2), torch.rand(2, generator=gen)
    assert torch.equal(torch.rand(3), expected)
    with seeded(4) as gen:
        second = torch.rand(2), torch.rand(2, generator=gen)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_fit_minibatches_rejects_an_empty_batch_size() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        fit_minibatches(model, torch.rand(4, 2), torch.zeros(4, dtype=torch.long),
                        lambda xb, yb: model(xb).sum(), torch.optim.SGD(model.parameters(), 0.1),
                        lambda o, n: torch.optim.lr_scheduler.StepLR(o, 1), epochs=1,
                        batch_size=0, gen=torch.Generator(), progress=False)
