"""Notebook 05 (conditional flow matching training): the figures behind its widget and plots.

The notebook trains the fields; this module only *draws* them. What the sliders do not
change is precomputed once by `precompute_atlas` (Euler trajectories of every trained
model for every number of steps in a grid, and each field on the arrow grid at the t
slider's values), so a redraw only looks samples and arrows up (no ODE solve). The widget
is `FlowAtlasView` (a LiveFigure: built once, a slider change only resets the points,
arrows and titles); `FlowAtlasView.draw(atlas, sigma_min=..., steps=..., t=...)` is the
same figure as a new pyplot Figure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import data, metrics, models, plots, resources, widgets
from fmlib.checks import Field, check_int, check_range
from fmlib.paths import OTPath
from fmlib.solvers import integrate

STEP_GRID = (1, 2, 4, 8, 16, 32, 64)  # Euler steps precomputed for the widget
SNAPSHOT_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)
QUIVER_N = 15  # arrows per side of the quiver grid
FIELD_STEPS = 20  # the field is precomputed at t = k / 20: the t slider's values (step 0.05)


# --------------------------------------------------------------------------- helpers
def running_mean(values: Sequence[float], window: int) -> np.ndarray:
    """m_k = (1 / w_k) sum_{j = k - w_k + 1}^{k} v_j, w_k = min(window, k + 1).

    A trailing moving average with the same length as `values` (shorter windows at the start).
    """
    check_int("window", window)
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {v.shape}")
    csum = np.concatenate([[0.0], np.cumsum(v)])
    k = np.arange(1, v.size + 1)
    lo = np.maximum(k - window, 0)
    return (csum[k] - csum[lo]) / (k - lo)


def nearest(value: float, options: Sequence[float]) -> float:
    """The element of `options` closest to `value` (the first one on a tie)."""
    if len(options) == 0:
        raise ValueError("options must not be empty")
    return min(options, key=lambda o: abs(o - value))


@torch.no_grad()
def field_on_grid(model: Field, t: float, lim: float = plots.LIM, n: int = QUIVER_N):
    """u_theta(x, t) on an n x n grid of [-lim, lim]^2: (xx, yy, u [n, n, 2])."""
    check_range("t", t, 0.0, 1.0)
    xx, yy, pts = plots.grid2d(lim, n)
    u = model(pts, torch.full((pts.shape[0],), float(t)))
    return xx, yy, u.reshape(n, n, 2)


def quiver(ax: Axes, model: Field, t: float, lim: float = plots.LIM, n: int = QUIVER_N) -> None:
    """The learned field at time t as arrows coloured by their speed |u_theta(x, t)|."""
    xx, yy, u = field_on_grid(model, t, lim, n)
    speed = u.norm(dim=-1)
    q = ax.quiver(xx, yy, u[..., 0], u[..., 1], speed, cmap=plots.CMAP, angles="xy")
    ax.figure.colorbar(q, ax=ax, shrink=0.8, label="speed |u|")
    plots.square(ax, lim)


# --------------------------------------------------------------------------- static figures
def draw_loss_curve(
    losses: Sequence[float],
    floor: float | None = None,
    floor_err: float = 0.0,
    window: int = 50,
    title: str = "CFM training loss",
) -> Figure:
    """Minibatch losses (faint), their running mean over `window` steps, and the loss
    floor E ||u_t(x_t | x1) - u_t(x_t)||^2 (notebook 04) as a band floor ± floor_err."""
    fig, (ax,) = plots.new_axes(1, size=3.6)
    fig.set_size_inches(7.0, 3.4)
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color="0.7", lw=0.6, label="minibatch loss")
    smooth = running_mean(losses, window)
    ax.plot(steps, smooth, color=plots.SOURCE_COLOR, lw=1.5, label=f"running mean ({window})")
    if floor is not None:
        ax.axhline(floor, color=plots.TARGET_COLOR, ls="--", label=f"loss floor ≈ {floor:.2f}")
        if floor_err > 0:
            ax.axhspan(floor - floor_err, floor + floor_err, color=plots.TARGET_COLOR, alpha=0.2)
    top = float(np.percentile(losses, 99)) if len(losses) > 10 else float(max(losses))
    ax.set_ylim(0.0 if floor is None else 0.8 * floor, max(top, smooth[0]) * 1.05)
    ax.set_xlabel("training step")
    ax.set_ylabel("CFM loss")
    ax.set_title(title)
    ax.legend(loc="upper right")
    return fig


def nearest_index(times: Tensor, t: float) -> int:
    """Index k of the solver time t_k closest to t."""
    return int((times - t).abs().argmin())


def draw_snapshots(
    trajectory: Tensor,
    times: Tensor,
    title: str,
    ts: Sequence[float] = SNAPSHOT_TIMES,
    lim: float = plots.LIM,
) -> Figure:
    """Small multiples of p_t: the ODE samples x_t (trajectory [K+1, N, 2] at `times`) at the
    solver times closest to each t in `ts`."""
    fig, axes = plots.new_axes(len(ts), size=2.4)
    for ax, t in zip(axes, ts, strict=True):
        k = nearest_index(times, t)
        plots.scatter2d(ax, trajectory[k], lim=lim, color=plots.PATH_COLOR, s=1.5)
        ax.set_title(f"t = {float(times[k]):.2f}")
    fig.suptitle(title)
    return fig


@dataclass
class GalleryRow:
    """One trained 2D example: its data x1 ~ q, Euler trajectories [K+1, N, 2] and the field."""

    name: str
    x1: Tensor
    trajectory: Tensor
    times: Tensor
    model: Field


def draw_gallery(
    rows: Sequence[GalleryRow],
    ts: Sequence[float] = (0.5,),
    quiver_t: float = 0.5,
    lim: float = plots.LIM,
) -> Figure:
    """Rows = datasets; columns: data q | p_t at each t in ts | samples (t = 1) | the learned
    field at quiver_t. (The trajectories have their own, larger figure: draw_trajectories.)"""
    ncols = len(ts) + 3
    fig, axes = plots.new_axes(len(rows) * ncols, size=2.2, ncols=ncols)
    for i, row in enumerate(rows):
        ax = axes[i * ncols : (i + 1) * ncols]
        plots.scatter2d(ax[0], row.x1, title=f"{row.name}: data q", lim=lim, s=1.5)
        for j, t in enumerate(ts):
            k = nearest_index(row.times, t)
            plots.scatter2d(ax[1 + j], row.trajectory[k], lim=lim, color=plots.PATH_COLOR, s=1.5)
            ax[1 + j].set_title(f"p_t, t = {float(row.times[k]):.2f}")
        plots.scatter2d(ax[-2], row.trajectory[-1], title="samples (t = 1)", lim=lim, s=1.5)
        quiver(ax[-1], row.model, quiver_t, lim)
        ax[-1].set_title(f"field u_θ at t = {quiver_t:.2f}")
    return fig


def draw_trajectories(
    rows: Sequence[GalleryRow], n_lines: int = 30, lim: float = plots.LIM
) -> Figure:
    """One large panel per dataset: the first n_lines ODE trajectories (lines), their starts
    x_0 (blue) and ends x_1 (orange), titled with the median chord / length of those lines."""
    fig, axes = plots.new_axes(len(rows), size=3.1)
    for ax, row in zip(axes, rows, strict=True):
        lines = row.trajectory[:, :n_lines]
        ax.plot(lines[..., 0], lines[..., 1], color=plots.PATH_COLOR, lw=1.2, alpha=0.9)
        plots.scatter2d(ax, lines[0], lim=lim, color=plots.SOURCE_COLOR, s=10, alpha=1)
        plots.scatter2d(ax, lines[-1], lim=lim, s=10, alpha=1)
        median = float(metrics.chord_over_length(lines).median())
        ax.set_title(f"{row.name}\nchord / length: median {median:.2f}")
    return fig


def draw_likelihood(
    log_p_model: Tensor, log_q: Tensor, lim: float, title_model: str = "model density"
) -> Figure:
    """Side by side: the model density p_theta = exp(log p) and the true q on the same grid
    of [-lim, lim]^2 (images [n, n], row i = y_i), one colour scale, with colorbars."""
    if log_p_model.shape != log_q.shape or log_q.ndim != 2:
        raise ValueError(
            f"log_p_model and log_q must be equal 2-D images, got {tuple(log_p_model.shape)} "
            f"and {tuple(log_q.shape)}"
        )
    fig, (ax_m, ax_q) = plots.new_axes(2, size=3.6)
    extent = (-lim, lim, -lim, lim)
    p, q = log_p_model.exp(), log_q.exp()
    vmax = float(torch.maximum(p.max(), q.max()))
    plots.heatmap(ax_m, p, extent, title=title_model, label="density", vmin=0, vmax=vmax)
    plots.heatmap(ax_q, q, extent, title="true checkerboard q", label="density", vmin=0, vmax=vmax)
    for ax in (ax_m, ax_q):
        plots.square(ax, lim)
    return fig


# --------------------------------------------------------------------------- the widget
@dataclass
class FlowAtlas:
    """Precomputed Euler trajectories of trained fields: one model per sigma_min, every
    number of steps in `step_grid`, from the same noise x0 [N, 2]. `x1` [N, 2] are data
    samples, used to draw the true marginal path p_t (samples psi_t(x0 | x1))."""

    models: dict[float, Field]
    x0: Tensor
    x1: Tensor
    step_grid: tuple[int, ...]
    trajectories: dict[tuple[float, int], Tensor] = field(default_factory=dict)
    _field_cache: dict[tuple[float, int], Tensor] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def sigma_mins(self) -> tuple[float, ...]:
        return tuple(sorted(self.models))

    def trajectory(self, sigma_min: float, steps: int) -> tuple[float, int, Tensor]:
        """(sigma_min, steps) snapped to the nearest precomputed values, and the trajectory
        [steps + 1, N, 2] of Euler's method x_{k+1} = x_k + h u_theta(x_k, k h), h = 1/steps."""
        s = nearest(sigma_min, self.sigma_mins)
        k = int(nearest(steps, self.step_grid))
        return s, k, self.trajectories[(s, k)]

    def samples_at(self, sigma_min: float, steps: int, t: float) -> tuple[Tensor, float]:
        """The Euler iterate at the grid time k h closest to t: (x [N, 2], that time)."""
        check_range("t", t, 0.0, 1.0)
        _, k, traj = self.trajectory(sigma_min, steps)
        j = round(t * k)
        return traj[j], j / k

    def path_samples(self, sigma_min: float, t: float) -> Tensor:
        """Samples of the true marginal p_t: x_t = psi_t(x0 | x1) on the OT path (x0 ⊥ x1)."""
        s = nearest(sigma_min, self.sigma_mins)
        return OTPath(s).psi_t(self.x0, self.x1, float(t))

    def in_support(self, sigma_min: float, steps: int) -> float:
        """Fraction of the final samples (t = 1) on the checkerboard's support."""
        x, _ = self.samples_at(sigma_min, steps, 1.0)
        return float(data.in_checkerboard(x).float().mean())

    def field_grid(self, sigma_min: float, t: float) -> Tensor:
        """u_theta(x, t) [QUIVER_N, QUIVER_N, 2] on the arrow grid (field_on_grid) of the
        model nearest sigma_min. Precomputed (once, for every model) at t = k / FIELD_STEPS,
        the t slider's values; evaluated for any other t."""
        s = nearest(sigma_min, self.sigma_mins)
        k = round(t * FIELD_STEPS)
        if abs(t * FIELD_STEPS - k) < 1e-6:  # a slider value (up to float rounding)
            return self._fields()[(s, k)]
        return field_on_grid(self.models[s], t)[2]

    def _fields(self) -> dict[tuple[float, int], Tensor]:
        if not self._field_cache:
            for s, model in self.models.items():
                for k in range(FIELD_STEPS + 1):
                    self._field_cache[(s, k)] = field_on_grid(model, k / FIELD_STEPS)[2]
        return self._field_cache

    def max_speed(self) -> float:
        """max |u_theta(x, t)| over every model, the arrow grid and t = k / FIELD_STEPS: the
        fixed top of the widget's speed colour scale."""
        top = max(u.norm(dim=-1).max().item() for u in self._fields().values())
        return top if np.isfinite(top) and top > 0 else 1.0


