"""Notebook 06: how many field evaluations (NFE) does a good sample cost, and what does
sigma_min change?

`solver_sweep(model)` samples the same noise x0 once for every (solver, steps) of the
widget, plus adaptive dopri5 at a few tolerances and a tight dopri5 reference;
`sigma_min_sweeps()` does it for each shipped checkpoint (one per sigma_min, all from the
same x0). The widget `SamplesView(sweeps)` (a LiveFigure, built once) then only picks,
measures and resets its points, lines, marker and title; `SamplesView.draw(sweeps,
**values)` is the same figure as a new pyplot Figure.

The particles at a time t (the widget's t control, with Play): `state_at` returns the
sampler's own iterate x_{t_k} when t lies on its grid t_k = k / steps, and otherwise its
last step shortened to land on t: one step of the same method from the grid time
t_k = floor(t steps) / steps below t, of size t - t_k. At t = 1 it is the sample x1 itself.

Quality of samples x1 against fresh data y ~ q (same size n):
- SW_2(x1, y), the sliced Wasserstein distance (fmlib.metrics.sliced_wasserstein);
- the in-support fraction (1/n) sum_i 1[x1_i in supp q] (checkerboard);
- the solver error (1/n) sum_i |x1_i - x1_i^ref|, x1^ref from dopri5 at rtol = atol = 1e-6:
  it measures the discretisation alone, and falls like NFE^-p for a method of order p
  once the steps are small enough (the asymptotic regime).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import ipywidgets
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter
from torch import Tensor, nn

from fmlib import data, metrics, models, plots, widgets
from fmlib.checks import check_int, check_range
from fmlib.repro import one_thread
from fmlib.sampling import STAGES
from fmlib.solvers import integrate, position_at

METHODS = ("euler", "midpoint", "rk4")
STEPS = (1, 2, 4, 8, 16, 32)  # the widget's steps slider
BATCHES = (100, 250, 500, 1000)  # the widget's batch-size slider
TOLERANCES = (1e-2, 1e-3, 1e-4)  # dopri5 rtol = atol
REFERENCE_TOL = 1e-6
N_SAMPLES = max(BATCHES)
N_PROJECTIONS = 64
COLORS = {"euler": "#C44E52", "midpoint": "#4C72B0", "rk4": "#55A868", "dopri5": "#8172B2"}
CHECKPOINT = "checkerboard_model.pt"  # notebook 05's 60-second model: resources.path(CHECKPOINT)
SIGMA_MINS = models.CHECKERBOARD_SIGMA_MINS  # one shipped checkpoint each
TRAIN_STEPS = models.CHECKERBOARD_STEPS  # the fixed budget of every sigma_min checkpoint
SIGMA_COLORS = {0.0: "#1b1b1b", 0.05: "#4C72B0", 0.1: "#55A868", 0.25: "#DD8452"}
SEEDS = models.CHECKERBOARD_SEEDS  # training seeds of the replicate checkpoints
SEED_TRAIN_STEPS = models.CHECKERBOARD_SEED_STEPS  # their budget


def seed_curves(
    seed_models: Mapping[float, list[nn.Module]], method: str = "midpoint", n: int = N_SAMPLES
) -> dict[float, list[dict[str, list[float]]]]:
    """sigma_min -> [curves(sweep)[method] of each seed's model]: one solver only, the same
    x0 and data y for every model (solver_sweep's seed 0), no dopri5 runs but the reference."""
    _check_method(method)
    return {
        s: [curves(solver_sweep(m, n=n, methods=(method,), tolerances=()))[method] for m in ms]
        for s, ms in seed_models.items()
    }


@dataclass
class SolverSweep:
    """Samples x1 from one x0 [n, 2] for every (method, steps), dopri5 and the reference.

    samples[(method, steps)] -> x1 [n, 2]; trajectories[(method, steps)] -> the iterates
    [steps + 1, n, 2] on t_k = k / steps; adaptive[tol] -> (x1, nfe); data: y ~ q [n, 2];
    model: the field, for the shortened last step of `state_at`.
    """

    x0: Tensor
    data: Tensor
    reference: Tensor
    samples: dict[tuple[str, int], Tensor] = field(default_factory=dict)
    adaptive: dict[float, tuple[Tensor, int]] = field(default_factory=dict)
    scores: dict | None = None  # curves(self), computed once
    trajectories: dict[tuple[str, int], Tensor] = field(default_factory=dict)
    model: nn.Module | None = None


def solver_sweep(
    model: nn.Module,
    n: int = N_SAMPLES,
    steps: tuple[int, ...] = STEPS,
    methods: tuple[str, ...] = METHODS,
    tolerances: tuple[float, ...] = TOLERANCES,
    seed: int = 0,
) -> SolverSweep:
    """x1 = psi_1(x0) by integrate(model, x0, steps=K, method=m) for every m, K (CPU).

    On one thread: a [1000, 2] batch through a small MLP gains nothing from a second one,
    and a busy 2-core machine can make every parallel region wait for it (100x slower
    here under load); the results then also do not depend on the thread count."""
    check_int("n", n, 2)
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, generator=generator)
    y = data.sample("checkerboard", n, generator)
    solve = lambda method, k=1, tol=REFERENCE_TOL: integrate(
        model, x0, steps=k, method=method, rtol=tol, atol=tol
    )
    with one_thread(), torch.no_grad():
        sweep = SolverSweep(x0=x0, data=y, reference=solve("dopri5").x, model=model)
        for method in methods:
            for k in steps:
                solution = integrate(model, x0, steps=k, method=method, trajectory=True)
                sweep.samples[(method, k)] = solution.x
                sweep.trajectories[(method, k)] = solution.trajectory
        for tol in tolerances:
            solution = solve("dopri5", tol=tol)
            sweep.adaptive[tol] = (solution.x, solution.nfe)
    return sweep


def sigma_min_sweeps(
    trained: Mapping[float, nn.Module], n: int = N_SAMPLES, seed: int = 0
) -> dict[float, SolverSweep]:
    """sigma_min -> solver_sweep(model): the same x0 and data y for every model."""
    return {s: solver_sweep(model, n=n, seed=seed) for s, model in trained.items()}


def state_at(sweep: SolverSweep, method: str, steps: int, t: float) -> tuple[Tensor, float]:
    """The sampler's particles at time t: (x_t [n, 2], t_k), t_k the grid time it starts from.

    On the grid (t = t_k = k / steps) x_t is the k-th iterate of `method` with `steps`
    steps; between grid times it is that iterate moved by one step of the same method,
    shortened to h = t - t_k (what the solver would return if its last step ended at t):
    fmlib.solvers.position_at on the precomputed iterates.
    """
    if (method, steps) not in sweep.trajectories:
        raise ValueError(
            f"(solver, steps) must be one of the precomputed {sorted(sweep.trajectories)}, "
            f"got {(method, steps)}"
        )
    check_range("t", t, 0.0, 1.0)
    t_k = min(math.floor(t * steps + 1e-9), steps) / steps
    if t - t_k >= 1e-9 and sweep.model is None:
        raise ValueError("sweep.model must be the field to step between grid times, got None")
    with one_thread(), torch.no_grad():
        trajectory = sweep.trajectories[(method, steps)]
        return position_at(trajectory, t, sweep.model, method), t_k


def curves(sweep: SolverSweep) -> dict[str, dict[str, list[float]]]:
    """method -> {"nfe", "sw", "in_support", "error"} lists, in increasing NFE (cached)."""
    if sweep.scores is not None:
        return sweep.scores
    out: dict[str, dict[str, list[float]]] = {}
    runs = [(m, k, x, STAGES[m] * k) for (m, k), x in sweep.samples.items()]
    runs += [("dopri5", tol, x, nfe) for tol, (x, nfe) in sweep.adaptive.items()]
    for method, _, x1, nfe in sorted(runs, key=lambda r: (r[0], r[3])):
        row = out.setdefault(method, {"nfe": [], "sw": [], "in_support": [], "error": []})
        scores = metrics.quality(x1, sweep.data, n_projections=N_PROJECTIONS)
        row["nfe"].append(nfe)
        row["sw"].append(scores["sw"])
        row["in_support"].append(scores["in_support"])
        row["error"].append(metrics.solver_error(x1, sweep.reference))
    sweep.scores = out
    return out


LABELS = {
    "error": "mean |x1 - x1_ref| (solver error)",
    "sw": "sliced Wasserstein to data",
    "in_support": "fraction on the squares",
}


def _nfe_axes(ax, metric: str) -> None:
    ax.set_xscale("log", base=2)
    if metric in ("error", "sw"):
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())  # decades only: labels stay narrow
    if metric == "sw":  # SW spans about one decade: label 1, 2, 5 of each decade, not 10^k
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.set_xlabel("NFE (field evaluations per sample)")
    ax.set_ylabel(LABELS[metric])


