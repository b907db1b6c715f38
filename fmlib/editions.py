"""The student edition and the nbgrader source, generated from the instructor edition.

Pure functions of notebooks (nothing here reads or writes the course's folders):
`python -m fmlib.grade` reads exercises with them, and the repository's tools write the files:

    python tools/editions.py            # what `make student` runs: student/ and the answer key
    python tools/editions.py --check    # exit 1 if student/ or the answer key is out of date
    python tools/nbgrader_course.py     # what `make assignments` runs

An exercise is a solution cell (code between nbgrader's `### BEGIN SOLUTION` and
`### END SOLUTION` markers) followed, possibly after measurement cells, by one check cell
(`exercises.check(...)` or `exercises.check_choice(...)`). From `notebooks/`:

- the student edition (`student/`): each solution block becomes one `name = None` line per name
  it assigns and the line `# your code here`, so the notebook still runs top to bottom and every
  check says "not attempted yet"; hidden tests are removed; every output from the solution cell
  up to and including its check is cleared (the measurements a prediction is compared with,
  the figures that show the answer); each check cell becomes the bare call
  `_ = exercises.check("name", answer)`, whose expected value and typical mistakes come from the
  sealed answer key, not the page; everything else keeps its outputs, so the student edition
  reads well without a kernel;
- the answer key (`fmlib/answer_key.py`): each exercise's instructor check cell, sealed (zlib +
  base64: out of view, not encrypted), with the names later cells use from it;
- the nbgrader source (`nbgrader_source`, used by tools/nbgrader_course.py): the student edition's
  cells with the solutions kept between the markers (after the `name = None` stubs, so that
  nbgrader's ClearSolutions with the stub `# your code here` gives the student edition exactly),
  nbgrader metadata on every cell (solution cells; autograder test cells worth POINTS; every other
  cell read-only), and a hidden test `exercises.require_correct("name")` in each check cell.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass

import nbformat

from fmlib.exercises import seal

CODE_STUB = "# your code here"  # nbgrader's ClearSolutions.code_stub for the course
BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"  # nbgrader's delimiters
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
POINTS = {"check": 2, "check_choice": 1}  # a computed answer, a prediction
_CHECK_CALL = re.compile(r"exercises\.check(?:_choice)?\(")
BANNER = (
    "> **Student edition** (generated from the instructor's `notebooks/`; do not edit). "
    "Fill in each cell marked `# your code here`, run it, then run the check below it. "
    "Grade the whole notebook with `python -m fmlib.grade {name}`."
)


def assigned_names(code: str) -> list[str]:
    """Names a block of code assigns at its top level, in order of first assignment."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names: dict[str, None] = {}

    def visit(target: ast.AST) -> None:
        if isinstance(target, ast.Name):
            names[target.id] = None
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                visit(element)
        elif isinstance(target, ast.Starred):
            visit(target.value)

    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                visit(target)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            visit(node.target)
    return list(names)


def _regions(source: str, begin: str, end: str) -> list[tuple[int, int]]:
    """(first, last) line numbers of every region between lines containing begin and end."""
    regions, start = [], None
    for i, line in enumerate(source.split("\n")):
        if begin in line:
            if start is not None:
                raise ValueError(f"nested '{begin}' in:\n{source}")
            start = i
        elif end in line:
            if start is None:
                raise ValueError(f"'{end}' without '{begin}' in:\n{source}")
            regions.append((start, i))
            start = None
    if start is not None:
        raise ValueError(f"'{begin}' without '{end}' in:\n{source}")
    return regions


def _rewrite(source: str, begin: str, end: str, replace) -> str:
    """Line by line, as nbgrader does: each region (markers included) becomes replace(indent,
    body lines); the lines are joined with '\\n' again."""
    lines = source.split("\n")
    out, last = [], 0
    for first, stop in _regions(source, begin, end):
        out += lines[last:first]
        indent = re.match(r"[ \t]*", lines[first]).group(0)
        out += replace(indent, lines[first + 1 : stop])
        last = stop + 1
    out += lines[last:]
    return "\n".join(out)


def _stub_lines(indent: str, body: list[str]) -> list[str]:
    names = assigned_names("\n".join(line[len(indent) :] for line in body))
    return [f"{indent}{name} = None" for name in names]


def strip_solutions(source: str) -> str:
    """The source with each solution block replaced by its stubs and hidden tests removed."""
    source = _rewrite(source, BEGIN_HIDDEN, END_HIDDEN, lambda indent, body: [])
    return _rewrite(
        source,
        BEGIN_SOLUTION,
        END_SOLUTION,
        lambda indent, body: _stub_lines(indent, body) + [indent + CODE_STUB],
    )


