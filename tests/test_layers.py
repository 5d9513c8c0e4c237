"""The layering of docs/architecture.md: the import-linter contracts in pyproject.toml hold, and
no package (nor a benchmark or an example) imports another package's private names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("captum_latent", "alibi_ext", "benchmarks", "examples")


def _package_of(path: Path) -> str:
    """``captum_latent.attr`` for captum_latent/attr/leg.py; the top folder otherwise."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] == "captum_latent" and len(parts) > 2:
        return ".".join(parts[:2])
    return parts[0]


def _private_imports(path: Path) -> list[str]:
    """``module:line name`` for each name imported from another package that is private (a
    ``_name``, or any name from a ``_module`` of that package)."""
    mine = _package_of(path)
    bad = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        module = node.module
        if not module.startswith(("captum_latent", "alibi_ext")):
            continue
        parts = module.split(".")
        owner = ".".join(parts[:2]) if parts[0] == "captum_latent" and len(parts) > 1 else parts[0]
        if owner == mine or mine.startswith(owner + ".") or owner.startswith(mine + "."):
            continue
        private_module = any(p.startswith("_") and p != "__main__" for p in parts[1:])
        for alias in node.names:
            if private_module or (alias.name.startswith("_") and alias.name != "__version__"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {module}.{alias.name}")
    return bad


def test_no_private_name_is_imported_across_packages():
    found = [hit for top in SOURCES for path in sorted((ROOT / top).rglob("*.py"))
             for hit in _private_imports(path)]
    assert found == [], "private names imported across packages:\n" + "\n".join(found)


def test_the_rule_sees_a_private_import(tmp_path):
    """The scanner itself: a benchmark importing a private module is reported."""
    bench = ROOT / "benchmarks" / "_layers_probe.py"
    bench.write_text("from captum_latent.attr._grid import _diff\n")
    try:
        assert _private_imports(bench) == [
            "benchmarks/_layers_probe.py:1 captum_latent.attr._grid._diff"]
    finally:
        bench.unlink()


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (pip install 'captum-latent[test]')")
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
