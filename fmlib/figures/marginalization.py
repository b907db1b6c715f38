"""Notebook 04: conditional vs marginal fields of a small dataset, and memorisation.

The target is a finite training set {x1^(k)} (a point set, q = (1/K) sum_k delta), drawn
once from the checkerboard. Its marginal field u_t(x) = sum_k P(k | x) u_t(x | x1^(k)) is
exact (fmlib.marginal), and integrating it from noise lands on the training points
(the panel integrates fmlib.marginal.MixtureMarginal, the same closed forms in fewer
tensor operations, at every redraw).
"""

from __future__ import annotations

from functools import lru_cache

import ipywidgets as ipw
import matplotlib.patches as mpatches
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import data, plots, widgets
from fmlib.checks import check_int, check_range
from fmlib.continuity import square_grid
from fmlib.marginal import GaussianMixture, MixtureMarginal, posterior
from fmlib.paths import OTPath
from fmlib.plots import LOG_P_CEIL, LOG_P_FLOOR
from fmlib.repro import one_thread
from fmlib.solvers import integrate

DATASET = "checkerboard"
VIEW = 4.5
N_NOISE = 300  # particles integrated by the exact marginal ODE
N_TRAJ = 30  # trajectories drawn
QUIVER = 15  # quiver grid per side
HEAT = 60  # heatmap grid per side
# The times the panel draws: at sigma_min = 0 the marginal p_1 of a point set is a sum of
# deltas (no density, no field off the points), so the t control ends at 0.99, for every
# sigma_min (one control, the same values): the view never replaces t.
T_OPTIONS = (*(round(0.05 * i, 2) for i in range(20)), 0.99)
N_POINTS_OPTIONS = tuple(range(5, 55, 5))  # training-set sizes of the panel


def _check(sigma_min: float, t: float, steps: int, n_points: int) -> None:
    check_range("sigma_min", sigma_min, 0.0, 1.0, high_open=True)
    check_range("t", t, 0.0, 1.0)
    check_int("steps", steps)
    check_int("n_points", n_points, 1, 200)


@lru_cache(maxsize=32)
def training_points(n_points: int) -> Tensor:
    """n_points samples of the checkerboard, seed 0, float64: the 'training set'."""
    return data.sample(DATASET, n_points, generator=torch.Generator().manual_seed(0)).double()


def point_set(n_points: int) -> GaussianMixture:
    """q = (1/K) sum_k delta_{x1^(k)}: the empirical distribution of the training set."""
    return GaussianMixture(training_points(n_points), 0.0)


