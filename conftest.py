"""Settings for every pytest run from the repository root (unit tests, nbval notebooks, the
browser tests): nbval's output timeout, the seconds each notebook took (tools/ci_times.py),
and xdist's order of work (longest first)."""

from __future__ import annotations

import importlib.util
import re
from collections import defaultdict
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "ci_times", Path(__file__).parent / "tools" / "ci_times.py"
)
ci_times = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ci_times)

# nbval waits a hard-coded 5 s for each IOPub message after a cell's reply; on a busy CI
# machine (two xdist workers, each training or integrating) that is not always enough.
NBVAL_OUTPUT_TIMEOUT_S = 60


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval.plugin.IPyNbCell
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT_S


# --- what each notebook cost, per kind of run (the table at the end of `make test`) ---

# Tests that run one whole notebook, parametrized by it: each is a unit of work of its own
# for xdist (not its module's), and its seconds go to the named column.
PER_NOTEBOOK = {
    "tests/test_grade.py::test_student_edition_runs_top_to_bottom_with_nothing_attempted": (
        "student edition"
    ),
    "tests/test_grade.py::test_instructor_edition_is_all_correct": "instructor graded",
    "tests/ui/test_notebooks.py::test_notebook_runs_and_widgets_redraw": "browser",
}
NBVAL_ID = re.compile(r"^(?:.*/)?(\d\d_[^/]+)\.ipynb::")
PARAM_ID = re.compile(r"^(.*)\[(\d\d_[^\]]+?)(?:\.ipynb)?\]$")
_seconds: dict[tuple[str, str], float] = defaultdict(float)
_skipped: set[tuple[str, str]] = set()


def _column(nodeid: str) -> tuple[str, str] | None:
    """(column, notebook stem) for a test that runs a notebook, else None."""
    if m := NBVAL_ID.match(nodeid):
        return ci_times.setting(), m.group(1)
    if (m := PARAM_ID.match(nodeid)) and m.group(1) in PER_NOTEBOOK:
        return PER_NOTEBOOK[m.group(1)], m.group(2)
    return None


def pytest_configure(config: pytest.Config) -> None:
    global _controller
    _controller = not hasattr(config, "workerinput")  # xdist workers report to the controller


_controller = True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _controller and (where := _column(report.nodeid)):
        _seconds[where] += report.duration
        if report.skipped:  # ran nothing (test_grade grades one instructor notebook in CI)
            _skipped.add(where)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _controller or not _seconds:
        return
    columns: dict[str, dict[str, float]] = defaultdict(dict)
    for (column, stem), seconds in _seconds.items():
        if (column, stem) not in _skipped:
            columns[column][stem] = seconds
    for column, seconds in columns.items():
        ci_times.record(column, seconds)


# --- xdist: longest units of work first ---


def _make_scheduler(base):
    class LongestFirst(base):
        """--dist loadscope, with each notebook-sized test a unit of its own and the units
        sent longest first (a worker takes its next unit while it still has two tests to
        run: a long unit taken last would keep one worker busy while the other idles)."""

        def _split_scope(self, nodeid: str) -> str:
            m = PARAM_ID.match(nodeid)
            if m and m.group(1) in PER_NOTEBOOK:
                return nodeid
            return super()._split_scope(nodeid)

        def _assign_work_unit(self, node) -> None:
            if not getattr(self, "_sorted", False):  # the queue is complete: sort it once
                self._sorted = True
                units = sorted(self.workqueue.items(), key=lambda u: -_unit_cost(u[0], len(u[1])))
                self.workqueue.clear()
                self.workqueue.update(units)
            super()._assign_work_unit(node)

    return LongestFirst


def _unit_cost(scope: str, items: int) -> float:
    """Estimated seconds of a unit (only their order matters): a notebook's (measured, else
    guessed: tools/ci_times.py) plus 40 s of slider checks in the browser; a browser test
    module 100 s + 30 s a test (the site's is the longest: ~75 s of build, then every
    control of every page); another test module 30 s + 25 s per test marked slow if it has
    any (test_nbgrader.py's pipeline runs notebook 01 six times), plus 0.1 s a test."""
    if m := re.match(r"^(?:.*/)?(\d\d_[^/]+)\.ipynb$", scope):  # nbval: a whole notebook
        return ci_times.cost(m.group(1), ci_times.setting())
    if (m := PARAM_ID.match(scope)) and m.group(1) in PER_NOTEBOOK:
        column = PER_NOTEBOOK[m.group(1)]
        extra = 40.0 if column == "browser" else 0.0  # the slider moves after Run All
        return ci_times.cost(m.group(2), column) + extra
    if scope.startswith("tests/ui/"):  # starts its own JupyterLab, or builds the site
        return 100.0 + 30.0 * items
    path = Path(__file__).parent / scope.split("::")[0]
    slow = path.read_text().count("mark.slow") if path.suffix == ".py" and path.is_file() else 0
    return 0.1 * items + (30.0 + 25.0 * slow if slow else 0.0)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    return _make_scheduler(LoadScopeScheduling)(config, log)
