"""LEG and LEG-TV inside Captum's wrappers and metrics, with Captum's input forms (tuples of
inputs, feature masks), vectorised over the batch, and with the LEG-TV certificate on request
(issue #16, items 1, 2, 5, 6)."""

from __future__ import annotations

import pytest
import torch
from captum.attr import NoiseTunnel
from captum.attr import visualization as viz
from captum.metrics import infidelity, sensitivity_max

from captum_latent import LEG, LEGTV
from captum_latent.attr import IndependentGaussian, LEGTVCertificate, StructuredTVProblem
from captum_latent.attr._cells import _CellGraph, _CellOps
from captum_latent.attr.grid import default_grid
from captum_latent.attr.tv_solvers import FastTVSolver


def _weights(channels: int = 1, size: int = 12) -> torch.Tensor:
    w = torch.zeros(1, channels, size, size)
    w[:, :, 3:7, 4:9] = 1.0
    return w


class _TwoInputs(torch.nn.Module):
    """``<w1, x> + <w2, y>`` (two outputs: the score and its negative); ``y`` unused when
    ``w2`` is 0."""

    def __init__(self, w1: torch.Tensor, w2: torch.Tensor) -> None:
        super().__init__()
        self.w1, self.w2 = w1, w2

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = (x * self.w1).sum(dim=(1, 2, 3)) + (y * self.w2).sum(dim=(1, 2, 3))
        return torch.stack([s, -s], dim=1)


class _Linear(torch.nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        s = (x * self.w).sum(dim=(1, 2, 3))
        return torch.stack([s, -s, s.tanh()], dim=1)


def _x(batch: int = 2, channels: int = 1, size: int = 12) -> torch.Tensor:
    return torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(0))


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


@pytest.mark.parametrize("cls", [LEG, LEGTV])
@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel(cls, nt_type):
    model = _Linear(_weights())
    x = _x()
    attr = NoiseTunnel(cls(model)).attribute(
        x, nt_type=nt_type, nt_samples=3, stdevs=0.05, target=0, n_samples=200, seed=0
    )
    assert attr.shape == x.shape and torch.isfinite(attr).all()
    if nt_type == "smoothgrad":  # a linear model: every noisy copy has the same LEG
        inside = attr[:, 0, 3:7, 4:9].mean()
        outside = attr[:, 0, 8:, :].abs().mean()
        assert float(inside) > 3 * float(outside)


def test_noise_tunnel_collects_legtv_convergence_delta():
    model = _Linear(_weights())
    x = _x()
    attr, delta = NoiseTunnel(LEGTV(model)).attribute(
        x, nt_samples=2, target=0, n_samples=100, seed=0, return_convergence_delta=True
    )
    assert attr.shape == x.shape
    assert delta.shape == (4,) and bool((delta >= 0).all()) and bool((delta <= 1e-3).all())


@pytest.mark.parametrize("cls", [LEG, LEGTV])
def test_infidelity_sensitivity_and_visualisation(cls):
    model = _Linear(_weights(channels=3))
    x = _x(channels=3)
    explainer = cls(model)
    attr = explainer.attribute(x, target=0, n_samples=300, seed=0)

    def perturb(inputs):
        noise = torch.randn(inputs.shape, generator=torch.Generator().manual_seed(1)) * 0.05
        return noise, inputs - noise

    infid = infidelity(model, perturb, x, attr, target=0)
    assert infid.shape == (2,) and torch.isfinite(infid).all()
    sens = sensitivity_max(explainer.attribute, x, target=0, n_samples=100, seed=0,
                           n_perturb_samples=2)
    assert sens.shape == (2,) and torch.isfinite(sens).all()
    fig, _ = viz.visualize_image_attr(
        attr[0].permute(1, 2, 0).numpy(), x[0].permute(1, 2, 0).numpy(),
        method="blended_heat_map", sign="absolute_value", use_pyplot=False,
    )
    assert fig is not None


