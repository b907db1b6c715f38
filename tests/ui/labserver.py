"""Start and stop a throwaway JupyterLab server on 127.0.0.1 (used by tests/ui and test_lab).

Config, data, runtime, IPython, settings and workspace directories all live under a temp
`home`, so the tests neither read nor write the user's Jupyter setup. The user settings
turn off autosave (tests never save a notebook) and the news feed (no network); the
notebook's windowing stays JupyterLab's default, as a student has it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MAKEFILE_ENV = {
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "PYTHONHASHSEED": "0",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}
USER_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
# The notebook's windowing mode is JupyterLab's default ("contentVisibility": the browser skips
# the style, layout and paint of cells off screen), as a student's `make lab` has it. The
# tests once chose "none" (every cell rendered): measured in Chromium's trace of notebook 01
# (session 11), each press and release of a slider then restyled the whole notebook (noUiSlider
# sets the page's cursor): 36-85 ms of the browser's main thread, against 15-22 ms by default.


@dataclass
class Lab:
    """A running server: its base URL (ending in /), token, process and log file."""

    url: str
    token: str
    process: subprocess.Popen
    log: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, token: str = "", timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; `token` goes into the Authorization header when given."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def _write_settings(settings_dir: Path) -> None:
    for name, values in USER_SETTINGS.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def start_lab(
    root_dir: Path,
    home: Path,
    token: str = "",
    args: tuple[str, ...] = (),
    timeout: float = 90,
    env: dict[str, str] | None = None,
) -> Lab:
    """`python -m jupyter lab` serving `root_dir` (also its cwd) on a free 127.0.0.1 port.

    token="" disables authentication: tests only, and only ever on 127.0.0.1. Waits until
    GET /api/status answers 200; raises RuntimeError with the log tail otherwise. `env` adds
    variables to the server's (and so its kernels') environment.
    """
    dirs = {n: home / n for n in ("config", "data", "runtime", "ipython", "settings", "ws")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    _write_settings(dirs["settings"])
    env = {
        **dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            IPYTHONDIR=str(dirs["ipython"]),
        ),
        **(env or {}),
    }
    for name, value in MAKEFILE_ENV.items():
        env.setdefault(name, value)  # same as `make`, also when pytest runs outside make
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={root_dir}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.password=",
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={dirs['settings']}",
        f"--LabApp.workspaces_dir={dirs['ws']}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.terminals_enabled=False",
        *args,
    ]
    if os.geteuid() == 0:
        command.append("--ServerApp.allow_root=True")  # containers and CI run as root
    log = home / "jupyter.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=root_dir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    lab = Lab(f"http://127.0.0.1:{port}/", token, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if http_get(lab.url + "api/status", token, timeout=2)[0] == 200:
                return lab
        except OSError:
            pass
        time.sleep(0.5)
    stop_lab(lab)
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"JupyterLab did not answer /api/status within {timeout} s:\n{tail}")


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_lab(lab: Lab, timeout: float = 20) -> None:
    """SIGTERM the server (it shuts its kernels down), then SIGKILL what is left of it."""
    pgid = lab.process.pid  # start_new_session: the server leads its own process group
    _kill_group(pgid, signal.SIGTERM)
    try:
        lab.process.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(pgid, signal.SIGKILL)
        lab.process.wait(5)
