"""Notebook 04: conditional vs marginal fields of a small dataset, and memorisation.

The target is a finite training set {x1^(k)} (a point set, q = (1/K) sum_k delta), drawn
once from the checkerboard. Its marginal field u_t(x) = sum_k P(k | x) u_t(x | x1^(k)) is
exact (fmlib.marginal), and integrating it from noise lands on the training points.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import data, plots
from fmlib.marginal import GaussianMixture, marginal_log_prob, marginal_velocity, posterior
from fmlib.paths import OTPath
from fmlib.solvers import integrate

DATASET = "checkerboard"
VIEW = 4.5
N_NOISE = 300  # particles integrated by the exact marginal ODE
N_TRAJ = 30  # trajectories drawn
QUIVER = 15  # quiver grid per side
HEAT = 60  # heatmap grid per side


def _check(sigma_min: float, t: float, steps: int, n_points: int) -> None:
    if not 0.0 <= sigma_min < 1.0:
        raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min}")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be in [0, 1], got {t}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(n_points, int) or not 1 <= n_points <= 200:
        raise ValueError(f"n_points must be an integer in [1, 200], got {n_points!r}")


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
    path, q = OTPath(sigma_min), point_set(n_points)
    sol = integrate(lambda x, t: marginal_velocity(path, q, x, t), _noise(), steps=steps,
                    method="midpoint", trajectory=True)  # fmt: skip
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
    path, q = OTPath(sigma_min), point_set(n_points)
    t = min(t, 0.99) if sigma_min == 0 else t  # p_1 of a point set is a sum of deltas
    xx = torch.linspace(-VIEW, VIEW, HEAT, dtype=torch.float64)
    yy, xg = torch.meshgrid(xx, xx, indexing="ij")
    pts = torch.stack([xg.reshape(-1), yy.reshape(-1)], 1)
    log_p = marginal_log_prob(path, q, pts, t).reshape(HEAT, HEAT)
    w_max = posterior(path, q, pts, t).max(dim=1).values.reshape(HEAT, HEAT)
    qa = torch.linspace(-VIEW * 0.9, VIEW * 0.9, QUIVER, dtype=torch.float64)
    qy, qx = torch.meshgrid(qa, qa, indexing="ij")
    qpts = torch.stack([qx.reshape(-1), qy.reshape(-1)], 1)
    u = marginal_velocity(path, q, qpts, t)
    return t, log_p, w_max, qpts, u


def draw_marginalization(
    sigma_min: float = 0.05, t: float = 0.5, steps: int = 20, n_points: int = 10
) -> Figure:
    """log p_t + marginal field | posterior certainty max_k P(k | x) | exact-ODE samples."""
    _check(sigma_min, t, steps, n_points)
    t_used, log_p, w_max, qpts, u = _fields(sigma_min, t, n_points)
    pts = training_points(n_points)
    ext = (-VIEW, VIEW, -VIEW, VIEW)
    fig, (ax_p, ax_w, ax_x) = plots.new_axes(3, size=3.2)
    plots.heatmap(ax_p, log_p.clamp(min=-12), ext, label="$\\log p_t(x)$")
    ax_p.quiver(qpts[:, 0], qpts[:, 1], u[:, 0], u[:, 1], color="white", alpha=0.8)
    ax_p.set_title(f"marginal $p_t$ and $u_t$\nt = {t_used:.2f}, σ_min = {sigma_min:.2f}")
    plots.heatmap(ax_w, w_max, ext, label="$\\max_k P(x_1^{(k)}\\,|\\,x_t = x)$", vmin=0, vmax=1)
    ax_w.set_title(f"posterior certainty, t = {t_used:.2f}")
    for ax in (ax_p, ax_w):
        ax.plot(pts[:, 0], pts[:, 1], "*", color=plots.TARGET_COLOR, mec="k", ms=8)
        plots.square(ax, VIEW)
    traj, x_end = endpoints(sigma_min, steps, n_points)
    ax_x.plot(traj[:, :N_TRAJ, 0], traj[:, :N_TRAJ, 1], color=plots.PATH_COLOR, lw=0.6, alpha=0.6)
    plots.scatter2d(ax_x, x_end, lim=VIEW, color=plots.PATH_COLOR, s=6, alpha=0.7)
    ax_x.plot(pts[:, 0], pts[:, 1], "*", color=plots.TARGET_COLOR, mec="k", ms=10)
    dist = memorisation_distance(sigma_min, steps, n_points)
    ax_x.set_title(f"exact marginal ODE, {steps} steps\nmean dist. to nearest point {dist:.3f}")
    return fig


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


BENCH = [
    ("marginalization: draw", draw_marginalization, {"sigma_min": 0.05, "t": 0.5, "steps": 20}),
    ("marginalization: 50 points", draw_marginalization, {"n_points": 50, "steps": 50}),
]
