"""Notebook 03: the continuity equation on a grid, mass, and particles pushed by the ODE.

The example pair is the marginal OT path of a Gaussian-mixture target (eight Gaussians,
std 0.3) with its closed-form marginal field (fmlib.marginal), and two wrong fields: the
true field scaled by 1.5, and the field of another path (VP) that leads to the same data.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from matplotlib.colors import PowerNorm, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from torch import Tensor

from fmlib import continuity, plots, widgets
from fmlib.checks import check_int, check_range
from fmlib.data import eight_gaussians_means
from fmlib.marginal import GaussianMixture, MixtureMarginal
from fmlib.paths import OTPath, VPPath
from fmlib.repro import one_thread
from fmlib.solvers import integrate

FIELDS = ("true", "scaled ×1.5", "VP path's field")
LIM = 3.5  # residual box [-LIM, LIM]^2
VIEW = 4.0  # half-width of the density views
NS = (17, 33, 65)  # grid resolutions of the convergence plot (the heatmap: any n in 17..65)
DT_RATIO = 0.25  # dt = h / 4: the time error no longer dominates, the order shows early
N_PARTICLES = 2000
N_DRAWN = 600  # particles drawn over p_t (all N_PARTICLES enter the TV distance)
BINS = 20
STD = 0.3  # std of each of the eight Gaussians
# Fixed colour scales of the panel (a redraw only changes the data): max p_t is 0.06 to
# 0.24 over sigma_min in [0, 0.5] and t in [0, 1], hence a square-root scale up to 0.25;
# max |R| spans 1e-4 (true field, n = 65) to 2.1 (VP field at t = 0.95), hence a symmetric
# log scale up to 3, linear below 1e-3 (tests check every t the control offers).
P_MAX = 0.25
R_MAX, R_LINEAR = 3.0, 1e-3
# The times the panel draws: the residual's central difference in t needs 0 < t < 1, so the
# t control offers 0.05, 0.10, ..., 0.95 (the views never clamp t).
T_OPTIONS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def mixture() -> GaussianMixture:
    """q = (1/8) sum_k N(m_k, 0.3^2 I), m_k on the circle of radius 2 (float64)."""
    return GaussianMixture(eight_gaussians_means().double(), STD)


def _check(sigma_min: float, t: float, field: str) -> None:
    check_range("sigma_min", sigma_min, 0.0, 1.0, high_open=True)
    if not 0.0 < t < 1.0:
        raise ValueError(f"t must be in (0, 1) (central differences in t), got {t}")
    if field not in FIELDS:
        raise ValueError(f"field must be one of {FIELDS}, got {field!r}")


def pair(sigma_min: float, field: str = "true"):
    """(log_p, u): the marginal OT path p_t of `mixture()` and the chosen field."""
    _check(sigma_min, 0.5, field)
    q = mixture()
    marginal = MixtureMarginal(OTPath(sigma_min), q)  # fmlib.marginal's closed forms
    log_p, u_true = marginal.log_prob, marginal.velocity
    if field == "true":
        return log_p, u_true
    if field == "scaled ×1.5":
        return log_p, lambda x, t: 1.5 * u_true(x, t)
    return log_p, MixtureMarginal(VPPath(), q).velocity


@lru_cache(maxsize=64)
def convergence(sigma_min: float, t: float, field: str) -> continuity.Convergence:
    """||R(h)|| on the grids NS and the fitted order (cached per slider setting).

    dt = min(DT_RATIO h, t, 1 - t) (fmlib.continuity.residual_convergence)."""
    _check(sigma_min, t, field)
    log_p, u = pair(sigma_min, field)
    return continuity.residual_convergence(log_p, u, t, lim=LIM, ns=NS, dt_ratio=DT_RATIO)


@lru_cache(maxsize=64)
def residual_image(sigma_min: float, t: float, field: str, n: int) -> Tensor:
    """R on the n x n grid of [-LIM, LIM]^2, dt = min(DT_RATIO h, t, 1 - t)."""
    _check(sigma_min, t, field)
    log_p, u = pair(sigma_min, field)
    h = 2 * LIM / (n - 1)
    return continuity.continuity_residual(log_p, u, t, lim=LIM, n=n, dt=min(DT_RATIO * h, t, 1 - t))


@lru_cache(maxsize=1)
def _noise() -> Tensor:
    return torch.randn(
        N_PARTICLES, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )


@lru_cache(maxsize=256)
def particles(sigma_min: float, t: float, steps: int) -> Tensor:
    """x_t: noise pushed from 0 to t by `steps` midpoint steps of the true marginal field."""
    q = GaussianMixture(eight_gaussians_means(), STD)  # float32 means, as p_t's mixture()
    u = MixtureMarginal(OTPath(sigma_min), q).velocity  # in float64, the noise's dtype
    return integrate(u, _noise(), t0=0.0, t1=t, steps=steps, method="midpoint").x


def particle_error(sigma_min: float, t: float, steps: int) -> float:
    """TV distance between the particles' histogram and p_t (BINS x BINS bins on VIEW)."""
    log_p, _ = pair(sigma_min)
    x = particles(sigma_min, t, steps)
    return continuity.histogram_error(x, log_p, t, lim=VIEW, bins=BINS)


