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
