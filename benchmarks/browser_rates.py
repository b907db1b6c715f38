"""The browser's speed goals, read from the last browser test run (`make ui`).

    python benchmarks/browser_rates.py [artifacts/ui/latency.md]

tests/ui measures, in headless Chromium, how many pictures a panel shows while t (or its
busiest slider) is dragged end to end and back for 2 s, and while Play runs, and writes
them to artifacts/ui/latency.md without asserting them (a rate measures the machine and its
load). This script holds them to the goals: >= 8 pictures per second, or a picture for
every value the hand asked for (but one) where it asked for fewer; and a slider change to
its new picture, end to end (the last pointer or key event -> the new PNG decoded in the
browser, latency.md's per-stage table: the final value of each move), within 0.1 s, at
worst. Exit status 1 when a panel misses either, 2 when there is no table yet.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

GOAL_FPS = 8.0
GOAL_MS = 100.0  # a slider change -> its new picture, end to end, every move
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


def stage_rows(text: str) -> tuple[list[str], list[dict]]:
    """The per-stage table of latency.md ('Where the time goes'): its stage names and one
    dict per move (stage -> ms, None where a stage was not observed); no summary rows."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("## Where the time goes")]
    if not starts:
        return [], []
    table = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table.append(line)
    header = [h.strip() for h in table[0].strip("|").split("|")]
    stages = header[3:-1]  # after notebook, slider, how; before the frames drawn ahead
    rows = []
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0].startswith("**") or len(cells) != len(header):
            continue
        row = dict(zip(header, cells, strict=True))
        for stage in stages:
            row[stage] = float(row[stage]) if row[stage] not in ("", "?") else None
        rows.append(row)
    return stages, rows


def latency_report(text: str) -> tuple[list[str], bool]:
    """Lines: median and worst of each stage, the moves over GOAL_MS; and whether every move
    was within it (True when there is no per-stage table: nothing measured, nothing missed)."""
    stages, rows = stage_rows(text)
    totals = [r for r in rows if r.get("total") is not None]
    if not totals:
        return ["no per-stage table in latency.md (run `make ui`)"], True
    lines = ["per stage, the final value of each move (ms): median / worst"]
    for stage in stages:
        values = sorted(r[stage] for r in rows if r[stage] is not None)
        if values:
            lines.append(f"{stage:>18}: {statistics.median(values):5.0f} / {max(values):5.0f}")
    over = [r for r in totals if r["total"] > GOAL_MS]
    for r in over:
        lines.append(
            f"{r['notebook']:>34} {r['slider']:>10} {r['how']:>8}: {r['total']:.0f} ms "
            f"> {GOAL_MS:g} ms -> MISSED"
        )
    lines.append(
        f"slider change -> new picture within {GOAL_MS:g} ms: {len(totals) - len(over)} of "
        f"{len(totals)} moves"
    )
    return lines, not over


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
    text = path.read_text()
    if "at a time" in text.split("##")[0]:  # make test runs two browser tests at once
        print("(measured two browser tests at a time: `make ui` measures one at a time)")
    lines, latency_ok = latency_report(text)
    print("\n".join(lines))
    if missed:
        print(f"GOAL MISSED: {len(missed)} of {len(rows)} runs under {GOAL_FPS:g} pictures/s")
    else:
        print(f"goal met: {len(rows)} runs at >= {GOAL_FPS:g} pictures/s (or every value asked)")
    if not latency_ok:
        print(f"GOAL MISSED: a slider change took over {GOAL_MS:g} ms to its picture")
    else:
        print(f"goal met: every slider change within {GOAL_MS:g} ms of its picture")
    return 1 if missed or not latency_ok else 0


if __name__ == "__main__":
    sys.exit(main())
