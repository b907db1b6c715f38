"""Notebook 09: classifier-free guidance on a labelled Gaussian mixture, with exact fields.

Everything here uses the exact guided field u~_t(x | y) = (1 - w) u_t(x) + w u_t(x | y) of
fmlib.guidance (closed forms of fmlib.marginal), so that the widget shows guidance itself,
not a network's errors. One Euler solve moves the particles of every offered w at once
(one weight per particle), cached per (class, sigma_min, steps).
"""

from __future__ import annotations

import math
from functools import lru_cache

import ipywidgets
import torch
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import guidance, plots, widgets
from fmlib.checks import check_int, check_range
from fmlib.paths import OTPath
from fmlib.repro import one_thread
from fmlib.solvers import integrate, position_at

W_OPTIONS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
CLASSES = ("0", "1", "2")
STEPS_OPTIONS = (1, 2, 4, 8, 16, 32)
SIGMA_MIN_OPTIONS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
VIEW = 3.5
HEAT = 70
N_PARTICLES = 200
QUIVER = 13
LOG_FLOOR = -8.0  # log densities below are drawn as the floor colour


def target():
    """The labelled mixture of notebook 09 (fmlib.guidance.labelled_mixture), float64."""
    return guidance.labelled_mixture()


def _check(w: float, y: str, sigma_min: float, steps: int, t: float) -> None:
    if w not in W_OPTIONS:
        raise ValueError(f"w must be one of {W_OPTIONS}, got {w!r}")
    if y not in CLASSES:
        raise ValueError(f"y must be one of {', '.join(CLASSES)}, got {y!r}")
    check_range("sigma_min", sigma_min, 0.0, 1.0, high_open=True)
    check_int("steps", steps)
    check_range("t", t, 0.0, 1.0)


@lru_cache(maxsize=1)
def _x0() -> Tensor:
    g = torch.Generator().manual_seed(9)
    return torch.randn(N_PARTICLES, 2, generator=g, dtype=torch.float64)


def panel_noise() -> Tensor:
    """The panel's N_PARTICLES noise points x0 (seeded), [N_PARTICLES, 2] float64: every
    curve and picture of the panel starts from them."""
    return _x0().clone()


@lru_cache(maxsize=128)
def trajectories(y: int, sigma_min: float, steps: int) -> Tensor:
    """Euler iterates of dx/dt = u~_t(x | y) for every w in W_OPTIONS from the same noise:
    [steps + 1, len(W_OPTIONS), N_PARTICLES, 2]."""
    w = torch.tensor(W_OPTIONS, dtype=torch.float64).repeat_interleave(N_PARTICLES)
    u = guidance.exact_guided_field(target(), y, w, OTPath(sigma_min))
    x0 = _x0().repeat(len(W_OPTIONS), 1)
    traj = integrate(u, x0, steps=steps, method="euler", trajectory=True).trajectory
    return traj.reshape(steps + 1, len(W_OPTIONS), N_PARTICLES, 2)


@lru_cache(maxsize=128)
def trade_off(y: int, sigma_min: float, steps: int) -> tuple[list[float], list[float]]:
    """(accuracy, spread) of the Euler endpoints for each w in W_OPTIONS (fmlib.guidance)."""
    ends = trajectories(y, sigma_min, steps)[-1]
    acc = [guidance.accuracy(target(), x, y)[0] for x in ends]
    return acc, [guidance.spread(x)[0] for x in ends]


@lru_cache(maxsize=1)
def _grid() -> Tensor:
    return plots.grid2d(VIEW, HEAT)[2].double()


@lru_cache(maxsize=64)
def tilted_log_density(y: int, w: float) -> Tensor:
    """log [p(x | y)^w p(x)^(1 - w) / Z] on the HEAT x HEAT grid (Z summed on the grid)."""
    log_p = guidance.tilted_log_prob(target(), y, w, _grid())
    cell = (2 * VIEW / (HEAT - 1)) ** 2
    return (log_p - torch.logsumexp(log_p, 0) - math.log(cell)).reshape(HEAT, HEAT)


@lru_cache(maxsize=1)
def _quiver_points() -> Tensor:
    return plots.grid2d(VIEW * 0.9, QUIVER)[2].double()


