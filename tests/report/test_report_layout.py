"""What makes the report readable: numbered captioned figures and tables, the numbers next to
them, "see also" links between sections, and no dangling links when sections are left out."""

from __future__ import annotations

import re

import pytest

from captum_latent.report import build_report, register_section, unregister_section
from captum_latent.report._writer import SectionWriter, _fmt


@pytest.fixture
def sections():
    names = []

    def add(name, function, order=900, **kwargs):
        register_section(name, name.title(), order=order, **kwargs)(function)
        names.append(name)

    yield add
    for name in names:
        unregister_section(name)


def _figure(writer, name, caption):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    return writer.figure(fig, name, caption)


def test_figures_and_tables_are_numbered_per_section_with_ids(tmp_path, sections):
    def first(w):
        _figure(w, "a", "First figure")
        w.table([[1, 2.0]], ["k", "v"], caption="First table")
        _figure(w, "b", "Second figure")

    def second(w):
        w.table([[3, 4.0]], ["k", "v"])
        w.metric("accuracy", 0.912345)
        w.metric("histogram", [1, 2, 3])
        w.metric("by_method", {"pgd": 0.5, "mimicgan": 0.75})

    sections("t_layout_a", first, order=901)
    sections("t_layout_b", second, order=902)
    page = build_report(tmp_path, sections=["t_layout_a", "t_layout_b"]).path.read_text()
    assert "<h2>1. T_Layout_A</h2>" in page and "<h2>2. T_Layout_B</h2>" in page
    assert re.search(r'<figure id="t_layout_a-figure-1">.*<strong>Figure 1\.1\.</strong> '
                     r"First figure", page)
    assert re.search(r'<figure id="t_layout_a-figure-2">.*<strong>Figure 1\.2\.</strong>', page)
    assert '<table id="t_layout_a-table-1"><caption><strong>Table 1.1.</strong> First' in page
    assert "<strong>Table 2.1.</strong>" in page
    # the section's recorded numbers are listed under it, formatted like the tables
    numbers = page.split('id="t_layout_b"')[1]
    assert "<summary>All numbers recorded by this section (3" in numbers
    assert "0.9123" in numbers and "[1, 2, 3]" in numbers
    assert "{pgd: 0.5, mimicgan: 0.75}" in numbers
    # the contents list what each section holds
    assert "(2 figures, 1 table)" in page and "(0 figures, 1 table)" in page


def test_see_also_links_and_missing_sections_are_not_dangling(tmp_path, sections):
    def uses_model(w):
        w.html("<p>Uses the " + w.link("t_model", "model") + " and "
               + w.link("no_such_section", "a ghost") + ".</p>")

    sections("t_model", lambda w: w.text("the model"), order=901)
    sections("t_user", uses_model, order=902, see_also=("t_model",))
    both = build_report(tmp_path / "both", sections=["t_model", "t_user"]).path.read_text()
    assert '<p class="see-also">See also: <a href="#t_model">T_Model</a>.</p>' in both
    assert 'Uses the <a href="#t_model">model</a>' in both
    assert '<a href="#no_such_section">' not in both and ">a ghost</span>" in both

    alone = build_report(tmp_path / "alone", sections=["t_user"]).path.read_text()
    assert 'href="#t_model"' not in alone  # the linked section was not built
    assert 'title="not in this report">T_Model</span>' in alone
    for target in re.findall(r'href="#([^"]+)"', alone):
        assert f'id="{target}"' in alone


def test_figure_needs_a_caption_and_see_also_is_checked(tmp_path):
    import matplotlib.pyplot as plt

    writer = SectionWriter("t_cap", tmp_path)
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="non-empty caption"):
        writer.figure(fig, "nocap", "  ")
    plt.close(fig)
    with pytest.raises(TypeError, match="see_also"):
        register_section("t_bad_see", "x", see_also="zoo")
    with pytest.raises(ValueError, match="see_also entries"):
        register_section("t_bad_see", "x", see_also=["Not A Name"])


def test_number_formatting():
    assert _fmt(0.123456) == "0.1235" and _fmt(True) == "True" and _fmt(3) == "3"
    assert _fmt(list(range(25))).endswith(", ... (25 values)]")
