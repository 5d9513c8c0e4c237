"""The distribution's import surface."""

from __future__ import annotations

import subprocess
import sys

import pytest

import captum_latent


def test_both_packages_import():
    subprocess.run([sys.executable, "-c", "import captum_latent, alibi_ext"], check=True)


def test_lazy_exports_resolve():
    for name in captum_latent._LAZY_EXPORTS:
        assert getattr(captum_latent, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        captum_latent.Nope  # noqa: B018


def test_version():
    assert captum_latent.__version__


_WITHOUT_CAPTUM_AND_ALIBI = """
import importlib.abc, sys

class _Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("captum", "alibi", "alibi_ext"):
            raise ImportError(f"{name} is not installed here")

sys.meta_path.insert(0, _Refuse())
import torch
from captum_latent import core, generative, inverse, counterfactual, zoo, LatentSearch
from captum_latent.core import Reconstruction

g = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Unflatten(1, (1, 4, 4)))
target = g(torch.randn(4, 3)).detach()
result = LatentSearch(g, latent_dim=3, max_iterations=5).search(Reconstruction(target), seed=0)
assert result.codes.shape == (4, 1, 3)  # (problems, samples per problem, latent)
assert not any(m.split(".")[0] in ("captum", "alibi") for m in sys.modules)
print("ok")
"""


def test_core_and_generative_need_neither_captum_nor_alibi():
    """The latent-search core, the priors, MimicGAN, DISCGenerator and the zoo run where only
    torch is installed (a GPU machine used for benchmarks, say)."""
    out = subprocess.run([sys.executable, "-c", _WITHOUT_CAPTUM_AND_ALIBI], check=True,
                         capture_output=True, text=True)
    assert out.stdout.strip().endswith("ok")