class Guidance(plots.LiveFigure):
    """Particles of the guided flow at t with the field u~_t (arrows) | the Euler endpoints
    (CFG samples; grey: classified into another class) over the tilted density
    p(x | y)^w p(x)^(1 - w) / Z | accuracy and spread of the endpoints against w.

    `Guidance.draw(w=2.0, y="0", sigma_min=0.0, steps=16, t=0.5)` -> Figure."""

    NOTE = (
        "The fields are exact (closed forms of fmlib.marginal), not the trained network's; "
        "σ_min widens the OT path's end, σ_1 = σ_min."
    )

    def controls(self) -> dict[str, ipywidgets.ValueWidget]:
        return {
            "w": ipywidgets.SelectionSlider(
                options=[(f"{w:.2f}", w) for w in W_OPTIONS],
                value=2.0,
                description="w",
                continuous_update=True,
                style={"description_width": "initial"},
                layout=ipywidgets.Layout(width="300px"),
            ),
            "y": widgets.choice("class y", CLASSES, "0"),
            "sigma_min": widgets.sigma_min_slider(0.0, options=SIGMA_MIN_OPTIONS),
            "steps": widgets.steps_slider(16, options=STEPS_OPTIONS),
            "t": widgets.t_slider(0.5),
        }

    def build(self) -> Figure:
        fig, (ax_t, ax_1, ax_w) = plots.new_axes(3, size=3.3)
        q = target()
        ext = (-VIEW, VIEW, -VIEW, VIEW)
        self.quiver = ax_t.quiver(
            *_quiver_points().T.numpy(),
            *torch.zeros(2, QUIVER**2).numpy(),
            color="0.55",
            angles="xy",
            scale_units="xy",
            scale=6.0,
            width=0.004,
        )
        self.particles = ax_t.scatter([], [], s=5, color=plots.PATH_COLOR, lw=0, alpha=0.8)
        self.tilted = plots.heatmap(
            ax_1, torch.zeros(HEAT, HEAT), ext, label="log density", vmin=LOG_FLOOR, vmax=0.5
        )
        self.right = ax_1.scatter([], [], s=5, color="white", lw=0, alpha=0.9)
        self.wrong = ax_1.scatter([], [], s=6, color="0.45", lw=0)
        marks = []
        for ax in (ax_t, ax_1):
            (m,) = ax.plot(
                q.means[:, 0],
                q.means[:, 1],
                "*",
                color=plots.TARGET_COLOR,
                mec="k",
                ms=10,
                zorder=4,
            )
            marks.append(m)
            plots.square(ax, VIEW)
        ws = list(W_OPTIONS)
        (self.acc,) = ax_w.plot(
            ws, [0.0] * len(ws), "o-", color=plots.TARGET_COLOR, label="accuracy (right class)"
        )
        (self.spread,) = ax_w.plot(
            ws, [0.0] * len(ws), "s--", color=plots.SOURCE_COLOR, label="spread (RMS to mean)"
        )
        ax_w.set(xlabel="guidance weight w", ylim=(0, 1.6))
        self.now = ax_w.axvline(2.0, color="k", lw=0.8)
        legend = ax_w.legend(handles=[self.acc, self.spread], loc="upper right", fontsize=9)
        self.axes = (ax_t, ax_1, ax_w)
        for ax, title in zip(self.axes, self._titles(2.0, 0, 0.0, 16, 0.5), strict=True):
            ax.set_title(title, fontsize=9)  # placeholder: sizes the layout
        spines = [s for ax in (ax_t, ax_1) for s in ax.spines.values()]
        titles = [ax.title for ax in self.axes]
        self.dynamic(
            self.quiver,
            self.particles,
            self.tilted,
            self.right,
            self.wrong,
            self.acc,
            self.spread,
            self.now,
            legend,
            *marks,
            *titles,
            *spines,
        )
        return fig

    def _titles(self, w: float, y: int, sigma_min: float, steps: int, t: float):
        acc, spread = trade_off(y, sigma_min, steps)
        i = W_OPTIONS.index(w)
        return (
            f"guided flow at t = {t:.2f}\nσ_min = {sigma_min:.2f}, Euler steps = {steps}",
            f"CFG samples, w = {w:.2f}, y = {y}\nover p(x|y)^w p(x)^(1-w) / Z",
            f"accuracy = {acc[i]:.2f}, spread = {spread[i]:.2f}",
        )

    def update(
        self, w: float = 2.0, y: str = "0", sigma_min: float = 0.0, steps: int = 16, t: float = 0.5
    ) -> None:
        _check(w, y, sigma_min, steps, t)
        label, i = int(y), W_OPTIONS.index(w)
        with one_thread():
            traj = trajectories(label, sigma_min, steps)
            x_t = position_at(traj[:, i], t)
            arrows = guidance.exact_guided_field(target(), label, w, OTPath(sigma_min))(
                _quiver_points(), torch.tensor(t, dtype=torch.float64)
            )
            ends = traj[-1, i]
            right = guidance.classify(target(), ends) == label
            acc, spread = trade_off(label, sigma_min, steps)
            log_tilted = tilted_log_density(label, w).clamp(min=LOG_FLOOR)
        self.quiver.set_UVC(*arrows.T.numpy())
        self.particles.set_offsets(x_t.numpy())
        self.tilted.set_data(log_tilted.numpy())
        self.right.set_offsets(ends[right].numpy().reshape(-1, 2))
        self.wrong.set_offsets(ends[~right].numpy().reshape(-1, 2))
        self.acc.set_ydata(acc)
        self.spread.set_ydata(spread)
        self.now.set_xdata([w, w])
        for ax, title in zip(self.axes, self._titles(w, label, sigma_min, steps, t), strict=True):
            ax.title.set_text(title)


