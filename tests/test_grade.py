"""fmlib.grade: runs notebooks in a fresh kernel and reports every exercise's verdict."""

import json
import os
from pathlib import Path

import nbformat
import pytest

from fmlib import editions, grade

ROOT = Path(__file__).resolve().parent.parent
SETUP = "from fmlib import exercises"
SOLUTION = "### BEGIN SOLUTION\nanswer_area = 2.0 * 3.0\n### END SOLUTION"
CHECK = (
    '_ = exercises.check("area of a 2 x 3 rectangle", answer_area, 6.0, tol=1e-9,\n'
    '    mistakes={"that is the perimeter": 10.0})'
)
PREDICTION = '### BEGIN SOLUTION\nprediction = "up"\n### END SOLUTION'
CHOICE = '_ = exercises.check_choice("trend", prediction, "up", ("up", "down"))'


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def _student(path: Path) -> Path:
    nb = editions.student_edition(nbformat.read(path, as_version=4), path.name)
    out = path.with_name("student_" + path.name)
    nbformat.write(nb, out)
    return out


def test_instructor_student_and_wrong_answers(tmp_path, capsys):
    solved = _notebook(tmp_path / "ex.ipynb", SETUP, SOLUTION, CHECK, PREDICTION, CHOICE)
    student = _student(solved)
    wrong = _notebook(tmp_path / "wrong.ipynb", SETUP, "answer_area = 10.0", CHECK,
                      'prediction = "down"', CHOICE)  # fmt: skip
    report = tmp_path / "grades.json"
    assert grade.main(["--json", str(report), str(solved), str(student), str(wrong)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "6 exercises: 2 correct, 2 wrong, 2 not attempted"
    verdicts = json.loads(report.read_text())["verdicts"]
    by_notebook = {}
    for v in verdicts:
        by_notebook.setdefault(v["notebook"], []).append((v["exercise"], v["verdict"]))
    assert by_notebook["ex.ipynb"] == [
        ("area of a 2 x 3 rectangle", "correct"),
        ("trend", "correct"),
    ]
    assert [v for _, v in by_notebook["student_ex.ipynb"]] == ["not attempted"] * 2
    assert [v for _, v in by_notebook["wrong.ipynb"]] == ["wrong"] * 2
    messages = [v["message"] for v in verdicts if v["notebook"] == "wrong.ipynb"]
    assert "that is the perimeter" in messages[0]


def test_a_notebook_that_stops_reports_the_checks_it_never_reached(tmp_path, capsys):
    broken = _notebook(tmp_path / "broken.ipynb", SETUP, SOLUTION, "1 / 0", CHECK)
    grade.main([str(broken)])
    out = capsys.readouterr().out
    assert "ZeroDivisionError" in out
    assert out.strip().splitlines()[-1] == "1 exercises: 0 correct, 0 wrong, 1 not attempted"


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        grade.main([str(tmp_path / "missing.ipynb")])
    with pytest.raises(SystemExit):
        grade.main(["--timeout", "0", str(_notebook(tmp_path / "a.ipynb", SETUP))])


STUDENT = sorted((ROOT / "student").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDENT, ids=[p.name for p in STUDENT])
def test_student_edition_runs_top_to_bottom_with_nothing_attempted(path):
    verdicts = grade.grade_notebook(path)
    assert len(verdicts) >= 3
    assert all(v.verdict == "not attempted" for v in verdicts), grade.table(verdicts)
    assert all("did not run" not in v.message for v in verdicts), grade.table(verdicts)


# Every instructor notebook's checks already run under nbval (their stored outputs say
# "correct"); grading them all again would add ~7 minutes to CI, so CI grades notebook 00 and
# FMLIB_GRADE_ALL=1 grades every one (as `make grade NB="notebooks/*.ipynb"` does by hand).
INSTRUCTOR = sorted((ROOT / "notebooks").glob("*.ipynb"))
GRADE_ALL = os.environ.get("FMLIB_GRADE_ALL") == "1"


@pytest.mark.slow
@pytest.mark.parametrize("path", INSTRUCTOR, ids=[p.name for p in INSTRUCTOR])
def test_instructor_edition_is_all_correct(path):
    if not GRADE_ALL and not path.name.startswith("00_"):
        pytest.skip("set FMLIB_GRADE_ALL=1 to grade every instructor notebook")
    verdicts = grade.grade_notebook(path)
    assert len(verdicts) >= 3
    assert all(v.verdict == "correct" for v in verdicts), grade.table(verdicts)
