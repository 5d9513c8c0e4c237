from __future__ import annotations

import pytest
import torch

from captum_latent.core import BallProjection, Clip


def test_clip_and_ball() -> None:
    z = torch.tensor([[3.0, -4.0], [0.3, 0.4]])
    assert torch.equal(Clip(-1, 1)(z), torch.tensor([[1.0, -1.0], [0.3, 0.4]]))
    projected = BallProjection(1.0)(z)
    assert torch.allclose(projected[0], torch.tensor([0.6, -0.8]))
    assert torch.equal(projected[1], z[1])
    assert torch.allclose(projected.norm(dim=1), torch.tensor([1.0, 0.5]))


def test_projection_validation() -> None:
    with pytest.raises(ValueError, match="high"):
        Clip(1.0, -1.0)
    with pytest.raises(ValueError, match="radius"):
        BallProjection(0.0)