class _AtlasArtists:
    """The three panels of the atlas figure: artists created once, data set by `set`."""

    def __init__(self, atlas: FlowAtlas, axes: Sequence[Axes]) -> None:
        self.atlas = atlas
        self.ax_p, self.ax_s, self.ax_u = axes
        empty = np.zeros((0, 2))
        plots.scatter2d(self.ax_p, empty, s=1.5)
        plots.scatter2d(self.ax_s, empty, color=plots.PATH_COLOR, s=1.5)
        self.path_points, self.model_points = self.ax_p.collections[0], self.ax_s.collections[0]
        xx, yy, _ = plots.grid2d(plots.LIM, QUIVER_N)
        ones = np.ones(xx.shape)
        self.arrows = self.ax_u.quiver(
            xx,
            yy,
            ones,
            ones,
            ones,
            cmap=plots.CMAP,
            angles="xy",
            norm=Normalize(0.0, atlas.max_speed()),  # fixed: one colour scale for every t
        )
        self.ax_u.figure.colorbar(self.arrows, ax=self.ax_u, shrink=0.8, label="speed |u|")
        plots.square(self.ax_u)
        self._titles(0.0, 1, 0.0, 0.0)  # placeholders: size the layout (two-line middle title)

    @property
    def artists(self) -> tuple:
        """What `set` changes (the data and the three titles)."""
        titles = (self.ax_p.title, self.ax_s.title, self.ax_u.title)
        return self.path_points, self.model_points, self.arrows, *titles

    def _titles(self, s: float, k: int, t: float, t_k: float) -> None:
        self.ax_p.set_title(f"true p_t, t = {t:.2f}")
        # The Euler iterates live on the grid t_k = j / steps: the middle panel shows the one
        # nearest t and says which (with 1 step, t = 0.35 shows the iterate at t_k = 0.00).
        self.ax_s.set_title(
            f"model, σ_min = {s:.2f}, Euler steps = {k}\niterate at t_k = {t_k:.2f}"
        )
        self.ax_u.set_title(f"learned field u_θ(x, {t:.2f})")

    def set(self, sigma_min: float, steps: int, t: float) -> tuple[float, int, float]:
        """Show (sigma_min, steps, t); returns the snapped (sigma_min, steps, t_k) shown."""
        s, k, _ = self.atlas.trajectory(sigma_min, steps)
        x_t, t_k = self.atlas.samples_at(s, k, t)
        self.path_points.set_offsets(self.atlas.path_samples(s, t).numpy())
        self.model_points.set_offsets(x_t.numpy())
        u = self.atlas.field_grid(s, t)
        self.arrows.set_UVC(u[..., 0].numpy(), u[..., 1].numpy(), u.norm(dim=-1).numpy())
        self.arrows.scale = None  # auto-scale the arrow lengths for this field, as before
        self._titles(s, k, t, t_k)
        return s, k, t_k


