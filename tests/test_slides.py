"""Lecture mode's slide metadata (tools/slides.py, `make slides`): stored in every notebook as
the tool would set it, each widget panel on a slide of its own, each exercise on one screen
with its check, and copied unchanged into the student edition."""

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from fmlib import editions

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("slides", ROOT / "tools" / "slides.py")
slides = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slides)


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _stored(nb: nbformat.NotebookNode) -> list[str | None]:
    return [slides.slide_type(cell) for cell in nb.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_stores_the_slides_the_tool_sets(path):
    nb = _read(path)
    want, have = slides.slide_types(nb), _stored(nb)
    wrong = [
        f"cell {i}: {h!r}, want {w!r}"
        for i, (h, w) in enumerate(zip(have, want, strict=True))
        if h != w
    ]
    assert not wrong, f"{path.name}: run `make slides`:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_panel_is_a_slide_of_its_own(path):
    nb = _read(path)
    types = _stored(nb)
    panels = [i for i, cell in enumerate(nb.cells) if slides.is_panel(cell)]
    assert panels, f"{path.name}: no widget panel found (a cell calling widgets.panel)"
    for i in panels:
        assert types[i] == "slide", f"{path.name}: panel cell {i} is {types[i]!r}, not a slide"
        after = [t for t in types[i + 1 :] if t != "skip"][:1]
        assert after in ([], ["slide"], ["subslide"]), (
            f"{path.name}: cell {i + 1} continues the panel's slide (cell {i})"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_exercise_stays_on_one_screen_with_its_check(path):
    """From the solution cell to its check no new screen starts, but at a section heading
    (a prediction may be asked a section before the measurement that answers it)."""
    nb = _read(path)
    types = _stored(nb)
    for ex in editions.exercises(nb):
        for i in range(ex.solution + 1, ex.check + 1):
            section = nb.cells[i].cell_type == "markdown" and nb.cells[i].source.startswith("## ")
            assert types[i] in (None, "skip") or (types[i] == "slide" and section), (
                f"{path.name}: {ex.name!r}: cell {i} starts a {types[i]} between the solution "
                f"(cell {ex.solution}) and its check (cell {ex.check})"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_edition_keeps_the_slides(path):
    nb = _read(path)
    student = editions.student_edition(nb, path.stem)
    banner = [i for i, c in enumerate(student.cells) if c.get("id") == "student-edition-banner"]
    assert len(banner) == 1
    types = _stored(student)
    assert types.pop(banner[0]) is None, "the banner continues the title slide"
    assert types == _stored(nb)


def _toy() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell("[![badge](x)](y)\n\n# 99 · Title\n\nWhat you will learn."),
        new_code_cell(slides.SETUP_START + ": does nothing outside Colab.\nimport torch"),
        new_markdown_cell("## 1. A section"),
        new_code_cell("x = 1"),
        new_markdown_cell("### A subsection"),
        new_markdown_cell("**Exercise 1 (a prediction).** Predict."),
        new_code_cell('### BEGIN SOLUTION\nanswer = "up"\n### END SOLUTION'),
        new_markdown_cell("### A subsection inside the exercise"),
        new_code_cell('_ = exercises.check_choice("trend", answer, "up", ["up", "down"])'),
        new_markdown_cell("## 2. Play with it"),
        new_code_cell("widgets.panel(figs.View())  # the panel"),
        new_code_cell("_ = figs.draw_view(t=0.5)"),
        new_markdown_cell("Prose under the static figure."),
    ]
    return new_notebook(cells=cells)


def test_rules_on_a_small_notebook():
    types = slides.slide_types(_toy())
    want = ["slide", "skip", "slide", None, "slide", "slide", None, None, None]
    assert types == [*want, "slide", "slide", "slide", None]


def test_tool_is_idempotent_and_removes_a_stray_dash():
    nb = _toy()
    nb.cells[3].metadata["slideshow"] = {"slide_type": "-"}  # hides the cell in the deck
    once = nbformat.writes(slides.with_slides(nb))
    assert "slideshow" not in slides.with_slides(nbformat.reads(once, 4)).cells[3].metadata
    assert nbformat.writes(slides.with_slides(nbformat.reads(once, 4))) == once


def test_a_panel_sharing_its_slide_fails(tmp_path):
    """The checks can fail: a notebook whose panel lost its metadata is reported stale."""
    nb = slides.with_slides(_toy())
    del nb.cells[11].metadata["slideshow"]  # the cell after the panel joins its slide
    path = tmp_path / "99_toy.ipynb"
    path.write_text(nbformat.writes(nb) + "\n")
    assert slides.main(["--check", str(path)]) == 1
    assert slides.main([str(path)]) == 0
    assert slides.main(["--check", str(path)]) == 0
