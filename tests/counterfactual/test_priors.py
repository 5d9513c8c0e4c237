from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from captum_latent.counterfactual import DeepImagePrior, INRPrior, TVL2Prior, total_variation
from captum_latent.counterfactual.priors import _BatchedConv


def test_total_variation_of_a_step_edge():
    img = torch.zeros(1, 1, 4, 4)
    img[..., 2:] = 1.0  # vertical edge: 3 rows of the (3 x 3) difference grid cross it once
    assert total_variation(img, eps=0.0).item() == pytest.approx(3.0)
    assert total_variation(torch.ones(2, 1, 5, 5), eps=0.0).tolist() == [0.0, 0.0]


def test_tvl2_state_regularizer_and_projection(rng):
    x = torch.rand(2, 1, 6, 6, generator=rng)
    state = TVL2Prior(tv_weight=2.0, l2_weight=3.0).build(x, rng)
    expected = 2.0 * total_variation(x) + 3.0 * x.flatten(1).norm(dim=1)
    torch.testing.assert_close(state.regularizer(state()), expected)
    with torch.no_grad():
        state.pixels.add_(5.0)
    state.project()
    assert state().max().item() == 1.0


@pytest.mark.parametrize("prior", [INRPrior(n_frequencies=32, hidden=16, fit_steps=3),
                                   DeepImagePrior(channels=(4, 8), fit_steps=3)])
def test_anchored_priors_start_at_the_query(prior, rng, device):
    x = torch.rand(3, 1, 9, 9, generator=rng, device=device)
    state = prior.build(x, rng)
    assert state().device.type == device.type
    torch.testing.assert_close(state(), x, atol=1e-5, rtol=0)
    assert all(p.shape[0] == 3 for group in state.layers for p in group)  # per-query weights


def test_fitting_reduces_reconstruction_error(digits_data, rng):
    x = digits_data.test.images[:2]
    untrained = INRPrior(fit_steps=0, anchor=False).build(x, torch.Generator().manual_seed(0))
    fitted = INRPrior(fit_steps=100, anchor=False).build(x, torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = F.mse_loss(untrained(), x).item()
        after = F.mse_loss(fitted(), x).item()
    assert after < 0.1 * before
    assert after < 1e-3


def test_batched_conv_matches_one_conv_per_image(rng):
    conv = _BatchedConv(3, 2, 4, 3, stride=2, gen=rng, like=torch.zeros(1))
    x = torch.randn(3, 2, 7, 7, generator=rng)
    out = conv(x)
    for i in range(3):
        ref = F.conv2d(x[i:i + 1], conv.weight[i], conv.bias[i], stride=2, padding=1)
        torch.testing.assert_close(out[i:i + 1], ref)


def test_prior_initialisation_depends_only_on_the_generator(rng):
    x = torch.rand(2, 1, 8, 8, generator=rng)
    prior = INRPrior(n_frequencies=8, hidden=8, fit_steps=2, anchor=False)
    a = prior.build(x, torch.Generator().manual_seed(5))
    torch.manual_seed(123)  # global state must not matter
    b = prior.build(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a(), b())


@pytest.mark.parametrize("kwargs, match", [
    ({"n_frequencies": 0}, "n_frequencies"), ({"variance": -1.0}, "variance"),
    ({"hidden": 2.5}, "hidden"), ({"lr": 0}, "lr"),
])
def test_inr_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        INRPrior(**kwargs)


def test_priors_reject_bad_queries(rng):
    with pytest.raises(ValueError, match="queries"):
        TVL2Prior().build(torch.zeros(1, 8, 8), rng)
    with pytest.raises(ValueError, match="channels"):
        DeepImagePrior(channels=(4, 8, 16))