class FlowAtlasView(plots.LiveFigure):
    """The atlas widget, built once: left the true p_t, middle the model's Euler samples
    at time t, right the learned field u_theta(., t) (colour scale fixed by
    `atlas.max_speed()`). Its controls offer exactly the trained sigma_min values and the
    precomputed numbers of Euler steps (selection sliders), and t on the slider grid.

    `widgets.panel(FlowAtlasView(atlas))`."""

    def __init__(self, atlas: FlowAtlas, pyplot: bool = False) -> None:
        self.atlas = atlas
        super().__init__(pyplot)

    def controls(self) -> dict:
        """sigma_min over the trained models, steps over atlas.step_grid, t with Play."""
        steps = 8 if 8 in self.atlas.step_grid else self.atlas.step_grid[-1]
        return {
            "sigma_min": widgets.sigma_min_slider(
                self.atlas.sigma_mins[0], options=self.atlas.sigma_mins
            ),
            "steps": widgets.steps_slider(steps, options=self.atlas.step_grid),
            "t": widgets.t_slider(1.0),
        }

    def build(self) -> Figure:
        fig, axes = plots.new_axes(3, size=3.0)
        self.panels = _AtlasArtists(self.atlas, axes)
        self.dynamic(*self.panels.artists)
        return fig

    def update(self, sigma_min: float = 0.0, steps: int = 8, t: float = 1.0) -> None:
        self.panels.set(sigma_min, steps, t)


