"""Every tutorial script in ``examples/`` runs to completion and writes its figures.

Each script runs as a user would run it (``python examples/NAME.py --out DIR``) in a
subprocess that shares this session's zoo cache (the models are trained once, by the fixture
below, so the per-script times exclude first-use training). Slow: run with ``make examples``.

No wall-clock time is asserted (a slower or busier machine is not a failure): each script's
seconds are printed (``make examples`` shows them) and recorded in docs/tutorials.md; a script
that hangs is stopped after ``CAPTUM_LATENT_EXAMPLE_TIMEOUT`` seconds (default 900).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

@pytest.fixture(scope="session")
def warm_zoo() -> None:
    """Train (or load) the zoo models the examples use, once per session."""
    from captum_latent import zoo
    from captum_latent.counterfactual import dep_digits_classifier

    zoo.digits_classifier(progress=False)
    zoo.digits_gan(progress=False)
    dep_digits_classifier(progress=False)


def test_every_example_is_collected():
    names = {p.stem for p in EXAMPLES}
    assert {"leg_tv_saliency", "leg_tv_captum_workflow", "latent_search_reversal",
            "mimicgan_recovery", "ganchors_alibi_workflow", "disc_counterfactuals"} <= names


@pytest.mark.slow
@pytest.mark.examples
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_writes_figures(script: Path, tmp_path: Path, warm_zoo: None) -> None:
    out = tmp_path / "figures"
    env = dict(os.environ)  # carries CAPTUM_LATENT_CACHE (set by conftest) to the script
    env["MPLBACKEND"] = "Agg"
    timeout = float(os.environ.get("CAPTUM_LATENT_EXAMPLE_TIMEOUT", "900"))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), "--out", str(out)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=timeout,
    )
    seconds = time.perf_counter() - start
    print(f"{script.name}: {seconds:.1f} s\n{proc.stdout}")
    assert proc.returncode == 0, (
        f"{script.name} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n"
        f"--- stderr\n{proc.stderr[-5000:]}"
    )
    pngs = sorted(out.rglob("*.png"))
    assert pngs, f"{script.name} wrote no PNG into {out}"
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 2000, f"{png.name} is not a figure"
    assert not (tmp_path / "examples-output").exists(), "--out was ignored"


def test_examples_have_a_docstring_and_main():
    import ast

    for script in EXAMPLES:
        tree = ast.parse(script.read_text())
        doc = ast.get_docstring(tree)
        assert doc and "What it shows" in doc, f"{script.name}: module docstring missing"
        mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        assert mains and mains[0].args.args[0].arg == "argv", f"{script.name}: main(argv=None)"
