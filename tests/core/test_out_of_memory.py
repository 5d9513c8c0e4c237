"""A device out-of-memory error inside the search halves the batch instead of failing."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from captum_latent.core import LatentSearch, LossThreshold, Reconstruction


class _RaisesInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")


class _MemoryLimitedGenerator(nn.Module):
    """Wraps a generator; raises a CUDA-style OOM when more than ``limit`` codes come in."""

    def __init__(self, inner: nn.Module, limit: int, where: str = "forward") -> None:
        super().__init__()
        self.inner, self.limit, self.where = inner, limit, where
        self.latent_dim = inner.latent_dim
        self.batches: list[int] = []

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(z))
        if len(z) > self.limit and self.where == "forward":
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        out = self.inner(z)
        if len(z) > self.limit and self.where == "backward" and z.requires_grad:
            out = _RaisesInBackward.apply(out)
        return out


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_out_of_memory_halves_the_batch_and_gives_the_same_result(
    toy_generator, targets, where
) -> None:
    images, _ = targets
    init = torch.randn(12, 2, 6, generator=torch.Generator().manual_seed(5))
    kwargs = dict(samples_per_problem=2, stop=LossThreshold(1e-3), initial_codes=init, seed=0)
    reference = LatentSearch(toy_generator, max_iterations=60, batch_size=24).search(
        Reconstruction(images), **kwargs
    )
    limited = _MemoryLimitedGenerator(toy_generator, limit=7, where=where)
    engine = LatentSearch(limited, max_iterations=60, batch_size=24)
    with pytest.warns(RuntimeWarning, match=r"half the batch \(24 -> 12") as record:
        result = engine.search(Reconstruction(images), **kwargs)
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    assert result.batch_size == 6 and engine.batch_size == 6
    # evicted codes restarted from their initial codes: same answers as without the error
    assert torch.allclose(reference.codes, result.codes, atol=1e-5)
    assert torch.equal(reference.iterations, result.iterations)
    assert torch.equal(reference.converged, result.converged)
    # a later search starts at the smaller batch and does not warn again
    limited.batches.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine.search(Reconstruction(images), **kwargs)
    assert max(limited.batches) <= 7


def test_out_of_memory_at_the_smallest_batch_is_raised(toy_generator, targets) -> None:
    images, _ = targets
    limited = _MemoryLimitedGenerator(toy_generator, limit=0)
    limited.limit = 2  # the engine's probe uses 2 codes
    engine = LatentSearch(limited, max_iterations=5, batch_size=4)
    limited.limit = 0
    with pytest.warns(RuntimeWarning), pytest.raises(torch.OutOfMemoryError):
        engine.search(Reconstruction(images[:4]), seed=0)


def test_other_errors_are_not_swallowed(toy_generator, targets) -> None:
    images, _ = targets

    def broken(images, codes, problems):
        raise RuntimeError("shape mismatch in the user's objective")

    from captum_latent.core import CallableObjective

    engine = LatentSearch(toy_generator, max_iterations=5)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        engine.search(CallableObjective(broken, n_problems=3), seed=0)
