"""Notebook 01: K residual layers x + h u_t(x), h = 1/K, approaching a continuous flow.

The flow is `GaussianFlow(M, sigma_min, omega=OMEGA)`: N(0, I) -> N(M, sigma_min^2 I) with
a swirl, so the trajectories curve. After K residual (Euler) layers the samples follow
N(M, s_K^2 I) exactly, s_K = `GaussianFlow.euler_std(K)` (the accumulated log-det); as
K -> oo, s_K -> sigma_min, the end of the continuous flow.
"""

from __future__ import annotations

import math
from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import plots, widgets
from fmlib.checks import check_int, check_range
from fmlib.flows import (
    DiscreteFlow,
    GaussianFlow,
    histogram_vs_density,
    normal_cdf,
    square_boundary,
)

M = (2.0, 1.0)  # the mean of the target Gaussian
OMEGA = 3.0  # swirl rate (radians per unit time)
N_SAMPLES = 4000  # pushed samples behind the histogram
N_PATHS = 10  # trajectories drawn
BINS = 40


@lru_cache(maxsize=1)
def _noise() -> Tensor:
    """z ~ N(0, I), fixed once (float64): the sliders only change the flow."""
    return torch.randn(
        N_SAMPLES, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )


def flow(sigma_min: float) -> GaussianFlow:
    """The continuous flow the residual layers discretise."""
    check_range("sigma_min", sigma_min, 0.0, 1.0)
    return GaussianFlow(torch.tensor(M, dtype=torch.float64), sigma_min, omega=OMEGA)


def _layer_maps(g: GaussianFlow, steps: int) -> tuple[Tensor, Tensor]:
    """The K residual layers G_k(x) = x + h u_{t_k}(x), t_k = k h, as affine maps
    G_k(x) = A_k x + c_k: A [K, 2, 2], c [K, 2].

    u_t is affine in x, so each layer is too: one batched call of all K layers on the points
    0, e_1, e_2 gives c_k = G_k(0) and the columns A_k e_i = G_k(e_i) - c_k (no loop over k).
    """
    h = 1.0 / steps
    basis = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    x = basis.repeat(steps, 1)  # [3K, 2]: (0, e_1, e_2) for every layer
    t = (torch.arange(steps, dtype=torch.float64) * h).repeat_interleave(len(basis))
    out = (x + h * g(x, t)).reshape(steps, len(basis), 2)  # the residual layer, all k at once
    c = out[:, 0]
    return (out[:, 1:] - c[:, None]).transpose(1, 2), c