@pytest.mark.parametrize("cls", [LEG, LEGTV])
def test_tuple_inputs_are_each_attributed(cls):
    size = 10
    w1 = _weights(size=size)
    w2 = torch.zeros(1, 2, size, size)
    w2[:, 1, 5:9, 1:4] = 2.0
    model = _TwoInputs(w1, w2)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 1, size, size, generator=g), torch.rand(2, 2, size, size, generator=g)
    extra = {"k_l": 0.3} if cls is LEGTV else {}
    ax, ay = cls(model).attribute((x, y), target=0, n_samples=1500, seed=0,
                                  channel_reduction="none", **extra)
    assert ax.shape == x.shape and ay.shape == y.shape
    # a linear model's LEG is its weight map: each input's map follows its own weights
    assert _corr(ax, w1.expand_as(ax)) > 0.8
    assert _corr(ay[:, 1], w2[:, 1].expand_as(ay[:, 1])) > 0.8
    if cls is LEGTV:  # L_max is shared by all inputs: the ignored channel is flat
        spread = (ay[:, 0] - ay[:, 0].mean(dim=(1, 2), keepdim=True)).abs().max()
        assert float(spread) < 1e-6


def test_tuple_inputs_validation():
    model = _TwoInputs(_weights(size=6), _weights(size=6))
    x = _x(size=6)
    with pytest.raises(ValueError, match="same batch size"):
        LEG(model).attribute((x, x[:1]), target=0, n_samples=10)
    with pytest.raises(ValueError, match="empty tuple"):
        LEG(model).attribute((), target=0, n_samples=10)
    with pytest.raises(TypeError, match="tuple of 2"):
        LEG(model).attribute((x, x), target=0, n_samples=10, feature_mask=torch.zeros(6, 6).long())
    with pytest.raises(ValueError, match=r"grid_size\[1\]"):
        LEG(model).attribute((x, x), target=0, n_samples=10, grid_size=((3, 3), (9, 9)))


