from __future__ import annotations

from captum_latent.report import build_report


def test_disc_section_builds(tmp_path):
    report = build_report(tmp_path, sections=["disc"], quick=True)
    assert report.ok
    assert (tmp_path / "figures" / "disc_counterfactuals.png").exists()
