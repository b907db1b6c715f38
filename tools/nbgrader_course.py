"""The course as an nbgrader course directory: one assignment per notebook.

    python tools/nbgrader_course.py                      # what `make assignments` runs
    python tools/nbgrader_course.py --course DIR 03_continuity_equation

writes DIR (default build/course):

    nbgrader_config.py          course id, the stub `# your code here`, outputs kept, timeouts
    source/<nb>/<nb>.ipynb      fmlib.editions.nbgrader_source: solutions between the markers,
                                nbgrader metadata on every cell, hidden tests, points
    release/<nb>/<nb>.ipynb     made by `nbgrader generate_assignment`; checked here to equal the
                                student edition (student/<nb>.ipynb) cell by cell, up to
                                nbgrader's own cell metadata (nbgrader, editable, deletable)
    gradebook.db                nbgrader's database

Then, in DIR, the instructor runs nbgrader itself:

    nbgrader autograde <nb> --create        # submitted/<student>/<nb>/<nb>.ipynb, per student
    nbgrader generate_feedback <nb>         # feedback/<student>/<nb>/<nb>.html
    nbgrader export                         # grades.csv

`autograde` restores every check and read-only cell from the database before it runs a
submission, and each check cell's hidden test (`exercises.require_correct(name)`) fails the cell,
so its points, unless the check said "correct".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from fmlib import editions

ROOT = Path(__file__).resolve().parent.parent  # this checkout: notebooks/, build/course
COURSE_ID = "fmlib-flow-matching"
CONFIG = f'''"""The course's nbgrader configuration (written by python tools/nbgrader_course.py)."""

from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearSolutions,
    ComputeChecksums,
    IncludeHeaderFooter,
    InstantiateTests,
    LockCells,
    SaveCells,
)

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "{COURSE_ID}"
# The student edition's stub: the solution block's names are set to None just above it.
c.ClearSolutions.code_stub = {{"python": "{editions.CODE_STUB}"}}
# The student edition keeps every output outside the exercises (they are cleared in source/):
# nbgrader's default list without ClearOutput.
c.GenerateAssignment.preprocessors = [
    IncludeHeaderFooter,
    InstantiateTests,
    LockCells,
    ClearSolutions,
    CheckCellMetadata,
    ComputeChecksums,
    SaveCells,
    ClearHiddenTests,
    ClearMarkScheme,
    ComputeChecksums,
    CheckCellMetadata,
]
c.Execute.timeout = 600  # seconds per cell (nbgrader's default is 30)
'''


def nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the nbgrader command line in the course directory."""
    bin_dir = Path(sys.executable).parent  # nbgrader runs `alembic` from PATH: the venv's
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    exe = bin_dir / "nbgrader"
    cmd = [str(exe) if exe.exists() else "nbgrader", *args]
    result = subprocess.run(cmd, cwd=course, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def comparable(nb: nbformat.NotebookNode) -> str:
    """A notebook's text without nbgrader's own metadata (what the release must share with
    the student edition)."""
    return json.dumps(editions.without_nbgrader_metadata(nb), sort_keys=True, indent=1)


def release_differences(release: Path, student: nbformat.NotebookNode) -> list[str]:
    """Cells where nbgrader's release differs from the student edition (empty: identical)."""
    ours = editions.without_nbgrader_metadata(student)
    theirs = editions.without_nbgrader_metadata(nbformat.read(release, as_version=4))
    diffs = []
    if len(ours.cells) != len(theirs.cells):
        diffs.append(f"{len(theirs.cells)} cells, the student edition has {len(ours.cells)}")
    for i, (a, b) in enumerate(zip(ours.cells, theirs.cells, strict=False)):
        if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            diffs.append(f"cell {i}: {b.get('source', '')[:80]!r} vs {a.get('source', '')[:80]!r}")
    if json.dumps(ours.metadata, sort_keys=True) != json.dumps(theirs.metadata, sort_keys=True):
        diffs.append("notebook metadata")
    return diffs


def build(course: Path, names: list[str] | None = None, src: Path = ROOT / "notebooks") -> dict:
    """Write the course directory, run `nbgrader generate_assignment` for each notebook, and
    check every release against the student edition. {assignment: points}."""
    paths = sorted(src.glob("*.ipynb"))
    if names:
        paths = [p for p in paths if p.stem in names or p.name in names]
        missing = set(names) - {p.stem for p in paths} - {p.name for p in paths}
        if missing:
            raise ValueError(f"no such notebook: {sorted(missing)}")
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(CONFIG)
    points = {}
    for path in paths:
        aid = path.stem
        nb = nbformat.read(path, as_version=4)
        folder = course / "source" / aid
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        nbformat.write(editions.nbgrader_source(nb, path.name), folder / path.name)
        shutil.rmtree(course / "release" / aid, ignore_errors=True)
        nbgrader(course, "generate_assignment", aid, "--force")
        diffs = release_differences(
            course / "release" / aid / path.name, editions.student_edition(nb, path.name)
        )
        if diffs:
            raise RuntimeError(f"nbgrader's release of {aid} is not the student edition: {diffs}")
        points[aid] = sum(ex.points for ex in editions.exercises(nb))
    return points


def scores(course: Path, assignment: str) -> dict[str, dict[str, float]]:
    """{student: {check cell's grade id: score, "total": score}} from the gradebook."""
    from nbgrader.api import Gradebook

    result = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        for submission in gb.assignment_submissions(assignment):
            cells = {}
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    cells[grade.name] = grade.score
            cells["total"] = submission.score
            result[submission.student.id] = cells
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/nbgrader_course.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("notebooks", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--course", type=Path, default=ROOT / "build" / "course")
    args = parser.parse_args(argv)
    points = build(args.course, args.notebooks or None)
    for aid, p in points.items():
        print(f"{aid}: released = student edition; {p} points")
    print(f"course directory: {args.course}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