def _check_metric(metric: str) -> None:
    if metric not in LABELS:
        raise ValueError(f"metric must be one of {', '.join(LABELS)}, got {metric!r}")


def draw_nfe_curves(sweep: SolverSweep, metric: str = "error", ax=None) -> Figure:
    """One metric ("error", "sw" or "in_support") against NFE, one line per solver."""
    _check_metric(metric)
    if ax is None:
        fig, (ax,) = plots.new_axes(1, size=3.6)
    for method, row in curves(sweep).items():
        style = "s--" if method == "dopri5" else "o-"
        ax.plot(row["nfe"], row[metric], style, color=COLORS[method], label=method, ms=4)
    _nfe_axes(ax, metric)
    ax.set_title(f"{LABELS[metric].split(' (')[0]} vs NFE")
    ax.legend()
    return ax.figure


def draw_sigma_min_curves(
    sweeps: Mapping[float, SolverSweep],
    metric: str = "in_support",
    method: str = "midpoint",
    ax=None,
) -> Figure:
    """One metric against NFE for one solver, one line per sigma_min checkpoint."""
    _check_metric(metric)
    _check_method(method)
    if ax is None:
        fig, (ax,) = plots.new_axes(1, size=3.6)
    for s, sweep in sweeps.items():
        row = curves(sweep)[method]
        ax.plot(row["nfe"], row[metric], "o-", color=_sigma_color(s), label=f"σ_min {s:.2f}", ms=4)
    _nfe_axes(ax, metric)
    ax.set_title(f"{method}: {LABELS[metric].split(' (')[0]}")
    ax.legend()
    return ax.figure


