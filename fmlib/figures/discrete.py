"""Notebook 10: the mixture path on a D x D grid and the CTMC Euler sampler, exactly.

`sweep(source, power)` runs the Euler sampler with the exact posterior (the Bayes-optimal
model) for every number of steps the widget offers and keeps the exact distribution of
its output (fmlib.discrete.euler_distribution: no sampling noise) with its total variation
and KL to the discretised checkerboard. `DiscretePath`, the widget's view, draws the
schedule kappa_t, the path p_t at t, the sampler's output (with its TV and KL in the title)
and TV vs steps for both sources; a redraw only looks up precomputed arrays.
"""

from __future__ import annotations

from functools import lru_cache

import ipywidgets
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import discrete, plots, widgets
from fmlib.checks import check_range
from fmlib.repro import one_thread

N_VALUES = 32  # D: the grid is D x D, the full state space (D + 1)^2 with the mask
STEPS = (1, 2, 4, 8, 16, 32)  # the widget's steps
POWERS = (0.5, 1.0, 2.0, 3.0)  # kappa_t = t^p
T_OPTIONS = tuple(round(k / 20, 2) for k in range(21))
# Fixed colour scale (a redraw changes only the data): q is 2 / D^2 on its support.
P_MAX = 1.5 * 2 / N_VALUES**2


def _power_label(power: float) -> str:
    return f"{power:g}"


def _check(steps: int, power: float, source: str, t: float) -> None:
    if steps not in STEPS:
        raise ValueError(f"steps must be one of {STEPS}, got {steps!r}")
    if power not in POWERS:
        raise ValueError(f"power must be one of {POWERS}, got {power!r}")
    if source not in discrete.SOURCES:
        raise ValueError(f"source must be one of {discrete.SOURCES}, got {source!r}")
    check_range("t", t, 0.0, 1.0)


@lru_cache(maxsize=1)
def target() -> Tensor:
    """The discretised checkerboard q [D, D]."""
    return discrete.checkerboard_grid(N_VALUES)


def distances(path: discrete.MixturePath, p: Tensor) -> tuple[float, float]:
    """(TV, KL(q || p)) of a distribution p [V, V] to q, over all V^2 states (masks too)."""
    q = discrete.embed(path, target())
    return discrete.total_variation(p, q), discrete.kl_divergence(q, p)


@lru_cache(maxsize=len(POWERS) * len(discrete.SOURCES))
def sweep(source: str, power: float) -> dict[int, tuple[Tensor, float, float]]:
    """{steps: (exact output distribution [V, V], TV, KL)} of the Euler sampler with the
    exact posterior, for every steps in STEPS."""
    path = discrete.MixturePath(N_VALUES, source, power)
    fn = discrete.exact_posterior_fn(path, target())
    out = {}
    with one_thread():
        for steps in STEPS:
            p = discrete.euler_distribution(path, fn, steps)
            out[steps] = (p, *distances(path, p))
    return out


