"""Write this checkout's student edition (student/) and answer key (fmlib/answer_key.py).

    python tools/editions.py            # what `make student` runs
    python tools/editions.py --check    # exit 1 if student/ or the answer key is out of date

The transformation itself (solution blocks -> stubs, cleared outputs, the sealed key) is
fmlib.editions, pure functions of a notebook; this script reads notebooks/ and writes the files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from fmlib.editions import answer_key, cleared_outputs, render, render_key, student_edition

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
STUDENT = ROOT / "student"
KEY_PATH = ROOT / "fmlib" / "answer_key.py"  # this checkout's fmlib: the key ships with it


def build(src: Path = NOTEBOOKS, dst: Path = STUDENT) -> dict[Path, str]:
    """{path: its text} for every student notebook and the answer key."""
    result, key = {}, {}
    for path in sorted(src.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        result[dst / path.name] = render(student_edition(nb, path.name))
        key.update(answer_key(nb, path.name))
    result[KEY_PATH] = render_key(key)
    return result


def out_of_date(src: Path = NOTEBOOKS, dst: Path = STUDENT) -> list[str]:
    """Student notebooks (and the key) that differ from a fresh build, are missing, or have no
    source."""
    wanted = build(src, dst)
    stale = [p.name for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    extra = [p.name for p in dst.glob("*.ipynb") if p not in wanted]
    return sorted(stale + extra)


def write(src: Path = NOTEBOOKS, dst: Path = STUDENT) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    for old in dst.glob("*.ipynb"):
        old.unlink()
    written = []
    for path, text in build(src, dst).items():
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/editions.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="only report what is out of date")
    parser.add_argument("--out", type=Path, default=STUDENT, help="student folder")
    args = parser.parse_args(argv)
    if args.check:
        stale = out_of_date(dst=args.out)
        for name in stale:
            print(f"{name} is out of date: run `make student`")
        return 1 if stale else 0
    for path in write(dst=args.out):
        cleared = ""
        if path.suffix == ".ipynb":
            nb = nbformat.read(NOTEBOOKS / path.name, as_version=4)
            cleared = f" ({cleared_outputs(nb)} outputs cleared)"
        print(f"wrote {path}{cleared}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
