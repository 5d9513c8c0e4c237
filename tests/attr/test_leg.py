"""LEG and LEG-TV as Captum attributions: calling conventions, exact identities, consistency."""

from __future__ import annotations

import warnings

import pytest
import torch

from captum_latent import LEG, LEGTV
from captum_latent.attr import (
    CvxpyTVSolver,
    FastTVSolver,
    IndependentGaussian,
    LEGTVPath,
    TVGaussian,
)
from captum_latent.attr._grid import _diff


def _weights(h=12, w=12):
    """Three piecewise-constant weight maps (K = 3 outputs)."""
    out = torch.zeros(3, 1, h, w)
    out[0, 0, 2:6, 3:9] = 1.0
    out[1, 0, 6:10, 1:5] = -0.7
    out[2, 0, 1:4, 1:4] = 0.5
    out[2, 0, 7:11, 6:11] = 1.0
    return out


class _Linear(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.register_buffer("weights", weights.flatten(1))

    def forward(self, x, scale=None):
        out = x.flatten(1) @ self.weights.T
        return out if scale is None else out * scale


def _x(batch=2, h=12, w=12, channels=1, seed=0):
    return torch.rand(batch, channels, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cls", [LEG, LEGTV])
def test_perturbations_per_eval_does_not_change_results(cls):
    model = _Linear(_weights())
    x = _x()
    outs = [
        cls(model).attribute(x, target=1, n_samples=60, perturbations_per_eval=ppe, seed=3)
        for ppe in (1, 2, 3)
    ]
    for out in outs[1:]:
        assert torch.allclose(out, outs[0], atol=1e-6, rtol=0)


def test_target_forms_follow_captum(device):
    model = _Linear(_weights()).to(device)
    x = _x().to(device)
    leg = LEG(model)
    kw = dict(n_samples=40, seed=1)
    per_tensor = leg.attribute(x, target=torch.tensor([0, 2], device=device), **kw)
    per_list = leg.attribute(x, target=[0, 2], **kw)
    all0 = leg.attribute(x, target=0, **kw)
    all2 = leg.attribute(x, target=2, **kw)
    assert per_tensor.device.type == device.type
    assert torch.equal(per_tensor, per_list)
    assert torch.allclose(per_tensor[0], all0[0])
    assert torch.allclose(per_tensor[1], all2[1])
    assert not torch.allclose(all0[1], all2[1])


def test_comparative_output_is_difference_of_targets():
    weights = _weights()
    x = _x()
    contrast = LEG(_Linear(weights)).attribute(x, target=2, contrast_target=0, n_samples=50, seed=2)
    diff_model = _Linear((weights[2] - weights[0]).unsqueeze(0))
    direct = LEG(diff_model).attribute(x, target=0, n_samples=50, seed=2)
    assert torch.allclose(contrast, direct, rtol=1e-5, atol=1e-5 * float(direct.abs().max()))


def test_output_transform_softmax_and_additional_args():
    model = _Linear(_weights())
    x = _x()
    a = LEG(model, output_transform="softmax").attribute(
        x, target=1, additional_forward_args=(torch.tensor([[2.0], [0.5]]),), n_samples=30, seed=0
    )
    wrapped = lambda inp, s: torch.softmax(model(inp) * s, dim=1)  # noqa: E731
    b_first = LEG(wrapped).attribute(
        x[:1], target=1, additional_forward_args=(torch.tensor([[2.0]]),), n_samples=30, seed=0
    )
    assert torch.allclose(a[0], b_first[0], atol=1e-6)


def test_single_output_model_needs_no_target():
    weights = _weights()
    single = _Linear(weights[:1])  # (N, 1) outputs
    scalar = lambda inp: single(inp)[:, 0]  # noqa: E731  (N,) outputs
    x = _x()
    a = LEG(single).attribute(x, n_samples=30, seed=0)
    b = LEG(scalar).attribute(x, n_samples=30, seed=0)
    c = LEG(single).attribute(x, target=0, n_samples=30, seed=0)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_linear_model_expected_value_is_exact():
    """For f = w . x, LEG = Sigma^{-1} Sigma_hat w, so E[LEG] = w: check with many samples."""
    weights = _weights()
    x = _x(batch=1)
    attr = LEG(_Linear(weights)).attribute(x, target=0, n_samples=20000, seed=0)
    err = (attr - weights[0]).norm() / weights[0].norm()
    assert err < 0.15


def test_consistency_legtv_beats_leg_and_improves_with_n():
    """Done criterion: LEG-TV's error to w falls with n, and is below LEG's at equal n."""
    weights = _weights(14, 14)
    truth = weights[0:1]
    model = _Linear(weights)
    x = _x(batch=1, h=14, w=14)
    errs_tv, errs_leg = [], []
    for n in (100, 400, 1600):
        tv, lg = 0.0, 0.0
        for seed in range(3):
            kw = dict(target=0, n_samples=n, seed=seed)
            tv += float((LEGTV(model).attribute(x, k_l=0.1, **kw) - truth).norm() / truth.norm())
            lg += float((LEG(model).attribute(x, **kw) - truth).norm() / truth.norm())
        errs_tv.append(tv / 3)
        errs_leg.append(lg / 3)
    assert errs_tv[0] > errs_tv[1] > errs_tv[2]
    assert errs_leg[0] > errs_leg[1] > errs_leg[2]
    assert all(t < e for t, e in zip(errs_tv, errs_leg)), (errs_tv, errs_leg)


def test_legtv_with_zero_penalty_is_empirical_leg():
    """Paper Lemma 3: L = 0 gives the empirical LEG (our mean choice removes the shift)."""
    model = _Linear(_weights())
    x = _x(batch=1)
    tv = LEGTV(model).attribute(x, target=0, n_samples=80, seed=5, k_l=0.0)
    leg = LEG(model).attribute(x, target=0, n_samples=80, seed=5)
    assert torch.allclose(tv, leg, atol=1e-4)


def test_coarse_grid_and_channels():
    h = 16
    weights = torch.zeros(1, 3, h, h)
    weights[0, 1, 4:12, 4:8] = 1.0  # only the middle channel matters, on 2x2 blocks
    model = _Linear(weights)
    x = _x(batch=1, h=h, w=h, channels=3)
    explainer = LEGTV(model)
    kw = dict(target=0, n_samples=400, seed=0, grid_size=(8, 8), k_l=0.3)
    kept = explainer.attribute(x, channel_reduction="none", return_input_shape=False, **kw)
    assert kept.shape == (1, 3, 8, 8)
    tv = _diff(kept[0]).abs().sum(dim=1)
    # L_max is shared by the channels: the ignored ones are flat, the used one is not
    assert tv[1] > 10.0 and tv[0] < 1e-6 * tv[1] and tv[2] < 1e-6 * tv[1]
    # each grid cell covers 4 pixels of weight 1: the grid LEG is 4 there (shrunk by TV)
    assert 2.0 < float(kept[0, 1, 2:6, 2:4].mean()) < 4.5
    full, cert = explainer.attribute(x, return_certificate=True, **kw)
    assert full.shape == x.shape
    assert torch.equal(full[:, 0], full[:, 2])  # combined map repeated over channels
    assert torch.allclose(full[0, 0, ::2, ::2], kept[0].abs().sum(0))
    assert cert.converged.shape == (1, 3) and cert.converged.all()


def test_solution_path_is_monotone_and_warm_started():
    model = _Linear(_weights())
    x = _x(batch=1)
    path = LEGTV(model).attribute_path(
        x, target=0, n_samples=200, seed=0, k_l_grid=[1.0, 0.3, 0.1, 0.03],
        return_input_shape=False, grid_size=(12, 12),
    )
    assert isinstance(path, LEGTVPath)
    assert path.attributions.shape == (4, 1, 1, 12, 12)
    tv = [float(_diff(a[0]).abs().sum()) for a in path.attributions]
    assert tv[0] < 1e-9  # L = L_max: a constant map
    assert all(a <= b + 1e-9 for a, b in zip(tv, tv[1:]))
    assert all(bool(c.converged.all()) for c in path.certificates)


def test_general_covariance_runs_on_the_fast_solver():
    model = _Linear(_weights(6, 6))
    x = _x(batch=1, h=6, w=6)
    explainer = LEGTV(model, perturbation=IndependentGaussian(), solver=FastTVSolver())
    out, cert = explainer.attribute(x, target=0, n_samples=100, seed=0, k_l=0.1,
                                    grid_size=(6, 6), return_certificate=True)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert bool(cert.converged.all())
    ref = LEGTV(model, perturbation=IndependentGaussian(), solver=CvxpyTVSolver())
    out_ref = ref.attribute(x, target=0, n_samples=100, seed=0, k_l=0.1, grid_size=(6, 6))
    tv, tv_ref = float(_diff(out[:, 0]).abs().sum()), float(_diff(out_ref[:, 0]).abs().sum())
    assert abs(tv - tv_ref) <= 1e-4 * tv_ref
    assert abs(float(out.mean()) - float(out_ref.mean())) < 1e-5  # the same mean choice


def test_fast_and_reference_solvers_agree_end_to_end():
    model = _Linear(_weights())
    x = _x(batch=1)
    kw = dict(target=0, n_samples=150, seed=4, k_l=0.05)
    fast = LEGTV(model, solver=FastTVSolver(tol=1e-7)).attribute(x, **kw)
    ref = LEGTV(model, solver=CvxpyTVSolver()).attribute(x, **kw)
    tv_fast = float(_diff(fast[:, 0]).abs().sum())
    tv_ref = float(_diff(ref[:, 0]).abs().sum())
    assert abs(tv_fast - tv_ref) <= 1e-4 * tv_ref
    assert abs(float(fast.mean()) - float(ref.mean())) < 1e-6


def test_theory_penalty_is_more_conservative():
    model = _Linear(_weights())
    x = _x(batch=1)
    theory = LEGTV(model).attribute(x, target=0, n_samples=200, seed=0, penalty="theory")
    assert torch.isfinite(theory).all()


def test_input_validation():
    model = _Linear(_weights())
    x = _x()
    leg = LEG(model)
    with pytest.raises(ValueError, match="n_samples"):
        leg.attribute(x, target=0, n_samples=1)
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        leg.attribute(x, target=0, perturbations_per_eval=0)
    with pytest.raises(ValueError, match="sigma2"):
        leg.attribute(x, target=0, sigma2=-0.1)
    with pytest.raises(ValueError, match="inputs"):
        leg.attribute(x[0], target=0)
    with pytest.raises(ValueError, match="grid_size"):
        leg.attribute(x, target=0, grid_size=(20, 20))
    with pytest.raises(ValueError, match="channel_reduction"):
        leg.attribute(x, target=0, channel_reduction="max")
    with pytest.raises(ValueError, match="target"):
        leg.attribute(x, target=[0, 1, 2])
    with pytest.raises(ValueError, match="one number per example"):
        leg.attribute(x, target=None, n_samples=4)
    with pytest.raises(ValueError, match="seed"):
        leg.attribute(x, target=0, seed=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="k_l"):
        LEGTV(model).attribute(x, target=0, k_l=1.5)
    with pytest.raises(ValueError, match="output_transform"):
        LEG(model, output_transform="sigmoid")
    with pytest.raises(TypeError, match="perturbation"):
        LEG(model, perturbation="tv")
    with pytest.raises(TypeError, match="forward_func"):
        LEG(3)
    assert isinstance(LEG(model).perturbation, TVGaussian)


def test_a_solve_cut_short_warns_and_still_returns_feasible_maps():
    model = _Linear(_weights(12, 12))
    x = _x(batch=2)
    explainer = LEGTV(model, solver=FastTVSolver(max_iter=2, tol=1e-12))
    with pytest.warns(RuntimeWarning, match=r"2 of 2 solves stopped .* not certified optimal"):
        out, cert = explainer.attribute(x, target=0, n_samples=100, seed=0, k_l=0.05,
                                        return_certificate=True)
    assert not bool(cert.converged.any()) and float(cert.feasibility_violation.max()) <= 1e-9
    assert torch.isfinite(out).all()
    with pytest.warns(RuntimeWarning, match=r"of 6 solves stopped"):
        explainer.attribute_path(x, target=0, n_samples=100, seed=0, k_l_grid=[0.2, 0.1, 0.05])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a converged solve is silent
        LEGTV(model).attribute(x, target=0, n_samples=100, seed=0)


def test_moments_are_what_attribute_solves():
    """LEG.moments (public, for custom solvers and the benchmarks) gives the maps b that
    attribute() turns into LEG: Sigma^{-1} b, on the same perturbations."""
    w = torch.zeros(1, 1, 6, 6)
    w[..., 1:4, 2:5] = 1.0

    def model(x):
        return (x * w).sum(dim=(1, 2, 3)).unsqueeze(1) ** 2

    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    leg = LEG(model)
    b = leg.moments(x, target=0, n_samples=80, seed=3, sigma2=0.1, grid_size=(6, 6))
    attr = leg.attribute(x, target=0, n_samples=80, seed=3, sigma2=0.1, grid_size=(6, 6))
    solved = leg.perturbation.solve(b.reshape(-1, 6, 6), 0.1).reshape(b.shape)
    assert torch.allclose(attr.double(), solved)
    with pytest.raises(TypeError, match="unexpected argument"):
        leg.moments(x, target=0, n_sample=80)
