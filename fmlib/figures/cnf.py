"""Notebook 02: the density p_t of a CNF by the ODE vs its closed form.

The flow is `GaussianFlow(M, sigma_min)`: N(0, I) -> N(M, sigma_min^2 I) along the OT path,
where p_t = N(t M, sigma_t^2 I), sigma_t = 1 - (1 - sigma_min) t. The ODE density solves the
augmented system d/dtau [x, l] = [u_tau(x), -div u_tau(x)] backward from (x, 0) at tau = t
to tau = 0, then log p_t(x) = log p_0(x_0) - l_0 (instantaneous change of variables).
"""

from __future__ import annotations

from functools import lru_cache

import contourpy
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from fmlib import plots, widgets
from fmlib.checks import check_int, check_range
from fmlib.flows import GaussianFlow
from fmlib.solvers import METHODS, STEPS, integrate, standard_normal_log_prob

M = (2.0, 1.0)  # mean of the target Gaussian
LIM = 4.0
N_GRID = 40  # the heatmap's grid is N_GRID x N_GRID
N_LINE = 200  # points on the slice through the mean
N_SAMPLES = 300  # x_t ~ p_t on which the log-likelihood error is measured
EXTENT = (-LIM, LIM, -LIM, LIM)
METHODS_SHOWN = ("euler", "midpoint", "rk4")  # the fixed-step solvers the panel offers
CLIP = 2.0  # the slice's y axis shows the ODE density up to CLIP x the closed form's peak


def flow(sigma_min: float) -> GaussianFlow:
    """N(0, I) -> N(M, sigma_min^2 I) along the OT path (no swirl)."""
    check_range("sigma_min", sigma_min, 0.0, 1.0)
    return GaussianFlow(torch.tensor(M, dtype=torch.float64), sigma_min)


