from __future__ import annotations

import copy

import pytest
import torch
from toys import ToyGenerator, devices

from captum_latent.core import (
    Adam,
    CallableObjective,
    Clip,
    LatentSearch,
    LossThreshold,
    MaskedReconstruction,
    MatchedThresholds,
    Reconstruction,
    RMSprop,
    sample_thresholds,
)


def test_reversal_of_generated_images_converges(toy_generator, targets) -> None:
    images, _ = targets
    search = LatentSearch(toy_generator, max_iterations=800, restart_patience=200)
    result = search.search(Reconstruction(images), stop=LossThreshold(1e-5), seed=0)
    assert result.codes.shape == (12, 1, 6) and result.images.shape == (12, 1, 1, 8, 8)
    assert result.success_rate >= 0.9
    with torch.no_grad():  # eval mode: the codes reproduce the images
        regenerated = toy_generator(result.codes[:, 0])
    mse = (regenerated - images).square().flatten(1).mean(1)
    assert bool((mse[result.converged[:, 0]] <= 1e-5 * 1.001).all())
    assert torch.allclose(regenerated, result.images[:, 0], atol=1e-6)


def test_many_masks_many_samples_in_one_batch(toy_generator, targets) -> None:
    images, _ = targets
    masks = torch.zeros(4, 1, 8, 8)
    masks[0, ..., :4, :] = 1
    masks[1, ..., 4:, :] = 1
    masks[2, ..., :, :3] = 1
    masks[3, ..., 2:6, 2:6] = 1
    obj = MaskedReconstruction(images[:4], masks)
    calls: list[int] = []

    def counting(images, codes, problems):
        calls.append(len(codes))
        return obj(images, codes, problems)

    search = LatentSearch(toy_generator, max_iterations=300)
    result = search.search(
        CallableObjective(counting, n_problems=4), samples_per_problem=16,
        stop=LossThreshold(2e-3), seed=0,
    )
    assert result.codes.shape == (4, 16, 6)
    assert calls[0] == 64  # every sample of every mask in the first batch
    assert result.steps == len(calls) <= 301
    ok = result.converged
    assert float(ok.float().mean()) > 0.8
    # harvested losses are the masked MSE of the harvested images, below the threshold
    again = obj(result.images.reshape(64, 1, 8, 8), result.codes.reshape(64, 6),
                torch.arange(4).repeat_interleave(16))
    assert torch.allclose(again, result.losses.reshape(64), atol=1e-6)
    assert bool((result.losses[ok] <= 2e-3).all())
    # samples of one mask are different codes (independent initialisations)
    assert float(torch.pdist(result.codes[0][ok[0]]).min()) > 1e-3


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_chunking_and_refill_give_identical_results(toy_generator, targets, batch_size) -> None:
    """Refilled slots start with fresh optimiser state: results do not depend on the batch."""
    images, _ = targets
    init = torch.randn(6, 2, 6, generator=torch.Generator().manual_seed(5))
    kwargs = dict(stop=LossThreshold(1e-3), initial_codes=init, seed=0)
    full = LatentSearch(toy_generator, max_iterations=60, batch_size=12).search(
        Reconstruction(images[:6]), samples_per_problem=2, **kwargs
    )
    chunked = LatentSearch(toy_generator, max_iterations=60, batch_size=batch_size).search(
        Reconstruction(images[:6]), samples_per_problem=2, **kwargs
    )
    assert chunked.batch_size == batch_size
    assert torch.allclose(full.codes, chunked.codes, atol=1e-5)
    assert torch.equal(full.iterations, chunked.iterations)
    assert torch.equal(full.converged, chunked.converged)


def test_batch_of_one_equals_a_hand_written_adam_loop(toy_generator, targets) -> None:
    images, _ = targets
    z0 = torch.randn(1, 6, generator=torch.Generator().manual_seed(9))
    result = LatentSearch(toy_generator, optimizer=Adam(lr=0.02), max_iterations=40).search(
        Reconstruction(images[:1]), initial_codes=z0, seed=0
    )
    assert all(p.grad is None for p in toy_generator.parameters())  # only codes get gradients
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.02)
    best = (float("inf"), None)
    for _ in range(41):
        loss = (toy_generator(z) - images[:1]).square().mean()
        if loss.item() < best[0]:
            best = (loss.item(), z.detach().clone())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert result.iterations.item() == 40
    assert result.losses.item() == pytest.approx(best[0], rel=1e-5)
    assert torch.allclose(result.codes[0], best[1], atol=1e-5)


def test_search_does_not_touch_generator(toy_generator, targets) -> None:
    images, _ = targets
    before = copy.deepcopy(toy_generator.state_dict())
    for mode in ("batch", "eval"):
        LatentSearch(toy_generator, batchnorm=mode, max_iterations=5).search(
            Reconstruction(images), samples_per_problem=3, seed=0
        )
    after = toy_generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in toy_generator.parameters())
    assert not toy_generator.training


def test_clip_projection_and_rmsprop(toy_generator, targets) -> None:
    images, _ = targets
    search = LatentSearch(
        toy_generator, optimizer=RMSprop(lr=0.05), projection=Clip(-0.5, 0.5), max_iterations=30
    )
    result = search.search(Reconstruction(images[:5]), samples_per_problem=4, seed=1)
    assert float(result.codes.abs().max()) <= 0.5
    assert bool((result.iterations == 30).all()) and not bool(result.converged.any())
    assert bool(torch.isnan(result.thresholds).all())


