from __future__ import annotations

import json


def test_generative_report_section_builds_in_quick_mode(tmp_path) -> None:
    from captum_latent.report import build_report

    result = build_report(tmp_path, sections=["generative"], quick=True)
    assert result.ok, result.failed
    html = (tmp_path / "index.html").read_text()
    assert "generator reversal" in html.lower()
    metrics = json.loads((tmp_path / "report.json").read_text())
    assert "generative" in json.dumps(metrics)