def draw_densities(log_tilted: Tensor, log_cfg: Tensor, lim: float, w: float) -> Figure:
    """Tilted density | exact density of the CFG samples | their difference, on the square
    grid [-lim, lim]^2 (flattened log densities, row-major in y as fmlib.plots.grid2d)."""
    n = math.isqrt(log_tilted.numel())
    pi, p = log_tilted.exp().reshape(n, n), log_cfg.exp().reshape(n, n)
    top = float(max(pi.max(), p.max()))
    fig, axes = plots.new_axes(3, size=3.2)
    ext = (-lim, lim, -lim, lim)
    plots.heatmap(
        axes[0], pi, ext, title=f"tilted density, w = {w:.2f}", label="density", vmin=0, vmax=top
    )
    plots.heatmap(
        axes[1],
        p,
        ext,
        title=f"density of the CFG samples, w = {w:.2f}",
        label="density",
        vmin=0,
        vmax=top,
    )
    big = float((p - pi).abs().max())
    plots.heatmap(
        axes[2],
        p - pi,
        ext,
        title="CFG minus tilted",
        label="density difference",
        cmap=plots.DIVERGING,
        vmin=-big,
        vmax=big,
    )
    q = target()
    for ax in axes:
        ax.plot(q.means[:, 0], q.means[:, 1], "*", color=plots.TARGET_COLOR, mec="k", ms=9)
        ax.title.set_fontsize(9)
    return fig


def draw_trade_off(ws: tuple[float, ...], trade: dict[str, dict[str, list[float]]]) -> Figure:
    """Accuracy and spread against w, each with +-2 SE bars: `trade[name]` holds the lists
    "acc", "acc_se", "spread", "spread_se" for each w (name: "exact", "trained")."""
    fig, (ax,) = plots.new_axes(1, size=4.2)
    styles = {"exact": dict(ls="-", marker="o", ms=4), "trained": dict(ls=":", marker="x", ms=6)}
    for name, values in trade.items():
        for key, color, label in (
            ("acc", plots.TARGET_COLOR, "accuracy (right class)"),
            ("spread", plots.SOURCE_COLOR, "spread (RMS to mean)"),
        ):
            se = [2 * s for s in values[key + "_se"]]
            ax.errorbar(
                ws,
                values[key],
                yerr=se,
                color=color,
                capsize=2,
                label=f"{label}, {name}",
                **styles.get(name, {}),
            )
    ax.set(
        xlabel="guidance weight w",
        ylabel="accuracy / spread",
        ylim=(0, 1.5),
        title="guidance: class fidelity against diversity",
    )
    ax.legend(fontsize=9, loc="lower right")
    return fig
