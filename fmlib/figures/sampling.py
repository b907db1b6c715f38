"""Notebook 06: how many field evaluations (NFE) does a good sample cost?

`solver_sweep(model)` samples the same noise x0 once for every (solver, steps) of the
widget, plus adaptive dopri5 at a few tolerances and a tight dopri5 reference; the widget
`SamplesView(sweep)` (a LiveFigure, built once) then only picks, measures and resets its
points, marker and title (a redraw is a few sorts and a blit); `draw_samples` is the same
figure as a new pyplot Figure.

Quality of samples x1 against fresh data y ~ q (same size n):
- SW_2(x1, y), the sliced Wasserstein distance (fmlib.metrics.sliced_wasserstein);
- the in-support fraction (1/n) sum_i 1[x1_i in supp q] (checkerboard);
- the solver error (1/n) sum_i |x1_i - x1_i^ref|, x1^ref from dopri5 at rtol = atol = 1e-6:
  it measures the discretisation alone, and falls like NFE^-p for a method of order p.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from fmlib import data, metrics, models, plots
from fmlib.sampling import STAGES
from fmlib.solvers import integrate

METHODS = ("euler", "midpoint", "rk4")
STEPS = (1, 2, 4, 8, 16, 32)  # the widget's steps slider
BATCHES = (100, 250, 500, 1000)  # the widget's batch-size slider
TOLERANCES = (1e-2, 1e-3, 1e-4)  # dopri5 rtol = atol
REFERENCE_TOL = 1e-6
N_SAMPLES = max(BATCHES)
N_PROJECTIONS = 64
COLORS = {"euler": "#C44E52", "midpoint": "#4C72B0", "rk4": "#55A868", "dopri5": "#8172B2"}
CHECKPOINT = Path(__file__).resolve().parents[2] / "assets" / "checkerboard_model.pt"


@dataclass
class SolverSweep:
    """Samples x1 from one x0 [n, 2] for every (method, steps), dopri5 and the reference.

    samples[(method, steps)] -> x1 [n, 2]; adaptive[tol] -> (x1, nfe); data: y ~ q [n, 2].
    """

    x0: Tensor
    data: Tensor
    reference: Tensor
    samples: dict[tuple[str, int], Tensor] = field(default_factory=dict)
    adaptive: dict[float, tuple[Tensor, int]] = field(default_factory=dict)
    scores: dict | None = None  # curves(self), computed once


def solver_sweep(
    model: nn.Module,
    n: int = N_SAMPLES,
    steps: tuple[int, ...] = STEPS,
    methods: tuple[str, ...] = METHODS,
    tolerances: tuple[float, ...] = TOLERANCES,
    seed: int = 0,
) -> SolverSweep:
    """x1 = psi_1(x0) by integrate(model, x0, steps=K, method=m) for every m, K (CPU)."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, generator=generator)
    y = data.sample("checkerboard", n, generator)
    solve = lambda method, k=1, tol=REFERENCE_TOL: integrate(
        model, x0, steps=k, method=method, rtol=tol, atol=tol
    )
    sweep = SolverSweep(x0=x0, data=y, reference=solve("dopri5").x)
    for method in methods:
        for k in steps:
            sweep.samples[(method, k)] = solve(method, k).x
    for tol in tolerances:
        solution = solve("dopri5", tol=tol)
        sweep.adaptive[tol] = (solution.x, solution.nfe)
    return sweep


