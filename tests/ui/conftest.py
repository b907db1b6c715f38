"""Session fixtures for the browser tests: one JupyterLab on a throwaway copy of the course,
one headless Chromium, and the redraw-latency table (artifacts/ui/latency.md, also printed).

Set FMLIB_UI_NOTEBOOKS=/some/dir/notebooks to test other notebooks (their folder is
copied the same way, with its sibling assets/ when there is one).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    """A copy of notebooks/ (and ../assets) to serve: Run All never touches the repo's files."""
    root = tmp_path_factory.mktemp("course")
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    shutil.copytree(NOTEBOOK_DIR, root / "notebooks", ignore=skip)
    if (NOTEBOOK_DIR.parent / "assets").is_dir():
        shutil.copytree(NOTEBOOK_DIR.parent / "assets", root / "assets", ignore=skip)
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


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    rows = config.stash.get(ROWS, [])
    if rows:
        terminalreporter.write_sep("-", "widget redraw latency (artifacts/ui/latency.md)")
        terminalreporter.write_line(
            write_latency_table(
                rows, config.stash.get(LIVE_ROWS, []), config.stash.get(STAGE_ROWS, [])
            )
        )