def _stubs_before_solutions(source: str) -> str:
    """The nbgrader source of a solution cell: the stubs, then the block (kept)."""

    def keep(indent, body):
        head = f"{indent}### {BEGIN_SOLUTION}"
        return [*_stub_lines(indent, body), head, *body, f"{indent}### {END_SOLUTION}"]

    return _rewrite(source, BEGIN_SOLUTION, END_SOLUTION, keep)


def without_hidden_tests(source: str) -> str:
    return _rewrite(source, BEGIN_HIDDEN, END_HIDDEN, lambda indent, body: [])


# ---------------------------------------------------------------------------- exercises


@dataclass
class Exercise:
    name: str
    kind: str  # "check" or "check_choice"
    answer: str  # the source of the answer argument
    solution: int  # cell index of the solution cell (== check when there is none)
    check: int  # cell index of the check cell

    @property
    def points(self) -> int:
        return POINTS[self.kind]

    def student_check(self) -> str:
        """The check cell of the student edition: the call, with no expected value in view."""
        line = f"_ = exercises.{self.kind}({json.dumps(self.name)}, {self.answer})"
        if len(line) <= 100:
            return line
        return f"_ = exercises.{self.kind}(\n    {json.dumps(self.name)}, {self.answer}\n)"


def check_calls(source: str) -> list[tuple[str, str, str]]:
    """(kind, name, answer source) of every exercises.check / check_choice call in `source`."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    calls = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in POINTS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "exercises"
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Constant)
        ):
            answer = ast.get_source_segment(source, node.args[1])
            calls.append((node.func.attr, node.args[0].value, answer))
    return sorted(calls, key=lambda c: source.index(c[1]))


def _answer_name(answer: str, solution: str) -> str:
    """What the student edition's check passes: the answer expression when it is a name,
    else the name in it that the solution assigns (the key's code evaluates the expression)."""
    try:
        expr = ast.parse(answer, mode="eval").body
    except SyntaxError:
        return answer
    if isinstance(expr, ast.Name):
        return answer
    calls = {id(n.func) for n in ast.walk(expr) if isinstance(n, ast.Call)}
    loads = [n.id for n in ast.walk(expr) if isinstance(n, ast.Name) and id(n) not in calls]
    blocks = _regions(solution, BEGIN_SOLUTION, END_SOLUTION)
    lines = solution.split("\n")
    assigned = [
        n for a, b in blocks for n in assigned_names("\n".join(x.strip() for x in lines[a + 1 : b]))
    ]
    chosen = [n for n in loads if n in assigned] or loads
    return chosen[0] if chosen else answer


def is_solution_cell(cell) -> bool:
    """A cell with a solution block (instructor) or its stub (student edition)."""
    return cell.cell_type == "code" and (
        f"### {BEGIN_SOLUTION}" in cell.source
        or any(line.strip().endswith(CODE_STUB) for line in cell.source.split("\n"))
    )


def is_check_cell(cell) -> bool:
    return cell.cell_type == "code" and bool(_CHECK_CALL.search(cell.source))


def exercises(nb: nbformat.NotebookNode) -> list[Exercise]:
    """The notebook's exercises in order: each check cell with the solution cell before it."""
    found, solution = [], None
    for i, cell in enumerate(nb.cells):
        if is_solution_cell(cell) and is_check_cell(cell):
            raise ValueError(f"cell {i}: a solution and its check belong in separate cells")
        if is_solution_cell(cell):
            if solution is not None:
                raise ValueError(f"cell {i}: the solution in cell {solution} has no check")
            solution = i
        elif is_check_cell(cell):
            calls = check_calls(cell.source)
            if len(calls) != 1:
                raise ValueError(f"cell {i}: one check per cell, found {len(calls)}")
            kind, name, answer = calls[0]
            if solution is not None:
                answer = _answer_name(answer, nb.cells[solution].source)
            found.append(Exercise(name, kind, answer, i if solution is None else solution, i))
            solution = None
    names = [e.name for e in found]
    if len(set(names)) != len(names):
        raise ValueError(f"exercise names must be unique: {names}")
    return found


def exercise_names(nb: nbformat.NotebookNode) -> list[str]:
    return [e.name for e in exercises(nb)]


def answer_leaks(nb: nbformat.NotebookNode) -> list[str]:
    """Stored outputs between a blank (the solution cell) and its check, inclusive: each could
    show the answer (a printed value, a figure). Empty for a proper student edition."""
    leaks = []
    for ex in exercises(nb):
        for i in range(ex.solution, ex.check + 1):
            cell = nb.cells[i]
            for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
                kind = "figure" if "image/png" in out.get("data", {}) else out.output_type
                leaks.append(f"{ex.name!r}: cell {i} stores a {kind} output")
    return leaks


# ---------------------------------------------------------------------------- editions


def _export(nb: nbformat.NotebookNode, check: int) -> list[str]:
    """Names the check cell assigns that a later code cell mentions."""
    later = "\n".join(c.source for c in nb.cells[check + 1 :] if c.cell_type == "code")
    names = assigned_names(without_hidden_tests(nb.cells[check].source))
    return [n for n in names if n != "_" and re.search(rf"(?<![\w.]){re.escape(n)}\b", later)]


def answer_key(nb: nbformat.NotebookNode, name: str) -> dict[str, dict]:
    """{exercise: {notebook, code (sealed), export}} for the notebook `nb` (named `name`)."""
    return {
        ex.name: {
            "notebook": name,
            "code": seal(without_hidden_tests(nb.cells[ex.check].source)),
            "export": _export(nb, ex.check),
        }
        for ex in exercises(nb)
    }


def _clear(cell) -> int:
    cleared = len(cell.get("outputs", []))
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    return cleared


def _banner(name: str):
    banner = nbformat.v4.new_markdown_cell(BANNER.format(name=name))
    banner.id = "student-edition-banner"
    return banner


def _edition(nb: nbformat.NotebookNode, name: str, nbgrader: bool) -> nbformat.NotebookNode:
    out = copy.deepcopy(nb)
    found = exercises(out)
    span = {i for ex in found for i in range(ex.solution, ex.check + 1)}
    checks = {ex.check: ex for ex in found}
    out.metadata["fmlib_cleared_outputs"] = 0
    for i, cell in enumerate(out.cells):
        if i in span:
            out.metadata["fmlib_cleared_outputs"] += _clear(cell)
        role = "readonly"
        if i in checks:
            ex = checks[i]
            role = "check"
            cell.source = ex.student_check()
            if nbgrader:
                original = nb.cells[i].source.split("\n")
                hidden = [
                    line
                    for first, stop in _regions(nb.cells[i].source, BEGIN_HIDDEN, END_HIDDEN)
                    for line in original[first + 1 : stop]
                ]
                cell.source += "\n".join(
                    [
                        "",
                        f"### {BEGIN_HIDDEN}",
                        *hidden,
                        f"exercises.require_correct({json.dumps(ex.name)})",
                        f"### {END_HIDDEN}",
                    ]
                )
        elif is_solution_cell(cell):
            role = "solution"
            cell.source = (_stubs_before_solutions if nbgrader else strip_solutions)(cell.source)
        elif cell.cell_type == "code":
            cell.source = without_hidden_tests(cell.source) if not nbgrader else cell.source
        if nbgrader:
            ex = checks.get(i)
            cell.metadata["nbgrader"] = {
                "grade": role == "check",
                "grade_id": f"{role}-{i:03d}",
                "locked": role != "solution",
                "schema_version": 3,
                "solution": role == "solution",
                "task": False,
                **({"points": ex.points} if ex else {}),
            }
    banner = _banner(name)
    if nbgrader:
        banner.metadata["nbgrader"] = {
            "grade": False,
            "grade_id": "banner",
            "locked": True,
            "schema_version": 3,
            "solution": False,
            "task": False,
        }
    out.cells.insert(1 if out.cells and out.cells[0].cell_type == "markdown" else 0, banner)
    return out


def student_edition(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The student edition of the instructor notebook `nb` (named `name`)."""
    out = _edition(nb, name, nbgrader=False)
    del out.metadata["fmlib_cleared_outputs"]
    return out


def cleared_outputs(nb: nbformat.NotebookNode) -> int:
    """How many stored outputs the student edition clears (solution cell to check, inclusive)."""
    return _edition(nb, "x", nbgrader=False).metadata["fmlib_cleared_outputs"]


def nbgrader_source(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The notebook nbgrader's generate_assignment turns into the student edition."""
    out = _edition(nb, name, nbgrader=True)
    del out.metadata["fmlib_cleared_outputs"]
    return out


def without_nbgrader_metadata(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy without what nbgrader adds (cell metadata nbgrader, editable, deletable)."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        for key in ("nbgrader", "editable", "deletable"):
            cell.metadata.pop(key, None)
    out.metadata.pop("celltoolbar", None)
    return out


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def render_key(key: dict[str, dict]) -> str:
    """fmlib/answer_key.py's text (ruff-clean: long sealed strings sit on their own lines)."""
    lines = [
        '"""The sealed answer key: each exercise\'s instructor check cell (zlib + base64, out of',
        "view, not encrypted). Generated by `make student` (python tools/editions.py) from",
        'notebooks/; do not edit."""',
        "",
        "KEY = {",
    ]
    for name, entry in key.items():
        export = ", ".join(json.dumps(n) for n in entry["export"])
        lines += [
            f"    {json.dumps(name)}: {{",
            f'        "notebook": {json.dumps(entry["notebook"])},',
            f'        "export": [{export}],',
            f'        "code": {json.dumps(entry["code"])},  # noqa: E501',
            "    },",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"
