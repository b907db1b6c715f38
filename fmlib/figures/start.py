"""Notebook 00: the conditional path from N(0, I) to one data point, Euler vs exact."""

from __future__ import annotations

from functools import lru_cache

import torch
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import plots
from fmlib.paths import GaussianPath, OTPath, VPPath
from fmlib.solvers import integrate

X1 = (2.5, 1.5)  # the single data point every particle travels to
N_PARTICLES = 12  # trajectories drawn
N_CLOUD = 400  # endpoints drawn


@lru_cache(maxsize=1)
def _noise() -> Tensor:
    """x0 ~ N(0, I), fixed once: the sliders only change the path and the solver."""
    return torch.randn(N_CLOUD, 2, generator=torch.Generator().manual_seed(0))


def euler_vs_exact(path: GaussianPath, steps: int) -> tuple[Tensor, Tensor, float]:
    """Euler trajectories of dx/dt = u_t(x | x1) from x0 ~ N(0, I), the exact psi_t(x0 | x1)
    on the same time grid, and the max distance between their endpoints at t = 1."""
    x0 = _noise()
    x1 = torch.tensor(X1).expand_as(x0)
    sol = integrate(lambda x, t: path.u_t(x, x1, t), x0, steps=steps, method="euler",
                    trajectory=True)  # fmt: skip
    exact = torch.stack([path.psi_t(x0, x1, float(t)) for t in sol.times])
    error = (sol.trajectory[-1] - exact[-1]).norm(dim=1).max().item()
    return sol.trajectory, exact, error


def _draw_path(ax, path: GaussianPath, steps: int, name: str) -> float:
    euler, _, error = euler_vs_exact(path, steps)
    fine = torch.linspace(0, 1, 101)
    x0 = _noise()[:N_PARTICLES]
    x1 = torch.tensor(X1).expand_as(x0)
    exact = torch.stack([path.psi_t(x0, x1, float(t)) for t in fine])  # [101, n, 2]
    ax.plot(exact[..., 0], exact[..., 1], color="0.55", lw=3, alpha=0.5)
    ax.plot(euler[:, :N_PARTICLES, 0], euler[:, :N_PARTICLES, 1], color=plots.PATH_COLOR,
            lw=1, marker="o", ms=2.5)  # fmt: skip
    plots.scatter2d(ax, euler[-1], color=plots.PATH_COLOR, s=3, alpha=0.4)
    ax.plot(x0[:, 0], x0[:, 1], "o", ms=4, color=plots.SOURCE_COLOR)
    ax.plot(*X1, marker="*", ms=14, color=plots.TARGET_COLOR, mec="k", ls="none")
    ax.set_title(f"{name}, {steps} Euler step{'s' * (steps > 1)}\nendpoint error {error:.3f}")
    return error


def draw_small_multiples(
    sigma_mins: tuple[float, ...] = (0.0, 0.3), steps: tuple[int, ...] = (1, 3, 20)
) -> Figure:
    """The static version of the panel: rows = Euler steps, columns = OT paths for each
    sigma_min, then the VP path."""
    cols = [(OTPath(s), f"OT, σ_min = {s:.2f}") for s in sigma_mins] + [(VPPath(), "VP")]
    fig, axes = plots.new_axes(len(cols) * len(steps), size=2.6, ncols=len(cols))
    for i, k in enumerate(steps):
        for j, (path, name) in enumerate(cols):
            _draw_path(axes[i * len(cols) + j], path, k, name)
    return fig


def draw_conditional_path(sigma_min: float = 0.0, steps: int = 4) -> Figure:
    """Left: the OT path (straight lines); right: the VP path (curved). Wide grey: exact
    psi_t(x0 | x1); green: Euler on u_t(x | x1) with `steps` steps; star: x1."""
    fig, (ax_ot, ax_vp) = plots.new_axes(2, size=3.6)
    _draw_path(ax_ot, OTPath(sigma_min), steps, f"OT path, σ_min = {sigma_min:.2f}")
    _draw_path(ax_vp, VPPath(), steps, "VP path (diffusion)")
    return fig


BENCH = [("start.draw_conditional_path", draw_conditional_path, {"sigma_min": 0.1, "steps": 10})]