def test_restarts_after_patience(toy_generator, targets) -> None:
    images, _ = targets
    # unreachable target: a constant image of 2.0 (the generator ends in a sigmoid)
    impossible = torch.full((2, 1, 8, 8), 2.0)
    search = LatentSearch(toy_generator, max_iterations=120, restart_patience=10,
                          restart_tolerance=0.5)
    result = search.search(Reconstruction(impossible), stop=LossThreshold(1e-4), seed=0)
    assert bool((result.restarts >= 5).all())
    assert not bool(result.converged.any())
    # the returned code is the best one seen across restarts
    with torch.no_grad():
        mse = (toy_generator(result.codes[:, 0]) - impossible).square().flatten(1).mean(1)
    assert torch.allclose(mse, result.losses[:, 0], atol=1e-5)


def test_matched_thresholds_in_the_engine(toy_generator, targets) -> None:
    images, _ = targets
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :3, :] = 1
    thresholds = sample_thresholds(torch.tensor([0.01, 0.02]), 24, seed=0)
    search = LatentSearch(toy_generator, max_iterations=600, batch_size=16, restart_patience=40)
    result = search.search(
        MaskedReconstruction(images[:2], mask), samples_per_problem=24,
        stop=MatchedThresholds(thresholds), seed=0,
    )
    ok = result.converged
    assert float(ok.float().mean()) > 0.9
    assert bool((result.losses[ok] <= result.thresholds[ok]).all())
    for p in range(2):  # every threshold consumed at most once
        used = result.thresholds[p][ok[p]].sort().values
        pool = thresholds[p].tolist()
        for value in used.tolist():
            pool.remove(pytest.approx(value))  # raises if used twice or unknown


def test_seeds_reproduce_and_differ(toy_generator, targets) -> None:
    images, _ = targets
    search = LatentSearch(toy_generator, max_iterations=10)
    a = search.search(Reconstruction(images[:3]), samples_per_problem=2, seed=7)
    b = search.search(Reconstruction(images[:3]), samples_per_problem=2,
                      generator=torch.Generator().manual_seed(7))
    c = search.search(Reconstruction(images[:3]), samples_per_problem=2, seed=8)
    assert torch.equal(a.codes, b.codes) and not torch.equal(a.codes, c.codes)


def test_memory_budget_chunks_the_request(toy_generator, targets) -> None:
    images, _ = targets
    big = LatentSearch(toy_generator, max_iterations=5)
    small = LatentSearch(toy_generator, max_iterations=5, memory_budget=20_000)
    assert 1 <= small.batch_size < 20 < big.batch_size
    result = small.search(Reconstruction(images), samples_per_problem=4, seed=0)
    assert result.batch_size == small.batch_size and result.codes.shape == (12, 4, 6)
    with pytest.raises(ValueError, match="memory_budget"):
        LatentSearch(toy_generator, memory_budget=10)


def test_bf16_autocast_on_cpu(toy_generator, targets) -> None:
    images, _ = targets
    search = LatentSearch(toy_generator, max_iterations=200, autocast_dtype=torch.bfloat16)
    result = search.search(Reconstruction(images[:4]), stop=LossThreshold(1e-3), seed=0)
    assert result.images.dtype == torch.float32 and result.codes.dtype == torch.float32
    assert result.success_rate >= 0.75


def test_input_validation(toy_generator, targets) -> None:
    images, _ = targets
    search = LatentSearch(toy_generator, max_iterations=3)
    with pytest.raises(ValueError, match="one loss per code"):
        search.search(CallableObjective(lambda i, z, p: i.sum(), n_problems=2))
    with pytest.raises(ValueError, match="initial_codes"):
        search.search(Reconstruction(images), initial_codes=torch.zeros(5, 6))
    with pytest.raises(ValueError, match="n_problems"):
        search.search(Reconstruction(images), n_problems=3)
    with pytest.raises(TypeError, match="n_problems is required"):
        search.search(CallableObjective(lambda i, z, p: z.sum(1)))
    with pytest.raises(TypeError, match="latent_dim"):
        LatentSearch(torch.nn.Sequential(torch.nn.Linear(3, 4)))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        LatentSearch(torch.nn.Linear(3, 4), latent_dim=3)
    with pytest.raises(TypeError, match="generator failed"):
        LatentSearch(torch.nn.Linear(3, 4), latent_dim=5)
    with pytest.raises(ValueError, match="batchnorm"):
        LatentSearch(toy_generator, batchnorm="train")
    with pytest.raises(TypeError, match="optimizer"):
        LatentSearch(toy_generator, optimizer=torch.optim.Adam)
    with pytest.raises(ValueError, match="max_iterations"):
        LatentSearch(toy_generator, max_iterations=0)


@pytest.mark.parametrize("device", devices())
def test_runs_on_device(device) -> None:
    gen = ToyGenerator().to(device)
    codes = torch.randn(8, 6, device=device, generator=torch.Generator(device).manual_seed(0))
    with torch.no_grad():
        images = gen(codes)
    result = LatentSearch(gen, device=device, max_iterations=400).search(
        Reconstruction(images), stop=LossThreshold(1e-4), seed=0
    )
    assert result.codes.device.type == torch.device(device).type
    assert result.success_rate >= 0.75


def test_search_works_under_no_grad():
    """Callers such as a defended model's forward often run under torch.no_grad()."""
    import torch

    from captum_latent.core import LatentSearch, LossThreshold, Reconstruction

    g = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(),
                            torch.nn.Unflatten(1, (1, 2, 4)))
    target = g(torch.randn(2, 3, generator=torch.Generator().manual_seed(0))).detach()
    with torch.no_grad():
        result = LatentSearch(g, latent_dim=3, max_iterations=300).search(
            Reconstruction(target), stop=LossThreshold(1e-4), seed=0)
    assert bool(result.converged.all())