def _compose(a: Tensor, c: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Prefix compositions of affine maps x -> a_k x + c_k: the maps x_0 -> x_k, k = 0..K,
    as matrices [K + 1, 2, 2] and offsets [K + 1, 2] (3 x 3 homogeneous products)."""
    layers = np.zeros((len(a), 3, 3))
    layers[:, :2, :2], layers[:, :2, 2], layers[:, 2, 2] = a.numpy(), c.numpy(), 1.0
    prefix = [np.eye(3)]
    for layer in layers:
        prefix.append(layer @ prefix[-1])
    total = np.stack(prefix)
    return total[:, :2, :2], total[:, :2, 2]


@lru_cache(maxsize=256)
def residual_flow(sigma_min: float, steps: int) -> tuple[Tensor, dict[str, float]]:
    """Push z through K = `steps` residual layers x_{k+1} = x_k + h u_{t_k}(x_k), h = 1/K.

    Returns the trajectories [K + 1, N, 2] and the numbers the widget prints: the std of
    x_K by the change-of-variables formula (s_K), measured from the samples, the limit
    sigma_min, and the histogram-vs-formula error (max over bins, in standard errors).
    The layers are affine (u_t is affine in x), so x_k = (G_k o ... o G_1)(z) is computed
    for every k at once from the composed maps (same result as the loop, to rounding).
    """
    check_int("steps", steps)
    g = flow(sigma_min)
    a, c = _compose(*_layer_maps(g, steps))
    z = _noise().numpy()
    # x_k = a_k z + c_k for all k (numpy: elementwise, no thread pool to wake up)
    traj = torch.from_numpy(
        a[:, None, :, 0] * z[None, :, 0:1] + a[:, None, :, 1] * z[None, :, 1:] + c[:, None, :]
    )
    x = traj[-1]
    s_k = g.euler_std(steps)
    edges = torch.linspace(M[0] - 4 * s_k, M[0] + 4 * s_k, BINS + 1, dtype=torch.float64)
    hist, expected, std_err = histogram_vs_density(
        x[:, 0], lambda e: normal_cdf(e, M[0], s_k), edges
    )
    enough = expected * edges.diff() * N_SAMPLES >= 5  # bins with >= 5 expected counts
    z_max = ((hist - expected).abs() / std_err)[enough].max().item()
    stats = {
        "std_formula": s_k,
        "std_samples": (x - torch.tensor(M, dtype=x.dtype)).pow(2).mean().sqrt().item(),
        "std_limit": sigma_min,
        "hist_max_z": z_max,
        "hist_max_abs": (hist - expected).abs().max().item(),
    }
    return traj, stats


def _ode_paths(sigma_min: float, z: np.ndarray, n_times: int = 101) -> np.ndarray:
    """The continuous flow's trajectories psi_t(z) = sigma_t R(omega t) z + t m (as
    GaussianFlow.psi_t) at n_times times in [0, 1], all at once: [T, n, 2] (numpy: the
    drawing's maths stays off torch's thread pool)."""
    t = np.linspace(0.0, 1.0, n_times)[:, None]
    cos, sin = np.cos(OMEGA * t), np.sin(OMEGA * t)
    rotated = np.stack([cos * z[:, 0] - sin * z[:, 1], sin * z[:, 0] + cos * z[:, 1]], axis=-1)
    sigma_t = 1 - (1 - sigma_min) * t
    return sigma_t[..., None] * rotated + t[..., None] * np.asarray(M)


def _paths_title(steps: int) -> str:
    return f"K = {steps} residual layers (green), ODE flow (dashes)"


def _suptitle(sigma_min: float, steps: int, stats: dict[str, float]) -> str:
    """Starts with the panel's readouts, 'σ_min = 0.10, steps K = 10'."""
    return (
        f"σ_min = {sigma_min:.2f}, steps K = {steps}: std by formula s_K = "
        f"{stats['std_formula']:.3f}, from samples {stats['std_samples']:.3f}, "
        f"limit σ_min = {sigma_min:.2f}"
    )


def _hist_title(steps: int, stats: dict[str, float]) -> str:
    return f"K = {steps}: hist − formula ≤ {stats['hist_max_z']:.1f} std errors"


def _normal_density(grid: np.ndarray, std: float) -> np.ndarray:
    """The density of N(M[0], std^2) on a 1-D grid."""
    return np.exp(-0.5 * ((grid - M[0]) / std) ** 2) / (std * math.sqrt(2 * math.pi))


class _PathArtists:
    """Left panel: dashed ODE trajectories, green residual layers, x_K (orange), z (blue)."""

    def __init__(self, ax: Axes) -> None:
        self.ax = ax
        self.ode = LineCollection([], color="0.55", lw=1, ls="--")
        self.layers = LineCollection([], color=plots.PATH_COLOR, lw=1)
        ax.add_collection(self.ode, autolim=False)
        ax.add_collection(self.layers, autolim=False)
        (self.nodes,) = ax.plot([], [], "o", ms=2, color=plots.PATH_COLOR)
        self.ends = ax.scatter([], [], s=2, alpha=0.4, color=plots.TARGET_COLOR, lw=0)
        z = _noise()[:N_PATHS]
        self.starts = ax.scatter(z[:, 0], z[:, 1], s=10, alpha=1, color=plots.SOURCE_COLOR, lw=0)
        plots.square(ax)
        ax.set_title(_paths_title(10))

    @property
    def artists(self) -> tuple:
        """What `set` changes, plus z drawn on top of x_K (as in a full render)."""
        return self.ode, self.layers, self.nodes, self.ends, self.starts, self.ax.title

    def set(self, sigma_min: float, traj: Tensor, steps: int) -> None:
        paths = traj[:, :N_PATHS].numpy()
        self.ode.set_segments(list(_ode_paths(sigma_min, paths[0]).transpose(1, 0, 2)))
        self.layers.set_segments(list(paths.transpose(1, 0, 2)))
        self.nodes.set_data(paths[..., 0].ravel(), paths[..., 1].ravel())
        self.ends.set_offsets(traj[-1, :1500].numpy())
        self.ax.set_title(_paths_title(steps))


