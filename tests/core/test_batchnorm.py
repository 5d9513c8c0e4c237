from __future__ import annotations

import copy

import pytest
import torch

from captum_latent.core import batchnorm_mode, has_batchnorm


def _buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.named_buffers()}


def test_batch_mode_uses_batch_stats_and_leaves_buffers(toy_generator) -> None:
    z = torch.randn(16, toy_generator.latent_dim, generator=torch.Generator().manual_seed(0))
    before = _buffers(toy_generator)
    reference = copy.deepcopy(toy_generator).train()
    with torch.no_grad():
        expected = reference(z)
        with batchnorm_mode(toy_generator, "batch"):
            got = toy_generator(z)
    assert torch.allclose(got, expected, atol=1e-6)
    after = _buffers(toy_generator)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not toy_generator.training and all(
        m.track_running_stats for m in toy_generator.modules() if hasattr(m, "track_running_stats")
    )
    with torch.no_grad():
        eval_out = toy_generator(z)
    assert not torch.allclose(eval_out, got, atol=1e-3)  # the modes really differ


def test_eval_mode_on_a_training_module_and_restore_after_error(toy_generator) -> None:
    toy_generator.train()
    z = torch.randn(4, toy_generator.latent_dim, generator=torch.Generator().manual_seed(0))
    expected = copy.deepcopy(toy_generator).eval()(z)
    with batchnorm_mode(toy_generator, "eval"):
        assert torch.allclose(toy_generator(z), expected)
    with pytest.raises(RuntimeError, match="boom"), batchnorm_mode(toy_generator, "batch"):
        raise RuntimeError("boom")
    assert all(m.training for m in toy_generator.modules())
    assert has_batchnorm(toy_generator)
    with pytest.raises(ValueError, match="batchnorm"), batchnorm_mode(toy_generator, "train"):
        pass
