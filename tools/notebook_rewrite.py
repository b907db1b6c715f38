"""The in-place rewrite of notebooks/*.ipynb shared by tools/slides.py and tools/colab.py.

Each tool is a transform `(notebook, path) -> notebook`; `main` reads every notebook (or the
paths given), applies the transform, writes the notebooks whose text changed and reports
them; with `--check` it writes nothing and exits 1 if any is out of date (CI's test).
The tools are scripts, not a package: each loads this file by its path.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
Transform = Callable[[nbformat.NotebookNode, Path], nbformat.NotebookNode]


def rewrite(transform: Transform, paths: Iterable[Path], check: bool) -> list[str]:
    """The names of the notebooks that `transform` changes; written unless `check`."""
    stale = []
    for path in paths:
        text = path.read_text()
        new = nbformat.writes(transform(nbformat.reads(text, as_version=4), path)) + "\n"
        if new != text:
            stale.append(path.name)
            if not check:
                path.write_text(new)
    return stale


def main(transform: Transform, description: str, stale: str, argv: list[str] | None) -> int:
    """The command line of a rewriting tool: `[--check] [notebooks...]` (default: every
    notebook of notebooks/). Prints `name: <stale>` (with --check) or `name: updated`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="only report what is out of date")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    names = rewrite(transform, paths, args.check)
    for name in names:
        print(f"{name}: {stale if args.check else 'updated'}")
    return 1 if args.check and names else 0