class _HistogramArtists:
    """Histogram of x_K^(1) vs the formula N(m, s_K^2) and the limit K -> oo. Its axis
    limits follow s_K, so its axes (ticks, grid) are redrawn with the data (`artists`).

    With `legend_numbers=False` (the widget) the legend names s_K and sigma_min instead of
    printing them (the suptitle does) and sits under the data: it stays in the cached
    background instead of being redrawn on top of every update."""

    def __init__(
        self,
        ax: Axes,
        legend_fontsize: float | None = None,
        legend_numbers: bool = True,
        legend: bool = True,
    ) -> None:
        self.ax = ax
        self.bars = ax.stairs(
            np.zeros(BINS),
            np.linspace(M[0] - 1, M[0] + 1, BINS + 1),
            fill=True,
            color=plots.PATH_COLOR,
            alpha=0.5,
        )
        (self.formula,) = ax.plot([], [], color="k", lw=1.5)
        (self.limit,) = ax.plot([], [], color=plots.TARGET_COLOR, ls="--")
        self.point_mass = ax.axvline(M[0], color=plots.TARGET_COLOR, ls="--")
        ax.set_xlabel("$x^{(1)}$ after the last layer")
        ax.set_ylabel("density")
        self.legend_numbers = legend_numbers and legend
        self.legend = ax.legend(
            [self.bars, self.formula, self.limit],
            ["histogram of pushed samples", "formula: N(m, s_K²)", "K → ∞: N(m, σ_min²)"],
            loc="upper left",
            fontsize=legend_fontsize,
        )
        if not legend_numbers:
            self.legend.set_zorder(0.5)  # under the grid and the data, like the Axes' face
        if not legend:  # small multiples: one legend for the whole figure (`legend_entries`)
            self.legend.remove()

    def legend_entries(self) -> tuple[list, list[str]]:
        """Handles and labels of the three curves, for one figure-level legend."""
        names = ["histogram of pushed samples", "formula: N(m, s_K²)", "K → ∞: N(m, σ_min²)"]
        return [self.bars, self.formula, self.limit], names

    @property
    def artists(self) -> tuple:
        """Everything but the Axes' face (and a static legend): the spines stay on top."""
        ax = self.ax
        legend = (self.legend,) if self.legend_numbers else ()
        return (
            self.bars,
            self.formula,
            self.limit,
            self.point_mass,
            ax.xaxis,
            ax.yaxis,
            *ax.spines.values(),
            ax.title,
            *legend,
        )

    def set(self, x_end: Tensor, stats: dict[str, float], steps: int) -> None:
        s_k, s = stats["std_formula"], stats["std_limit"]
        lo, hi = M[0] - 4 * max(s_k, 0.05), M[0] + 4 * max(s_k, 0.05)
        heights, edges = np.histogram(x_end[:, 0].numpy(), bins=BINS, range=(lo, hi), density=True)
        self.bars.set_data(heights, edges)
        grid = np.linspace(lo, hi, 400)
        formula = _normal_density(grid, s_k)
        self.formula.set_data(grid, formula)
        top = max(heights.max(), formula.max())
        self.limit.set_visible(s > 0)
        self.point_mass.set_visible(s == 0)
        if s > 0:
            limit = _normal_density(grid, s)
            self.limit.set_data(grid, limit)
            top = max(top, limit.max())
        if self.legend_numbers:
            texts = self.legend.get_texts()
            texts[1].set_text(f"formula: N(m, {s_k:.3f}²)")
            texts[2].set_text(f"K → ∞: N(m, {s:.2f}²)" if s > 0 else "K → ∞: point mass at m")
        # what autoscaling gives: 5 % margins, the bars' baseline 0 sticks
        self.ax.set_xlim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        self.ax.set_ylim(0.0, 1.05 * top)
        self.ax.set_title(_hist_title(steps, stats))