@lru_cache(maxsize=1)
def _noise() -> Tensor:
    return torch.randn(N_NOISE, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@lru_cache(maxsize=256)
def endpoints(sigma_min: float, steps: int, n_points: int) -> tuple[Tensor, Tensor]:
    """Trajectories [steps + 1, N, 2] and endpoints of dx/dt = u_t(x) (exact marginal field,
    midpoint) from x0 ~ N(0, I)."""
    u = MixtureMarginal(OTPath(sigma_min), point_set(n_points)).velocity
    sol = integrate(u, _noise(), steps=steps, method="midpoint", trajectory=True)
    return sol.trajectory, sol.x


def nearest_distance(x: Tensor, points: Tensor) -> Tensor:
    """min_k ||x_n - x1^(k)|| for every row of x: [N]."""
    return torch.cdist(x, points).min(dim=1).values


def memorisation_distance(sigma_min: float, steps: int = 100, n_points: int = 10) -> float:
    """Mean distance from the ODE endpoints to the nearest training point."""
    _check(sigma_min, 1.0, steps, n_points)
    _, x = endpoints(sigma_min, steps, n_points)
    return float(nearest_distance(x, training_points(n_points)).mean())


@lru_cache(maxsize=128)
def _fields(sigma_min: float, t: float, n_points: int):
    """(t, log p_t [HEAT, HEAT], max_k P(k | x) [HEAT, HEAT], quiver points, u_t there)."""
    _check(sigma_min, t, 1, n_points)
    if sigma_min == 0 and t == 1:  # never replaced by a nearby t: the control ends at 0.99
        raise ValueError("t must be < 1 at sigma_min = 0 (p_1 is a sum of deltas), got t = 1")
    marginal = MixtureMarginal(OTPath(sigma_min), point_set(n_points))
    pts = square_grid(VIEW, HEAT)
    log_p, w_max = (v.reshape(HEAT, HEAT) for v in marginal.log_prob_and_certainty(pts, t))
    qpts = square_grid(VIEW * 0.9, QUIVER)
    return t, log_p, w_max, qpts, marginal.velocity(qpts, t)


def _titles(
    sigma_min: float, t: float, steps: int, n_points: int, dist: float
) -> tuple[str, str, str]:
    """Titles that read every control (the panel's readout contract): `name = value`."""
    return (
        f"marginal $p_t$ and $u_t$\nt = {t:.2f}, σ_min = {sigma_min:.2f}",
        f"posterior certainty, t = {t:.2f}\nK = {n_points} training points",
        f"marginal ODE, steps = {steps}\nnearest-point dist. {dist:.3f}",
    )


class _MarginalizationArtists:
    """The panel's three axes, built once with fixed limits and colour scales; `set` changes
    their data (heatmaps, arrows, trajectories, endpoints, training points, titles)."""

    def __init__(self, ax_p, ax_w, ax_x) -> None:
        ext, blank = (-VIEW, VIEW, -VIEW, VIEW), torch.zeros(HEAT, HEAT)
        self.log_p = plots.heatmap(
            ax_p, blank, ext, label="$\\log p_t(x)$", vmin=LOG_P_FLOOR, vmax=LOG_P_CEIL
        )
        qpts = square_grid(VIEW * 0.9, QUIVER)
        one, zero = torch.ones(len(qpts)), torch.zeros(len(qpts))  # placeholder arrows: an
        # all-zero quiver autoscales to scale 0 (divide-by-zero warning) if drawn before update
        self.quiver = ax_p.quiver(qpts[:, 0], qpts[:, 1], one, zero, color="white", alpha=0.8)
        self.w_max = plots.heatmap(
            ax_w, blank, ext, vmin=0, vmax=1, label="$\\max_k P(x_1^{(k)}\\,|\\,x_t = x)$"
        )
        self.traj = LineCollection([], color=plots.PATH_COLOR, lw=0.6, alpha=0.6)
        ax_x.add_collection(self.traj)
        self.ends = ax_x.scatter([], [], s=6, alpha=0.7, color=plots.PATH_COLOR, lw=0)
        self.stars = [
            ax.plot([], [], "*", color=plots.TARGET_COLOR, mec="k", ms=ms)[0]
            for ax, ms in ((ax_p, 8), (ax_w, 8), (ax_x, 10))
        ]
        self.axes = (ax_p, ax_w, ax_x)
        for ax, title in zip(self.axes, _titles(0.0, 0.5, 100, 50, 0.0), strict=True):
            plots.square(ax, VIEW)
            ax.set_title(title)  # placeholder: sizes the layout for the real titles
        spines = (*ax_p.spines.values(), *ax_w.spines.values())  # static, on top of images
        self.artists = (
            self.log_p,
            self.quiver,
            self.w_max,
            self.traj,
            self.ends,
            *self.stars,
            *(ax.title for ax in self.axes),
            *spines,
        )

    def set(self, sigma_min: float, t: float, steps: int, n_points: int) -> None:
        _check(sigma_min, t, steps, n_points)
        with one_thread():
            _, log_p, w_max, _, u = _fields(sigma_min, t, n_points)
            traj, x_end = endpoints(sigma_min, steps, n_points)
            dist = memorisation_distance(sigma_min, steps, n_points)
        self.log_p.set_data(log_p.clamp(min=LOG_P_FLOOR).numpy())
        self.quiver.set_UVC(u[:, 0].numpy(), u[:, 1].numpy())
        self.quiver.scale = None  # autoscaled at the next draw, as a new quiver would be
        self.w_max.set_data(w_max.numpy())
        self.traj.set_segments(list(traj[:, :N_TRAJ].transpose(0, 1).numpy()))
        self.ends.set_offsets(x_end.numpy())
        pts = training_points(n_points).numpy()
        for star in self.stars:
            star.set_data(pts[:, 0], pts[:, 1])
        for ax, title in zip(self.axes, _titles(sigma_min, t, steps, n_points, dist), strict=True):
            ax.title.set_text(title)


class Marginalization(plots.LiveFigure):
    """log p_t and the marginal field u_t | posterior certainty max_k P(x1^(k) | x_t = x) |
    trajectories and endpoints of the exact marginal ODE; stars: the training points.

    `Marginalization.draw(sigma_min=0.05, t=0.5, steps=20, n_points=10)` -> Figure;
    `fmlib.widgets.panel(view)` shows it with the controls of `controls()`."""

    def controls(self) -> dict:
        """σ_min, t (T_OPTIONS: ends at 0.99), ODE steps, training-set size K."""
        points = ipw.SelectionSlider(
            options=N_POINTS_OPTIONS, value=10, description="points K", continuous_update=True
        )
        return {
            "sigma_min": widgets.sigma_min_slider(0.05),
            "t": widgets.t_slider(0.5, options=T_OPTIONS),
            "steps": widgets.steps_slider(20, max=100),
            "n_points": points,
        }

    def build(self) -> Figure:
        fig, axes = plots.new_axes(3, size=3.2)
        self.panels = _MarginalizationArtists(*axes)
        self.dynamic(*self.panels.artists)
        return fig

    def update(
        self, sigma_min: float = 0.05, t: float = 0.5, steps: int = 20, n_points: int = 10
    ) -> None:
        self.panels.set(sigma_min, t, steps, n_points)


def draw_memorisation_grid(
    sigma_mins: tuple[float, ...] = (0.3, 0.1, 0.0),
    steps: tuple[int, ...] = (2, 10, 100),
    n_points: int = 10,
) -> Figure:
    """Static small multiples: rows = steps, columns = sigma_min; endpoints vs training set."""
    fig, axes = plots.new_axes(len(sigma_mins) * len(steps), size=2.4, ncols=len(sigma_mins))
    pts = training_points(n_points)
    for i, k in enumerate(steps):
        for j, s in enumerate(sigma_mins):
            ax = axes[i * len(sigma_mins) + j]
            _, x = endpoints(s, k, n_points)
            plots.scatter2d(ax, x, lim=VIEW, color=plots.PATH_COLOR, s=4, alpha=0.6)
            ax.plot(pts[:, 0], pts[:, 1], "*", color=plots.TARGET_COLOR, mec="k", ms=8)
            ax.set_title(
                f"σ_min={s:.2f}, {k} steps\ndist {memorisation_distance(s, k, n_points):.3f}"
            )
    return fig


# The schematic's three data points and its query point x (chosen so that no weight is ~1)
SCHEMATIC_POINTS = ((-2.6, 1.8), (2.4, 2.4), (1.2, -2.6))
SCHEMATIC_X = (0.1, 0.3)


def schematic_numbers(t: float = 0.5, sigma_min: float = 0.1):
    """(points [3, 2], x [1, 2], posterior weights [3], u_t(x | x1^(k)) [3, 2], u_t(x) [2])
    for the schematic: u_t(x) = sum_k P(k | x) u_t(x | x1^(k)) (fmlib.marginal's formulas)."""
    _check(sigma_min, t, 1, 3)
    path = OTPath(sigma_min)
    pts = torch.tensor(SCHEMATIC_POINTS, dtype=torch.float64)
    x = torch.tensor([SCHEMATIC_X], dtype=torch.float64)
    w = posterior(path, GaussianMixture(pts, 0.0), x, t)[0]
    u_k = path.u_t(x.expand(3, 2), pts, t)
    return pts, x, w, u_k, (w[:, None] * u_k).sum(0)


def draw_marginalization_schematic(t: float = 0.5, sigma_min: float = 0.1) -> Figure:
    """The marginalization picture, drawn from the formulas (three data points).

    Left: the conditional paths p_s(x | x1^(k)) = N(s x1^(k), sigma_s^2 I), circles of
    radius sigma_s at s = 0, 0.25, ..., 1, all starting from the same noise N(0, I).
    Right: at one point x and time t, the conditional velocities u_t(x | x1^(k)) (width and
    label: posterior weight P(k | x)) and their weighted sum, the marginal u_t(x) (black).
    """
    pts, x, w, u_k, u = schematic_numbers(t, sigma_min)
    fig, (ax_l, ax_r) = plots.new_axes(2, size=3.6)
    sigma = OTPath(sigma_min).sigma_t
    for k, c in enumerate(("C0", "C1", "C2")):
        for s in (0.0, 0.25, 0.5, 0.75, 1.0):
            centre = (s * pts[k]).tolist()
            ax_l.add_patch(
                mpatches.Circle(centre, float(sigma(s)), fill=False, color=c, alpha=0.3 + 0.7 * s)
            )
        ax_l.plot([0, pts[k, 0]], [0, pts[k, 1]], ":", color=c)
        ax_l.plot(*pts[k], "*", color=c, mec="k", ms=12, label=f"$x_1^{{({k})}}$")
        # right: the conditional blob at time t, and u_t(x | x1^(k)) from x
        ax_r.add_patch(mpatches.Circle((t * pts[k]).tolist(), float(sigma(t)), color=c, alpha=0.15))
        ax_r.plot(*pts[k], "*", color=c, mec="k", ms=12)
        end = x[0] + 0.5 * u_k[k]
        style = {"arrowstyle": "->", "color": c, "lw": 0.5 + 4 * float(w[k])}  # width ~ weight
        ax_r.annotate("", xy=end.tolist(), xytext=x[0].tolist(), arrowprops=style)
        up = float(pts[k, 1]) > 0  # the weight beside its star, on the side away from x
        ax_r.annotate(
            f"P = {float(w[k]):.2f}",
            xy=pts[k].tolist(),
            xytext=(0, 11 if up else -11),
            textcoords="offset points",
            ha="center",
            va="bottom" if up else "top",
            color=c,
            fontsize=9,
        )
    ax_r.annotate(
        "",
        xy=(x[0] + 0.5 * u).tolist(),
        xytext=x[0].tolist(),
        arrowprops={"arrowstyle": "-|>", "color": "k", "lw": 2.5},
    )
    ax_r.plot(*x[0], "o", color="k", ms=5)
    ax_r.text(float(x[0, 0]) + 0.15, float(x[0, 1]) - 0.45, "$x$", fontsize=10)
    ax_l.legend(loc="lower left", fontsize=9)
    ax_l.set_title(
        "conditional paths $p_s(x\\,|\\,x_1^{(k)})$\n"
        f"circles: std σ_s, s = 0 … 1, σ_min = {sigma_min:.2f}"
    )
    ax_r.set_title(
        "$u_t(x) = \\sum_k P(k\\,|\\,x)\\,u_t(x\\,|\\,x_1^{(k)})$ (black)\n"
        f"t = {t:.2f}; arrows: half the velocity"
    )
    for ax in (ax_l, ax_r):
        plots.square(ax, 3.5)
    return fig