def draw_seed_curves(
    seed_rows: Mapping[float, list[dict[str, list[float]]]], metric: str = "error", ax=None
) -> Figure:
    """One metric against NFE, one line per sigma_min: the mean over training seeds, with
    error bars of one standard error over seeds (seed_rows from `seed_curves`)."""
    _check_metric(metric)
    if ax is None:
        fig, (ax,) = plots.new_axes(1, size=3.6)
    for s, rows in seed_rows.items():
        stats = [
            metrics.mean_se([row[metric][i] for row in rows]) for i in range(len(rows[0]["nfe"]))
        ]
        ax.errorbar(
            rows[0]["nfe"],
            [m for m, _ in stats],
            yerr=[se for _, se in stats],
            fmt="o-",
            color=_sigma_color(s),
            label=f"σ_min {s:.2f}",
            ms=4,
            capsize=2,
        )
    _nfe_axes(ax, metric)
    ax.set_title(f"{LABELS[metric].split(' (')[0]}, mean ± SE of {len(rows)} seeds", fontsize=9)
    ax.legend()
    return ax.figure


def _sigma_color(sigma_min: float) -> str:
    return SIGMA_COLORS.get(sigma_min, "0.5")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"solver must be one of {', '.join(METHODS)}, got {method!r}")


def _check_choice(
    sweeps: Mapping[float, SolverSweep], sigma_min: float, solver: str, steps: int, batch: int
) -> None:
    if sigma_min not in sweeps:
        raise ValueError(f"sigma_min must be one of {tuple(sweeps)}, got {sigma_min!r}")
    sweep = sweeps[sigma_min]
    if (solver, steps) not in sweep.samples:
        raise ValueError(
            f"(solver, steps) must be one of the precomputed {sorted(sweep.samples)}, "
            f"got {(solver, steps)}"
        )
    n = sweep.x0.shape[0]
    check_int("batch", batch, 2, n)


