"""How batch-norm layers of a frozen generator behave during latent search.

``"batch"``
    Normalise with the statistics of the current batch (as in training) *without* updating the
    running buffers: for the duration of the search every ``_BatchNorm`` layer is put in
    training mode with ``track_running_stats=False``, which makes ``F.batch_norm`` receive no
    running buffers at all (so nothing can be written to them, and ``num_batches_tracked`` is
    not incremented). This is the GANchors speed-up (their Table 1: 34.9 -> 4.5 min), but the
    image of a code then depends on the other codes in the batch.
``"eval"``
    Normalise with the running statistics: ``G(z)`` is a deterministic function of ``z``, so
    returned codes reproduce returned images when the generator is later called in eval mode.
``"as_is"``
    Leave every layer as the user set it.

Other layers (dropout, ...) are never touched, and the original ``training`` and
``track_running_stats`` flags are restored on exit, even after an exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["BATCHNORM_MODES", "batchnorm_mode", "has_batchnorm"]

BATCHNORM_MODES = ("batch", "eval", "as_is")


def has_batchnorm(module: nn.Module) -> bool:
    """Whether ``module`` contains a batch-norm layer.

    Examples
    --------
    >>> from torch import nn
    >>> has_batchnorm(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
    True
    """
    return any(isinstance(m, _BatchNorm) for m in module.modules())


@contextmanager
def batchnorm_mode(module: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Context manager setting the batch-norm behaviour of ``module`` (see module docstring).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> g = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).eval()
    >>> before = g[1].running_mean.clone()
    >>> with batchnorm_mode(g, "batch"):
    ...     out = g(torch.randn(8, 2))
    >>> torch.equal(before, g[1].running_mean), g[1].training
    (True, False)
    """
    if mode not in BATCHNORM_MODES:
        raise ValueError(f"batchnorm must be one of {BATCHNORM_MODES}, got {mode!r}")
    layers = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in layers]
    try:
        for m in layers:
            if mode == "batch":
                m.training = True
                m.track_running_stats = False
            elif mode == "eval":
                if m.running_mean is None:
                    raise ValueError(
                        f"batchnorm='eval' needs running statistics, but {m} has none; "
                        "use batchnorm='batch'"
                    )
                m.training = False
        yield module
    finally:
        for m, (training, track) in zip(layers, saved):
            m.training = training
            m.track_running_stats = track