def _blocks(size: int, block: int) -> torch.Tensor:
    cell = torch.arange(size) // block
    return cell[:, None] * ((size + block - 1) // block) + cell[None, :]


def test_feature_mask_cells_are_the_unknowns():
    size = 12
    w = torch.zeros(1, 1, size, size)
    w[..., 3:9, 3:6] = 1.0  # exactly 2x1 cells of 3x3 blocks
    model = _Linear(w)
    x = _x(size=size)
    mask = _blocks(size, 3)
    leg = LEG(model).attribute(x, target=0, n_samples=1500, seed=0, feature_mask=mask)
    legtv, cert = LEGTV(model).attribute(x, target=0, n_samples=1500, seed=0, feature_mask=mask,
                                         k_l=0.2, return_certificate=True)
    for attr in (leg, legtv):
        assert attr.shape == x.shape
        # constant on every cell
        cells = attr[:, 0].reshape(2, 4, 3, 4, 3)
        assert torch.allclose(cells, cells[:, :, :1, :, :1].expand_as(cells))
        # a cell covers 9 pixels of weight 1: the LEG of the cell is 9 there, ~0 elsewhere
        inside = attr[:, 0, 3:9, 3:6].mean()
        outside = torch.cat([attr[:, 0, :3].flatten(), attr[:, 0, 9:].flatten()]).abs().mean()
        assert float(inside) > 5 * float(outside)
    assert isinstance(cert, LEGTVCertificate) and cert.duality_gap.shape == (2, 1)
    assert bool(cert.converged.all())
    assert float(cert.relative_gap.max()) <= 1e-6
    assert float(cert.feasibility_violation.max()) <= 1e-7 * float(cert.penalty.max())
    # the TV penalty flattens the empirical LEG's noise where the model has no weight
    tv = [float((a[:, 0, :, 1:] - a[:, 0, :, :-1]).abs().sum()) for a in (leg, legtv)]
    noise = [float(a[:, 0, 9:].std()) for a in (leg, legtv)]
    assert tv[1] < tv[0] and noise[1] < 0.5 * noise[0]


def test_feature_mask_lp_matches_the_grid_solver_on_blocks():
    """A mask of 2x2 blocks is the 4x4 grid graph: HiGHS on the cells and FastTVSolver on the
    grid reach the same optimum for the same moments."""
    b = torch.randn(3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ops = _CellOps(_CellGraph.from_mask(_blocks(8, 2), "mask"))
    grid = StructuredTVProblem.from_moments(b, 0.1, k_l=0.1)
    fast = FastTVSolver(tol=1e-9).solve(grid)
    cells = ops.solve_tv(ops.edge_data(b.reshape(3, 16)), 0.1, grid.bound)
    assert torch.allclose(cells["objective"], fast.certificate.objective, rtol=1e-6)
    assert torch.allclose(cells["dual_objective"], cells["objective"], rtol=1e-7)
    assert torch.allclose(ops.edge_data(b.reshape(3, 16)).abs().amax(dim=1), grid.l_max)


def test_feature_mask_validation():
    model = _Linear(_weights())
    x = _x()
    with pytest.raises(TypeError, match="integer cell ids"):
        LEG(model).attribute(x, target=0, n_samples=10, feature_mask=torch.zeros(12, 12))
    with pytest.raises(ValueError, match="shape"):
        LEG(model).attribute(x, target=0, n_samples=10, feature_mask=torch.zeros(5, 5).long())
    with pytest.raises(ValueError, match="single cell"):
        LEG(model).attribute(x, target=0, n_samples=10, feature_mask=torch.zeros(12, 12).long())
    with pytest.raises(ValueError, match="not both"):
        LEG(model).attribute(x, target=0, n_samples=10, feature_mask=_blocks(12, 3),
                             grid_size=(6, 6))
    with pytest.raises(ValueError, match="above 2048"):
        LEG(model).attribute(torch.zeros(1, 1, 50, 50), target=0, n_samples=10,
                             feature_mask=torch.arange(2500).reshape(50, 50))
    model.calls = 0
    with pytest.raises(ValueError, match="TVGaussian"):
        LEGTV(model, perturbation=IndependentGaussian()).attribute(
            x, target=0, n_samples=10, feature_mask=_blocks(12, 3))
    assert model.calls == 0  # refused before any model evaluation
    # per-example masks: each example its own cells
    masks = torch.stack([_blocks(12, 3), _blocks(12, 4)])[:, None]
    out = LEG(model).attribute(x, target=0, n_samples=50, seed=0, feature_mask=masks)
    assert out.shape == x.shape


def test_whole_batch_in_vectorised_passes():
    model = _Linear(_weights(size=8))
    x = _x(batch=5, size=8)
    LEG(model).attribute(x, target=0, n_samples=300, seed=0, sigma2=0.1)
    assert model.calls == 3  # the probe, f(x0) for the batch, one pass of 5 x 300 copies
    model.calls = 0
    LEG(model).attribute(x, target=0, n_samples=300, seed=0, sigma2=0.1,
                         perturbations_per_eval=100)
    assert model.calls == 2 + 3
    model.calls = 0
    LEG(model).attribute(x, target=0, n_samples=300, seed=0)  # sigma2="auto": one pilot call
    assert model.calls == 4


def test_default_grid_has_four_evaluations_per_cell():
    assert default_grid((8, 8), 500) == (8, 8) and default_grid((28, 28), 500) == (11, 11)
    assert default_grid((224, 224), 3000) == (27, 27)  # the paper: 28x28 at n = 3000
    for hw in [(28, 28), (25, 25), (224, 224), (100, 60)]:
        for n in (50, 500, 3000):
            h, w = default_grid(hw, n)
            assert h * w <= n // 4 and h <= hw[0] and w <= hw[1]
    model = _Linear(torch.ones(1, 1, 64, 64))
    out = LEG(model).attribute(torch.zeros(1, 1, 64, 64), target=0, n_samples=400, seed=0,
                               return_input_shape=False)
    assert out.shape == (1, 1, 10, 10)


def test_auto_sigma2_follows_the_input_range_and_the_model():
    model = _Linear(_weights())
    x = _x()
    kw = dict(target=0, n_samples=100, seed=0, grid_size=(12, 12), return_certificate=True)
    _, cert = LEGTV(model).attribute(x, **kw)
    _, cert10 = LEGTV(model).attribute(10 * x, **kw)
    # 12x12 grid of TVGaussian: mean pixel variance (2m + 1) / p per unit sigma2
    unit = (2 * (2 * 144 - 24) + 1) / 144
    span = float(x.max() - x.min())
    assert cert.sigma2 == pytest.approx((0.05 * span) ** 2 / unit)
    assert cert10.sigma2 == pytest.approx(100 * cert.sigma2)

    def dead_zone(inp):  # ignores changes of a pixel below 0.2 around 0.5
        s = torch.relu((inp - 0.5).abs() - 0.2).sum(dim=(1, 2, 3))
        return torch.stack([s, -s], dim=1)

    grey = torch.full((2, 1, 12, 12), 0.5)  # a constant input: the range counts as 1
    _, grown = LEGTV(dead_zone).attribute(grey, **{**kw, "n_samples": 40})
    assert grown.sigma2 >= 4 * 0.05**2 / unit  # the pilot saw no change at 0.05: scale grew
    with pytest.warns(RuntimeWarning, match="did not change"):
        LEG(lambda inp: torch.zeros(inp.shape[0], 2)).attribute(x, target=0, n_samples=20)
    with pytest.raises(ValueError, match="sigma2 must be 'auto'"):
        LEG(model).attribute(x, target=0, n_samples=20, sigma2="big")


def test_certificate_and_delta_on_request():
    model = _Linear(_weights())
    x = _x()
    plain = LEGTV(model).attribute(x, target=0, n_samples=100, seed=0)
    attr, cert, delta = LEGTV(model).attribute(x, target=0, n_samples=100, seed=0,
                                               return_certificate=True,
                                               return_convergence_delta=True)
    assert torch.equal(plain, attr)
    assert cert.penalty.shape == (2, 1) and delta.shape == (2,)
    assert torch.allclose(delta, cert.relative_gap[:, 0].to(delta))
    assert not hasattr(LEGTV(model), "last_certificate")
    assert LEGTV(model).has_convergence_delta() and not LEG(model).has_convergence_delta()
    with pytest.raises(TypeError, match="return_certificate"):
        LEGTV(model).attribute(x, target=0, n_samples=10, return_certificate="yes")
    path = LEGTV(model).attribute_path(x, target=0, n_samples=100, seed=0, k_l_grid=[0.5, 0.1])
    assert path.bounds.shape == (2, 2, 1)
    assert all(isinstance(c, LEGTVCertificate) for c in path.certificates)


def test_arguments_after_additional_forward_args_are_keyword_only():
    model = _Linear(_weights())
    with pytest.raises(TypeError):
        LEG(model).attribute(_x(), 0, None, 50)
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        LEG(model).attribute(_x(), target=0, n_samples=10, perturbations_per_eval=0)
    with pytest.raises(TypeError, match="k_l_grid"):
        LEGTV(model).attribute_path(_x(), target=0, n_samples=10, k_l_grid="0.1")


def test_docstrings_are_complete_through_the_wrapper():
    """Captum's wrappers call ``attribute.__wrapped__``; help() and the API pages (griffe
    unwraps) must both see the filled-in parameters, never the template marker."""
    import inspect

    for method in (LEG.attribute, LEGTV.attribute, LEGTV.attribute_path):
        for obj in (method, inspect.unwrap(method)):
            assert "<common parameters>" not in obj.__doc__
            assert "feature_mask : Tensor or tuple of Tensor" in obj.__doc__
