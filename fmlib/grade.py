"""Grade notebooks: run each in a fresh, capped kernel and give every exercise its verdict.

    python -m fmlib.grade student/*.ipynb                         # a table, then the summary line
    python -m fmlib.grade --json grades.json submissions/*/*.ipynb  # the same, for a gradebook

- The exercise list is the instructor's (`notebooks/NN_name.ipynb`, found by file name in the
  `notebooks/` folder of the current directory or the nearest one above it; `--source` names
  another folder), never the submission's: a check the submission deleted, changed or
  added makes the grader refuse the notebook (every exercise "refused", nothing run), as does a
  cell that writes to the grader's log or reaches into `fmlib.exercises`' internals.
- A verdict counts only when the instructor's check cell itself records it, so a check re-run
  or faked in another cell counts for nothing.
- Cells run one by one and an error stops only its own exercise: an exercise whose cells
  (solution to check) raised is "wrong" with the error; later exercises still run.
- Each notebook runs in its own process group, capped in wall time (`--time-limit`, s) and in
  address space per process (`--memory-gb`); past the time cap the kernel is killed and the
  exercises not reached are "not attempted".
- Results are keyed by student: the folder a submission sits in (`submissions/<student>/NN.ipynb`;
  in nbgrader's layout `submitted/<student>/<assignment>/NN.ipynb`, the folder above the
  assignment's). Points follow nbgrader's (fmlib.editions.POINTS).

The last line printed is exactly `N exercises: C correct, W wrong, U not attempted` (followed by
`, R refused` when a notebook was refused).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from fmlib import editions
from fmlib.exercises import CORRECT, GRADE_LOG, NOT_ATTEMPTED, WRONG

REFUSED = "refused"
SOURCE = Path("notebooks")  # the instructor edition's folder name (see instructor_folder)
# Cells other than checks must not write verdicts themselves.
_FORGERY = re.compile(r"FMLIB_GRADE_LOG|GRADE_LOG|exercises\._|_record\(|_LATEST|answer_key")


@dataclass
class Verdict:
    notebook: str
    exercise: str
    verdict: str
    message: str
    student: str = ""
    points: int = 0
    max_points: int = 0


def instructor_folder(start: Path | None = None) -> Path:
    """notebooks/ in `start` (default: the current directory) or the nearest folder above it
    that has one: a course checkout's instructor edition, wherever fmlib is installed. When
    there is none, SOURCE relative to `start` (each notebook is then refused, naming it)."""
    start = Path.cwd() if start is None else Path(start)
    for folder in (start, *start.resolve().parents):
        if (folder / SOURCE).is_dir():
            return folder / SOURCE
    return start / SOURCE


def student_of(path: Path) -> str:
    """The student a submission belongs to: its folder (or, in nbgrader's layout
    <student>/<assignment>/<assignment>.ipynb, the folder above)."""
    path = path.resolve()
    parent = path.parent
    if parent.name == path.stem and parent.parent != parent:
        parent = parent.parent
    return parent.name


def _check_sources(instructor: nbformat.NotebookNode) -> dict[str, set[str]]:
    """{exercise: the check cell sources accepted for it} (instructor's, student edition's)."""
    accepted = {}
    for ex in editions.exercises(instructor):
        original = editions.without_hidden_tests(instructor.cells[ex.check].source).strip()
        accepted[ex.name] = {original, ex.student_check().strip()}
    return accepted


def tampering(instructor: nbformat.NotebookNode, submission: nbformat.NotebookNode) -> str | None:
    """Why the submission must be refused (a check deleted, changed, added or forged), or None."""
    accepted = _check_sources(instructor)
    found: dict[str, int] = {}
    for i, cell in enumerate(submission.cells):
        if cell.cell_type != "code":
            continue
        source = cell.source.strip()
        owners = [name for name, sources in accepted.items() if source in sources]
        if owners:
            name = owners[0]
            if name in found:
                return f"the check of {name!r} appears twice (cells {found[name]} and {i})"
            found[name] = i
        elif editions.is_check_cell(cell) or editions.check_calls(cell.source):
            return f"cell {i} holds a check that is not the instructor's (added or changed)"
        elif _FORGERY.search(cell.source):
            return f"cell {i} reaches into the grader's record ({_FORGERY.search(cell.source)[0]})"
    missing = [name for name in accepted if name not in found]
    if missing:
        return f"the check of {missing[0]!r} was deleted or changed"
    order = [found[name] for name in accepted]
    if order != sorted(order):
        return "the checks are not in the instructor's order"
    return None


# ---------------------------------------------------------------------------- execution


def _execute(path: Path, cwd: Path, out: Path, cell_timeout: int) -> None:
    """Run the notebook cell by cell; append one JSON line per code cell to `out`:
    {cell, records (verdicts logged while it ran), error}. Runs inside the capped worker."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    log = out.with_suffix(".verdicts")
    log.touch()
    os.environ[GRADE_LOG] = str(log)  # the kernel inherits the environment
    client = NotebookClient(
        nb,
        timeout=cell_timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.reset_execution_trackers()
    with client.setup_kernel(), open(out, "a", encoding="utf-8") as report:
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            done = len(log.read_text(encoding="utf-8").splitlines())
            error = None
            try:
                client.execute_cell(cell, i)
            except CellTimeoutError:
                error = f"TimeoutError: the cell ran past {cell_timeout} s"
            except DeadKernelError:
                error = "DeadKernelError: the kernel died (out of memory?)"
            for output in cell.get("outputs", []):
                if output.output_type == "error" and error is None:
                    error = f"{output.ename}: {output.evalue}"[:300]
            lines = log.read_text(encoding="utf-8").splitlines()[done:]
            records = [json.loads(line) for line in lines]
            report.write(json.dumps({"cell": i, "records": records, "error": error}) + "\n")
            report.flush()
            if error and error.startswith(("TimeoutError", "DeadKernelError")):
                break


def _limits(memory_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return apply


def run_capped(
    path: Path, cell_timeout: int, time_limit: float, memory_gb: float
) -> tuple[dict[int, dict], str | None]:
    """({cell index: its record}, why the run stopped early or None), the notebook run in a
    worker process group capped at `time_limit` seconds and `memory_gb` GiB per process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cells.jsonl"
        out.touch()
        code = (
            "import sys; from pathlib import Path; from fmlib.grade import _execute; "
            "_execute(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))"
        )
        args = [
            sys.executable,
            "-c",
            code,
            str(path.resolve()),
            str(path.parent.resolve()),
            str(out),
            str(cell_timeout),
        ]
        env = {k: v for k, v in os.environ.items() if k != GRADE_LOG}
        worker = subprocess.Popen(
            args,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_limits(int(memory_gb * 2**30)),
            start_new_session=True,
        )
        stopped = None
        try:
            _, err = worker.communicate(timeout=time_limit)
            if worker.returncode != 0:
                last = [x for x in err.decode(errors="replace").splitlines() if x.strip()]
                stopped = f"the grader's worker failed: {last[-1][:200] if last else '?'}"
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.communicate()
            stopped = f"the notebook ran past the time limit ({time_limit:g} s)"
        cells = {}
        for line in out.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            cells[record["cell"]] = record
    return cells, stopped


# ---------------------------------------------------------------------------- grading


def grade_notebook(
    path: Path,
    timeout: int = 600,
    *,
    source: Path | None = None,
    time_limit: float = 1800,
    memory_gb: float = 8,
    student: str | None = None,
) -> list[Verdict]:
    """Grade one notebook against the instructor notebook of the same name in `source`
    (default: instructor_folder())."""
    return grade_with_errors(
        path, timeout, source=source, time_limit=time_limit, memory_gb=memory_gb, student=student
    )[0]


def grade_with_errors(
    path: Path,
    timeout: int = 600,
    *,
    source: Path | None = None,
    time_limit: float = 1800,
    memory_gb: float = 8,
    student: str | None = None,
) -> tuple[list[Verdict], list[str]]:
    """grade_notebook's verdicts, and every error a cell raised ("cell i: error")."""
    source = instructor_folder() if source is None else source
    student = student_of(path) if student is None else student
    submission = nbformat.read(path, as_version=4)
    instructor_path = source / path.name
    if not instructor_path.is_file():
        why = f"no instructor notebook {instructor_path}"
        return [Verdict(path.name, "(notebook)", REFUSED, why, student)], []
    instructor = nbformat.read(instructor_path, as_version=4)
    expected = editions.exercises(instructor)
    why = tampering(instructor, submission)
    if why:
        return [
            Verdict(path.name, ex.name, REFUSED, f"refused: {why}", student, 0, ex.points)
            for ex in expected
        ], []
    cells, stopped = run_capped(path, timeout, time_limit, memory_gb)
    accepted = _check_sources(instructor)
    check_cell = {}
    for i, cell in enumerate(submission.cells):
        for name, sources in accepted.items():
            if cell.cell_type == "code" and cell.source.strip() in sources:
                check_cell[name] = i
    verdicts, start = [], 0
    for ex in expected:
        at = check_cell[ex.name]
        span = [cells[i] for i in range(start, at + 1) if i in cells]
        start = at + 1
        records = [r for r in cells.get(at, {}).get("records", []) if r["exercise"] == ex.name]
        span_errors = [f"cell {r['cell']} raised {r['error']}" for r in span if r["error"]]
        before = [
            f"cell {i} raised {r['error']}"
            for i, r in sorted(cells.items())
            if i < at and r["error"]
        ]
        if records and not (span_errors and records[-1]["verdict"] == NOT_ATTEMPTED):
            verdict, message = records[-1]["verdict"], records[-1]["message"]
        elif span_errors:
            verdict, message = WRONG, f"error: {span_errors[0]}"
        elif at in cells:
            verdict, message = (
                NOT_ATTEMPTED,
                "its check gave no verdict" + (f" (earlier: {before[0]})" if before else ""),
            )
        else:
            verdict = NOT_ATTEMPTED
            message = f"its check did not run ({stopped or 'the notebook stopped'})"
        points = ex.points if verdict == CORRECT else 0
        verdicts.append(Verdict(path.name, ex.name, verdict, message, student, points, ex.points))
    errors = [f"cell {i}: {r['error']}" for i, r in sorted(cells.items()) if r["error"]]
    return verdicts, errors + ([stopped] if stopped else [])


def summary(verdicts: list[Verdict]) -> str:
    kinds = (CORRECT, WRONG, NOT_ATTEMPTED, REFUSED)
    counts = {v: sum(x.verdict == v for x in verdicts) for v in kinds}
    line = (
        f"{len(verdicts)} exercises: {counts[CORRECT]} correct, {counts[WRONG]} wrong, "
        f"{counts[NOT_ATTEMPTED]} not attempted"
    )
    return line + (f", {counts[REFUSED]} refused" if counts[REFUSED] else "")


def table(verdicts: list[Verdict]) -> str:
    rows = [("student", "notebook", "exercise", "verdict", "points", "message")]
    rows += [
        (v.student, v.notebook, v.exercise, v.verdict, f"{v.points}/{v.max_points}", v.message)
        for v in verdicts
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + " | " + r[5]
        for r in rows
    ]
    lines.insert(1, "-" * min(120, len(lines[0])))
    return "\n".join(lines)


def by_student(verdicts: list[Verdict]) -> dict[str, dict]:
    """{student: {points, max_points, notebooks: {notebook: [verdicts]}}}."""
    report: dict[str, dict] = {}
    for v in verdicts:
        entry = report.setdefault(v.student, {"points": 0, "max_points": 0, "notebooks": {}})
        entry["points"] += v.points
        entry["max_points"] += v.max_points
        entry["notebooks"].setdefault(v.notebook, []).append(asdict(v))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmlib.grade", description=__doc__.split("\n")[0]
    )
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="also write the verdicts to this JSON file")
    parser.add_argument(
        "--source", type=Path, help="the instructor notebooks (default: notebooks/ here or above)"
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument(
        "--time-limit", type=float, default=1800, help="seconds per notebook (default 1800)"
    )
    parser.add_argument(
        "--memory-gb", type=float, default=8, help="address space per process, GiB (default 8)"
    )
    args = parser.parse_args(argv)
    if args.timeout < 1:
        parser.error(f"--timeout must be >= 1 second, got {args.timeout}")
    if args.time_limit <= 0 or args.memory_gb <= 0:
        parser.error("--time-limit and --memory-gb must be > 0")
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    verdicts = []
    for path in args.notebooks:
        print(f"grading {path} ...", file=sys.stderr, flush=True)
        verdicts += grade_notebook(
            path,
            args.timeout,
            source=args.source,
            time_limit=args.time_limit,
            memory_gb=args.memory_gb,
        )
    if args.json:
        report = {
            "summary": summary(verdicts),
            "students": by_student(verdicts),
            "verdicts": [asdict(v) for v in verdicts],
        }
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    print(table(verdicts))
    for student, entry in by_student(verdicts).items():
        print(f"{student}: {entry['points']}/{entry['max_points']} points")
    print(summary(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
