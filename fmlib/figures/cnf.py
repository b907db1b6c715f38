"""Notebook 02: the density p_t of a CNF by the ODE vs its closed form.

The flow is `GaussianFlow(M, sigma_min)`: N(0, I) -> N(M, sigma_min^2 I) along the OT path,
where p_t = N(t M, sigma_t^2 I), sigma_t = 1 - (1 - sigma_min) t. The ODE density solves the
augmented system d/dtau [x, l] = [u_tau(x), -div u_tau(x)] backward from (x, 0) at tau = t
to tau = 0, then log p_t(x) = log p_0(x_0) - l_0 (instantaneous change of variables).
"""

from __future__ import annotations

from functools import lru_cache

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import plots
from fmlib.flows import GaussianFlow
from fmlib.solvers import integrate, standard_normal_log_prob

M = (2.0, 1.0)  # mean of the target Gaussian
LIM = 4.0
N_GRID = 40  # the heatmap's grid is N_GRID x N_GRID
N_LINE = 200  # points on the slice through the mean
N_SAMPLES = 300  # x_t ~ p_t on which the log-likelihood error is measured


def flow(sigma_min: float) -> GaussianFlow:
    """N(0, I) -> N(M, sigma_min^2 I) along the OT path (no swirl)."""
    if not 0.0 <= sigma_min <= 1.0:
        raise ValueError(f"sigma_min must be in [0, 1], got {sigma_min}")
    return GaussianFlow(torch.tensor(M, dtype=torch.float64), sigma_min)


@lru_cache(maxsize=1)
def _points() -> tuple[Tensor, Tensor]:
    """The grid [N_GRID^2, 2] and fixed noise x0 ~ N(0, I) [N_SAMPLES, 2] (float64)."""
    _, _, grid = plots.grid2d(LIM, N_GRID)
    x0 = torch.randn(N_SAMPLES, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return grid.to(torch.float64), x0


def ode_log_density(g: GaussianFlow, x: Tensor, t: float, steps: int, method: str) -> Tensor:
    """log p_t(x) = log p_0(x_0) - int_0^t div u_tau(x_tau) dtau, by the augmented ODE solved
    backward from tau = t to 0 with `method` (divergence in closed form: d (s - 1)/sigma_tau)."""

    def augmented(z: Tensor, tau: Tensor) -> Tensor:
        y = z[:, :2]
        return torch.cat([g(y, tau), -g.div_u_t(y, tau)[:, None]], dim=1)

    z = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
    z0 = integrate(augmented, z, t0=t, t1=0.0, steps=steps, method=method).x
    return standard_normal_log_prob(z0[:, :2]) - z0[:, 2]


@lru_cache(maxsize=512)
def density_at_t(sigma_min: float, method: str, steps: int, t: float) -> dict:
    """ODE and closed-form log p_t on the grid, and the log-likelihood error on x_t ~ p_t:
    mean |log p_t^ODE(x_t) - log p_t(x_t)|. None where p_t is a point mass (sigma_t = 0)."""
    g = flow(sigma_min)
    grid, x0 = _points()
    if g.sigma_t(t) == 0:
        return {"grid_ode": None, "error": None, "x_t": g.psi_t(x0, t)}
    x_t = g.psi_t(x0, t)
    line = torch.linspace(-LIM, LIM, N_LINE, dtype=torch.float64)
    line = torch.stack([line, torch.full_like(line, t * M[1])], dim=1)
    both = torch.cat([grid, line, x_t])
    p_ode = ode_log_density(g, both, t, steps, method)
    p_exact = g.log_p_t(both, t)
    n, n_line = grid.shape[0], line.shape[0]
    return {
        "grid_ode": p_ode[:n].exp().reshape(N_GRID, N_GRID),
        "grid_exact": p_exact[:n].exp().reshape(N_GRID, N_GRID),
        "line": line[:, 0],
        "line_ode": p_ode[n : n + n_line].exp(),
        "line_exact": p_exact[n : n + n_line].exp(),
        "error": (p_ode[n + n_line :] - p_exact[n + n_line :]).abs().mean().item(),
        "x_t": x_t,
    }


def _slice(ax: Axes, sigma_min: float, method: str, steps: int, t: float) -> float | None:
    """p_t along the line x^(2) = t m_2 through the mean: ODE (line) vs closed form (dashes)."""
    g = flow(sigma_min)
    if g.sigma_t(t) == 0:
        ax.axvline(M[0], color=plots.TARGET_COLOR, ls="--", label="closed form: point mass at m")
        ax.set_title(f"σ_min = 0, t = 1: p_1 is a point mass at m\n{method}, {steps} steps")
        ax.set_xlabel("$x^{(1)}$ (with $x^{(2)} = t\\,m_2$)")
        return None
    res = density_at_t(sigma_min, method, steps, t)
    error = res["error"]
    ax.plot(res["line"], res["line_ode"], color=plots.PATH_COLOR, lw=2,
            label=f"ODE ({method}, {steps} steps)")  # fmt: skip
    ax.plot(res["line"], res["line_exact"], color="k", ls="--", lw=1, label="closed form")
    ax.set_xlabel("$x^{(1)}$ (with $x^{(2)} = t\\,m_2$)")
    ax.set_ylabel("$p_t(x)$")
    ax.set_title(f"σ_min = {sigma_min:.2f}, t = {t:.2f}, {method} × {steps}\n"
                 f"log-likelihood error {error:.2e}")  # fmt: skip
    ax.legend(loc="upper left")
    return error


def draw_density(
    sigma_min: float = 0.3, method: str = "midpoint", steps: int = 10, t: float = 1.0
) -> Figure:
    """Left: p_t by the ODE on a grid, closed-form contours on top; right: a slice through
    the mean, ODE vs closed form, with the log-likelihood error in the title."""
    sigma_min, t, steps = float(sigma_min), float(t), int(steps)
    res = density_at_t(sigma_min, method, steps, t)
    fig, (ax_map, ax_slice) = plots.new_axes(2, size=3.6)
    if res["grid_ode"] is None:
        plots.scatter2d(ax_map, res["x_t"], title="all samples sit at m", lim=LIM)
    else:
        extent = (-LIM, LIM, -LIM, LIM)
        plots.heatmap(ax_map, res["grid_ode"], extent, f"p_t by the ODE, t = {t:.2f}", "density")
        ax_map.contour(res["grid_exact"].numpy(), levels=4, extent=extent, colors="w",
                       linewidths=0.8)  # fmt: skip
        ax_map.set_xlabel("$x^{(1)}$")
        ax_map.set_ylabel("$x^{(2)}$")
    _slice(ax_slice, sigma_min, method, steps, t)
    return fig


def draw_density_grid(
    sigma_mins: tuple[float, ...] = (0.1, 0.5),
    steps: tuple[int, ...] = (1, 4, 20),
    method: str = "euler",
    t: float = 1.0,
) -> Figure:
    """Small multiples of the slice: one row per sigma_min, one column per number of steps."""
    fig, axes = plots.new_axes(len(sigma_mins) * len(steps), size=2.9, ncols=len(steps))
    for i, s in enumerate(sigma_mins):
        for j, k in enumerate(steps):
            _slice(axes[i * len(steps) + j], s, method, k, t)
    return fig


BENCH = [
    ("cnf.draw_density", draw_density, {"sigma_min": 0.3, "method": "rk4", "steps": 20, "t": 1.0}),
]

__all__ = ["density_at_t", "draw_density", "draw_density_grid", "ode_log_density", "plt"]