def precompute_atlas(
    models: dict[float, Field],
    x1: Tensor,
    step_grid: Sequence[int] = STEP_GRID,
    generator: torch.Generator | None = None,
) -> FlowAtlas:
    """Integrate every model from the same x0 ~ N(0, I) (as many as x1) with Euler for each
    number of steps in step_grid, keeping the whole trajectory; no autograd graph."""
    if not models:
        raise ValueError("models must map at least one sigma_min to a field")
    grid = tuple(sorted({int(k) for k in step_grid}))
    if grid[0] < 1:
        raise ValueError(f"step_grid must hold integers >= 1, got {tuple(step_grid)}")
    x0 = torch.randn(x1.shape, generator=generator)
    atlas = FlowAtlas(dict(models), x0, x1, grid)
    for s, model in atlas.models.items():
        for k in grid:
            sol = integrate(model, x0, steps=k, method="euler", trajectory=True)
            atlas.trajectories[(s, k)] = sol.trajectory
    return atlas


def draw_sigma_steps_grid(
    atlas: FlowAtlas, sigma_mins: Sequence[float], steps: Sequence[int], t: float = 1.0
) -> Figure:
    """The static version of the widget: rows = sigma_min, columns = Euler steps, the model's
    samples at time t, titled with the fraction on the checkerboard's support (t = 1)."""
    fig, axes = plots.new_axes(len(sigma_mins) * len(steps), size=2.3, ncols=len(steps))
    for i, s in enumerate(sigma_mins):
        for j, k in enumerate(steps):
            x, t_k = atlas.samples_at(s, k, t)
            ax = axes[i * len(steps) + j]
            plots.scatter2d(ax, x, color=plots.PATH_COLOR, s=1.0)
            frac = float(data.in_checkerboard(x).float().mean())
            ax.set_title(f"σ_min = {s:.2f}, {k} steps\nt = {t_k:.2f}, on support {frac:.0%}")
    return fig


