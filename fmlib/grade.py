"""Grade notebooks: run each in a fresh kernel and collect every exercise's verdict.

    python -m fmlib.grade student/*.ipynb            # a table, then the summary line
    python -m fmlib.grade --json grades.json a.ipynb # the same, for a gradebook

Each `fmlib.exercises.check` / `check_choice` that runs appends its verdict to a log file the
grader names in FMLIB_GRADE_LOG. An exercise whose check never ran (the notebook stopped on an
error first) is reported "not attempted" with the error. The last line printed is exactly
`N exercises: C correct, W wrong, U not attempted`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from fmlib.exercises import CORRECT, GRADE_LOG, NOT_ATTEMPTED, WRONG

# The first argument of every check call in a notebook: the exercises it should report.
_CHECK_NAME = re.compile(r"exercises\.check(?:_choice)?\(\s*(['\"])(.+?)\1")


@dataclass
class Verdict:
    notebook: str
    exercise: str
    verdict: str
    message: str


def exercise_names(nb: nbformat.NotebookNode) -> list[str]:
    """The names of the exercises a notebook checks, in order (read from its source)."""
    names = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            names += [m.group(2) for m in _CHECK_NAME.finditer(cell.source)]
    return names


def grade_notebook(path: Path, timeout: int = 600) -> list[Verdict]:
    """Execute `path` in a fresh kernel (its own folder as working directory) and return the
    verdict of every exercise it contains."""
    nb = nbformat.read(path, as_version=4)
    expected = exercise_names(nb)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "verdicts.jsonl"
        log.touch()
        previous = os.environ.get(GRADE_LOG)
        os.environ[GRADE_LOG] = str(log)  # the kernel inherits the environment
        error = None
        try:
            client = NotebookClient(
                nb, timeout=timeout, kernel_name="python3",
                resources={"metadata": {"path": str(path.parent.resolve())}},
            )  # fmt: skip
            client.execute()
        except CellExecutionError as exc:
            error = str(exc).strip().splitlines()[-1][:200]
        finally:
            if previous is None:
                os.environ.pop(GRADE_LOG, None)
            else:
                os.environ[GRADE_LOG] = previous
        records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    latest = {r["exercise"]: r for r in records}  # a check re-run later wins
    verdicts = []
    for name in dict.fromkeys(expected + list(latest)):
        if name in latest:
            r = latest[name]
            verdicts.append(Verdict(path.name, name, r["verdict"], r["message"]))
        else:
            why = f"its check did not run (the notebook stopped: {error})" if error else (
                "its check did not run"
            )  # fmt: skip
            verdicts.append(Verdict(path.name, name, NOT_ATTEMPTED, why))
    return verdicts


def summary(verdicts: list[Verdict]) -> str:
    counts = {v: sum(x.verdict == v for x in verdicts) for v in (CORRECT, WRONG, NOT_ATTEMPTED)}
    return (
        f"{len(verdicts)} exercises: {counts[CORRECT]} correct, {counts[WRONG]} wrong, "
        f"{counts[NOT_ATTEMPTED]} not attempted"
    )


def table(verdicts: list[Verdict]) -> str:
    rows = [("notebook", "exercise", "verdict", "message")]
    rows += [(v.notebook, v.exercise, v.verdict, v.message) for v in verdicts]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + " | " + r[3]
             for r in rows]  # fmt: skip
    lines.insert(1, "-" * min(120, len(lines[0])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmlib.grade", description=__doc__.split("\n")[0]
    )
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="also write the verdicts to this JSON file")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    if args.timeout < 1:
        parser.error(f"--timeout must be >= 1 second, got {args.timeout}")
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    verdicts = []
    for path in args.notebooks:
        print(f"grading {path} ...", file=sys.stderr, flush=True)
        verdicts += grade_notebook(path, timeout=args.timeout)
    if args.json:
        report = {"summary": summary(verdicts), "verdicts": [asdict(v) for v in verdicts]}
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    print(table(verdicts))
    print(summary(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
