"""Where `make test`'s time goes: stage times, seconds per notebook, longest-first order.

    python tools/ci_times.py stage NAME -- COMMAND...   # run one stage, time it, print the table
    python tools/ci_times.py table                        # print the tables so far
    python tools/ci_times.py reset                        # forget them (`make test` starts so)

`make test` runs its three stages through `stage`: each appends a row (name, seconds, exit
status) to artifacts/ci/stages.tsv and the table so far is printed after it, so a CI log ends
with it even when a stage fails. Every pytest run from the repository root (conftest.py) adds
the seconds each notebook took there (nbval per kernel setting, the student edition, the
browser test) to artifacts/ci/notebook_seconds.json; `table` prints them per notebook.

The same numbers order the work longest first (xdist's scheduler in conftest.py, the job pool
of tools/portability.py, the browser tests): with two workers the run ends when the last long
job does, so long jobs must not start last. Before anything was measured (a fresh clone's
first stage), a notebook's cost is guessed from its code: pinned to one thread (the course's
heavy trainers), trains a network, or neither.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "artifacts" / "ci"
STAGES = OUT / "stages.tsv"
SECONDS = OUT / "notebook_seconds.json"
NOTEBOOKS = REPO / "notebooks"
# Guessed seconds of one native run, before anything is measured: only their order matters.
GUESS = {"pinned": 60.0, "trains": 25.0, "other": 15.0}


@functools.cache
def _portability():
    """tools/portability.py (its TRAINING_CALLS and PINNED say which notebooks train or pin)."""
    spec = importlib.util.spec_from_file_location("portability", REPO / "tools/portability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setting() -> str:
    """This process's kernel setting and thread count, as portability.md names them."""
    aten = os.environ.get("ATEN_CPU_CAPABILITY")
    kernels = f"{aten}/{os.environ.get('MKL_CBWR', '-')}" if aten else "native"
    threads = os.environ.get("OMP_NUM_THREADS", "?")
    return f"{kernels}, {threads} thread{'s' * (threads != '1')}"


def load() -> dict[str, dict[str, float]]:
    """{column: {notebook stem: seconds}} measured so far (empty on a fresh clone)."""
    try:
        return json.loads(SECONDS.read_text())
    except (OSError, ValueError):
        return {}


def record(column: str, seconds: dict[str, float]) -> None:
    """Add measured seconds per notebook stem under `column` (merged with what is there;
    portability's two jobs at a time write here, hence the lock)."""
    if not seconds:
        return
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = load()
        data.setdefault(column, {}).update({k: round(v, 1) for k, v in seconds.items()})
        SECONDS.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def guess(stem: str) -> float:
    path = NOTEBOOKS / f"{stem}.ipynb"
    if not path.is_file():
        return GUESS["other"]
    portability = _portability()
    if not portability.follows_threads(path):
        return GUESS["pinned"]
    return GUESS["trains"] if portability.trains(path) else GUESS["other"]


def cost(stem: str, column: str | None = None) -> float:
    """Best estimate of a notebook's seconds: measured in `column`, else measured anywhere
    (the native run first), else guessed from its code."""
    data = load()
    if column and stem in data.get(column, {}):
        return data[column][stem]
    for name in sorted(data, key=lambda c: not c.startswith("native")):
        if stem in data[name]:
            return data[name][stem]
    return guess(stem)


# --- stages ---


def run_stage(name: str, command: list[str]) -> int:
    print(f"\n== stage: {name}", flush=True)
    start = time.monotonic()
    rc = subprocess.call(command, cwd=REPO)
    seconds = time.monotonic() - start
    OUT.mkdir(parents=True, exist_ok=True)
    with STAGES.open("a") as f:
        f.write(f"{name}\t{seconds:.0f}\t{rc}\n")
    print(table(), flush=True)
    return rc


def table() -> str:
    lines = ["", "## Stage times (artifacts/ci/stages.tsv)", "", "| stage | seconds | exit |"]
    lines.append("|---|---|---|")
    total = 0.0
    if STAGES.is_file():
        for row in STAGES.read_text().splitlines():
            name, seconds, rc = row.split("\t")
            total += float(seconds)
            lines.append(f"| {name} | {seconds} | {rc} |")
    lines.append(f"| total | {total:.0f} | |")
    data = load()
    if data:
        columns = sorted(data, key=lambda c: (not c.startswith("native"), c))
        stems = sorted({s for c in columns for s in data[c]})
        lines += ["", "## Seconds per notebook (artifacts/ci/notebook_seconds.json)", ""]
        lines.append("| notebook | " + " | ".join(columns) + " | sum |")
        lines.append("|---" * (len(columns) + 2) + "|")
        for stem in stems:
            cells = [data[c].get(stem) for c in columns]
            total = sum(v for v in cells if v is not None)
            shown = ["" if v is None else f"{v:.0f}" for v in cells]
            lines.append(f"| {stem} | " + " | ".join(shown) + f" | {total:.0f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["table"]:
        print(table())
        return 0
    if argv[:1] == ["reset"]:
        for path in (STAGES, SECONDS):
            path.unlink(missing_ok=True)
        return 0
    if len(argv) >= 4 and argv[0] == "stage" and argv[2] == "--":
        return run_stage(argv[1], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
