from __future__ import annotations

import pytest
import torch

from captum_latent.core import (
    CallableObjective,
    DiscriminatorLoss,
    MaskedReconstruction,
    Reconstruction,
    WeightedSum,
)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_masked_l2_mean_is_masked_mse_per_problem() -> None:
    x = _rand(3, 2, 5, 7)
    masks = (_rand(3, 1, 5, 7, seed=1) > 0.5).float()
    images = _rand(4, 2, 5, 7, seed=2)
    problems = torch.tensor([2, 0, 2, 1])
    got = MaskedReconstruction(x, masks)(images, torch.zeros(4, 3), problems)
    for row, p in enumerate(problems.tolist()):
        sel = masks[p].expand(2, 5, 7).bool()
        expected = ((images[row] - x[p])[sel] ** 2).mean()
        assert torch.allclose(got[row], expected, atol=1e-6)


def test_l1_sum_and_shared_mask() -> None:
    x = torch.zeros(2, 1, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    images = torch.tensor([[[[1.0, 5.0], [-2.0, 7.0]]]]).repeat(2, 1, 1, 1)
    obj = MaskedReconstruction(x, mask, norm="l1", reduction="sum")
    assert obj(images, torch.zeros(2, 1), torch.tensor([0, 1])).tolist() == [3.0, 3.0]


def test_reconstruction_is_mse() -> None:
    x = _rand(2, 3, 4, 4)
    img = _rand(2, 3, 4, 4, seed=5)
    got = Reconstruction(x)(img, torch.zeros(2, 1), torch.tensor([1, 0]))
    expected = ((img - x[[1, 0]]) ** 2).flatten(1).mean(1)
    assert torch.allclose(got, expected, atol=1e-6)


def test_discriminator_term_is_nonsaturating_loss() -> None:
    lin = torch.nn.Linear(4, 1)
    d = torch.nn.Sequential(torch.nn.Flatten(), lin)
    img = _rand(3, 1, 2, 2)
    got = DiscriminatorLoss(d)(img, torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    expected = -torch.nn.functional.logsigmoid(lin(img.flatten(1))[:, 0])
    assert torch.allclose(got, expected, atol=1e-6)


def test_weighted_sum_combines_and_flattens() -> None:
    x = _rand(2, 1, 3, 3)
    rec = Reconstruction(x)
    norm = CallableObjective(lambda i, z, p: z.square().sum(1))
    obj = rec + 0.5 * norm + 2 * rec
    assert isinstance(obj, WeightedSum) and len(obj.terms) == 3
    img, z, p = _rand(2, 1, 3, 3, seed=3), torch.ones(2, 4), torch.tensor([0, 1])
    assert torch.allclose(obj(img, z, p), 3 * rec(img, z, p) + 2.0)
    assert obj.n_problems == 2


def test_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="masks"):
        MaskedReconstruction(torch.zeros(2, 1, 4, 4), torch.ones(3, 1, 4, 4))
    with pytest.raises(ValueError, match="at least one pixel"):
        MaskedReconstruction(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="norm"):
        Reconstruction(torch.zeros(1, 1, 2, 2), norm="l3")
    with pytest.raises(TypeError, match="targets"):
        Reconstruction([[0.0]])
    with pytest.raises(TypeError, match="discriminator"):
        DiscriminatorLoss(lambda x: x)
    with pytest.raises(ValueError, match="problems"):
        WeightedSum(
            [Reconstruction(torch.zeros(2, 1, 2, 2)), Reconstruction(torch.zeros(3, 1, 2, 2))],
            [1, 1],
        )
