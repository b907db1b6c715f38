"""fmlib.editions: the student edition is the instructor edition without its answers
(tools/editions.py writes it for this checkout)."""

import copy
import importlib.util
from pathlib import Path

import nbformat

from fmlib import editions, exercises

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("tools_editions", ROOT / "tools" / "editions.py")
tools_editions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tools_editions)

SOLVED = """x = 2
# your answer: a float
### BEGIN SOLUTION
scale = x ** 2
answer_area, (answer_a, answer_b) = 3.0 * scale, (1, 2)
### END SOLUTION
print("done")"""


def test_solution_blocks_become_safe_stubs():
    out = editions.strip_solutions(SOLVED)
    assert out == (
        "x = 2\n# your answer: a float\n"
        "scale = None\n"
        "answer_area = None\n"
        "answer_a = None\n"
        "answer_b = None\n"
        "# your code here\n"
        'print("done")'
    )
    exec(compile(out, "<student>", "exec"), {"print": lambda *_: None})  # runs, nothing defined


def test_indented_blocks_hidden_tests_and_blocks_without_assignments():
    code = (
        "if True:\n    ### BEGIN SOLUTION\n    answer = 1\n    ### END SOLUTION\n"
        "### BEGIN HIDDEN TESTS\nassert answer == 1\n### END HIDDEN TESTS\n"
        "### BEGIN SOLUTION\nplt.plot(x)\n### END SOLUTION"
    )
    assert editions.strip_solutions(code) == (
        "if True:\n    answer = None\n    # your code here\n# your code here"
    )


def test_student_edition_clears_every_output_from_blank_to_check():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell(
            "y = 1", execution_count=1, outputs=[nbformat.v4.new_output("stream", text="kept")]
        ),
        nbformat.v4.new_code_cell(
            SOLVED, execution_count=2, outputs=[nbformat.v4.new_output("stream", text="done")]
        ),
        nbformat.v4.new_code_cell(
            "print(12.0)",
            execution_count=3,
            outputs=[nbformat.v4.new_output("stream", text="12.0")],
        ),
        nbformat.v4.new_code_cell(
            'secret = 12.0\n_ = exercises.check("area", answer_area, secret)',
            execution_count=4,
            outputs=[nbformat.v4.new_output("stream", text="✅")],
        ),
        nbformat.v4.new_code_cell(
            "z = 2", execution_count=5, outputs=[nbformat.v4.new_output("stream", text="after")]
        ),
    ]
    assert len(editions.answer_leaks(nb)) == 3 and editions.cleared_outputs(nb) == 3
    out = editions.student_edition(nb, "00_x.ipynb")
    assert out.cells[0].source == "# Title" and "Student edition" in out.cells[1].source
    kept, solution, measure, check, after = out.cells[2:]
    assert kept.outputs and kept.execution_count == 1 and after.outputs
    assert not solution.outputs and solution.execution_count is None
    assert "BEGIN SOLUTION" not in solution.source and "3.0 * scale" not in solution.source
    assert not measure.outputs and measure.source == "print(12.0)"
    assert not check.outputs and check.source == '_ = exercises.check("area", answer_area)'
    assert editions.answer_leaks(out) == []
    assert nb.cells[2].outputs, "the instructor notebook itself is left untouched"
    key = editions.answer_key(nb, "00_x.ipynb")["area"]
    assert "secret = 12.0" in exercises.unseal(key["code"]) and key["export"] == []


def test_nbgraders_own_preprocessors_give_the_student_edition():
    """nbgrader's ClearSolutions (stub `# your code here`) and ClearHiddenTests applied to the
    nbgrader source give the student edition, cell by cell, for every course notebook."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    clear = ClearSolutions(code_stub={"python": editions.CODE_STUB})
    hidden = ClearHiddenTests()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        source = editions.nbgrader_source(nb, path.name)
        assert any("exercises.require_correct(" in c.source for c in source.cells)
        released, _ = clear.preprocess(copy.deepcopy(source), {})
        released, _ = hidden.preprocess(released, {})
        ours = editions.without_nbgrader_metadata(editions.student_edition(nb, path.name))
        assert editions.without_nbgrader_metadata(released) == ours, path.name
        roles = [c.metadata["nbgrader"] for c in source.cells]
        assert all(r["solution"] or r["grade"] or r["locked"] for r in roles)
        assert sum(r.get("points", 0) for r in roles) == sum(
            e.points for e in editions.exercises(nb)
        )


def test_student_folder_is_in_sync_with_notebooks():
    stale = tools_editions.out_of_date()
    assert not stale, f"student/ is out of date (run `make student`): {stale}"


def test_every_instructor_notebook_has_exercises_and_solutions():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        sources = [c.source for c in nb.cells if c.cell_type == "code"]
        solutions = sum("### BEGIN SOLUTION" in s for s in sources)
        assert solutions >= 3, f"{path.name}: {solutions} solution blocks, at least 3 wanted"
