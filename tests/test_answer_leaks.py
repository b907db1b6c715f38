"""The student's page holds no answer: no stored output between a blank and its check (no
printed value, no figure), and no check that computes its expected value in view."""

import ast
import importlib.util
from pathlib import Path

import nbformat
import pytest

from fmlib import editions

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("tools_editions", ROOT / "tools" / "editions.py")
tools_editions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tools_editions)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
STUDENT = sorted((ROOT / "student").glob("*.ipynb"))


def _fresh_editions(tmp: Path) -> list[Path]:
    """The student edition of every instructor notebook, regenerated into `tmp`."""
    paths = []
    for path, text in tools_editions.build(dst=tmp).items():
        if path.suffix == ".ipynb":
            path.write_text(text)
            paths.append(path)
    return paths


def _page_problems(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    found = editions.exercises(nb)
    problems = [f"{path.name}: {leak}" for leak in editions.answer_leaks(nb)]
    for ex in found:
        check = nb.cells[ex.check].source
        if check != ex.student_check():
            problems.append(f"{path.name}: {ex.name!r}: the check shows more than its call")
        calls = [
            n
            for n in ast.walk(ast.parse(check))
            if isinstance(n, ast.Call) and getattr(n.func, "attr", "") in ("check", "check_choice")
        ]
        if len(calls) != 1 or len(calls[0].args) != 2 or calls[0].keywords:
            problems.append(f"{path.name}: {ex.name!r}: the check passes an expected value")
        if "### BEGIN" in nb.cells[ex.solution].source:
            problems.append(f"{path.name}: {ex.name!r}: the solution is on the page")
    if len(found) < 3:
        problems.append(f"{path.name}: {len(found)} exercises found, at least 3 expected")
    return problems


def test_fresh_student_editions_show_no_answer(tmp_path):
    paths = _fresh_editions(tmp_path)
    assert len(paths) == len(NOTEBOOKS)
    problems = [p for path in paths for p in _page_problems(path)]
    assert problems == [], "\n".join(problems)


def test_the_leak_test_can_fail():
    """The instructor edition stores every exercise's outputs and computes each expected value
    in view: the same walk finds it."""
    problems = [p for path in NOTEBOOKS for p in _page_problems(path)]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert editions.answer_leaks(nb), f"{path.name}: no stored exercise output to catch"
        assert any(path.name in p and "passes an expected value" in p for p in problems)


@pytest.mark.parametrize("path", STUDENT, ids=[p.name for p in STUDENT])
def test_student_folder_shows_no_answer(path):
    problems = _page_problems(path)
    assert problems == [], "\n".join(problems) + "\n(run `make student`)"
