"""Paths and constants shared by the browser tests (conftest.py and the test modules)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = Path(os.environ.get("FMLIB_UI_NOTEBOOKS", REPO / "notebooks"))
ARTIFACTS = REPO / "artifacts" / "ui"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_MISSING = (
    "Chromium not found: run tools/install_chromium.sh (apt-get install -y chromium) "
    "to enable the browser tests"
)
# Playwright's own browser download is not used. We run as root (--no-sandbox); without the
# background-networking flags Chromium's phone-home attempts get connections refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROWS = pytest.StashKey[list]()  # latency table rows, kept on the pytest config
LIVE_ROWS = pytest.StashKey[list]()  # drag / Play rows
STAGE_ROWS = pytest.StashKey[list]()  # (markdown row, stages.Breakdown) per slider move


def notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


HEADER = [
    "| notebook | panel | slider | how | readouts | redraws in the browser (ms) | best (ms) |",
    "|---|---|---|---|---|---|---|",
]


LIVE_HEADER = [
    "| notebook | panel | slider | how | values asked | pictures | seconds | asked per s | fps "
    "| release -> final (ms) | final picture = final value's |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]


def write_latency_table(rows: list[str], live_rows: list[str] = (), stage_rows: list = ()) -> str:
    """artifacts/ui/latency.md (returned too): redraws per move, rates while dragging or
    playing, and where the time of each move went (stage_rows: (row, stages.Breakdown))."""
    text = latency_text(rows, live_rows, stage_rows)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "latency.md").write_text(text + "\n")
    return text


def latency_text(rows: list[str], live_rows: list[str] = (), stage_rows: list = ()) -> str:
    from . import stages

    title = "# Slider change -> new figure, in headless Chromium"
    note = "A readout ending in `=`: that redraw showed the same figure (the draw snaps values)."
    live = "## While dragging (end to end and back) or playing t, for 2 s"
    where = "## Where the time goes: the final value of each move, per stage (ms)"
    legend = stages.__doc__.split("\n\n")[2].strip("\n")
    table = [r for r, _ in stage_rows] + stages.summary([b for _, b in stage_rows if b])
    parts = [title, "", note, "", *HEADER, *rows, "", live, "", *LIVE_HEADER, *live_rows, ""]
    parts += [where, "", "```", legend, "```", "", *stages.HEADER, *table]
    return "\n".join(parts)
