"""Put an "Open in Colab" badge and the Colab set-up lines in every notebook of notebooks/.

    python tools/colab.py            # update the notebooks in place (idempotent)
    python tools/colab.py --check    # exit 1 if a notebook is not up to date

The repository's address is read from pyproject.toml ([project.urls] Repository), the one
place it is kept. The badge goes at the top of the first (title) cell. The set-up lines go at
the top of the first code cell: on Colab only, they clone the course and pip-install it as a
normal package (fmlib with its checkpoints and tables as package data, and what Colab lacks;
no editable install, whose path hook a running kernel would not see, and no sys.path edit),
then work in its notebooks/ folder; elsewhere they do nothing, so the stored outputs are
unchanged.
The student edition (make student) copies both.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import tomllib

_spec = importlib.util.spec_from_file_location(
    "notebook_rewrite", Path(__file__).with_name("notebook_rewrite.py")
)
notebook_rewrite = importlib.util.module_from_spec(_spec)  # the shared rewrite / --check loop
_spec.loader.exec_module(notebook_rewrite)
ROOT = Path(__file__).resolve().parent.parent
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n\n?")
SETUP_START = "# Colab set-up (tools/colab.py): does nothing outside Colab."
SETUP_END = "# End of Colab set-up."
CLONE = "/content/course"  # where Colab clones the course


def repository() -> str:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    url = meta["project"]["urls"]["Repository"].rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(
            f"[project.urls] Repository must be https://github.com/OWNER/NAME, got {url}"
        )
    return url


def badge(repo: str, name: str) -> str:
    path = repo.removeprefix("https://github.com/")
    link = f"https://colab.research.google.com/github/{path}/blob/main/notebooks/{name}"
    return f"[![Open In Colab]({BADGE_IMAGE})]({link})\n\n"


def setup_lines(repo: str) -> str:
    return "\n".join(
        [
            SETUP_START,
            "import sys",
            "",
            'if "google.colab" in sys.modules:  # fetch the course, pip-install it and its needs',
            f"    !git clone -q --depth 1 {repo} {CLONE}",
            f"    %pip install -q {CLONE}",
            f"    %cd {CLONE}/notebooks",
            SETUP_END,
            "",
        ]
    )


def with_colab(nb: nbformat.NotebookNode, name: str, repo: str) -> nbformat.NotebookNode:
    """The notebook with its badge and set-up lines (replacing older ones)."""
    title = next(c for c in nb.cells if c.cell_type == "markdown")
    title.source = badge(repo, name) + BADGE.sub("", title.source)
    code = next(c for c in nb.cells if c.cell_type == "code")
    source = code.source
    if source.startswith(SETUP_START):
        source = source.split(SETUP_END, 1)[1].lstrip("\n")
    code.source = setup_lines(repo) + source
    return nb


def main(argv: list[str] | None = None) -> int:
    repo = repository()
    return notebook_rewrite.main(
        lambda nb, path: with_colab(nb, path.name, repo),
        __doc__.split("\n")[0],
        "out of date",
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
