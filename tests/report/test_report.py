from __future__ import annotations

import json

import pytest

from captum_latent.__main__ import main
from captum_latent.report import build_report, register_section, unregister_section


@pytest.fixture
def temporary_sections():
    names = []

    def add(name, function, order=900):
        register_section(name, name.title(), order=order)(function)
        names.append(name)

    yield add
    for name in names:
        unregister_section(name)


def test_registered_sections_render_in_order_with_figures(tmp_path, temporary_sections):
    import matplotlib.pyplot as plt

    def second(w):
        w.text("second <b>escaped</b>")

    def first(w):
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        w.figure(fig, "line", caption="A line")
        w.table([[1, 0.123456]], header=["a", "b"], caption="T")
        w.metric("answer", 42)
        w.html(w.link("t_second", "next"))

    temporary_sections("t_second", second, order=902)
    temporary_sections("t_first", first, order=901)
    result = build_report(tmp_path, sections=["t_second", "t_first"])
    assert result.ok and result.sections == ["t_first", "t_second"]
    page = result.path.read_text()
    assert page.index('id="t_first"') < page.index('id="t_second"')
    assert "&lt;b&gt;escaped&lt;/b&gt;" in page and "0.1235" in page
    assert '<a href="#t_second">next</a>' in page
    assert (tmp_path / "figures" / "t_first_line.png").stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["sections"]["t_first"] == {
        "answer": 42
    }


def test_a_failing_section_is_reported_and_others_still_run(tmp_path, temporary_sections):
    def boom(w):
        w.text("partial output kept")
        raise RuntimeError("kaboom")

    temporary_sections("t_boom", boom, order=901)
    temporary_sections("t_fine", lambda w: w.text("fine"), order=902)
    result = build_report(tmp_path, sections=["t_boom", "t_fine"])
    assert not result.ok and list(result.failed) == ["t_boom"]
    page = result.path.read_text()
    assert "kaboom" in page and "partial output kept" in page and "fine" in page
    assert main(["demo", "--out", str(tmp_path / "cli"), "--sections", "t_boom"]) == 1


def test_unknown_section_and_bad_names(tmp_path):
    with pytest.raises(ValueError, match="unknown report sections"):
        build_report(tmp_path, sections=["no_such_section"])
    with pytest.raises(ValueError, match="name must match"):
        register_section("Bad Name", "x")


def test_duplicate_registration_is_refused(temporary_sections):
    temporary_sections("t_dup", lambda w: None)

    def other(w):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_section("t_dup", "x")(other)


def test_zoo_section_through_the_cli(tmp_path, digits_gan, capsys):
    out = tmp_path / "report"
    assert main(["demo", "--out", str(out), "--sections", "zoo", "--quick"]) == 0
    page = (out / "index.html").read_text()
    assert 'id="zoo"' in page and "test accuracy" in page
    for name in ("zoo_data.png", "zoo_gan_samples.png", "zoo_gan_histogram.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    metrics = json.loads((out / "report.json").read_text())["sections"]["zoo"]
    assert metrics["digits_test_accuracy"] >= 0.97
    assert "report written to" in capsys.readouterr().out
