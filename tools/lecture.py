"""Lecture mode: JupyterLab presenting one notebook as slides, its widgets live (`make lecture`).

    python tools/lecture.py notebooks/03_continuity_equation.ipynb

jupyterlab-slideshow shows the live notebook itself, so a panel's sliders redraw as usual.
Its setting `active` starts the deck as JupyterLab opens; this tool keeps that setting, with
autosave off (running cells in front of a class must not rewrite the stored outputs that
nbval compares) and no news pop-up over the slides, in JupyterLab settings of its own under
build/lecture/, so `make lab` keeps the user's settings and opens as usual. Each lecture
starts from a fresh workspace: the notebook named is the one presented. The slides come from
the cells' metadata (`make slides`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / "build" / "lecture"
# JupyterLab user settings: file (under the settings directory) -> values.
SETTINGS = {
    "jupyterlab-slideshow/plugin.jupyterlab-settings": {"active": True},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    # no "get notified about Jupyter news?" pop-up over the slides (and no network call)
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # Every cell rendered: with JupyterLab 4.6's default ("contentVisibility") the deck's
    # opening throws "Cannot read properties of null (reading 'observe')" twice (the notebook's
    # IntersectionObserver is gone when its cells change; tests/ui/test_lecture.py saw it).
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def write_settings(settings_dir: Path) -> None:
    """Lecture mode's JupyterLab user settings, written into `settings_dir`."""
    for name, values in SETTINGS.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=1) + "\n")


def main(argv: list[str]) -> int:
    path = Path(argv[0]).resolve() if len(argv) == 1 else None
    if path is None or path.suffix != ".ipynb" or not path.is_file() or ROOT not in path.parents:
        got = f"{len(argv)} paths" if len(argv) > 1 else (argv or ["nothing"])[0]
        print(f"usage: make lecture NB=notebooks/NN_name.ipynb (one notebook), got {got}")
        return 2
    settings, workspaces = HOME / "settings", HOME / "workspaces"
    write_settings(settings)
    shutil.rmtree(workspaces, ignore_errors=True)
    os.chdir(ROOT)  # the server's root: the notebook's path is relative to it
    lab = [sys.executable, "-m", "jupyter", "lab", str(path.relative_to(ROOT))]
    lab += [f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workspaces}"]
    os.execv(sys.executable, lab)  # replaces this process: Ctrl+C stops JupyterLab
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