@lru_cache(maxsize=64)
def _density(sigma_min: float, t: float) -> Tensor:
    log_p, _ = pair(sigma_min)
    return continuity.density_on_grid(log_p, t, VIEW, 80)


def _titles(sigma_min: float, t: float, steps: int, n: int, field: str, tv: float):
    """Titles that read every control (the panel's readout contract): `name = value`."""
    return (
        f"$p_t$ and ODE particles, steps = {steps}\nt = {t:.2f}, TV = {tv:.3f}",
        f"residual, field = {field}\nn = {n}, σ_min = {sigma_min:.2f}",
    )


def _check_panel(sigma_min: float, t: float, n: int, field: str) -> None:
    _check(sigma_min, t, field)
    check_int("n", n, NS[0], NS[-1])


class _ContinuityArtists:
    """The panel's three axes, built once with fixed limits and colour scales; `set` changes
    their data (p_t, particles, residual image, norms, titles and legend)."""

    def __init__(self, ax_p, ax_r, ax_c) -> None:
        box_p, box_r = (-VIEW, VIEW, -VIEW, VIEW), (-LIM, LIM, -LIM, LIM)
        self.density = plots.heatmap(ax_p, np.zeros((80, 80)), box_p, label="$p_t(x)$")
        self.density.set_norm(PowerNorm(0.5, vmin=0, vmax=P_MAX))  # square-root scale
        self.cloud = ax_p.scatter([], [], s=1.5, color="white", alpha=0.6, lw=0)
        self.residual = plots.heatmap(
            ax_r,
            np.zeros((NS[0], NS[0])),
            box_r,
            cmap=plots.DIVERGING,
            label="residual (symmetric log scale)",
        )
        self.residual.set_norm(SymLogNorm(R_LINEAR, linscale=0.5, vmin=-R_MAX, vmax=R_MAX))
        placeholders = _titles(0.0, 0.5, 10, 33, FIELDS[2], 0.0)  # the longest field name
        for ax, lim, title in zip((ax_p, ax_r), (VIEW, LIM), placeholders, strict=True):
            plots.square(ax, lim)
            ax.set_title(title)  # placeholder: sizes the layout for the real titles
        # right: ||R|| vs h on fixed axes (1e-4 .. 5 holds every slider setting)
        (self.true_line,) = ax_c.loglog([], [], "o-", label=" ")
        (self.wrong_line,) = ax_c.loglog([], [], "s--", label=" ")
        (self.h2_line,) = ax_c.loglog([], [], ":", color="0.5", label="$h^2$")
        self.h_mark = ax_c.axvline(2 * LIM / (NS[1] - 1), color="0.7", lw=1)
        h = [2 * LIM / (n - 1) for n in NS]
        ax_c.set_xlim(0.09, 0.55)
        ax_c.set_ylim(1e-4, 5.0)
        ax_c.set_xticks(h, [f"{v:.2f}" for v in h])
        ax_c.xaxis.set_minor_locator(NullLocator())
        ax_c.set_xlabel("grid spacing h\n(dt = min(h/4, t, 1 − t))")
        ax_c.set_ylabel("$\\|R\\|_{L^2}$")
        ax_c.set_title("residual norm vs grid spacing")
        self.legend = ax_c.legend(loc="lower right", fontsize=9)  # legends >= 9 pt (projector)
        self.titles = (ax_p.title, ax_r.title)
        spines = (*ax_p.spines.values(), *ax_r.spines.values())  # static, on top of images
        lines = (self.true_line, self.wrong_line, self.h2_line, self.h_mark, self.legend)
        self.artists = (self.density, self.cloud, self.residual, *self.titles, *lines, *spines)

    def set(self, sigma_min: float, t: float, steps: int, n: int, field: str) -> None:
        _check_panel(sigma_min, t, n, field)
        other = field if field != "true" else FIELDS[1]  # the wrong field on the right
        with one_thread():
            density, x = _density(sigma_min, t), particles(sigma_min, t, steps)
            tv = particle_error(sigma_min, t, steps)
            residual = residual_image(sigma_min, t, field, n)
            true, wrong = convergence(sigma_min, t, "true"), convergence(sigma_min, t, other)
        self.density.set_data(density.numpy())
        self.cloud.set_offsets(x[:N_DRAWN].numpy())
        self.residual.set_data(residual.numpy())
        for text, title in zip(
            self.titles, _titles(sigma_min, t, steps, n, field, tv), strict=True
        ):
            text.set_text(title)
        self.true_line.set_data(true.h, true.norm)
        self.wrong_line.set_data(wrong.h, wrong.norm)
        h = np.array(true.h)
        self.h2_line.set_data(h, true.norm[-1] * (h / h[-1]) ** 2)
        self.h_mark.set_xdata([2 * LIM / (n - 1)] * 2)
        labels = (f"true: slope {true.order:.2f}", f"{other}: slope {wrong.order:.2f}")
        for text, label in zip(self.legend.get_texts()[:2], labels, strict=True):
            text.set_text(label)


