"""Lecture mode as a lecturer uses it, on a projector's 1280 x 720 screen: JupyterLab with
`make lecture`'s settings (tools/lecture.py) opens notebook 07 already presenting it as
slides (jupyterlab-slideshow), on its title slide; the lecturer runs every cell from the
notebook toolbar (restart and run all), which leaves the deck on the title slide; steps
forward with the deck's remote to the widget panel's slide, where the panel is the only cell
on screen; moves a slider there, and the picture changes (the kernel is live). No error
output, no browser console error, the notebook never saved. Screenshot:
artifacts/ui/lecture.png. The timeouts only detect a hang.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re

import nbformat
import pytest

from . import jlab
from .config import CHROMIUM, CHROMIUM_MISSING, REPO
from .labserver import start_lab, stop_lab

pytestmark = [pytest.mark.ui, pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING)]

_spec = importlib.util.spec_from_file_location("lecture", REPO / "tools" / "lecture.py")
lecture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lecture)
_spec = importlib.util.spec_from_file_location("slides", REPO / "tools" / "slides.py")
slides = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slides)

NOTEBOOK = "07_paths_compared.ipynb"  # a panel, and a Run All among the quicker ones
RUN_ALL_TIMEOUT_S = float(os.environ.get("FMLIB_UI_TIMEOUT", 600))
REDRAW_TIMEOUT_S = 60
PROJECTOR = {"width": 1280, "height": 720}
COLAB_BADGE = re.compile(r"^https://colab\.research\.google\.com/assets/colab-badge\.svg$")
BADGE_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="117" height="20"/>'

JS_PRESENTING = "() => document.body.dataset.jpDeckMode === 'presenting'"
JS_ACTIVE = "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex"
# Cells the deck shows on screen now (indices), from the classes jupyterlab-slideshow sets.
JS_ON_SCREEN = """() => window.jupyterapp.shell.currentWidget.content.widgets
    .map((cell, i) => cell.hasClass("jp-deck-mod-onscreen") ? i : -1).filter((i) => i >= 0)"""


@pytest.fixture(scope="module")
def lecture_lab(course, tmp_path_factory):
    """JupyterLab with lecture mode's user settings (the deck starts as the page opens)."""
    home = tmp_path_factory.mktemp("lecture-home")
    lecture.write_settings(home / "settings")
    server = start_lab(course, home)
    yield server
    stop_lab(server)


def test_lecture_mode_presents_a_live_panel(course, lecture_lab, browser, artifacts):
    served = course / "notebooks" / NOTEBOOK
    before = hashlib.sha256(served.read_bytes()).hexdigest()
    cells = nbformat.read(served, as_version=4).cells
    panel_cell = next(i for i, cell in enumerate(cells) if slides.is_panel(cell))
    page = browser.new_page(viewport=PROJECTOR)
    console: list[str] = []
    page.on("console", lambda m: m.type == "error" and console.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    badge = {"status": 200, "content_type": "image/svg+xml", "body": BADGE_SVG}
    page.route(COLAB_BADGE, lambda route: route.fulfill(**badge))
    try:
        jlab.open_notebook(page, lecture_lab.url, f"notebooks/{NOTEBOOK}", timeout_s=120)
        page.wait_for_function(JS_PRESENTING, timeout=60_000, polling=100)
        assert page.evaluate(JS_ACTIVE) == 0, "the deck does not open on the title slide"

        # Run every cell as the README says: the toolbar shows on hover, then ⏩ and Restart.
        page.hover(".jp-NotebookPanel-toolbar")
        page.locator('.jp-NotebookPanel-toolbar [data-command="notebook:restart-run-all"]').click()
        page.locator(".jp-Dialog .jp-mod-accept").click()
        page.wait_for_function(jlab.JS_RUN_ALL_DONE, timeout=RUN_ALL_TIMEOUT_S * 1000, polling=500)
        errors = page.evaluate(jlab.JS_ERRORS)
        assert not errors, "error outputs after Run All:\n" + "\n".join(errors)
        counts = page.evaluate(jlab.JS_EXECUTION_COUNTS)
        assert None not in counts, f"code cells that did not run (execution counts {counts})"
        assert page.evaluate(JS_PRESENTING), "Run All stopped the deck"
        assert page.evaluate(JS_ACTIVE) == 0, "Run All moved the deck off the title slide"

        # Step forward with the remote (→ does the same) until the panel's slide.
        forward = page.locator(".jp-Deck-Remote .jp-deck-mod-direction-forward")
        visited = [0]
        while visited[-1] != panel_cell:
            assert visited[-1] < panel_cell and len(visited) <= len(cells), (
                f"stepping forward went {visited}, never to the panel (cell {panel_cell})"
            )
            forward.click()
            page.wait_for_function(f"() => ({JS_ACTIVE})() !== {visited[-1]}", timeout=10_000)
            visited.append(page.evaluate(JS_ACTIVE))
        assert page.evaluate(JS_ON_SCREEN) == [panel_cell], (
            f"the panel's slide shows cells {page.evaluate(JS_ON_SCREEN)}, not the panel alone"
        )

        assert page.evaluate(jlab.JS_TAG_PANELS) == 1
        panel = page.locator('[data-ui-panel="0"]')
        panel.locator(jlab.IMG).first.wait_for(timeout=REDRAW_TIMEOUT_S * 1000)
        box = panel.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= PROJECTOR["height"], (
            f"the panel does not fit the screen: {box}"
        )
        slider, method = jlab.sliders_to_move(panel)[0]
        moves = [jlab.move_slider(page, 0, slider, method, REDRAW_TIMEOUT_S) for _ in range(2)]
        assert any(m.changed for m in moves), f"the picture never changed: {moves}"
        page.screenshot(path=artifacts / "lecture.png")

        errors = page.evaluate(jlab.JS_ERRORS)
        assert not errors, "error outputs after moving the slider:\n" + "\n".join(errors)
        real = jlab.real_console_errors(console)
        assert not real, "browser console errors:\n" + "\n".join(real)
    except Exception:
        with contextlib.suppress(Exception):  # a crashed page: keep the original error
            page.screenshot(path=artifacts / "lecture_failure.png")
        raise
    finally:
        with contextlib.suppress(Exception):
            page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
        page.close()
    assert hashlib.sha256(served.read_bytes()).hexdigest() == before, "the lecture saved it"
