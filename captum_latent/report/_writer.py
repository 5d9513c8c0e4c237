"""What a section writes into: text, tables, figures and metrics, rendered to HTML."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MAX_ITEMS = 20  # list values shown in the section's table of numbers


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
    number : int
        The section's position in the report (1, 2, ...); figures and tables are numbered
        ``Figure <number>.<k>`` / ``Table <number>.<k>``. 0 leaves them unnumbered.
    metrics : dict
        Numbers recorded with :meth:`metric`; also written to ``report.json`` and listed at
        the end of the section.
    """

    name: str
    out_dir: Path
    quick: bool = False
    seed: int = 0
    number: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    blocks: list[_Block] = field(default_factory=list)

    def progress(self, iterable: Any, desc: str, total: int | None = None) -> Any:
        """``iterable`` with a progress bar (on a terminal) named after the section, for any
        step of a section that takes more than a few seconds."""
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=f"{self.name}: {desc}", total=total, leave=False,
                    disable=None)

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

        ``caption`` (required, non-empty) should say what is shown and the numbers that go
        with it. The figure is closed after saving. Returns the PNG's path.
        """
        if not _SAFE_NAME.match(name):
            raise ValueError(f"name must be a simple file stem, got {name!r}")
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f"figure {name!r} needs a non-empty caption, got {caption!r}")
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

    @property
    def counts(self) -> dict[str, int]:
        """How many figures and tables the section has written so far."""
        kinds = [b.kind for b in self.blocks]
        return {"figures": kinds.count("figure"), "tables": kinds.count("table")}

    def _label(self, kind: str, k: int) -> tuple[str, str]:
        """Element id and visible label (``Figure 3.2.``) of the k-th figure or table."""
        word = "Figure" if kind == "figure" else "Table"
        number = f"{self.number}.{k}" if self.number else str(k)
        return f"{self.name}-{kind}-{k}", f"{word} {number}."

    def render(self) -> str:
        """This section's body as HTML (numbered figures and tables, then its numbers)."""
        parts = []
        seen = {"figure": 0, "table": 0}
        for block in self.blocks:
            p = block.payload
            if block.kind == "text":
                parts.append(f"<p>{html.escape(p['text'])}</p>")
            elif block.kind == "html":
                parts.append(p["html"])
            elif block.kind == "table":
                seen["table"] += 1
                ident, label = self._label("table", seen["table"])
                head = "".join(f"<th>{html.escape(str(h))}</th>" for h in p["header"])
                body = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>"
                    for row in p["rows"]
                )
                cap = (f"<caption><strong>{label}</strong> {html.escape(p['caption'])}"
                       "</caption>")
                parts.append(f'<table id="{html.escape(ident)}">{cap}<thead><tr>{head}</tr>'
                             f"</thead><tbody>{body}</tbody></table>")
            elif block.kind == "figure":
                seen["figure"] += 1
                ident, label = self._label("figure", seen["figure"])
                cap = html.escape(p["caption"])
                parts.append(f'<figure id="{html.escape(ident)}"><img src="{html.escape(p["src"])}"'
                             f' alt="{cap}"><figcaption><strong>{label}</strong> {cap}'
                             "</figcaption></figure>")
        if self.metrics:
            rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td>"
                           "</tr>" for k, v in self.metrics.items())
            parts.append('<details class="numbers"><summary>All numbers recorded by this '
                          f"section ({len(self.metrics)}, also in <code>report.json</code>)"
                          f"</summary><table><tbody>{rows}</tbody></table></details>")
        return "\n".join(parts)


def _fmt(value: Any) -> str:
    """Floats with 4 significant digits, also inside lists, tuples and dicts."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        items = [_fmt(v) for v in value[:_MAX_ITEMS]]
        more = f", ... ({len(value)} values)" if len(value) > _MAX_ITEMS else ""
        return "[" + ", ".join(items) + more + "]"
    return str(value)
