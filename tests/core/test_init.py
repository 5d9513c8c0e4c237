from __future__ import annotations

import subprocess
import sys


def test_core_imports_neither_captum_nor_alibi() -> None:
    code = (
        "import sys, captum_latent.core, captum_latent.generative; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('captum', 'alibi')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_lazy_exports() -> None:
    import captum_latent
    from captum_latent.core import LatentSearch
    from captum_latent.generative import GeneratorReversal

    assert captum_latent.LatentSearch is LatentSearch
    assert captum_latent.GeneratorReversal is GeneratorReversal
