"""Session fixtures for the browser tests: one JupyterLab on a throwaway copy of the course,
one headless Chromium, and the redraw-latency table (artifacts/ui/latency.md, also printed).

Set FMLIB_UI_NOTEBOOKS=/some/dir/notebooks to test other notebooks (their folder is
copied the same way). The notebooks read their data and checkpoints from the installed
package (fmlib/resources), so the notebooks' folder is all a served course needs.

`make test` runs these tests two at a time (pytest-xdist, a unit per notebook, longest first:
conftest.py at the repository root): each worker has its own JupyterLab and Chromium, and
hands its table rows to the controller, which writes the one table. `make ui` runs them one
at a time, so that the rates `make bench` reads were measured with nothing beside them.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import stages
from .config import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    LIVE_ROWS,
    NOTEBOOK_DIR,
    ROWS,
    STAGE_ROWS,
    write_latency_table,
)
from .labserver import Lab, start_lab, stop_lab


@pytest.fixture(scope="session")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of notebooks/ to serve: Run All never touches the repo's files."""
    root = tmp_path_factory.mktemp("course")
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    shutil.copytree(NOTEBOOK_DIR, root / "notebooks", ignore=skip)
    return root


@pytest.fixture(scope="session")
def lab(course: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab (from this venv) on 127.0.0.1, no token (tests only), serving `course`."""
    home = tmp_path_factory.mktemp("jupyter-home")
    server = start_lab(course, home, env={"FMLIB_PANEL_TRACE": str(home / "panel_trace.jsonl")})
    yield server
    stop_lab(server)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def latency_rows(request: pytest.FixtureRequest) -> list[str]:
    """Markdown table rows, one per slider move; printed at the end of the session."""
    return request.config.stash.setdefault(ROWS, [])


@pytest.fixture(scope="session")
def live_rows(request: pytest.FixtureRequest) -> list[str]:
    """Markdown table rows, one per 2-second drag or Play; printed at the end of the session."""
    return request.config.stash.setdefault(LIVE_ROWS, [])


@pytest.fixture(scope="session")
def stage_rows(request: pytest.FixtureRequest) -> list:
    """(markdown row, stages.Breakdown) per slider move: where its time went."""
    return request.config.stash.setdefault(STAGE_ROWS, [])


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand this worker's table rows to the controller."""
    config = session.config
    if hasattr(config, "workeroutput"):
        stage_rows = [(r, b and dataclasses.asdict(b)) for r, b in config.stash.get(STAGE_ROWS, [])]
        config.workeroutput["latency"] = json.dumps(
            [config.stash.get(ROWS, []), config.stash.get(LIVE_ROWS, []), stage_rows]
        )


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent with -p no:xdist
def pytest_testnodedown(node, error) -> None:
    """On the xdist controller: a worker's rows join the table (pytest_terminal_summary)."""
    rows, live, stage_rows = json.loads(
        getattr(node, "workeroutput", {}).get("latency", "[[],[],[]]")
    )
    config = node.config
    config.stash.setdefault(ROWS, []).extend(rows)
    config.stash.setdefault(LIVE_ROWS, []).extend(live)
    config.stash.setdefault(STAGE_ROWS, []).extend(
        (r, b and stages.Breakdown(**b)) for r, b in stage_rows
    )


def _by_notebook(rows: list) -> list:
    """Rows of two workers, interleaved in time, grouped by notebook (the first column)."""
    first = lambda row: (row[0] if isinstance(row, tuple) else row).split("|")[1]  # noqa: E731
    return sorted(rows, key=first)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    rows = config.stash.get(ROWS, [])
    if rows:
        terminalreporter.write_sep("-", "widget redraw latency (artifacts/ui/latency.md)")
        text = write_latency_table(
            _by_notebook(rows),
            _by_notebook(config.stash.get(LIVE_ROWS, [])),
            _by_notebook(config.stash.get(STAGE_ROWS, [])),
        )
        workers = getattr(config.option, "numprocesses", None)
        if workers:  # say so: these times were measured beside another browser test
            title, rest = text.split("\n", 1)
            note = (
                f"Measured {workers} browser tests at a time (`make test`); `make ui` runs "
                "them one at a time, for `make bench`."
            )
            text = f"{title}\n\n{note}\n{rest}"
            (ARTIFACTS / "latency.md").write_text(text + "\n")
        terminalreporter.write_line(text)
