"""Put an "Open in Colab" badge and the Colab set-up lines in every notebook of notebooks/.

    python tools/colab.py            # update the notebooks in place (idempotent)
    python tools/colab.py --check    # exit 1 if a notebook is not up to date

The repository's address is read from pyproject.toml ([project.urls] Repository), the one
place it is kept. The badge goes at the top of the first (title) cell. The set-up lines go at
the top of the first code cell: on Colab only, they clone the course (fmlib, checkpoints) and
install what Colab lacks; elsewhere they do nothing, so the stored outputs are unchanged.
The student edition (make student) copies both.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import tomllib

ROOT = Path(__file__).resolve().parent.parent
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n\n?")
SETUP_START = "# Colab set-up (tools/colab.py): does nothing outside Colab."
SETUP_END = "# End of Colab set-up."


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
            'if "google.colab" in sys.modules:  # fetch the course, install what Colab lacks',
            f"    !git clone -q --depth 1 {repo} /content/course",
            "    %pip install -q -e /content/course",
            "    %cd /content/course/notebooks",
            '    sys.path.insert(0, "/content/course")',
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report what is out of date")
    args = parser.parse_args(argv)
    repo, stale = repository(), []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = path.read_text()
        nb = with_colab(nbformat.reads(text, as_version=4), path.name, repo)
        new = nbformat.writes(nb) + "\n"
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new)
    for name in stale:
        print(f"{name}: {'out of date' if args.check else 'updated'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
