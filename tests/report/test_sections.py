"""Every built-in report section builds in quick mode (slow: each trains or searches)."""

from __future__ import annotations

import pytest

from captum_latent.report import build_report, discover_sections, registered_sections

assert not discover_sections(), discover_sections()
_NAMES = [s.name for s in registered_sections() if s.name != "zoo"]  # zoo: test_report.py


@pytest.mark.slow
@pytest.mark.parametrize("name", _NAMES)
def test_section_builds_quick(tmp_path, name):
    result = build_report(tmp_path, sections=[name], quick=True)
    assert result.ok, result.failed
    page = result.path.read_text()
    assert f'id="{name}"' in page and "<img" in page
    for png in (tmp_path / "figures").glob(f"{name}_*.png"):
        assert png.stat().st_size > 1000
