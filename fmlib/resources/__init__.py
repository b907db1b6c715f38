"""The files fmlib reads at run time, shipped inside the package (fmlib/resources/).

    from fmlib import resources
    resources.path("checkerboard_model.pt")   # -> a Path on disk, wherever fmlib is installed

The one way fmlib finds a data file: never a path into the repository, so fmlib works the same
installed from a wheel as from this checkout. Each file here is made by a script, which writes
it to `resources.DIRECTORY` (for example benchmarks/train_checkerboard.py --save
fmlib/resources/checkerboard_model.pt); `resources.names()` lists what is shipped.
"""

from __future__ import annotations

from importlib import resources as _importlib_resources
from pathlib import Path

PATTERNS = ("*.pt", "*.json")  # what pyproject's package-data ships from this folder


def _directory() -> Path:
    folder = _importlib_resources.files(__name__)
    if not isinstance(folder, Path):  # a zipped install: the files have no path on disk
        raise RuntimeError(f"fmlib.resources must be installed as files on disk, got {folder!r}")
    return folder


DIRECTORY = _directory()


def path(name: str) -> Path:
    """The shipped file `name` (a bare file name such as "checkerboard_model.pt") as a Path.

    Raises FileNotFoundError naming the folder when the file is not shipped."""
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ValueError(f"name must be a bare file name, got {name!r}")
    found = DIRECTORY / name
    if not found.is_file():
        raise FileNotFoundError(
            f"{name} is not among fmlib's shipped resources ({DIRECTORY}); "
            "the script that makes it writes it there"
        )
    return found


def names() -> list[str]:
    """Every shipped file's name, sorted."""
    return sorted(p.name for pattern in PATTERNS for p in DIRECTORY.glob(pattern))
