"""fmlib.editions: the student edition is the instructor edition without its answers."""

import nbformat

from fmlib import editions

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
        "scale = None  # your code here\n"
        "answer_area = None  # your code here\n"
        "answer_a = None  # your code here\n"
        "answer_b = None  # your code here\n"
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
        "if True:\n    answer = None  # your code here\n# your code here"
    )


def test_student_edition_clears_exercise_outputs_only():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("y = 1", execution_count=1,
                                  outputs=[nbformat.v4.new_output("stream", text="kept")]),
        nbformat.v4.new_code_cell(SOLVED, execution_count=2,
                                  outputs=[nbformat.v4.new_output("stream", text="done")]),
        nbformat.v4.new_code_cell('_ = exercises.check("area", answer_area, 12.0)',
                                  execution_count=3,
                                  outputs=[nbformat.v4.new_output("stream", text="✅")]),
    ]  # fmt: skip
    out = editions.student_edition(nb, "00_x.ipynb")
    assert out.cells[0].source == "# Title" and "Student edition" in out.cells[1].source
    kept, solution, check = out.cells[2:]
    assert kept.outputs and kept.execution_count == 1
    assert not solution.outputs and solution.execution_count is None
    assert "BEGIN SOLUTION" not in solution.source and "3.0 * scale" not in solution.source
    assert not check.outputs and check.source == nb.cells[3].source
    assert nb.cells[2].outputs, "the instructor notebook itself is left untouched"


def test_student_folder_is_in_sync_with_notebooks():
    stale = editions.out_of_date()
    assert not stale, f"student/ is out of date (run `make student`): {stale}"


def test_every_instructor_notebook_has_exercises_and_solutions():
    for path in sorted((editions.ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        sources = [c.source for c in nb.cells if c.cell_type == "code"]
        solutions = sum("### BEGIN SOLUTION" in s for s in sources)
        assert solutions >= 3, f"{path.name}: {solutions} solution blocks, at least 3 wanted"