class DiscretePath(plots.LiveFigure):
    """kappa_t = t^p | p_t(x) on the grid at t | the Euler sampler's output with `steps` steps
    (exact distribution) | TV to q vs steps for both sources at this p (a ring marks the
    chosen source and steps; TV and KL of that setting are in the sampler's title).

    Everything is precomputed when the view is built (`sweep` for every source and p)."""

    NOTE = (
        "No σ_min here: a token is either still source or exactly x1, and κ_1 = 1 gives "
        "p_1 = q exactly, the discrete twin of σ_min = 0 (κ_1 < 1 would be the blur)."
    )

    def __init__(self, pyplot: bool = False) -> None:
        for source in discrete.SOURCES:
            for power in POWERS:
                sweep(source, power)
        super().__init__(pyplot)

    def controls(self) -> dict:
        return {
            "steps": widgets.steps_slider(8, options=STEPS),
            "power": ipywidgets.SelectionSlider(
                options=[(_power_label(p), p) for p in POWERS],
                value=2.0,
                description="κ_t = t^p, p",
                continuous_update=True,
                style={"description_width": "initial"},
            ),
            "source": widgets.choice("source", discrete.SOURCES, "mask"),
            "t": widgets.t_slider(0.5, options=T_OPTIONS),
        }

    def build(self) -> Figure:
        fig, (a_k, a_p, a_s, a_c) = plots.new_axes(4, size=3.3, ncols=2)
        fig.set_layout_engine("constrained")
        ts = np.linspace(0, 1, 101)
        (self.kappa_line,) = a_k.plot(ts, ts, color="C0")
        (self.kappa_dot,) = a_k.plot([0.5], [0.5], "o", color="C3")
        a_k.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="t", ylabel="κ_t")
        grid = np.zeros((N_VALUES, N_VALUES))
        ext = (-0.5, N_VALUES - 0.5, -0.5, N_VALUES - 0.5)
        self.path_img = plots.heatmap(a_p, grid, ext, label="probability", vmin=0, vmax=P_MAX)
        self.out_img = plots.heatmap(a_s, grid, ext, label="probability", vmin=0, vmax=P_MAX)
        for ax in (a_p, a_s):
            ax.set(xlabel="token 1 (x)", ylabel="token 2 (y)")
        steps = np.array(STEPS)
        self.tv_lines = {
            source: a_c.loglog(steps, steps / 10, style, color=color, label=f"{source} source")[0]
            for source, style, color in zip(
                discrete.SOURCES, ("o-", "s--"), ("C0", "C1"), strict=True
            )
        }
        (self.marker,) = a_c.loglog([1], [1], "o", ms=12, mfc="none", mec="C3", mew=2)
        a_c.set(xlim=(0.8, 40), ylim=(3e-3, 2), xlabel="Euler steps", ylabel="TV to q")
        a_c.set_xticks(steps, [str(n) for n in STEPS])
        a_c.set_xticks([], minor=True)
        a_c.legend(loc="lower left")
        self.titles = [ax.set_title(" ", fontsize=8) for ax in (a_k, a_p, a_s, a_c)]
        # the images are dynamic; their axes' frames must stay drawn on top of them
        frames = [*a_p.spines.values(), *a_s.spines.values()]
        self.dynamic(self.kappa_line, self.kappa_dot, self.path_img, self.out_img, *frames)
        self.dynamic(*self.tv_lines.values(), self.marker, *self.titles)
        return fig

    def update(self, steps: int = 8, power: float = 2.0, source: str = "mask", t: float = 0.5):
        _check(steps, power, source, t)
        path = discrete.MixturePath(N_VALUES, source, power)
        ts = np.linspace(0, 1, 101)
        self.kappa_line.set_ydata(ts**power)
        self.kappa_dot.set_data([t], [t**power])
        with one_thread():
            p_t = discrete.joint_marginal(path, target(), t)
        self.path_img.set_data(discrete.on_grid(path, p_t).T.numpy())  # rows = token 2
        runs = sweep(source, power)
        p, tv, kl = runs[steps]
        self.out_img.set_data(discrete.on_grid(path, p).T.numpy())
        for name, line in self.tv_lines.items():
            line.set_ydata([sweep(name, power)[k][1] for k in STEPS])
        self.marker.set_data([steps], [tv])
        on = float(discrete.on_grid(path, p_t).sum())
        self.titles[0].set_text(
            f"κ_t = t^p, p = {_power_label(power)}\nt = {t:.2f}, κ_t = {t**power:.2f}"
        )
        self.titles[1].set_text(f"path p_t(x), source = {source}\nmass on the grid {on:.2f}")
        self.titles[2].set_text(f"Euler sampler, steps = {steps}\nTV = {tv:.3f}, KL = {kl:.3f}")
        self.titles[3].set_text(
            f"TV to q vs steps, p = {_power_label(power)}\nring: {source}, {steps} steps"
        )


__all__ = [
    "N_VALUES",
    "POWERS",
    "STEPS",
    "DiscretePath",
    "sweep",
    "target",
]