class ResidualFlow(plots.LiveFigure):
    """Left: K residual layers vs the continuous flow; right: histogram of x_K^(1) vs the
    change-of-variables density N(m, s_K^2) and the continuous limit N(m, sigma_min^2).

    `ResidualFlow.draw(sigma_min=0.1, steps=10)` -> Figure; `widgets.panel(view)` shows
    its controls (sigma_min in [0, 0.5], K = steps in [1, 100]; both always matter)."""

    def controls(self) -> dict:
        return {"sigma_min": widgets.sigma_min_slider(0.1), "steps": widgets.steps_slider(10)}

    def build(self) -> Figure:
        fig, (ax_paths, ax_hist) = plots.new_axes(2, size=3.8)
        self.paths = _PathArtists(ax_paths)
        self.hist = _HistogramArtists(ax_hist, legend_numbers=False)
        placeholder = {"std_formula": 0.0, "std_samples": 0.0}
        self.title = fig.suptitle(_suptitle(0.1, 10, placeholder), fontsize=9)
        self.update()  # lay out once with the default values, then freeze the layout
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
        xlabel = ax_hist.xaxis.label  # its laid-out place: the tick labels' height is fixed
        ax_hist.xaxis.set_label_coords(*xlabel.get_position(), transform=xlabel.get_transform())
        self.dynamic(*self.paths.artists, *self.hist.artists, self.title)
        return fig

    def update(self, sigma_min: float = 0.1, steps: int = 10) -> None:
        sigma_min, steps = float(sigma_min), int(steps)
        traj, stats = residual_flow(sigma_min, steps)
        self.paths.set(sigma_min, traj, steps)
        self.hist.set(traj[-1], stats, steps)
        self.title.set_text(_suptitle(sigma_min, steps, stats))


def draw_residual_grid(
    sigma_mins: tuple[float, ...] = (0.0, 0.3), steps: tuple[int, ...] = (2, 8, 32)
) -> Figure:
    """Small multiples of the histogram panel: one row per sigma_min, one column per K, and
    one legend for all of them under the panels (a point mass at m where sigma_min = 0)."""
    fig, axes = plots.new_axes(len(sigma_mins) * len(steps), size=2.9, ncols=len(steps))
    for i, s in enumerate(sigma_mins):
        for j, k in enumerate(steps):
            traj, stats = residual_flow(float(s), int(k))
            ax = axes[i * len(steps) + j]
            panel = _HistogramArtists(ax, legend=False)
            panel.set(traj[-1], stats, int(k))
            ax.set_title(f"σ_min = {s:.2f}, K = {k}: s_K = {stats['std_formula']:.3f}")
    handles, names = panel.legend_entries()
    names[2] = "K → ∞: N(m, σ_min²), a point mass at m (vertical) if σ_min = 0"
    fig.legend(handles, names, loc="outside lower center", ncols=3, fontsize=9)
    return fig