@lru_cache(maxsize=1)
def _points() -> tuple[Tensor, Tensor]:
    """The grid [N_GRID^2, 2] and fixed noise x0 ~ N(0, I) [N_SAMPLES, 2] (float64)."""
    _, _, grid = plots.grid2d(LIM, N_GRID)
    x0 = torch.randn(N_SAMPLES, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return grid.to(torch.float64), x0


def _augmented(g: GaussianFlow):
    """The field of z = [x, l]: d/dtau [x, l] = [u_tau(x), -div u_tau(x)]."""

    def field(z: Tensor, tau: Tensor) -> Tensor:
        y = z[:, :2]
        return torch.cat([g(y, tau), -g.div_u_t(y, tau)[:, None]], dim=1)

    return field


def ode_log_density(g: GaussianFlow, x: Tensor, t: float, steps: int, method: str) -> Tensor:
    """log p_t(x) = log p_0(x_0) - int_0^t div u_tau(x_tau) dtau, by the augmented ODE solved
    backward from tau = t to 0 with `method` (divergence in closed form: d (s - 1)/sigma_tau)."""
    z = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
    z0 = integrate(_augmented(g), z, t0=t, t1=0.0, steps=steps, method=method).x
    return standard_normal_log_prob(z0[:, :2]) - z0[:, 2]


def _solver_map(g: GaussianFlow, t: float, steps: int, method: str) -> np.ndarray:
    """The fixed-step solve of the augmented ODE from tau = t to 0 as one affine map of
    z = [x, l]: the 4 x 4 homogeneous matrix T with [z_0, 1] = T [z_t, 1].

    u_tau is affine in x and div u_tau does not depend on x, so every solver step is an
    affine map z -> A_k z + c_k. One batched call of the solver's step (fmlib.solvers.STEPS)
    on the points 0, e_1, e_2, e_3 at every tau_k = t + k h, h = -t / steps, gives all of
    them (c_k = step(0), A_k e_i = step(e_i) - c_k); their product is the whole solve.
    Same result as `ode_log_density` (to rounding), without a Python loop of field calls.
    """
    h = (0.0 - t) / steps
    basis = torch.cat([torch.zeros(1, 3), torch.eye(3)]).to(torch.float64)  # 0, e_1, e_2, e_3
    z = basis.repeat(steps, 1)
    tau = (t + torch.arange(steps, dtype=torch.float64) * h).repeat_interleave(len(basis))
    out = STEPS[method](_augmented(g), z, tau, h).reshape(steps, len(basis), 3).numpy()
    maps = np.zeros((steps, 4, 4))
    maps[:, :3, :3] = (out[:, 1:] - out[:, :1]).transpose(0, 2, 1)  # columns A_k e_i
    maps[:, :3, 3], maps[:, 3, 3] = out[:, 0], 1.0
    total = np.eye(4)
    for step_map in maps:  # steps matrices of 4 x 4: microseconds
        total = step_map @ total
    return total


def _check_solver(method: str, steps: int) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_int("steps", steps)


@lru_cache(maxsize=512)
def density_at_t(sigma_min: float, method: str, steps: int, t: float) -> dict:
    """ODE and closed-form log p_t on the grid, and the log-likelihood error on x_t ~ p_t:
    mean |log p_t^ODE(x_t) - log p_t(x_t)|. None where p_t is a point mass (sigma_t = 0).

    The ODE density is `ode_log_density`; fixed-step solvers run batched over the time
    grid (`_solver_map`), which gives the same numbers to rounding."""
    g = flow(sigma_min)
    grid, x0 = _points()
    sigma_t = g.sigma_t(t)  # checks t
    _check_solver(method, steps)
    x_t = g.psi_t(x0, t)
    if sigma_t == 0:
        return {"grid_ode": None, "error": None, "x_t": x_t}
    line = torch.linspace(-LIM, LIM, N_LINE, dtype=torch.float64)
    line = torch.stack([line, torch.full_like(line, t * M[1])], dim=1)
    both = torch.cat([grid, line, x_t])
    if method in STEPS:
        total = torch.from_numpy(_solver_map(g, t, steps, method))
        # [x_t, l = 0] -> [x_0, l_0] = x^(1) T[:3, 0] + x^(2) T[:3, 1] + T[:3, 3], written
        # out: a float64 matmul with an inner dimension of 2 takes ~30 ms in torch's CPU BLAS
        z0 = both[:, :1] * total[:3, 0] + both[:, 1:2] * total[:3, 1] + total[:3, 3]
        p_ode = standard_normal_log_prob(z0[:, :2]) - z0[:, 2]
    else:  # adaptive steps (dopri5)
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


def contour_lines(z: np.ndarray, levels: int = 4) -> list[np.ndarray]:
    """The polylines of `ax.contour(z, levels=levels, extent=EXTENT)` on the N_GRID grid
    (same levels: MaxNLocator(levels + 1) on [z.min(), z.max()]), for a LineCollection."""
    axis = np.linspace(-LIM, LIM, z.shape[0])
    generator = contourpy.contour_generator(
        axis, axis, z, name="mpl2014", corner_mask=True, line_type=contourpy.LineType.SeparateCode
    )
    values = MaxNLocator(levels + 1, min_n_ticks=1).tick_values(z.min(), z.max())
    return [points for v in values for points in generator.lines(v)[0]]  # closed: ends = start


def _slice_title(sigma_min: float, method: str, steps: int, t: float, error: float | None):
    """The panel's readouts, 'σ_min = 0.30, t = 1.00, euler, steps = 4', then the error."""
    if error is None:
        return (
            f"σ_min = {sigma_min:.2f}, t = {t:.2f}:\np_1 is a point mass at m (no density\n"
            f"to integrate; {method}, steps = {steps} unused)"
        )
    return (
        f"σ_min = {sigma_min:.2f}, t = {t:.2f},\n{method}, steps = {steps}\n"
        f"log-likelihood error {error:.2e}"
    )


class _SliceArtists:
    """p_t along the line x^(2) = t m_2 through the mean: ODE (line) vs closed form (dashes),
    or the point mass at m. Its y limits follow p_t: `artists` redraws its y axis."""

    def __init__(self, ax: Axes) -> None:
        self.ax = ax
        (self.ode,) = ax.plot([], [], color=plots.PATH_COLOR, lw=2)
        (self.exact,) = ax.plot([], [], color="k", ls="--", lw=1)
        self.point_mass = ax.axvline(M[0], color=plots.TARGET_COLOR, ls="--")
        ax.set_xlabel("$x^{(1)}$ (with $x^{(2)} = t\\,m_2$)")
        ax.set_title(_slice_title(0.3, "midpoint", 10, 1.0, 1.0))
        self.legend = ax.legend([self.ode, self.exact], ["ODE", "closed form"], loc="upper left")

    @property
    def artists(self) -> tuple:
        """What `set` changes (the x axis never changes: it stays cached)."""
        ax = self.ax
        return (
            self.ode,
            self.exact,
            self.point_mass,
            ax.yaxis,
            *ax.spines.values(),
            ax.title,
            self.legend,
        )

    def set(self, sigma_min: float, method: str, steps: int, t: float) -> float | None:
        res = density_at_t(sigma_min, method, steps, t)
        point_mass = res["grid_ode"] is None
        for artist in (self.ode, self.exact, self.legend):
            artist.set_visible(not point_mass)
        self.point_mass.set_visible(point_mass)
        self.ax.set_ylabel("" if point_mass else "$p_t(x)$")
        self.ax.set_xlim(-1.1 * LIM, 1.1 * LIM)  # one x range for both: no full redraw
        if point_mass:
            self.ax.set_ylim(0.0, 1.0)
        else:
            line, ode, exact = (res[k].numpy() for k in ("line", "line_ode", "line_exact"))
            self.ode.set_data(line, ode)
            self.exact.set_data(line, exact)
            label = f"ODE ({method}, {steps} steps)"
            # the y range follows the closed form: an ODE peak far above it (1e7 with one
            # Euler step) would flatten the closed form to a line at 0; its peak is named
            hi = max(exact.max(), min(ode.max(), CLIP * exact.max()))
            if ode.max() > hi:
                label += f"\npeak {ode.max():.2g}, off the scale"
            self.legend.get_texts()[0].set_text(label)
            lo = min(ode.min(), exact.min())
            self.ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        self.ax.set_title(_slice_title(sigma_min, method, steps, t, res["error"]))
        return res["error"]


class ODEDensity(plots.LiveFigure):
    """Left: p_t by the ODE on a grid, closed-form contours on top (all samples at m when
    p_t is a point mass); right: a slice through the mean, ODE vs closed form, with the
    log-likelihood error in the title.

    `ODEDensity.draw(sigma_min=0.3, method="midpoint", steps=10, t=1.0)` -> Figure;
    `widgets.panel(view)` shows its controls. At t = 0 nothing is integrated and p_0 =
    N(0, I) for every sigma_min; at sigma_min = 0, t = 1 p_1 is a point mass: `inactive`
    names the controls that then have no effect."""

    def controls(self) -> dict:
        return {
            "sigma_min": widgets.sigma_min_slider(0.3),
            "method": widgets.choice("solver", list(METHODS_SHOWN), "euler"),
            "steps": widgets.steps_slider(4),
            "t": widgets.t_slider(1.0),
        }

    def inactive(
        self, sigma_min: float = 0.3, method: str = "midpoint", steps: int = 10, t: float = 1.0
    ) -> dict[str, str]:
        if float(t) == 0.0:
            reason = "at t = 0 there is nothing to integrate: p_0 = N(0, I)"
            return {"sigma_min": reason, "method": reason, "steps": reason}
        if float(sigma_min) == 0.0 and float(t) == 1.0:
            reason = "σ_min = 0, t = 1: p_1 is a point mass, there is no density to integrate"
            return {"method": reason, "steps": reason}
        return {}

    def build(self) -> Figure:
        fig, (ax_map, ax_slice) = plots.new_axes(2, size=3.6)
        self.map = ax_map
        self.image = plots.heatmap(
            ax_map, np.ones((N_GRID, N_GRID)), EXTENT, "p_t by the ODE, t = 1.00", "density"
        )
        self.colorbar = self.image.colorbar
        self.contours = LineCollection([], colors="w", linewidths=0.8)
        ax_map.add_collection(self.contours, autolim=False)
        self.samples = ax_map.scatter([], [], s=2, alpha=0.5, color=plots.TARGET_COLOR, lw=0)
        ax_map.set_xlabel("$x^{(1)}$")
        ax_map.set_ylabel("$x^{(2)}$")
        self.slice = _SliceArtists(ax_slice)
        self.update()  # then the layout, with the colorbar, is kept for the point mass too
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
        self.dynamic(
            self.image,
            self.contours,
            self.samples,
            *ax_map.spines.values(),
            ax_map.title,
            self.colorbar.ax,
            *self.slice.artists,
        )
        return fig

    def update(
        self, sigma_min: float = 0.3, method: str = "midpoint", steps: int = 10, t: float = 1.0
    ) -> None:
        sigma_min, steps, t = float(sigma_min), int(steps), float(t)
        res = density_at_t(sigma_min, method, steps, t)
        point_mass = res["grid_ode"] is None  # hides the image and colorbar: both are dynamic
        for artist in (self.image, self.contours, self.colorbar.ax):
            artist.set_visible(not point_mass)
        self.samples.set_visible(point_mass)
        if point_mass:
            self.samples.set_offsets(res["x_t"].numpy())
            self.map.set_title("all samples sit at m")
        else:
            density = res["grid_ode"].numpy()
            self.image.set_data(density)
            self.image.set_clim(density.min(), density.max())  # as a new imshow: the data range
            self.contours.set_segments(contour_lines(res["grid_exact"].numpy()))
            self.map.set_title(f"p_t by the ODE, t = {t:.2f}")
        self.slice.set(sigma_min, method, steps, t)


def draw_density_grid(
    sigma_mins: tuple[float, ...] = (0.1, 0.5),
    steps: tuple[int, ...] = (1, 4, 20),
    method: str = "euler",
    t: float = 1.0,
) -> Figure:
    """Small multiples of the slice: one row per sigma_min, one column per number of steps,
    one legend under them all (no curve crosses it). Each title is short (sigma_min, steps,
    the error, the ODE's peak when it is off the scale); method and t go in a suptitle."""
    fig, axes = plots.new_axes(len(sigma_mins) * len(steps), size=2.9, ncols=len(steps))
    for i, s in enumerate(sigma_mins):
        for j, k in enumerate(steps):
            ax = axes[i * len(steps) + j]
            panel = _SliceArtists(ax)
            error = panel.set(float(s), method, int(k), float(t))
            off_scale = panel.legend.get_texts()[0].get_text().split("\n")[1:]
            panel.legend.remove()
            if error is not None:
                plural = "s" if k != 1 else ""
                lines = [f"σ_min = {s:.2f}, {k} step{plural}", f"log-lik. error {error:.2g}"]
                ax.set_title("\n".join(lines + [f"ODE {line}" for line in off_scale]))
    fig.legend(
        [panel.ode, panel.exact],
        [f"ODE ({method})", "closed form"],
        loc="outside lower center",
        ncols=2,
        fontsize=9,
    )
    return fig


def draw_flow_map(
    g: GaussianFlow, times: tuple[float, ...] = (0.0, 0.5, 1.0), lim: float = 3.0
) -> Figure:
    """Schematic of a flow map psi_t: one panel per t, with the images psi_t of a square grid
    (grey), of a disc B of starting points (filled), the trajectories s -> psi_s(x0),
    s <= t, of a few points of B, and the field u_t (arrows).

    The filled set psi_t(B) holds the same probability at every t, nu(psi_t(B)) = mu(B):
    that is the push-forward p_t = [psi_t]_# p_0."""
    dtype = g.m.dtype
    s = torch.linspace(-lim, lim, 80, dtype=dtype)[:, None]
    lines = [torch.cat([s, torch.full_like(s, v)], 1) for v in torch.linspace(-lim, lim, 9)]
    lines += [torch.cat([torch.full_like(s, v), s], 1) for v in torch.linspace(-lim, lim, 9)]
    angle = torch.linspace(0, 2 * np.pi, 100, dtype=dtype)
    centre, radius = torch.tensor([-1.0, 0.5], dtype=dtype), 0.8
    disc = centre + radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    starts = centre + 0.6 * radius * torch.stack([angle[::13].cos(), angle[::13].sin()], dim=1)
    axis = torch.linspace(-lim, lim, 9, dtype=dtype)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    arrows_at = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    fig, axes = plots.new_axes(len(times), size=3.0)
    for ax, t in zip(axes, times, strict=True):
        for line in lines:
            img = g.psi_t(line, t).numpy()
            ax.plot(img[:, 0], img[:, 1], color="0.8", lw=0.7)
        b_t = g.psi_t(disc, t).numpy()
        ax.fill(
            b_t[:, 0],
            b_t[:, 1],
            color=plots.SOURCE_COLOR if t == 0 else plots.TARGET_COLOR,
            alpha=0.6,
            lw=0,
        )
        path = torch.stack([g.psi_t(starts, r) for r in np.linspace(0, t, 30)]).numpy()
        ax.plot(path[..., 0], path[..., 1], color=plots.PATH_COLOR, lw=1)
        velocity = g(arrows_at, torch.full((len(arrows_at),), t, dtype=dtype))
        direction = (velocity / velocity.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()
        ax.quiver(
            arrows_at[:, 0],
            arrows_at[:, 1],
            direction[:, 0],
            direction[:, 1],
            color="0.35",
            width=0.005,
            scale=14,
        )  # directions only: |u_t| varies a lot
        ax.set(
            xlim=(-lim - 0.5, lim + 0.5),
            ylim=(-lim - 0.5, lim + 0.5),
            aspect="equal",
            xlabel="$x^{(1)}$",
            ylabel="$x^{(2)}$",
        )
        ax.set_title(f"t = {t:.2f}: ψ_t(grid), ψ_t(B) filled\narrows: direction of u_t")
    return fig


__all__ = [
    "ODEDensity",
    "contour_lines",
    "density_at_t",
    "draw_density_grid",
    "draw_flow_map",
    "ode_log_density",
    "plt",
]
