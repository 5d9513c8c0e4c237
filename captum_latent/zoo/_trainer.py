"""The mini-batch trainer shared by the zoo's classifiers and DISC's DEP / DUQ models (private).

:func:`seeded` fixes the randomness of a training run; :func:`fit_minibatches` runs the loop
every one of those models uses (shuffle, random shift / flip, optimiser and scheduler step,
progress bar); the model-specific parts (the loss, DUQ's centroid update) come in as
callables. The zoo's GAN keeps its own loop (two optimisers, sampled batches).

The order in which random numbers are drawn is part of the contract: the zoo caches trained
models by configuration, not by code, so any change here that moves a draw would silently
make a fresh training differ from the cached models (see ``CACHE_FORMAT_VERSION``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

#: ``scheduler(optimizer, total_steps)`` builds the learning-rate schedule of a run.
SchedulerFactory = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]


@contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """Seed a training run without touching the caller's random state.

    Inside the block the global (CPU) generator is seeded with ``seed`` -- for module
    initialisation -- and restored on exit (:func:`torch.random.fork_rng`); the yielded CPU
    generator, seeded likewise, draws the data order and the augmentations.

    Examples
    --------
    >>> import torch
    >>> with seeded(0) as gen:
    ...     a = torch.rand(2), torch.rand(2, generator=gen)
    >>> with seeded(0) as gen:
    ...     b = torch.rand(2), torch.rand(2, generator=gen)
    >>> all(torch.equal(p, q) for p, q in zip(a, b))
    True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


def random_shift(images: torch.Tensor, max_shift: int, gen: torch.Generator, *,
                 paired_offsets: bool = False) -> torch.Tensor:
    """Translate every image by a random integer offset in ``[-max_shift, max_shift]`` pixels
    along each axis (zero fill).

    The offsets come from the CPU generator ``gen``: all row offsets, then all column offsets
    (the zoo classifiers), or with ``paired_offsets=True`` one ``(row, column)`` pair per
    image (the DEP and DUQ models). The two orders give different shifts for one seed; each
    model keeps its own so that its cached weights can be reproduced.

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> y = random_shift(x, 1, torch.Generator().manual_seed(0))
    >>> y.shape, set(y.unique().tolist()) <= set(x.unique().tolist())
    (torch.Size([1, 1, 4, 4]), True)
    >>> torch.equal(random_shift(x, 0, torch.Generator()), x)
    True
    """
    if max_shift <= 0:
        return images
    b, c, h, w = images.shape
    span = 2 * max_shift + 1
    if paired_offsets:
        dy, dx = torch.randint(0, span, (b, 2), generator=gen).unbind(1)
    else:
        dy = torch.randint(0, span, (b,), generator=gen)
        dx = torch.randint(0, span, (b,), generator=gen)
    padded = F.pad(images, (max_shift,) * 4)
    dy, dx = dy.to(images.device), dx.to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device)[None, :])[:, None, None, :]
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    chan = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_hflip(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flip each image horizontally with probability 1/2 (coins from the CPU generator ``gen``).

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(64, 1, 3, 3)
    >>> y = random_hflip(x, torch.Generator().manual_seed(0))
    >>> flipped = (y != x).flatten(1).any(1)
    >>> torch.equal(y[flipped], x[flipped].flip(-1)), 0 < int(flipped.sum()) < 64
    (True, True)
    """
    flip = (torch.rand(images.shape[0], generator=gen) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def fit_minibatches(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: SchedulerFactory,
    *,
    epochs: int,
    batch_size: int,
    gen: torch.Generator,
    max_shift: int = 0,
    hflip: bool = False,
    paired_offsets: bool = False,
    min_batch: int = 1,
    after_step: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
    desc: str = "training",
    progress: bool = True,
) -> None:
    """Train ``model`` in place for ``epochs`` shuffled passes over ``(images, labels)``.

    Each epoch draws a permutation from ``gen`` and cuts it into mini-batches of
    ``batch_size``; a batch is augmented (:func:`random_shift` by up to ``max_shift`` pixels,
    then :func:`random_hflip` when ``hflip``), ``loss_fn(batch, batch_labels)`` is minimised
    by one ``optimizer`` step, the schedule made by ``scheduler(optimizer, total_steps)``
    steps, then ``after_step(batch, batch_labels)`` runs (the batch as ``loss_fn`` saw it).
    A batch smaller than ``min_batch`` (the last one) is skipped. The model is in train mode
    during the loop and in eval mode afterwards.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> y = torch.arange(40) % 2  # dark (0) or bright (1) images
    >>> noise = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> x = 0.5 * noise + 0.5 * y[:, None, None, None]
    >>> with seeded(0) as gen:
    ...     model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    ...     opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ...     before = F.cross_entropy(model(x), y).item()
    ...     fit_minibatches(model, x, y, lambda xb, yb: F.cross_entropy(model(xb), yb), opt,
    ...                     lambda o, total: torch.optim.lr_scheduler.StepLR(o, total),
    ...                     epochs=10, batch_size=16, gen=gen, max_shift=1, progress=False)
    >>> # the loss halves (at most 0.46 of its start over 100 seeds of data and model)
    >>> model.training, F.cross_entropy(model(x), y).item() < 0.7 * before
    (False, True)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(labels)
    steps = (n + batch_size - 1) // batch_size
    sched = scheduler(optimizer, epochs * steps)
    bar = tqdm(total=epochs * steps, disable=not progress, desc=desc, unit="step", leave=False)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(steps):
            idx = order[i * batch_size:(i + 1) * batch_size]
            if len(idx) < min_batch:
                continue
            xb = random_shift(images[idx], max_shift, gen, paired_offsets=paired_offsets)
            if hflip:
                xb = random_hflip(xb, gen)
            yb = labels[idx]
            loss = loss_fn(xb, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sched.step()
            if after_step is not None:
                after_step(xb, yb)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    model.eval()