class Continuity(plots.LiveFigure):
    """p_t with ODE particles | residual heatmap of (p_t, field) | ||R|| vs h (log-log).

    Left: the closed-form p_t of the marginal OT path and N_DRAWN of the particles pushed
    there by `steps` midpoint steps (TV: histogram of all particles vs p_t). Middle: the
    continuity residual R = d/dt p_t + div(p_t u_t) of the chosen field on the n x n grid
    (symmetric log colour scale). Right: ||R|| on the grids NS for the true field and the
    chosen wrong one (slope 2: u_t generates p_t; slope 0: it does not).

    `Continuity.draw(sigma_min=0.0, t=0.5, steps=10, n=33, field="true")` -> Figure;
    `fmlib.widgets.panel(view)` shows it with the controls of `controls()`."""

    NOTE = (
        "t runs over 0.05 … 0.95: the residual's central difference in time needs "
        "t − dt ≥ 0 and t + dt ≤ 1."
    )

    def controls(self) -> dict:
        """σ_min, t (only the drawable times T_OPTIONS), particle steps, grid n, field."""
        return {
            "sigma_min": widgets.sigma_min_slider(0.0),
            "t": widgets.t_slider(0.5, options=T_OPTIONS),
            "steps": widgets.steps_slider(10, max=64),
            "n": widgets.choice("grid n", NS, 33),
            "field": widgets.choice("field", FIELDS, "true"),
        }

    def build(self) -> Figure:
        fig, axes = plots.new_axes(3, size=3.2)
        self.panels = _ContinuityArtists(*axes)
        self.dynamic(*self.panels.artists)
        return fig

    def update(
        self,
        sigma_min: float = 0.0,
        t: float = 0.5,
        steps: int = 10,
        n: int = 33,
        field: str = "true",
    ) -> None:
        self.panels.set(sigma_min, t, steps, n, field)


def draw_particles_grid(
    sigma_mins: tuple[float, ...] = (0.0, 0.2), steps: tuple[int, ...] = (1, 3, 30), t: float = 0.8
) -> Figure:
    """Static small multiples: rows = sigma_min, columns = solver steps; p_t and particles."""
    fig, axes = plots.new_axes(len(sigma_mins) * len(steps), size=2.5, ncols=len(steps))
    ext = (-VIEW, VIEW, -VIEW, VIEW)
    vmax = max(float(_density(s, t).max()) for s in sigma_mins)  # one colour scale for all
    for i, s in enumerate(sigma_mins):
        for j, k in enumerate(steps):
            ax = axes[i * len(steps) + j]
            image = ax.imshow(
                _density(s, t).numpy(),
                origin="lower",
                extent=ext,
                cmap=plots.CMAP,
                vmin=0.0,
                vmax=vmax,
            )
            x = particles(s, t, k)
            ax.scatter(x[:N_DRAWN, 0], x[:N_DRAWN, 1], s=1, color="white", alpha=0.6, lw=0)
            plots.square(ax, VIEW)
            ax.grid(False)
            ax.set_title(
                f"σ_min={s:.1f}, {k} step{'s' * (k > 1)}\nTV={particle_error(s, t, k):.3f}"
            )
    fig.colorbar(image, ax=axes, shrink=0.6, label=f"$p_t(x)$, t = {t}")
    return fig