def draw_layer_densities(
    discrete_flow: DiscreteFlow, log_pi, lim: float = plots.LIM, n: int = 120
) -> Figure:
    """Density p_k = [G_k o ... o G_1]_# pi after each layer k = 0..K, by the accumulated
    log-determinant (one heatmap per layer, shared colour scale)."""
    _, _, pts = plots.grid2d(lim, n)
    pts = pts.to(torch.float64)
    dens = [
        discrete_flow.log_prob(pts, log_pi, upto=k).exp().reshape(n, n)
        for k in range(len(discrete_flow.layers) + 1)
    ]
    vmax = max(d.max().item() for d in dens)
    fig, axes = plots.new_axes(len(dens), size=2.6)
    for k, (ax, d) in enumerate(zip(axes, dens, strict=True)):
        mass = d.sum().item() * (2 * lim / (n - 1)) ** 2  # in view: [-lim, lim]^2 only
        plots.heatmap(
            ax,
            d,
            (-lim, lim, -lim, lim),
            f"p_{k} (in view)\nmass {mass:.3f}",
            "density",
            vmin=0,
            vmax=vmax,
        )
        ax.set_xlabel("$x^{(1)}$")
        ax.set_ylabel("$x^{(2)}$")
    return fig


def draw_pushforward_schematic(
    f, corner: tuple[float, float] = (0.85, 0.35), side: float = 0.3, n_lines: int = 7
) -> Figure:
    """Schematic of the change of variables in 2D: a grid and a small square in the z-plane
    (left), their images under the map f in the x-plane (right), an arrow labelled f.

    The square carries mass pi(z) dz1 dz2; its image (area ~ |det J_f| dz1 dz2) carries the
    same mass, so p(x) = pi(z) / |det J_f(z)|. `f` maps [N, 2] -> [N, 2] (float64)."""
    from matplotlib.patches import ConnectionPatch

    a = torch.tensor(corner, dtype=torch.float64)
    pad = 1.5 * side
    lo, hi = a - pad, a + side + pad
    s = torch.linspace(0, 1, 60, dtype=torch.float64)[:, None]
    lines = []
    for v in torch.linspace(0, 1, n_lines, dtype=torch.float64):
        lines.append(lo + (hi - lo) * torch.cat([s, v.expand_as(s)], dim=1))  # horizontal
        lines.append(lo + (hi - lo) * torch.cat([v.expand_as(s), s], dim=1))  # vertical
    square = square_boundary(a, side, n=30)
    fig, (ax_z, ax_x) = plots.new_axes(2, size=3.4)
    for ax, g in ((ax_z, lambda y: y), (ax_x, f)):
        for line in lines:
            pts = g(line).numpy()
            ax.plot(pts[:, 0], pts[:, 1], color="0.7", lw=0.8)
        img = g(square).numpy()
        color = plots.SOURCE_COLOR if ax is ax_z else plots.TARGET_COLOR
        ax.fill(img[:, 0], img[:, 1], color=color, alpha=0.7)
    ax_z.set_aspect("equal")  # the x-plane keeps its own scales: f stretches x_2 five-fold
    ax_z.set(
        xlabel="$z_1$",
        ylabel="$z_2$",
        title="z-plane: a square of area Δz₁Δz₂\ncarries mass π(z) Δz₁Δz₂",
    )
    ax_x.set(
        xlabel="$x_1$",
        ylabel="$x_2$",
        title="x-plane: its image, area ≈ |det J_f| Δz₁Δz₂,\nsame mass: p(x) = π(z) / |det J_f|",
    )
    centre = (a + side / 2)[None]
    start, end = centre[0].numpy(), f(centre)[0].numpy()
    arrow = ConnectionPatch(
        start,
        end,
        "data",
        "data",
        axesA=ax_z,
        axesB=ax_x,
        arrowstyle="-|>",
        color="k",
        lw=1.2,
        mutation_scale=14,
        connectionstyle="arc3,rad=-0.25",
    )
    fig.add_artist(arrow)
    # the arrow's label, in the z-plane's empty upper right, above where the arrow leaves it
    ax_z.text(0.97, 0.8, "x = f(z)", transform=ax_z.transAxes, ha="right", va="bottom", fontsize=11)
    return fig


__all__ = [
    "ResidualFlow",
    "draw_layer_densities",
    "draw_pushforward_schematic",
    "draw_residual_grid",
    "flow",
    "plt",
    "residual_flow",
]
