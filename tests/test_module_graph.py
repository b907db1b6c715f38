"""fmlib's import graph, read from the source (ast): figure modules import maths modules,
never each other, and no module imports itself back through others (no cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import fmlib

PACKAGE = Path(fmlib.__file__).parent


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
