"""Median redraw time of every widget view, as a student sees it.

    python benchmarks/widgets.py [--repeats 7] [--out benchmarks/widgets.md]

A redraw is what a slider change costs in the kernel: `view.update(**values)` and
`view.png()` of a LiveFigure listed in a figure module's VIEWS (the figure is built once,
before the panel appears). Measured after one warm-up call (which fills the caches that
a notebook fills before its panel appears).
Budget: 0.1 s median per widget.
"""

from __future__ import annotations

import argparse
import statistics
import time

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from fmlib import plots  # noqa: E402
from fmlib.figures import all_views  # noqa: E402

BUDGET_S = 0.1


def redraw_seconds(make_view, kwargs: dict, repeats: int) -> float:
    """Median wall time of view.update(**kwargs) + view.png() (what fmlib.widgets.panel
    does on a slider change), after one warm-up call; the view is built once, as before
    a panel appears."""
    view = make_view()
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        view.update(**kwargs)
        view.png()
        if i:  # the first call is the warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    torch.set_num_threads(2)
    plots.use_style()
    rows = ["| widget view | median redraw (s) | within 0.1 s |", "|---|---|---|"]
    for name, make_view, kwargs in all_views():
        seconds = redraw_seconds(make_view, kwargs, args.repeats)
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
