"""Notebook 03: the continuity equation on a grid, mass, and particles pushed by the ODE.

The example pair is the marginal OT path of a Gaussian-mixture target (eight Gaussians,
std 0.3) with its closed-form marginal field (fmlib.marginal), and two wrong fields: the
true field scaled by 1.5, and the field of another path (VP) that leads to the same data.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import continuity, plots
from fmlib.data import eight_gaussians_means
from fmlib.marginal import GaussianMixture, marginal_log_prob, marginal_velocity
from fmlib.paths import OTPath, VPPath
from fmlib.solvers import integrate

FIELDS = ("true", "scaled ×1.5", "VP path's field")
LIM = 3.5  # residual box [-LIM, LIM]^2
VIEW = 4.0  # half-width of the density views
NS = (17, 33, 65)  # grid resolutions of the widget's convergence plot
DT_RATIO = 0.25  # dt = h / 4: the time error no longer dominates, the order shows early
N_PARTICLES = 2000
BINS = 20
STD = 0.3  # std of each of the eight Gaussians


def mixture() -> GaussianMixture:
    """q = (1/8) sum_k N(m_k, 0.3^2 I), m_k on the circle of radius 2 (float64)."""
    return GaussianMixture(eight_gaussians_means().double(), STD)


def _check(sigma_min: float, t: float, field: str) -> None:
    if not 0.0 <= sigma_min < 1.0:
        raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min}")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be in [0, 1], got {t}")
    if field not in FIELDS:
        raise ValueError(f"field must be one of {FIELDS}, got {field!r}")


def pair(sigma_min: float, field: str = "true"):
    """(log_p, u): the marginal OT path p_t of `mixture()` and the chosen field."""
    _check(sigma_min, 0.5, field)
    path, q = OTPath(sigma_min), mixture()

    def log_p(x: Tensor, t: Tensor) -> Tensor:
        return marginal_log_prob(path, q, x, t)

    def u_true(x: Tensor, t: Tensor) -> Tensor:
        return marginal_velocity(path, q, x, t)

    if field == "true":
        return log_p, u_true
    if field == "scaled ×1.5":
        return log_p, lambda x, t: 1.5 * u_true(x, t)
    vp = VPPath()
    return log_p, lambda x, t: marginal_velocity(vp, q, x, t)


def _clip_t(t: float) -> float:
    """Central differences in t need t in (0, 1): the panel clamps to [0.02, 0.98]."""
    return float(min(max(t, 0.02), 0.98))


@lru_cache(maxsize=64)
def convergence(sigma_min: float, t: float, field: str) -> continuity.Convergence:
    """||R(h)|| on the grids NS and the fitted order (cached per slider setting)."""
    log_p, u = pair(sigma_min, field)
    return continuity.residual_convergence(log_p, u, _clip_t(t), lim=LIM, ns=NS, dt_ratio=DT_RATIO)


@lru_cache(maxsize=64)
def residual_image(sigma_min: float, t: float, field: str, n: int) -> Tensor:
    log_p, u = pair(sigma_min, field)
    t, h = _clip_t(t), 2 * LIM / (n - 1)
    return continuity.continuity_residual(log_p, u, t, lim=LIM, n=n, dt=min(DT_RATIO * h, t, 1 - t))


@lru_cache(maxsize=1)
def _noise() -> Tensor:
    return torch.randn(
        N_PARTICLES, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )


@lru_cache(maxsize=256)
def particles(sigma_min: float, t: float, steps: int) -> Tensor:
    """x_t: noise pushed from 0 to t by `steps` midpoint steps of the true marginal field."""
    path, q = OTPath(sigma_min), GaussianMixture(eight_gaussians_means(), STD)  # float32: fast
    u = lambda x, s: marginal_velocity(path, q, x, s)  # noqa: E731
    return integrate(u, _noise(), t0=0.0, t1=t, steps=steps, method="midpoint").x


def particle_error(sigma_min: float, t: float, steps: int) -> float:
    """TV distance between the particles' histogram and p_t (BINS x BINS bins on VIEW)."""
    log_p, _ = pair(sigma_min)
    x = particles(sigma_min, t, steps)
    return continuity.histogram_error(x, log_p, max(t, 1e-3), lim=VIEW, bins=BINS)


