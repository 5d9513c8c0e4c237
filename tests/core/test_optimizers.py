from __future__ import annotations

import pytest
import torch

from captum_latent.core import Adam, RMSprop


def _grad(z: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * z) + z**2


@pytest.mark.parametrize(
    ("mine", "ref"),
    [
        (Adam(lr=0.03), lambda p: torch.optim.Adam([p], lr=0.03)),
        (Adam(lr=0.1, betas=(0.5, 0.9)), lambda p: torch.optim.Adam([p], lr=0.1, betas=(0.5, 0.9))),
        (RMSprop(lr=0.01), lambda p: torch.optim.RMSprop([p], lr=0.01)),
        (RMSprop(lr=0.01, momentum=0.5), lambda p: torch.optim.RMSprop([p], lr=0.01, momentum=0.5)),
    ],
)
def test_matches_torch_optim(mine, ref) -> None:
    z0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    p = z0.clone().requires_grad_(True)
    opt = ref(p)
    z, state = z0.clone(), mine.init(z0)
    for _ in range(25):
        p.grad = _grad(p.detach())
        opt.step()
        z = mine.step(z, _grad(z), state)
    assert torch.allclose(z, p.detach(), atol=1e-5)


@pytest.mark.parametrize("opt", [Adam(lr=0.05), RMSprop(lr=0.05, momentum=0.3)])
def test_reset_row_restarts_it_from_scratch(opt) -> None:
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    state = opt.init(z)
    for _ in range(10):
        z = opt.step(z, _grad(z), state)
    fresh = torch.randn(1, 3, generator=torch.Generator().manual_seed(2))
    z[2] = fresh[0]
    opt.reset(state, torch.tensor([2]))
    alone, alone_state = fresh.clone(), opt.init(fresh)
    for _ in range(10):
        z = opt.step(z, _grad(z), state)
        alone = opt.step(alone, _grad(alone), alone_state)
    assert torch.allclose(z[2], alone[0], atol=1e-6)


def test_invalid_hyperparameters() -> None:
    with pytest.raises(ValueError, match="lr"):
        Adam(lr=0)
    with pytest.raises(ValueError, match="betas"):
        Adam(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="momentum"):
        RMSprop(momentum=-0.1)