# --------------------------------------------------------------------------- benchmark
@lru_cache(maxsize=1)
def _bench_atlas() -> FlowAtlas:
    """An atlas of the shipped trained checkerboard models (models.CHECKERBOARD_SIGMA_MINS:
    notebook 06's 6000-step checkpoints of notebook 05's recipe, one per sigma_min), from
    the same 400 noise points."""
    trained = models.load_checkerboard_models()
    x1 = data.sample("checkerboard", 400, torch.Generator().manual_seed(0))
    return precompute_atlas(trained, x1, generator=torch.Generator().manual_seed(1))


def bench_view() -> FlowAtlasView:
    """The view over the shipped trained models (`_bench_atlas`), for the benchmark, the
    tests and the static site: the site shows trained fields, as the notebook does (the
    notebook's own models, trained or fine-tuned live, differ in their weights and offer
    sigma_min = 0, 0.1, 0.25, 0.5 instead of the checkpoints' 0, 0.05, 0.1, 0.25)."""
    return FlowAtlasView(_bench_atlas())


# --------------------------------------------------------------------------- the ablation
ABLATION = "ablation_checkerboard.json"  # shipped: resources.path(ABLATION)


def ablation_runs(steps: int, path: Path | None = None) -> list[dict]:
    """The runs of benchmarks/ablation_checkerboard.py with this step budget, in table order:
    dicts with name, seed, steps, config, kl, se, on_support, train_cpu_s. Read from `path`,
    default the table shipped with fmlib (fmlib/resources/ablation_checkerboard.json)."""
    path = resources.path(ABLATION) if path is None else path
    if not path.exists():
        raise ValueError(f"path must hold the ablation results, got missing file {path}")
    runs = json.loads(path.read_text())["runs"]
    return [r for r in runs if r["steps"] == steps]
