"""fmlib's import graph, read from the source (ast): figure modules import maths modules,
never each other; maths modules never import a drawing module (figures, plots, widgets,
panel) or matplotlib / ipywidgets; no module imports itself back through others (no cycle);
each notebook imports one figure module, its own (what two notebooks share is maths, and
lives in a maths module)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import fmlib

PACKAGE = Path(fmlib.__file__).parent
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
DRAWING = (
    "fmlib.figures",
    "fmlib.plots",
    "fmlib.glyphs",
    "fmlib.png",
    "fmlib.widgets",
    "fmlib.panel",
    "fmlib.figure_check",
)
DRAWING_LIBRARIES = ("matplotlib", "ipywidgets")
# fmlib.repro.versions() reports the installed versions of the drawing libraries too
THIRD_PARTY_EXCEPTIONS = {"fmlib.repro"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, is_package: bool = False) -> set[str]:
    """The fmlib modules a module's source imports, anywhere in it (functions included):
    `import fmlib.x`, `from fmlib import x`, `from fmlib.x import y`, relative imports."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from .x import y
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # from pkg import module
    return {m for m in found if m == "fmlib" or m.startswith("fmlib.")}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p): p for p in paths}
    graph = {}
    for name, path in modules.items():
        imports = imported_modules(path.read_text(), name, path.name == "__init__.py")
        graph[name] = {m for m in imports if m in modules and m not in (name, "fmlib")}
    return graph


def figure_to_figure(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    figure = lambda m: m.startswith("fmlib.figures.")
    return sorted((a, b) for a, targets in graph.items() if figure(a) for b in targets if figure(b))


def drawing(module: str) -> bool:
    return any(module == d or module.startswith(d + ".") for d in DRAWING)


def maths_importing_drawing(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted(
        (a, b) for a, targets in graph.items() if not drawing(a) for b in targets if drawing(b)
    )


def drawing_libraries(source: str) -> set[str]:
    """The drawing libraries (matplotlib, ipywidgets) a module's source imports, anywhere."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found & set(DRAWING_LIBRARIES)


FIGURE_IMPORT = re.compile(
    r"^\s*(?:from\s+fmlib\.figures\s+import\s+(\w+)(?:\s+as\s+(\w+))?"
    r"|from\s+fmlib\.figures\.(\w+)\s+import|import\s+fmlib\.figures\.(\w+))",
    re.MULTILINE,
)


def figure_imports(code: str) -> list[tuple[str, str | None]]:
    """(figure module, alias) for each figure-module import in a notebook's code."""
    found = []
    for m in FIGURE_IMPORT.finditer(code):
        module = m.group(1) or m.group(3) or m.group(4)
        found.append((module, m.group(2)))
    return found


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_figure_modules_import_maths_modules_never_each_other():
    graph = import_graph()
    assert len([m for m in graph if m.startswith("fmlib.figures.")]) >= 10
    assert figure_to_figure(graph) == []


def test_maths_modules_never_import_drawing_modules():
    graph = import_graph()
    assert len([m for m in graph if not drawing(m)]) >= 20
    assert maths_importing_drawing(graph) == []
    libraries = {
        module_name(p): drawing_libraries(p.read_text())
        for p in sorted(PACKAGE.rglob("*.py"))
        if not drawing(module_name(p)) and module_name(p) not in THIRD_PARTY_EXCEPTIONS
    }
    assert {m: libs for m, libs in libraries.items() if libs} == {}


def test_each_notebook_imports_one_figure_module_as_figs():
    """A second figure module in a notebook means it reuses another notebook's helper: that
    helper is maths and belongs in a maths module (notebook 08 once used 07's marginal field)."""
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert len(notebooks) >= 11
    found = {p.name: figure_imports(notebook_code(p)) for p in notebooks}
    assert {name: imports for name, imports in found.items() if len(imports) > 1} == {}
    aliases = {name: imports[0][1] for name, imports in found.items() if imports}
    assert {name: alias for name, alias in aliases.items() if alias != "figs"} == {}


def test_fmlib_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_checks_can_fail():
    """A planted figure -> figure import and a planted cycle are found, in every spelling."""
    for source in (
        "from fmlib.figures.marginalization import MixtureMarginal",
        "from fmlib.figures import marginalization",
        "import fmlib.figures.marginalization",
        "def f():\n    from .marginalization import MixtureMarginal",
        "from . import marginalization",
    ):
        imports = imported_modules(source, "fmlib.figures.continuity")
        graph = {"fmlib.figures.continuity": imports & {"fmlib.figures.marginalization"}}
        assert figure_to_figure(graph) == [
            ("fmlib.figures.continuity", "fmlib.figures.marginalization")
        ], source
    graph = {
        "fmlib.a": {"fmlib.b"},
        "fmlib.b": {"fmlib.c"},
        "fmlib.c": {"fmlib.a"},
        "fmlib.d": set(),
    }
    assert cycles(graph) == [["fmlib.a", "fmlib.b", "fmlib.c"]]
    assert cycles({"fmlib.a": {"fmlib.b"}, "fmlib.b": set()}) == []
    # maths importing drawing, in every spelling; the drawing libraries, anywhere in a module
    for source in (
        "from fmlib import plots",
        "import fmlib.widgets",
        "def f():\n    from fmlib.figures import training",
    ):
        imports = imported_modules(source, "fmlib.metrics")
        assert maths_importing_drawing({"fmlib.metrics": imports - {"fmlib"}}), source
    assert maths_importing_drawing({"fmlib.plots": {"fmlib.figures.start"}}) == []
    assert drawing_libraries("def f():\n    import matplotlib.pyplot as plt") == {"matplotlib"}
    assert drawing_libraries("from ipywidgets import IntSlider") == {"ipywidgets"}
    assert drawing_libraries("import torch\nfrom torch import nn") == set()
    # a notebook with a second figure module, or another alias
    two = (
        "from fmlib.figures import couplings as figs\n"
        "from fmlib.figures import paths_compared as fig07"
    )
    assert figure_imports(two) == [("couplings", "figs"), ("paths_compared", "fig07")]
    assert figure_imports("import fmlib.figures.start") == [("start", None)]
    assert figure_imports("from fmlib.figures.sampling import mean_se") == [("sampling", None)]