def _as_sweeps(sweeps: Mapping[float, SolverSweep] | SolverSweep) -> dict[float, SolverSweep]:
    if isinstance(sweeps, SolverSweep):
        raise ValueError(
            "sweeps must map sigma_min -> SolverSweep (e.g. {0.0: sweep}), got one SolverSweep"
        )
    if not sweeps:
        raise ValueError("sweeps must hold at least one sigma_min")
    return dict(sorted(sweeps.items()))


class SamplesView(plots.LiveFigure):
    """The sampling widget, built once. Left: the first `batch` particles of the sigma_min
    checkpoint's sampler (`solver`, `steps` steps, NFE = stages x steps) at time t (see
    `state_at`; t = 1: the samples), with SW_2 to data and the in-support fraction of what
    is drawn. Right: SW_2 vs NFE of `solver` (all n samples at t = 1), one line per
    sigma_min, the chosen one bold and the current choice circled.

    `widgets.panel(SamplesView(sweeps))`, sweeps = {sigma_min: SolverSweep}."""

    NOTE = None

    def __init__(self, sweeps: Mapping[float, SolverSweep], pyplot: bool = False) -> None:
        self.sweeps = _as_sweeps(sweeps)
        super().__init__(pyplot)

    def controls(self) -> dict[str, ipywidgets.ValueWidget]:
        sigmas = tuple(self.sweeps)
        steps = sorted({k for sweep in self.sweeps.values() for _, k in sweep.samples})
        n = min(sweep.x0.shape[0] for sweep in self.sweeps.values())
        batches = [b for b in BATCHES if b <= n] or [n]
        return {
            "sigma_min": widgets.sigma_min_slider(sigmas[0], max=max(sigmas), options=sigmas),
            "solver": widgets.choice("solver", METHODS, "midpoint"),
            "steps": widgets.steps_slider(8 if 8 in steps else steps[0], options=steps),
            "batch": ipywidgets.SelectionSlider(
                options=batches, value=batches[-1], description="batch", continuous_update=True
            ),
            "t": widgets.t_slider(1.0),
        }

    def inactive(self, **values) -> dict[str, str]:
        return {}

    def build(self) -> Figure:
        fig, (left, right) = plots.new_axes(2, size=3.6)
        self.left, self.right = left, right
        plots.scatter2d(left, torch.zeros(0, 2), s=3, alpha=0.6)
        self.points = left.collections[0]
        self.points.set_zorder(2)  # above the grid lines, as the blitted redraw draws it
        self.lines = {}
        sw = [v for sweep in self.sweeps.values() for m in METHODS for v in curves(sweep)[m]["sw"]]
        nfe = [STAGES[m] * k for sweep in self.sweeps.values() for m, k in sweep.samples]
        for s in self.sweeps:
            (self.lines[s],) = right.plot(
                [], [], "o-", color=_sigma_color(s), ms=3, label=f"σ_min {s:.2f}"
            )
        (self.choice,) = right.plot([], [], "o", ms=12, mfc="none", mec="k")
        _nfe_axes(right, "sw")
        right.set_xlim(min(nfe) / 1.4, max(nfe) * 1.4)  # static: every choice fits
        right.set_ylim(10 ** math.floor(math.log10(min(sw) / 1.2)), max(sw) * 1.3)  # 2 decades
        self.legend = right.legend(loc="upper right")
        first = next(iter(self.sweeps))
        self._titles(first, "midpoint", 1, 1, 1.0, 1.0, {"sw": 0.0, "in_support": 0.0})
        # static artists drawn over dynamic ones (the legend, the frames) are redrawn too
        spines = [spine for ax in (left, right) for spine in ax.spines.values()]
        self.dynamic(
            self.points,
            left.title,
            right.title,
            *self.lines.values(),
            self.choice,
            self.legend,
            *spines,
        )
        return fig

    def _titles(self, sigma_min, solver, steps, batch, t, t_k, scores) -> None:
        where = "" if t - t_k < 1e-9 else f"\nx_t: last step shortened, from t_k = {t_k:.3g} to t"
        self.left.set_title(
            f"σ_min = {sigma_min:.2f}, {solver}, steps = {steps} (NFE {STAGES[solver] * steps})\n"
            f"t = {t:.2f}, batch = {batch}: SW {scores['sw']:.3f}, "
            f"on squares {scores['in_support']:.0%}{where}",
            fontsize=9,
        )
        self.right.set_title(f"{solver}: SW vs NFE, all {N_SAMPLES} samples", fontsize=9)

    def update(
        self,
        sigma_min: float = 0.0,
        solver: str = "midpoint",
        steps: int = 8,
        batch: int = 1000,
        t: float = 1.0,
    ) -> dict[str, float]:
        """Show the choice; returns metrics.quality() of the batch of particles x_t in the title."""
        _check_choice(self.sweeps, sigma_min, solver, steps, batch)
        sweep = self.sweeps[sigma_min]
        x_t, t_k = state_at(sweep, solver, steps, t)
        x_t = x_t[:batch]
        scores = metrics.quality(x_t, sweep.data[:batch], n_projections=N_PROJECTIONS)
        self.points.set_offsets(x_t.numpy())
        for s, line in self.lines.items():
            row = curves(self.sweeps[s])[solver]
            line.set_data(row["nfe"], row["sw"])
            line.set_linewidth(2.5 if s == sigma_min else 0.8)
        row = curves(sweep)[solver]
        nfe = STAGES[solver] * steps
        self.choice.set_data([nfe], [row["sw"][row["nfe"].index(nfe)]])
        self._titles(sigma_min, solver, steps, batch, t, t_k, scores)
        return scores


