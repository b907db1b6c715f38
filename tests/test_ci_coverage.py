"""`make test` covers every notebook that notebooks/ holds, found by a glob (never a list), so
a new notebook is covered without editing the tests: native nbval is pytest's own collection
of notebooks/; here, the other kernel settings and 1 thread (tools/portability.py), the
browser test (tests/ui), the student edition's run (tests/test_grade.py, or
tests/test_nbgrader.py for the notebook it autogrades)."""

import importlib.util
import inspect
import os
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


portability = _load("portability", ROOT / "tools" / "portability.py")


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 11
    assert [p.stem for p in portability.NOTEBOOKS] == [p.stem for p in NOTEBOOKS]


def test_portability_runs_every_notebook_in_every_setting_it_needs():
    runs = {name: {p.stem for p in nbs} for name, _, nbs in portability.settings()}
    avx512 = portability.capability() == "AVX512"
    for path in NOTEBOOKS:
        stem, trains = path.stem, portability.trains(path)
        threaded = portability.follows_threads(path)
        wanted = ["default/COMPATIBLE, 1 thread"]
        wanted += ["native, 1 thread"] * threaded
        wanted += ["default/COMPATIBLE, 2 threads"] * (trains and threaded)
        wanted += ["avx2/AVX2, 1 thread"] * (trains and avx512)
        wanted += ["avx2/AVX2, 2 threads"] * (trains and threaded and avx512)
        for name in wanted:
            assert stem in runs.get(name, set()), f"{stem} is not run under {name}"
    jobs = [(name, nb.stem) for name, _, nb in portability.jobs()]
    assert len(jobs) == len(set(jobs)) == sum(len(v) for v in runs.values())


def test_a_pinned_notebook_pins_in_its_setup_cell():
    """follows_threads() reads `threads=1)` anywhere in the code; it must be the setup
    cell's seed_everything, or the notebook would skip its 1-thread run unpinned."""
    for path in NOTEBOOKS:
        if not portability.follows_threads(path):
            cells = nbformat.read(path, as_version=4).cells
            code = [c.source for c in cells if c.cell_type == "code"]
            setup = next(s for s in code if "seed_everything" in s)
            assert "seed_everything(0, threads=1)" in setup, path.name


def test_every_notebook_has_a_browser_test(monkeypatch):
    from ui import config, test_notebooks

    monkeypatch.setattr(config, "NOTEBOOK_DIR", ROOT / "notebooks")  # FMLIB_UI_NOTEBOOKS unset
    assert [p.stem for p in config.notebooks()] == [p.stem for p in NOTEBOOKS]
    test = test_notebooks.test_notebook_runs_and_widgets_redraw
    (mark,) = [m for m in test.pytestmark if m.name == "parametrize"]
    if "FMLIB_UI_NOTEBOOKS" not in os.environ:
        assert [p.stem for p in mark.args[1]] == [p.stem for p in NOTEBOOKS]
    assert "notebooks()," in inspect.getsource(test_notebooks)  # the glob, not a list


def test_every_student_edition_is_run_top_to_bottom():
    test_grade = _load("test_grade_for_coverage", ROOT / "tests" / "test_grade.py")
    test_nbgrader = _load("test_nbgrader_for_coverage", ROOT / "tests" / "test_nbgrader.py")
    run = {p.stem for p in test_grade.STUDENT}
    assert test_grade.AUTOGRADED == test_nbgrader.NAME and test_nbgrader.NAME not in run
    run.add(test_nbgrader.NAME)
    missing = {p.stem for p in NOTEBOOKS} - run
    assert not missing, f"no student-edition run of {sorted(missing)} (student/ current?)"
