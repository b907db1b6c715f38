"""nbgrader, end to end, on notebook 01: generate_assignment gives the student edition,
autograde scores three synthetic submissions per student id, generate_feedback writes HTML, and
`python -m fmlib.grade` gives the same verdicts (and refuses tampered copies). The blank
submission, notebook 01's student edition, is also its run-top-to-bottom check
(tests/test_grade.py runs every other student edition). The course
directory is tools/nbgrader_course.py's (`make assignments`)."""

import importlib.util
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from fmlib import editions, exercises, grade

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("nbgrader_course", ROOT / "tools/nbgrader_course.py")
nbgrader_course = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbgrader_course)
NAME = "01_change_of_variables"
SOURCE = ROOT / "notebooks" / f"{NAME}.ipynb"
# A student's typical slips, one line appended to their solution cell (each named by a check).
MISTAKES = {
    "prediction_quadrupling": '"16"',  # second order: a residual layer is one Euler step
    "answer_affine": "(1 / 3, 1 / 3)",  # z = 3.5 / 3 lies outside [0, 1]
    "answer_jacobian": "answer_jacobian.T",  # rows and columns swapped
    "answer_logdet": "5 * math.log(1.1)",  # one dimension counted
}


def _submission(release: nbformat.NotebookNode, source: nbformat.NotebookNode, mode: str):
    """The release filled in: "correct" (the instructor's solutions), "blank" (as released) or
    "mistakes" (the solutions, then the MISTAKES lines)."""
    nb = nbformat.from_dict(release)
    if mode == "blank":
        return nb
    for mine, theirs in zip(nb.cells, source.cells, strict=True):
        if editions.is_solution_cell(mine) and "### BEGIN SOLUTION" in theirs.source:
            lines = [x for x in theirs.source.split("\n") if "SOLUTION" not in x]
            for name, wrong in MISTAKES.items() if mode == "mistakes" else ():
                if any(re.match(rf"\s*{name}\s*=", x) for x in lines):
                    lines.append(f"{name} = {wrong}")
            mine.source = "\n".join(lines)
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    # The notebook's own key, fresh (fmlib/answer_key.py may lag behind an edited notebook);
    # nbgrader's and fmlib.grade's kernels inherit the variable.
    key = course / "key.json"
    nb = nbformat.read(SOURCE, as_version=4)
    key.write_text(json.dumps(editions.answer_key(nb, SOURCE.name)))
    patch = pytest.MonkeyPatch()
    patch.setenv(exercises.ANSWER_KEY, str(key))
    # One torch thread in the graded kernels (as tests/test_grade.py's one_thread_kernels):
    # two-thread kernels beside the other pytest worker oversubscribe `make test`'s 2 cores.
    patch.setenv("OMP_NUM_THREADS", "1")
    patch.setenv("MKL_NUM_THREADS", "1")
    points = nbgrader_course.build(course, [NAME])
    release = nbformat.read(course / "release" / NAME / f"{NAME}.ipynb", as_version=4)
    source = nbformat.read(course / "source" / NAME / f"{NAME}.ipynb", as_version=4)
    for student in ("correct", "blank", "mistakes"):
        folder = course / "submitted" / student / NAME
        folder.mkdir(parents=True)
        nbformat.write(_submission(release, source, student), folder / f"{NAME}.ipynb")
    yield course, points[NAME]
    patch.undo()


@pytest.mark.slow
def test_release_is_the_student_edition(course):
    course, _ = course
    student = editions.student_edition(nbformat.read(SOURCE, as_version=4), SOURCE.name)
    release = course / "release" / NAME / f"{NAME}.ipynb"
    assert nbgrader_course.release_differences(release, student) == []
    nb = nbformat.read(release, as_version=4)
    kinds = [c.metadata["nbgrader"] for c in nb.cells]
    assert all(k["solution"] or k["grade"] or k["locked"] for k in kinds)
    text = release.read_text()
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text


@pytest.mark.slow
def test_autograde_feedback_and_fmlib_grade_agree(course):
    course, total = course
    nb = nbformat.read(SOURCE, as_version=4)
    assert total == sum(e.points for e in editions.exercises(nb)) == 11
    nbgrader_course.nbgrader(course, "autograde", NAME, "--create")
    scores = nbgrader_course.scores(course, NAME)
    print({s: scores[s]["total"] for s in scores})
    # mistakes: the log-normal density and the coupling log-det right (2 + 2 points)
    assert {s: scores[s]["total"] for s in scores} == {"correct": 11, "blank": 0, "mistakes": 4}

    nbgrader_course.nbgrader(course, "generate_feedback", NAME)
    feedback = {s: course / "feedback" / s / NAME / f"{NAME}.html" for s in scores}
    assert all(path.is_file() for path in feedback.values())
    html = feedback["mistakes"].read_text()
    assert "count both dimensions" in html and "Score: 4.0 / 11.0" in html.replace("  ", " ")

    verdicts, errors = [], {}
    for student in scores:
        found, errors[student] = grade.grade_with_errors(
            course / "submitted" / student / NAME / f"{NAME}.ipynb"
        )
        verdicts += found
    print(grade.table(verdicts))
    # The blank submission is the student edition as released (test_release_is_the_student_
    # edition; student/ holds that edition: tests/test_editions.py). It ran top to bottom with
    # nothing attempted: tests/test_grade.py's check of every other student edition, made on
    # this run instead of a second one.
    blank = [v for v in verdicts if v.student == "blank"]
    assert errors["blank"] == []
    assert len(blank) >= 3 and all(v.verdict == "not attempted" for v in blank), blank
    assert all("not attempted yet" in v.message for v in blank), blank
    points = grade.by_student(verdicts)
    assert {s: points[s]["points"] for s in points} == {s: scores[s]["total"] for s in scores}
    check_ids = {
        ex.name: f"check-{ex.check:03d}" for ex in editions.exercises(nb)
    }  # grade ids, as fmlib.editions names them (cell index in the instructor notebook)
    for v in verdicts:
        assert (v.verdict == "correct") == (scores[v.student][check_ids[v.exercise]] > 0), v
    messages = {v.exercise: v.message for v in verdicts if v.student == "mistakes"}
    assert "count both dimensions" in messages["log-det of 5 layers 1.1 z"]
    assert "outside [0, 1]" in messages["density of x = 3z - 2"]


@pytest.mark.slow
def test_fmlib_grade_refuses_a_deleted_or_an_appended_check(course, tmp_path):
    course, _ = course
    correct = course / "submitted" / "correct" / NAME / f"{NAME}.ipynb"
    nb = nbformat.read(correct, as_version=4)
    checks = [i for i, c in enumerate(nb.cells) if editions.is_check_cell(c)]
    deleted = nbformat.from_dict(nb)
    del deleted.cells[checks[1]]
    appended = nbformat.from_dict(nb)
    forged = '_ = exercises.check("density of x = 3z - 2", 1, 1)'
    appended.cells.append(nbformat.v4.new_code_cell(forged))
    paths = []
    for student, tampered in (("deleter", deleted), ("appender", appended)):
        (tmp_path / student).mkdir()
        paths.append(tmp_path / student / f"{NAME}.ipynb")
        nbformat.write(tampered, paths[-1])
    verdicts = [v for p in paths for v in grade.grade_notebook(p)]
    print(grade.table(verdicts))
    assert {v.verdict for v in verdicts} == {"refused"} and len(verdicts) == 12
    assert "was deleted or changed" in verdicts[0].message
    assert "not the instructor's (added or changed)" in verdicts[-1].message
    shutil.rmtree(tmp_path)
