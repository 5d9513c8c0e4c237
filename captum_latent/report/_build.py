"""Assemble the registered sections into one HTML report with PNG figures."""

from __future__ import annotations

import html
import json
import platform
import re
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from captum_latent.report._registry import discover_sections, registered_sections
from captum_latent.report._writer import SectionWriter

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #446;padding-bottom:.2em}h2{margin-top:2em;color:#335}
nav ol{columns:2}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}th{background:#eef}
caption{caption-side:top;text-align:left;font-style:italic;padding:.3em 0}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.92em;color:#444}.error{background:#fee;border:1px solid #c66;
padding:.5em;white-space:pre-wrap;font-family:monospace;font-size:.85em}
.meta{color:#666;font-size:.9em}.see-also{color:#444;font-size:.95em;margin-top:-.5em}
figcaption strong,caption strong{font-style:normal;color:#335}
details.numbers{margin:1em 0;font-size:.92em}details.numbers summary{cursor:pointer;color:#335}
details.numbers th{text-align:left;font-weight:normal;font-family:monospace}
.missing-link{color:#777;border-bottom:1px dotted #999}
nav li{margin-bottom:.3em}nav .counts{color:#666;font-size:.9em}
"""

_LINK = re.compile(r'<a href="#([^"]+)">(.*?)</a>', re.DOTALL)
_ID = re.compile(r'\sid="([^"]+)"')


@dataclass
class ReportResult:
    """Outcome of :func:`build_report`."""

    path: Path
    sections: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def build_report(
    out_dir: str | Path,
    sections: Sequence[str] | None = None,
    quick: bool = False,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> ReportResult:
    """Run the registered sections and write ``index.html``, ``report.json`` and figures.

    A section that raises is shown in the report with its traceback; the others still run.

    Parameters
    ----------
    out_dir : str or Path
        Output directory (created if missing).
    sections : sequence of str, optional
        Names of the sections to run (default: all registered).
    quick : bool, default False
        Ask sections for their quick workloads (what ``python -m captum_latent demo`` runs
        unless given ``--full``); the report states which workloads it ran.
    seed : int, default 0
        Seed passed to every section.
    log : callable, optional
        Called with one line as each section starts and ends (its name, number and seconds;
        the command line prints them, so a long build is never silent).

    Returns
    -------
    ReportResult
        Path of ``index.html``, the sections run and those that failed.

    Examples
    --------
    >>> import tempfile
    >>> from captum_latent.report import build_report
    >>> result = build_report(tempfile.mkdtemp(), sections=["zoo"], quick=True)  # doctest: +SKIP
    >>> result.path.name  # doctest: +SKIP
    'index.html'
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    import_errors = discover_sections()
    specs = registered_sections()
    if sections is not None:
        known = {s.name for s in specs}
        unknown = [s for s in sections if s not in known]
        if unknown:
            raise ValueError(f"unknown report sections {unknown}; available: {sorted(known)}")
        specs = [s for s in specs if s.name in set(sections)]

    result = ReportResult(path=out / "index.html")
    titles = {s.name: s.title for s in registered_sections()}
    built = {s.name for s in specs}
    bodies, metrics, counts = [], {}, {}
    for number, spec in enumerate(specs, start=1):
        writer = SectionWriter(spec.name, out, quick=quick, seed=seed, number=number)
        label = f"[{number}/{len(specs)}] {spec.name}"
        if log is not None:
            log(f"{label}: started ({spec.title})")
        start = time.perf_counter()
        try:
            spec.function(writer)
            body = writer.render()
        except Exception:
            tb = traceback.format_exc()
            result.failed[spec.name] = tb
            body = writer.render() + (
                f'<div class="error">This section failed:\n{html.escape(tb)}</div>'
            )
        elapsed = time.perf_counter() - start
        if log is not None:
            status = "FAILED" if spec.name in result.failed else "done"
            log(f"{label}: {status} in {elapsed:.1f} s")
        result.seconds[spec.name] = elapsed
        result.sections.append(spec.name)
        metrics[spec.name] = writer.metrics
        counts[spec.name] = writer.counts
        bodies.append(
            f'<section id="{spec.name}"><h2>{number}. {html.escape(spec.title)}</h2>\n'
            f"{_see_also(spec.see_also, titles, built)}{body}\n"
            f'<p class="meta">Section computed in {elapsed:.1f} s. '
            '<a href="#top">Back to top</a></p></section>'
        )

    toc = "".join(
        f'<li><a href="#{s.name}">{html.escape(s.title)}</a>'
        + (f" &mdash; {html.escape(s.description)}" if s.description else "")
        + f' <span class="counts">({_plural(counts[s.name]["figures"], "figure")}, '
        + f'{_plural(counts[s.name]["tables"], "table")})</span>'
        + (" <strong>(failed)</strong>" if s.name in result.failed else "")
        + "</li>"
        for s in specs
    )
    warnings = "".join(
        f'<div class="error">Could not load a section module: {html.escape(e)}</div>'
        for e in import_errors
    )
    from captum_latent import __version__

    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>captum-latent demo report</title>"
        f"<style>{_CSS}</style></head><body>"
        '<h1 id="top">captum-latent demo report</h1>'
        f'<p class="meta">captum-latent {__version__}, Python {platform.python_version()}, '
        f"{html.escape(platform.platform())}, generated {time.strftime('%Y-%m-%d %H:%M:%S')}."
        f" {_workloads(quick)}</p>"
        f"{warnings}<nav><h2>Contents</h2><ol>{toc}</ol>"
        '<p class="meta">Every number shown is also in <a href="report.json">report.json</a>'
        "; figures are in <code>figures/</code>.</p></nav>"
        + "\n".join(bodies)
        + "</body></html>"
    )
    result.path.write_text(_unlink_missing(page), encoding="utf-8")
    (out / "report.json").write_text(
        json.dumps(
            {"sections": metrics, "seconds": result.seconds, "failed": sorted(result.failed),
             "quick": quick, "workloads": "quick" if quick else "full", "seed": seed},
            indent=2, default=_jsonable,
        ),
        encoding="utf-8",
    )
    if import_errors:
        result.failed["<import>"] = "\n".join(import_errors)
    return result


def _workloads(quick: bool) -> str:
    """The sentence saying which workloads the report ran."""
    if quick:
        return ("Workloads: <strong>quick</strong> (the default of <code>python -m captum_latent "
                "demo</code>: a few images per method, short searches); "
                "<code>--full</code> runs the full workloads.")
    return ("Workloads: <strong>full</strong> (<code>python -m captum_latent demo --full</code>: "
            "every class, full searches).")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _see_also(names: Sequence[str], titles: dict[str, str], built: set[str]) -> str:
    """The "See also" line under a section heading (links only to sections in this report)."""
    if not names:
        return ""
    items = []
    for name in names:
        title = html.escape(titles.get(name, name))
        if name in built:
            items.append(f'<a href="#{html.escape(name)}">{title}</a>')
        else:
            items.append(f'<span class="missing-link" title="not in this report">{title}</span>')
    return f'<p class="see-also">See also: {", ".join(items)}.</p>\n'


def _unlink_missing(page: str) -> str:
    """Turn in-page links whose target is not on the page (a section left out with
    ``--sections``) into plain text, so the page has no dangling links."""
    ids = set(_ID.findall(page)) | {"top"}

    def replace(match: re.Match) -> str:
        if html.unescape(match.group(1)) in ids:
            return match.group(0)
        return (f'<span class="missing-link" title="section not in this report">'
                f"{match.group(2)}</span>")

    return _LINK.sub(replace, page)


def _jsonable(value: object) -> object:
    try:
        import numpy as np
        import torch

        if isinstance(value, torch.Tensor):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(value)
