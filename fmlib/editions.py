"""The student edition, generated from the instructor edition (notebooks/ -> student/).

    python -m fmlib.editions            # what `make student` runs
    python -m fmlib.editions --check    # exit 1 if student/ is out of date

Solutions sit between nbgrader's markers in code cells. In the student edition each block
becomes one stub per name it assigns (`answer = None  # your code here`), so the notebook still
runs top to bottom and every check says "not attempted yet"; hidden tests are removed; the
outputs of exercise cells (solutions and checks) are cleared; everything else keeps its outputs,
so the student edition reads well without a kernel.

Why not nbgrader's ClearSolutions: its stub is one fixed string per language (by default
`raise NotImplementedError()`, which stops a top-to-bottom run), and nbgrader would add a
database, a server extension and ~30 packages to the course's environment for a 60-line
transformation. The markers are nbgrader's, so a lecturer who uses nbgrader grades directly.
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
STUB = "None  # your code here"
_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)### BEGIN (?P<kind>SOLUTION|HIDDEN TESTS)[^\n]*\n"
    r"(?P<body>.*?)"
    r"^[ \t]*### END (?P=kind)[^\n]*(?:\n|\Z)",
    re.DOTALL | re.MULTILINE,
)
BANNER = (
    "> **Student edition** (generated from `notebooks/` by `make student`; do not edit). "
    "Fill in each cell marked `# your code here`, run it, then run the check below it. "
    "Grade the whole notebook with `python -m fmlib.grade student/{name}`."
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


def _stub(match: re.Match) -> str:
    if match["kind"] == "HIDDEN TESTS":
        return ""
    indent = match["indent"]
    body = "\n".join(line[len(indent) :] for line in match["body"].splitlines())
    names = assigned_names(body)
    lines = [f"{name} = {STUB}" for name in names] or ["# your code here"]
    return "".join(f"{indent}{line}\n" for line in lines)


def strip_solutions(source: str) -> str:
    """The source with every solution block replaced by stubs and hidden tests removed."""
    return _BLOCK.sub(_stub, source).rstrip("\n")


def is_exercise_cell(source: str) -> bool:
    return "### BEGIN SOLUTION" in source or bool(
        re.search(r"exercises\.check(?:_choice)?\(", source)
    )


def student_edition(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The student edition of the instructor notebook `nb` (named `name`)."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if cell.cell_type != "code" or not is_exercise_cell(cell.source):
            continue
        cell.source = strip_solutions(cell.source)
        cell.outputs = []
        cell.execution_count = None
    banner = nbformat.v4.new_markdown_cell(BANNER.format(name=name))
    banner.id = "student-edition-banner"
    out.cells.insert(1 if out.cells and out.cells[0].cell_type == "markdown" else 0, banner)
    return out


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def build(src: Path = ROOT / "notebooks", dst: Path = ROOT / "student") -> dict[Path, str]:
    """{student path: its text} for every instructor notebook in `src`."""
    result = {}
    for path in sorted(src.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        result[dst / path.name] = render(student_edition(nb, path.name))
    return result


def out_of_date(src: Path = ROOT / "notebooks", dst: Path = ROOT / "student") -> list[str]:
    """Student notebooks that differ from a fresh build, are missing, or have no source."""
    wanted = build(src, dst)
    stale = [p.name for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    extra = [p.name for p in dst.glob("*.ipynb") if p not in wanted]
    return sorted(stale + extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmlib.editions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="only report what is out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = out_of_date()
        for name in stale:
            print(f"student/{name} is out of date: run `make student`")
        return 1 if stale else 0
    dst = ROOT / "student"
    dst.mkdir(exist_ok=True)
    for old in dst.glob("*.ipynb"):
        old.unlink()
    for path, text in build(dst=dst).items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