def draw_grid(
    sweeps: Mapping[float, SolverSweep],
    method: str = "midpoint",
    steps: tuple[int, ...] = (1, 2, 8, 32),
) -> Figure:
    """Small multiples: rows = sigma_min checkpoints, columns = steps, one solver (the
    static page of the widget), every panel from the same noise x0."""
    sweeps = _as_sweeps(sweeps)
    _check_method(method)
    fig, axes = plots.new_axes(len(sweeps) * len(steps), size=2.0, ncols=len(steps))
    for i, (s, sweep) in enumerate(sweeps.items()):
        for j, k in enumerate(steps):
            ax = axes[i * len(steps) + j]
            plots.scatter2d(ax, sweep.samples[(method, k)], s=1.5)
            ax.set_title(f"σ_min = {s:.2f}, steps = {k}", fontsize=8)
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{method} samples x1 from the same noise x0: σ_min (rows) x steps (columns)")
    return fig


@lru_cache(maxsize=1)
def demo_sweeps() -> dict[float, SolverSweep]:
    """Sweeps for benchmarks/widgets.py: the shipped checkpoints if present, else small
    random MLPs (seeds 0..3). Slow on first call (it samples), then cached."""
    trained = {}
    for i, s in enumerate(SIGMA_MINS):
        try:
            trained[s] = models.load(models.checkerboard_checkpoint(s))
        except FileNotFoundError:
            torch.manual_seed(i)
            trained[s] = models.MLP(hidden=64, layers=2).eval()
    return sigma_min_sweeps(trained)


def bench_view() -> SamplesView:
    """The view over `demo_sweeps()` (the shipped trained checkpoints, the notebook's own),
    for the benchmark, the tests and the site."""
    return SamplesView(demo_sweeps())


__all__ = [
    "BATCHES",
    "METHODS",
    "SEEDS",
    "SEED_TRAIN_STEPS",
    "SIGMA_MINS",
    "STEPS",
    "SamplesView",
    "SolverSweep",
    "curves",
    "draw_seed_curves",
    "seed_curves",
    "demo_sweeps",
    "draw_grid",
    "draw_nfe_curves",
    "draw_sigma_min_curves",
    "sigma_min_sweeps",
    "solver_sweep",
    "state_at",
]
