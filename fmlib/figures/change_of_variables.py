"""Notebook 01: K residual layers x + h u_t(x), h = 1/K, approaching a continuous flow.

The flow is `GaussianFlow(M, sigma_min, omega=OMEGA)`: N(0, I) -> N(M, sigma_min^2 I) with
a swirl, so the trajectories curve. After K residual (Euler) layers the samples follow
N(M, s_K^2 I) exactly, s_K = `GaussianFlow.euler_std(K)` (the accumulated log-det); as
K -> oo, s_K -> sigma_min, the end of the continuous flow.
"""

from __future__ import annotations

from functools import lru_cache

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import plots
from fmlib.flows import DiscreteFlow, GaussianFlow, histogram_vs_density, normal_cdf
from fmlib.solvers import standard_normal_log_prob

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
    if not 0.0 <= sigma_min <= 1.0:
        raise ValueError(f"sigma_min must be in [0, 1], got {sigma_min}")
    return GaussianFlow(torch.tensor(M, dtype=torch.float64), sigma_min, omega=OMEGA)


@lru_cache(maxsize=256)
def residual_flow(sigma_min: float, steps: int) -> tuple[Tensor, dict[str, float]]:
    """Push z through K = `steps` residual layers x_{k+1} = x_k + h u_{t_k}(x_k), h = 1/K.

    Returns the trajectories [K + 1, N, 2] and the numbers the widget prints: the std of
    x_K by the change-of-variables formula (s_K), measured from the samples, the limit
    sigma_min, and the histogram-vs-formula error (max over bins, in standard errors).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    g = flow(sigma_min)
    h = 1.0 / steps
    x = _noise()
    states = [x]
    for k in range(steps):
        x = x + h * g(x, torch.full((x.shape[0],), k * h, dtype=x.dtype))  # the residual layer
        states.append(x)
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
    return torch.stack(states), stats


def _draw_paths(ax: Axes, traj: Tensor, g: GaussianFlow, steps: int) -> None:
    fine = torch.linspace(0, 1, 101).tolist()
    z = traj[0, :N_PATHS]
    exact = torch.stack([g.psi_t(z, t) for t in fine])
    ax.plot(exact[..., 0], exact[..., 1], color="0.55", lw=1, ls="--")
    ax.plot(traj[:, :N_PATHS, 0], traj[:, :N_PATHS, 1], color=plots.PATH_COLOR, lw=1,
            marker="o", ms=2)  # fmt: skip
    plots.scatter2d(ax, traj[-1, :1500], color=plots.TARGET_COLOR, s=2, alpha=0.4)
    plots.scatter2d(ax, z, color=plots.SOURCE_COLOR, s=10, alpha=1)
    ax.set_title(f"K = {steps} residual layers (green), ODE flow (dashes)")


def _draw_histogram(ax: Axes, x_end: Tensor, stats: dict[str, float], steps: int) -> None:
    s_k, s = stats["std_formula"], stats["std_limit"]
    lo, hi = M[0] - 4 * max(s_k, 0.05), M[0] + 4 * max(s_k, 0.05)
    ax.hist(x_end[:, 0].numpy(), bins=BINS, range=(lo, hi), density=True, color=plots.PATH_COLOR,
            alpha=0.5, label="histogram of pushed samples")  # fmt: skip
    grid = torch.linspace(lo, hi, 400, dtype=torch.float64)
    log_p = standard_normal_log_prob(((grid - M[0]) / s_k)[:, None]) - torch.log(torch.tensor(s_k))
    ax.plot(grid, log_p.exp(), color="k", lw=1.5, label=f"formula: N(m, {s_k:.3f}²)")
    if s > 0:
        log_q = standard_normal_log_prob(((grid - M[0]) / s)[:, None]) - torch.log(torch.tensor(s))
        ax.plot(
            grid, log_q.exp(), color=plots.TARGET_COLOR, ls="--", label=f"K → ∞: N(m, {s:.2f}²)"
        )
    else:
        ax.axvline(M[0], color=plots.TARGET_COLOR, ls="--", label="K → ∞: point mass at m")
    ax.set_xlabel("$x^{(1)}$ after the last layer")
    ax.set_ylabel("density")
    ax.legend(loc="upper left")
    ax.set_title(f"K = {steps}: hist − formula ≤ {stats['hist_max_z']:.1f} std errors")


def draw_residual_flow(sigma_min: float = 0.1, steps: int = 10) -> Figure:
    """Left: K residual layers vs the continuous flow; right: histogram of x_K^(1) vs the
    change-of-variables density N(m, s_K^2) and the continuous limit N(m, sigma_min^2)."""
    traj, stats = residual_flow(float(sigma_min), int(steps))
    fig, (ax_paths, ax_hist) = plots.new_axes(2, size=3.8)
    _draw_paths(ax_paths, traj, flow(float(sigma_min)), int(steps))
    _draw_histogram(ax_hist, traj[-1], stats, int(steps))
    fig.suptitle(
        f"σ_min = {sigma_min:.2f}, K = {steps}: std by formula s_K = {stats['std_formula']:.3f}, "
        f"from samples {stats['std_samples']:.3f}, limit σ_min = {sigma_min:.2f}",
        fontsize=9,
    )
    return fig


def draw_residual_grid(
    sigma_mins: tuple[float, ...] = (0.0, 0.3), steps: tuple[int, ...] = (2, 8, 32)
) -> Figure:
    """Small multiples of the histogram panel: one row per sigma_min, one column per K."""
    fig, axes = plots.new_axes(len(sigma_mins) * len(steps), size=2.9, ncols=len(steps))
    for i, s in enumerate(sigma_mins):
        for j, k in enumerate(steps):
            traj, stats = residual_flow(float(s), int(k))
            ax = axes[i * len(steps) + j]
            _draw_histogram(ax, traj[-1], stats, int(k))
            ax.set_title(f"σ_min = {s:.2f}, K = {k}: s_K = {stats['std_formula']:.3f}")
            ax.legend(loc="upper left", fontsize=6)
    return fig


def draw_layer_densities(
    discrete_flow: DiscreteFlow, log_pi, lim: float = plots.LIM, n: int = 120
) -> Figure:
    """Density p_k = [G_k o ... o G_1]_# pi after each layer k = 0..K, by the accumulated
    log-determinant (one heatmap per layer, shared colour scale)."""
    _, _, pts = plots.grid2d(lim, n)
    pts = pts.to(torch.float64)
    dens = [discrete_flow.log_prob(pts, log_pi, upto=k).exp().reshape(n, n)
            for k in range(len(discrete_flow.layers) + 1)]  # fmt: skip
    vmax = max(d.max().item() for d in dens)
    fig, axes = plots.new_axes(len(dens), size=2.6)
    for k, (ax, d) in enumerate(zip(axes, dens, strict=True)):
        mass = d.sum().item() * (2 * lim / (n - 1)) ** 2
        plots.heatmap(ax, d, (-lim, lim, -lim, lim), f"p_{k} (mass {mass:.3f})", "density",
                      vmin=0, vmax=vmax)  # fmt: skip
        ax.set_xlabel("$x^{(1)}$")
        ax.set_ylabel("$x^{(2)}$")
    return fig


BENCH = [
    ("change_of_variables.draw_residual_flow", draw_residual_flow, {"sigma_min": 0.1, "steps": 10}),
]

__all__ = [
    "draw_layer_densities",
    "draw_residual_flow",
    "draw_residual_grid",
    "flow",
    "plt",
    "residual_flow",
]
