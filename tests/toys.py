"""Toy generators shared by tests/core and tests/generative: they train nothing, run in ms.

Imported as ``from toys import ...``: pytest puts tests/ on ``sys.path`` for the test packages
below it (the first folder up without an ``__init__.py``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn


class ToyGenerator(nn.Module):
    """MLP + conv generator with BatchNorm1d/2d: (B, d) -> (B, 1, 8, 8) in [0, 1]."""

    def __init__(self, latent_dim: int = 6, seed: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        gen = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 64),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Unflatten(1, (4, 4, 4)),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 1, 3, padding=1),
            nn.Sigmoid(),
        )
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.weight.fill_(1.0)
                    m.bias.zero_()
        # give the running statistics non-trivial values
        self.train()
        with torch.no_grad():
            for _ in range(5):
                self(torch.randn(128, latent_dim, generator=gen))
        self.eval()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def devices() -> list:
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append(pytest.param("cuda", marks=pytest.mark.gpu))
    return out
