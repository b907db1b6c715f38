"""The notebook widgets' views and static figures, one module per notebook topic."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from fmlib.plots import LiveFigure


def all_views() -> list[tuple[str, Callable[[], LiveFigure], dict]]:
    """Every (name, zero-argument view factory, slider values) listed in the VIEWS of a
    figure module: what benchmarks/widgets.py times and tests/test_live_figures.py checks."""
    entries = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        entries += getattr(module, "VIEWS", [])
    return entries
