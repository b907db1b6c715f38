"""The README's `make lab`: JupyterLab from .venv on 127.0.0.1 serves the course.

Starts `python -m jupyter lab notebooks/00_start_here.ipynb` from the repository root (as
`make lab` does) with a real token and throwaway Jupyter directories, checks /api/status,
that authentication is on, that every notebook is served and that the ipywidgets extension
is loaded (otherwise the sliders would not render), then stops it.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from ui.labserver import http_get, start_lab, stop_lab

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_readme_lab_starts_serves_the_course_and_stops(tmp_path: Path) -> None:
    token = secrets.token_hex(16)
    lab = start_lab(REPO, tmp_path, token=token, args=("notebooks/00_start_here.ipynb",))
    try:
        status, body = http_get(lab.url + "api/status", token)
        assert status == 200, body
        assert json.loads(body)["kernels"] == 0
        assert http_get(lab.url + "api/status")[0] == 403, "the server must require its token"

        status, body = http_get(lab.url + "api/contents/notebooks?content=1", token)
        assert status == 200, body
        served = {entry["name"] for entry in json.loads(body)["content"]}
        on_disk = {path.name for path in (REPO / "notebooks").glob("*.ipynb")}
        assert "00_start_here.ipynb" in on_disk
        assert on_disk <= served

        status, page = http_get(lab.url + "lab", token)
        assert status == 200
        assert "@jupyter-widgets/jupyterlab-manager" in page, "ipywidgets lab extension missing"
    finally:
        stop_lab(lab)
    assert lab.process.returncode is not None, "the server is still running"
