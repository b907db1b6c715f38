"""Slide metadata for lecture mode: every notebook of notebooks/ as a deck (`make slides`).

    python tools/slides.py            # set the metadata in place (idempotent)
    python tools/slides.py --check    # exit 1 if a notebook's metadata is not what it would set

`make lecture NB=...` presents a notebook with jupyterlab-slideshow, which reads the classic
(nbconvert) key `cell.metadata.slideshow.slide_type`. The deck is derived from the cells:
- "slide": the title cell (the first), each section (a markdown cell opening with `## `),
  each subsection (`### `), each exercise statement (`**Exercise ...`), each widget panel
  (a code cell calling `widgets.panel(`) and the cell after a panel, so that the panel has a
  slide, and the screen, to itself. Inside an exercise (after its solution cell, up to its
  check) only a section starts a slide: an exercise stays on one screen with its check;
- "skip": the set-up code cell (Colab lines, imports, seeding): it runs, it is not shown;
- every other cell continues the slide above it, and is one step of it ("-": no `slideshow`
  key, as JupyterLab writes it; an explicit "-" would hide the cell in jupyterlab-slideshow).
No sub-slides or fragments: the deck then reads in one line, so → (or Space) steps
through every cell in order and ← goes back (→ would jump over a sub-slide).
The student edition (fmlib.editions) copies every cell's metadata, so it presents the same.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat

from fmlib import editions

_spec = importlib.util.spec_from_file_location(
    "notebook_rewrite", Path(__file__).with_name("notebook_rewrite.py")
)
notebook_rewrite = importlib.util.module_from_spec(_spec)  # the shared rewrite / --check loop
_spec.loader.exec_module(notebook_rewrite)
KEY, TYPE = "slideshow", "slide_type"
SETUP_START = "# Colab set-up (tools/colab.py)"  # tools/colab.py's first set-up line
PANEL = re.compile(r"\bwidgets\.panel\(")
SECTION = re.compile(r"^## \S")
SUBSECTION = re.compile(r"^### \S")
EXERCISE = re.compile(r"^\*\*Exercise\b")


def is_panel(cell) -> bool:
    return cell.cell_type == "code" and bool(PANEL.search(cell.source))


def slide_type(cell) -> str | None:
    """The cell's slide type as stored (None: continues the screen above)."""
    return cell.metadata.get(KEY, {}).get(TYPE)


def slide_types(nb: nbformat.NotebookNode) -> list[str | None]:
    """The slide type of each cell (see the module docstring for the rules)."""
    inside = {
        i for ex in editions.exercises(nb) for i in range(ex.solution + 1, ex.check + 1)
    }  # an exercise's cells after its solution cell: no new screen there
    types: list[str | None] = []
    for i, cell in enumerate(nb.cells):
        text = cell.source.lstrip()
        kind = None
        if cell.cell_type == "markdown":
            heading = SUBSECTION.match(text) or EXERCISE.match(text)
            if i == 0 or SECTION.match(text) or (heading and i not in inside):
                kind = "slide"
        elif cell.source.startswith(SETUP_START):
            kind = "skip"
        if is_panel(cell) or (i > 0 and is_panel(nb.cells[i - 1])):
            kind = "slide"
        types.append(kind)
    return types


def with_slides(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with each cell's slideshow metadata set (removed where it is "-")."""
    for cell, kind in zip(nb.cells, slide_types(nb), strict=True):
        if kind is None:
            cell.metadata.pop(KEY, None)
        else:
            cell.metadata[KEY] = {TYPE: kind}
    return nb


def main(argv: list[str] | None = None) -> int:
    return notebook_rewrite.main(
        lambda nb, path: with_slides(nb),
        __doc__.split("\n")[0],
        "slide metadata out of date",
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