@lru_cache(maxsize=64)
def _density(sigma_min: float, t: float) -> Tensor:
    log_p, _ = pair(sigma_min)
    return continuity.density_on_grid(log_p, max(t, 1e-3), VIEW, 80)


def draw_continuity(
    sigma_min: float = 0.0, t: float = 0.5, steps: int = 10, n: int = 33, field: str = "true"
) -> Figure:
    """p_t with ODE particles | residual heatmap of (p_t, field) | ||R|| vs h (log-log)."""
    _check(sigma_min, t, field)
    if n not in NS:
        raise ValueError(f"n must be one of {NS}, got {n}")
    fig, (ax_p, ax_r, ax_c) = plots.new_axes(3, size=3.2)
    ext = (-VIEW, VIEW, -VIEW, VIEW)
    plots.heatmap(ax_p, _density(sigma_min, t), ext, label="$p_t(x)$")
    x = particles(sigma_min, t, steps)
    ax_p.scatter(x[:600, 0], x[:600, 1], s=1.5, color="white", alpha=0.6, lw=0)
    plots.square(ax_p, VIEW)
    err = particle_error(sigma_min, t, steps)
    ax_p.set_title(f"$p_t$ and {steps}-step ODE particles\nt = {t:.2f}, TV = {err:.3f}")
    r = residual_image(sigma_min, t, field, n)
    vmax = max(float(r.abs().max()), 1e-12)
    plots.heatmap(ax_r, r, (-LIM, LIM, -LIM, LIM), label="residual",
                  cmap=plots.DIVERGING, vmin=-vmax, vmax=vmax)  # fmt: skip
    plots.square(ax_r, LIM)
    ax_r.set_title(
        f"$\\partial_t p_t + \\nabla\\cdot(p_t u_t)$, {field}\nn = {n}, σ_min = {sigma_min:.2f}"
    )
    for name, style in (("true", "o-"), (field if field != "true" else FIELDS[1], "s--")):
        conv = convergence(sigma_min, t, name)
        ax_c.loglog(conv.h, conv.norm, style, label=f"{name}: slope {conv.order:.2f}")
    h = np.array(convergence(sigma_min, t, "true").h)
    ax_c.loglog(h, convergence(sigma_min, t, "true").norm[-1] * (h / h[-1]) ** 2, ":", color="0.5",
                label="$h^2$")  # fmt: skip
    ax_c.axvline(2 * LIM / (n - 1), color="0.7", lw=1)
    ax_c.set_xlabel("grid spacing h (= dt)")
    ax_c.set_ylabel("$\\|R\\|_{L^2}$")
    ax_c.set_title("residual norm vs grid spacing")
    ax_c.legend()
    return fig


def draw_particles_grid(
    sigma_mins: tuple[float, ...] = (0.0, 0.2), steps: tuple[int, ...] = (1, 3, 30), t: float = 0.8
) -> Figure:
    """Static small multiples: rows = sigma_min, columns = solver steps; p_t and particles."""
    fig, axes = plots.new_axes(len(sigma_mins) * len(steps), size=2.5, ncols=len(steps))
    ext = (-VIEW, VIEW, -VIEW, VIEW)
    for i, s in enumerate(sigma_mins):
        for j, k in enumerate(steps):
            ax = axes[i * len(steps) + j]
            ax.imshow(_density(s, t).numpy(), origin="lower", extent=ext, cmap=plots.CMAP)
            x = particles(s, t, k)
            ax.scatter(x[:600, 0], x[:600, 1], s=1, color="white", alpha=0.6, lw=0)
            plots.square(ax, VIEW)
            ax.grid(False)
            ax.set_title(
                f"σ_min={s:.1f}, {k} step{'s' * (k > 1)}\nTV={particle_error(s, t, k):.3f}"
            )
    return fig


BENCH = [
    ("continuity: draw_continuity", draw_continuity, {"sigma_min": 0.0, "t": 0.5, "steps": 10}),
    ("continuity: wrong field", draw_continuity, {"field": "scaled ×1.5", "n": 65}),
]