def quality(x1: Tensor, y: Tensor, seed: int = 0) -> dict[str, float]:
    """SW_2 to data (fixed projections) and the in-support fraction of samples x1 [n, 2]."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "sw": metrics.sliced_wasserstein(x1, y, N_PROJECTIONS, generator),
        "in_support": metrics.in_support_fraction(x1),
    }


def solver_error(x1: Tensor, reference: Tensor) -> float:
    """(1/n) sum_i |x1_i - x1_i^ref|: the discretisation error of a solve."""
    return (x1 - reference).norm(dim=1).mean().item()


def curves(sweep: SolverSweep) -> dict[str, dict[str, list[float]]]:
    """method -> {"nfe", "sw", "in_support", "error"} lists, in increasing NFE (cached)."""
    if sweep.scores is not None:
        return sweep.scores
    out: dict[str, dict[str, list[float]]] = {}
    runs = [(m, k, x, STAGES[m] * k) for (m, k), x in sweep.samples.items()]
    runs += [("dopri5", tol, x, nfe) for tol, (x, nfe) in sweep.adaptive.items()]
    for method, _, x1, nfe in sorted(runs, key=lambda r: (r[0], r[3])):
        row = out.setdefault(method, {"nfe": [], "sw": [], "in_support": [], "error": []})
        scores = quality(x1, sweep.data)
        row["nfe"].append(nfe)
        row["sw"].append(scores["sw"])
        row["in_support"].append(scores["in_support"])
        row["error"].append(solver_error(x1, sweep.reference))
    sweep.scores = out
    return out


def draw_nfe_curves(sweep: SolverSweep, metric: str = "error", ax=None) -> Figure:
    """One metric ("error", "sw" or "in_support") against NFE, one line per solver."""
    labels = {
        "error": "mean |x1 - x1_ref| (solver error)",
        "sw": "sliced Wasserstein to data",
        "in_support": "fraction on the squares",
    }
    if metric not in labels:
        raise ValueError(f"metric must be one of {', '.join(labels)}, got {metric!r}")
    if ax is None:
        fig, (ax,) = plots.new_axes(1, size=3.6)
    fig = ax.figure
    for method, row in curves(sweep).items():
        style = "s--" if method == "dopri5" else "o-"
        ax.plot(row["nfe"], row[metric], style, color=COLORS[method], label=method, ms=4)
    ax.set_xscale("log", base=2)
    if metric == "error":
        ax.set_yscale("log")
    ax.set_xlabel("NFE (field evaluations per sample)")
    ax.set_ylabel(labels[metric])
    ax.set_title(f"{labels[metric].split(' (')[0]} vs NFE")
    ax.legend()
    return fig


def _check_choice(sweep: SolverSweep, solver: str, steps: int, batch: int) -> None:
    if (solver, steps) not in sweep.samples:
        raise ValueError(
            f"(solver, steps) must be one of the precomputed {sorted(sweep.samples)}, "
            f"got {(solver, steps)}"
        )
    n = sweep.x0.shape[0]
    if not isinstance(batch, int) or not 2 <= batch <= n:
        raise ValueError(f"batch must be an integer in [2, {n}], got {batch!r}")


class _SamplesArtists:
    """The two panels of the samples figure: artists created once, data set by `set`."""

    def __init__(self, sweep: SolverSweep, left, right) -> None:
        self.sweep, self.left = sweep, left
        plots.scatter2d(left, torch.zeros(0, 2), s=3, alpha=0.6)
        self.points = left.collections[0]
        draw_nfe_curves(sweep, "sw", ax=right)  # static: every solver, all n samples
        (self.choice,) = right.plot([], [], "o", ms=12, mfc="none", mec="k")
        right.set_title(f"SW vs NFE (all {sweep.x0.shape[0]} samples)")
        self.legend = right.get_legend()
        self._title("euler", 1, 1, 1, {"sw": 0.0, "in_support": 0.0})  # sizes the layout

    @property
    def artists(self) -> tuple:
        """What `set` changes, plus the legend, which stays on top of the circle."""
        return self.points, self.left.title, self.choice, self.legend

    def _title(self, solver: str, steps: int, nfe: int, batch: int, scores: dict) -> None:
        self.left.set_title(
            f"{solver}, {steps} steps (NFE {nfe}), {batch} samples\n"
            f"SW {scores['sw']:.3f}, on squares {scores['in_support']:.0%}"
        )

    def set(self, solver: str, steps: int, batch: int) -> dict[str, float]:
        """Show the choice; returns quality() of the batch shown in the title."""
        _check_choice(self.sweep, solver, steps, batch)
        x1 = self.sweep.samples[(solver, steps)][:batch]
        scores = quality(x1, self.sweep.data[:batch])
        nfe = STAGES[solver] * steps
        self.points.set_offsets(x1.numpy())
        row = curves(self.sweep)[solver]
        self.choice.set_data([nfe], [row["sw"][row["nfe"].index(nfe)]])
        self._title(solver, steps, nfe, batch, scores)
        return scores


class SamplesView(plots.LiveFigure):
    """The sampling widget, built once. Left: the first `batch` samples of `solver` with
    `steps` steps (NFE = stages x steps), with SW_2 and the in-support fraction of that
    batch. Right: SW_2 vs NFE for all solvers (all n samples), the current choice circled.

    `widgets.panel(SamplesView(sweep), solver=..., steps=..., batch=...)`."""

    def __init__(self, sweep: SolverSweep, pyplot: bool = False) -> None:
        self.sweep = sweep
        super().__init__(pyplot)

    def build(self) -> Figure:
        fig, (left, right) = plots.new_axes(2, size=3.4)
        self.panels = _SamplesArtists(self.sweep, left, right)
        self.dynamic(*self.panels.artists)
        return fig

    def update(self, solver: str = "midpoint", steps: int = 8, batch: int = 1000) -> None:
        self.panels.set(solver, steps, batch)


def draw_samples(
    sweep: SolverSweep, solver: str = "midpoint", steps: int = 8, batch: int = 1000
) -> Figure:
    """The SamplesView figure for one choice, as a new pyplot Figure (for static pages)."""
    _check_choice(sweep, solver, steps, batch)  # before a figure exists
    return SamplesView(sweep, pyplot=True).draw(solver=solver, steps=steps, batch=batch)


def draw_grid(sweep: SolverSweep, steps: tuple[int, ...] = (1, 2, 8, 32)) -> Figure:
    """Small multiples: rows = solvers, columns = steps (the static page of the widget)."""
    methods = sorted({m for m, _ in sweep.samples}, key=METHODS.index)
    fig, axes = plots.new_axes(len(methods) * len(steps), size=2.0, ncols=len(steps))
    for i, method in enumerate(methods):
        for j, k in enumerate(steps):
            ax = axes[i * len(steps) + j]
            plots.scatter2d(ax, sweep.samples[(method, k)], s=1.5)
            ax.set_title(f"{method}, {k} steps (NFE {STAGES[method] * k})", fontsize=8)
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("samples x1 from the same noise x0: solver (rows) x steps (columns)")
    return fig


@lru_cache(maxsize=1)
def demo_sweep() -> SolverSweep:
    """A sweep for benchmarks/widgets.py: the trained checkpoint if present, else a small
    random MLP (seed 0). Slow on first call (it samples), then cached."""
    if CHECKPOINT.exists():
        model = models.load(CHECKPOINT)
    else:
        torch.manual_seed(0)
        model = models.MLP(hidden=64, layers=2).eval()
    return solver_sweep(model)


def _bench_view() -> SamplesView:
    return SamplesView(demo_sweep())


# (name, zero-argument factory of the view, slider values): benchmarks/widgets.py and
# tests/test_live_figures.py run every entry.
VIEWS = [("sampling.SamplesView", _bench_view, {"solver": "rk4", "steps": 16, "batch": 1000})]

__all__ = [
    "BATCHES",
    "METHODS",
    "STEPS",
    "VIEWS",
    "SamplesView",
    "SolverSweep",
    "curves",
    "demo_sweep",
    "draw_grid",
    "draw_nfe_curves",
    "draw_samples",
    "quality",
    "solver_error",
    "solver_sweep",
]
