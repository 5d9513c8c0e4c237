"""What a section writes into: text, tables, figures and metrics, rendered to HTML."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class _Block:
    kind: str  # "text" | "html" | "table" | "figure"
    payload: dict[str, Any]


@dataclass
class SectionWriter:
    """Collects one section's content; handed to every registered section function.

    Attributes
    ----------
    name : str
        The section's name (its anchor in the report).
    out_dir : pathlib.Path
        Directory of the report; figures go to ``out_dir / "figures"``.
    quick : bool
        When True, sections should use smaller workloads (used by tests and CI).
    seed : int
        Seed sections should use for any randomness.
    metrics : dict
        Numbers recorded with :meth:`metric`; also written to ``report.json``.
    """

    name: str
    out_dir: Path
    quick: bool = False
    seed: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    blocks: list[_Block] = field(default_factory=list)

    def text(self, paragraph: str) -> None:
        """Add a paragraph of plain text (HTML-escaped)."""
        self.blocks.append(_Block("text", {"text": str(paragraph)}))

    def html(self, fragment: str) -> None:
        """Add a trusted HTML fragment as it is."""
        self.blocks.append(_Block("html", {"html": str(fragment)}))

    def link(self, section: str, label: str | None = None) -> str:
        """HTML link to another section of the report (for use in :meth:`html`)."""
        return f'<a href="#{html.escape(section)}">{html.escape(label or section)}</a>'

    def table(
        self, rows: Sequence[Sequence[Any]], header: Sequence[str], caption: str = ""
    ) -> None:
        """Add a table; floats are shown with 4 significant digits."""
        for row in rows:
            if len(row) != len(header):
                raise ValueError(
                    f"every row must have {len(header)} cells like header, got {len(row)}: {row!r}"
                )
        self.blocks.append(_Block("table", {"rows": [list(r) for r in rows],
                                            "header": list(header), "caption": caption}))

    def figure(self, fig: Any, name: str, caption: str, dpi: int = 110) -> Path:
        """Save a matplotlib figure as ``figures/<section>_<name>.png`` and add it.

        The figure is closed after saving. Returns the PNG's path.
        """
        if not _SAFE_NAME.match(name):
            raise ValueError(f"name must be a simple file stem, got {name!r}")
        fig_dir = self.out_dir / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        path = fig_dir / f"{self.name}_{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        self.blocks.append(_Block("figure", {"src": f"figures/{path.name}", "caption": caption}))
        return path

    def metric(self, key: str, value: Any) -> None:
        """Record a number (or list/dict of numbers) for ``report.json``."""
        self.metrics[key] = value

    def render(self) -> str:
        """This section's body as HTML."""
        parts = []
        for block in self.blocks:
            p = block.payload
            if block.kind == "text":
                parts.append(f"<p>{html.escape(p['text'])}</p>")
            elif block.kind == "html":
                parts.append(p["html"])
            elif block.kind == "table":
                head = "".join(f"<th>{html.escape(str(h))}</th>" for h in p["header"])
                body = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>"
                    for row in p["rows"]
                )
                cap = f"<caption>{html.escape(p['caption'])}</caption>" if p["caption"] else ""
                parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                             "</table>")
            elif block.kind == "figure":
                cap = html.escape(p["caption"])
                parts.append(f'<figure><img src="{html.escape(p["src"])}" alt="{cap}">'
                             f"<figcaption>{cap}</figcaption></figure>")
        return "\n".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
