"""The browser's speed goals, read from the last browser test run (`make ui`).

    python benchmarks/browser_rates.py [artifacts/ui/latency.md]

tests/ui measures, in headless Chromium, how many pictures a panel shows while t (or its
busiest slider) is dragged end to end and back for 2 s, and while Play runs, and writes
them to artifacts/ui/latency.md without asserting them (a rate measures the machine and its
load). This script holds them to the goal: >= 8 pictures per second, or a picture for
every value the hand asked for (but one) where it asked for fewer. Exit status 1 when a
panel misses it, 2 when there is no table yet.
"""

from __future__ import annotations

import sys
from pathlib import Path

GOAL_FPS = 8.0
TABLE = Path(__file__).resolve().parents[1] / "artifacts" / "ui" / "latency.md"


def live_rows(text: str) -> list[dict]:
    """The drag / Play rows of latency.md as dicts (header names as keys)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## While dragging"))
    header = [h.strip() for h in lines[start + 2].strip("|").split("|")]
    rows = []
    for line in lines[start + 4 :]:
        if line.startswith("## "):  # the next section (where the time goes, per stage)
            break
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.append(dict(zip(header, cells, strict=True)))
    return rows


def meets_goal(row: dict) -> bool:
    fps, asked, frames = float(row["fps"]), int(row["values asked"]), int(row["pictures"])
    return fps >= GOAL_FPS or frames >= asked - 1


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TABLE
    if not path.exists():
        print(f"{path} not found: run `make ui` first (the browser tests write it)")
        return 2
    rows = live_rows(path.read_text())
    missed = [r for r in rows if not meets_goal(r)]
    for r in rows:
        mark = "ok" if meets_goal(r) else "MISSED"
        print(
            f"{r['notebook']:>34} panel {r['panel']} {r['how']:>4} {r['slider']:>10}: "
            f"{float(r['fps']):5.1f} pictures/s of {float(r['asked per s']):5.1f} asked "
            f"-> {mark}"
        )
    if missed:
        print(f"GOAL MISSED: {len(missed)} of {len(rows)} runs under {GOAL_FPS:g} pictures/s")
        return 1
    print(f"goal met: {len(rows)} runs at >= {GOAL_FPS:g} pictures/s (or every value asked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
