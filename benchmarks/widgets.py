"""Median redraw time of every widget's draw function, as a student sees it.

    python benchmarks/widgets.py [--repeats 7] [--out benchmarks/widgets.md]

A redraw is what a slider change costs in the kernel: `view.update(**values)` and
`view.png()` for a LiveFigure (the figure is built once, before the panel appears), or a
new Figure rendered to PNG for a plain draw function. Measured after one warm-up call
(which fills the caches that a notebook fills before its panel appears).
Budget: 0.1 s median per widget.
"""

from __future__ import annotations

import argparse
import importlib
import io
import pkgutil
import statistics
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import fmlib.figures  # noqa: E402
from fmlib import plots  # noqa: E402
from fmlib.plots import LiveFigure  # noqa: E402

BUDGET_S = 0.1


def redraw_seconds(kind: str, draw, kwargs: dict, repeats: int) -> float:
    """Median wall time of one redraw, after one warm-up call.

    A LiveFigure (what fmlib.widgets.panel shows) redraws with update(**kwargs) + png();
    a plain draw function builds a new Figure and renders it to PNG."""
    view = draw() if kind == "view" else None  # built once, as before a panel appears
    if isinstance(view, LiveFigure):

        def redraw() -> None:
            view.update(**kwargs)
            view.png()
    else:

        def redraw() -> None:
            fig = draw(**kwargs)
            fig.savefig(io.BytesIO(), format="png")
            plt.close(fig)

    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        redraw()
        if i:  # the first call is the warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def collect() -> list[tuple[str, str, object, dict]]:
    """Every (kind, name, factory or draw, kwargs) of an fmlib.figures module: its VIEWS
    (zero-argument factories of LiveFigures) and BENCH (plain draw functions)."""
    entries = []
    for info in pkgutil.iter_modules(fmlib.figures.__path__):
        module = importlib.import_module(f"fmlib.figures.{info.name}")
        entries += [("view", *entry) for entry in getattr(module, "VIEWS", [])]
        entries += [("draw", *entry) for entry in getattr(module, "BENCH", [])]
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    torch.set_num_threads(2)
    plots.use_style()
    rows = ["| widget draw function | median redraw (s) | within 0.1 s |", "|---|---|---|"]
    for kind, name, draw, kwargs in collect():
        seconds = redraw_seconds(kind, draw, kwargs, args.repeats)
        rows.append(f"| {name} | {seconds:.3f} | {'yes' if seconds <= BUDGET_S else 'NO'} |")
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    print()
    print(table)


if __name__ == "__main__":
    main()
