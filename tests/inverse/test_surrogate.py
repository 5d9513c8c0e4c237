from __future__ import annotations

import pytest
import torch

from captum_latent.inverse import corruptions
from captum_latent.inverse.mimicgan import _parameter_groups
from captum_latent.inverse.surrogate import AffineSurrogate, AffineWarp, ShallowSurrogate


def _blob(n=2, size=16):
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    blob = torch.exp(-((xx + 2) ** 2 / 6 + (yy - 1) ** 2 / 2))  # off-centre, elongated
    return blob.expand(n, 1, size, size).clone()


def test_warp_starts_at_the_identity_and_stays_bounded():
    warp = AffineWarp(max_shift=0.2, max_angle=10, max_scale=1.2)
    x = torch.rand(3, 2, 12, 12)
    assert torch.allclose(warp(x), x, atol=1e-6)
    with torch.no_grad():
        warp.raw.fill_(50.0)
    d = warp.describe()
    assert max(abs(v) for v in d["shift"]) <= 0.2 + 1e-6
    assert abs(d["angle"]) <= 10 + 1e-6 and 1 / 1.2 - 1e-6 <= d["scale"] <= 1.2 + 1e-6
    warp.reset_parameters()
    assert warp.describe() == {"shift": (0.0, 0.0), "angle": 0.0, "scale": 1.0}


def test_describe_matches_affine_warp():
    warp = AffineWarp()
    with torch.no_grad():
        warp.raw.copy_(torch.tensor([0.4, -0.3, 0.5, -0.6]))
    d = warp.describe()
    x = _blob(size=20)
    expected = corruptions.affine_warp(x, shift=(d["shift"][0] * 20, d["shift"][1] * 20),
                                       angle=d["angle"], scale=d["scale"])
    with torch.no_grad():
        assert torch.allclose(warp(x), expected, atol=2e-3)


def test_warp_learns_a_motion_by_gradient():
    x = _blob()
    target = corruptions.affine_warp(x, shift=(2.0, -1.0), angle=8.0, scale=1.1)
    warp = AffineWarp()
    opt = torch.optim.Adam(warp.parameters(), lr=0.05)
    for _ in range(300):
        loss = (warp(x) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    d = warp.describe()
    assert d["shift"][0] * 16 == pytest.approx(2.0, abs=0.25)
    assert d["shift"][1] * 16 == pytest.approx(-1.0, abs=0.25)
    assert d["angle"] == pytest.approx(8.0, abs=1.5)
    assert d["scale"] == pytest.approx(1.1, abs=0.03)


def test_affine_surrogate_warps_then_applies_the_inner_surrogate():
    f = AffineSurrogate((1, 16, 16))
    assert isinstance(f.inner, ShallowSurrogate)
    x = _blob()
    with torch.no_grad():
        assert torch.allclose(f(x), f.inner(x), atol=1e-6)  # identity warp at the start
        f.warp.raw[0] = 0.5
        assert torch.allclose(f(x), f.inner(f.warp(x)), atol=1e-6)
    inner = torch.nn.Identity()
    assert AffineSurrogate((1, 16, 16), inner=inner).inner is inner


def test_warp_parameters_learn_faster_under_mimicgan():
    f = AffineSurrogate((1, 8, 8), lr_multiplier=30.0)
    groups = _parameter_groups(f, 1e-3)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(3e-2)]
    assert groups[1]["params"] == [f.warp.raw]
    assert sum(len(g["params"]) for g in groups) == len(list(f.parameters()))
    shallow = ShallowSurrogate((1, 8, 8))
    assert [g["lr"] for g in _parameter_groups(shallow, 1e-3)] == [1e-3]


@pytest.mark.parametrize("kwargs", [dict(max_shift=-0.1), dict(max_angle=-1),
                                    dict(max_scale=0.9), dict(lr_multiplier=0)])
def test_bad_warp_bounds(kwargs):
    with pytest.raises(ValueError):
        AffineWarp(**kwargs)

