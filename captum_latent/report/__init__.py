"""The demo report: one HTML page with PNG figures, assembled from registered sections.

Add a section by writing a module in :mod:`captum_latent.report.sections` (found
automatically) or in another package exposed through the ``captum_latent.report_sections``
entry-point group::

    from captum_latent.report import register_section

    @register_section("my_method", "My method", order=50, description="what it shows")
    def my_method(writer):
        writer.text("What the section demonstrates.")
        writer.table([[1, 0.5]], header=["k", "value"], caption="Numbers")
        writer.figure(fig, "overview", caption="What the figure shows")  # a matplotlib figure
        writer.metric("value", 0.5)  # recorded in report.json

Sections should honour ``writer.quick`` (small workloads for tests) and ``writer.seed``.
Build it with ``python -m captum_latent demo --out DIR`` or :func:`build_report`.
"""

from __future__ import annotations

from captum_latent.report._build import ReportResult, build_report
from captum_latent.report._registry import (
    ENTRY_POINT_GROUP,
    SectionSpec,
    discover_sections,
    register_section,
    registered_sections,
    unregister_section,
)
from captum_latent.report._writer import SectionWriter

__all__ = [
    "ENTRY_POINT_GROUP",
    "ReportResult",
    "SectionSpec",
    "SectionWriter",
    "build_report",
    "discover_sections",
    "register_section",
    "registered_sections",
    "unregister_section",
]
