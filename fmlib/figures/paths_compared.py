"""Notebook 07: four Gaussian probability paths compared on one target.

OT (alpha_t = t, sigma_t = 1 - (1 - sigma_min) t), cosine (alpha_t = sin(pi t / 2),
sigma_t = cos(pi t / 2)), VP and VE diffusion (fmlib.paths), each with the exact marginal
field of the eight-Gaussians mixture (fmlib.marginal's closed forms, evaluated by
`MixtureMarginal`). The ODE starts from exact samples of each path's own p_0 (for VP and
VE that is only approximately N(0, I)), so that its endpoints follow p_1.

sigma_min is a parameter of the OT path only (its sigma_1). Cosine and VP end at
sigma_1 = 0 by construction, and VE keeps its own final noise level s_min = VE_S_MIN
(its field needs s_min > 0): the widget disables the sigma_min control for those three.
"""

from __future__ import annotations

import math
from functools import lru_cache

import ipywidgets
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import data, metrics, plots, widgets
from fmlib.checks import check_int, check_range
from fmlib.continuity import square_grid
from fmlib.marginal import MixtureMarginal
from fmlib.paths import PATH_NAMES, VE_S_MIN, GaussianPath, OTPath, VEPath, VPPath, make_path
from fmlib.plots import LOG_P_CEIL, LOG_P_FLOOR
from fmlib.repro import one_thread
from fmlib.solvers import integrate, position_at

SIGMA_MIN_PATHS = ("OT",)  # the paths that have a sigma_min
VIEW = 5.0
N_PARTICLES = 300
N_TRAJ = 30
HEAT = 60
REFERENCE_STEPS = 50  # RK4, even (Simpson): the "exact" solution Euler is compared to


def _check(name: str, sigma_min: float, steps: int = 1, t: float = 0.0) -> None:
    if name not in PATH_NAMES:
        raise ValueError(f"path must be one of {', '.join(PATH_NAMES)}, got {name!r}")
    check_range("sigma_min", sigma_min, 0.0, 1.0, high_open=True)
    check_int("steps", steps)
    check_range("t", t, 0.0, 1.0)


def sigma_min_reason(name: str) -> str | None:
    """Why sigma_min has no effect on the path `name` (None for OT, where it is sigma_1)."""
    _check(name, 0.0)
    return {
        "OT": None,
        "cosine": "cosine ends at σ_1 = cos(π/2) = 0: it has no σ_min",
        "VP": "VP ends at σ_1 = 0 (its α_1 = a(0) = 1): it has no σ_min",
        "VE": f"VE ends at its own s_min = {VE_S_MIN:g} (> 0 for its field): σ_min is OT's",
    }[name]


@lru_cache(maxsize=64)
def _marginal(name: str, sigma_min: float) -> MixtureMarginal:
    """The exact marginal path of q (eight Gaussians) under the path `name`, cached."""
    return MixtureMarginal(make_path(name, sigma_min), data.eight_gaussians_mixture())


@lru_cache(maxsize=64)
def source_samples(name: str, sigma_min: float, n: int = N_PARTICLES) -> Tensor:
    """x ~ p_0 = law of psi_0(eps | x1) = alpha_0 x1 + sigma_0 eps, x1 ~ q, eps ~ N(0, I)."""
    g = torch.Generator().manual_seed(7)
    x1, eps = (
        data.eight_gaussians_mixture().sample(n, generator=g),
        torch.randn(n, 2, generator=g, dtype=torch.float64),
    )
    return make_path(name, sigma_min).psi_t(eps, x1, 0.0)


@lru_cache(maxsize=256)
def trajectories(name: str, sigma_min: float, steps: int, method: str = "euler") -> Tensor:
    """x_t of dx/dt = u_t(x) (exact marginal field) from p_0 samples: [steps + 1, N, 2]."""
    u = _marginal(name, sigma_min).velocity
    x0 = source_samples(name, sigma_min)
    return integrate(u, x0, steps=steps, method=method, trajectory=True).trajectory


def reference(name: str, sigma_min: float, steps: int = REFERENCE_STEPS) -> Tensor:
    """The ODE solution on a fine grid: RK4, `steps` steps (default REFERENCE_STEPS; twice
    as many shows it has converged), [steps + 1, N, 2]."""
    return trajectories(name, sigma_min, steps, "rk4")


def endpoint_error(name: str, sigma_min: float, steps: int) -> float:
    """Mean |x_1(Euler, steps) - x_1(reference)| over the particles."""
    _check(name, sigma_min, steps)
    x_euler = trajectories(name, sigma_min, steps)[-1]
    return float((x_euler - reference(name, sigma_min)[-1]).norm(dim=1).mean())


@lru_cache(maxsize=64)
def kinetic_energy(
    name: str, sigma_min: float, steps: int = REFERENCE_STEPS
) -> tuple[float, float]:
    """(K, S) of the marginal flow on the reference trajectories x_t (RK4, `steps` steps):

        K = E int_0^1 |u_t(x_t)|^2 dt,     S = E int_0^1 |u_t(x_t) - (x_1 - x_0)|^2 dt,

    fmlib.metrics.path_energy with Simpson's rule in t on the RK4 nodes (`steps` even).
    S is the straightness of Liu et al. (2023): 0 exactly when every trajectory is a
    straight line run at constant speed; S = K - E|x_1 - x_0|^2 up to the quadrature error.
    """
    traj = reference(name, sigma_min, steps)
    u = _marginal(name, sigma_min).velocity
    h = 1.0 / steps
    times = [k * h for k in range(steps + 1)]  # fmlib.solvers' nodes t_k = k h
    k, s = metrics.path_energy(u, traj, times, "simpson")
    return float(k.mean()), float(s.mean())


def conditional_kinetic_energy(path: GaussianPath, x0: Tensor, x1: Tensor, n: int) -> float:
    """E int_0^1 |d/dt psi_t(x0 | x1)|^2 dt by the midpoint rule with n nodes in t.

    d/dt psi_t = alpha_t' x1 + sigma_t' x0, so the expectation needs only the sample
    moments E|x1|^2, E x0.x1, E|x0|^2:  E|.|^2 = a'^2 E|x1|^2 + 2 a' s' E x0.x1 + s'^2 E|x0|^2.
    """
    check_int("n", n)
    m11, m01, m00 = ((a * b).sum(1).mean() for a, b in ((x1, x1), (x0, x1), (x0, x0)))
    t = (torch.arange(n, dtype=x0.dtype) + 0.5) / n
    d_alpha, d_sigma = path.d_alpha_t(t), path.d_sigma_t(t)
    return float((d_alpha**2 * m11 + 2 * d_alpha * d_sigma * m01 + d_sigma**2 * m00).mean())


def draw_conditional_paths(n_lines: int = 12) -> Figure:
    """psi_t(x0 | x1) for t in [0, 1]: one x1 (star), n_lines x0 (dots), one panel a path."""
    fig, axes = plots.new_axes(len(PATH_NAMES), size=2.8)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(n_lines, 2, generator=g, dtype=torch.float64)
    x1 = torch.tensor([[2.0, 1.0]], dtype=torch.float64).expand(n_lines, 2)
    ts = torch.linspace(0, 1, 101, dtype=torch.float64)
    for ax, name in zip(axes, PATH_NAMES, strict=True):
        path = make_path(name)
        lines = torch.stack([path.psi_t(x0, x1, float(t)) for t in ts])  # [T, n, 2]
        ax.add_collection(
            LineCollection(list(lines.transpose(0, 1).numpy()), lw=1, color=plots.PATH_COLOR)
        )
        ax.scatter(lines[0, :, 0], lines[0, :, 1], s=10, color=plots.SOURCE_COLOR, zorder=3)
        ax.plot([2.0], [1.0], "*", color=plots.TARGET_COLOR, mec="k", ms=12, zorder=4)
        plots.square(ax, 6.0 if name == "VE" else 3.5)
        ax.set_title(f"{name}: ψ_t(x_0 | x_1)\n{describe(name, 0.0)}")
    return fig


@lru_cache(maxsize=256)
def _log_p(name: str, sigma_min: float, t: float) -> Tensor:
    return _marginal(name, sigma_min).log_prob(square_grid(VIEW, HEAT), t).reshape(HEAT, HEAT)


def _schedule(path: GaussianPath) -> tuple[Tensor, Tensor, Tensor]:
    ts = torch.linspace(0, 1, 101, dtype=torch.float64)
    return ts, path.alpha_t(ts), path.sigma_t(ts)


def describe(name: str, sigma_min: float) -> str:
    """The parameters of the path, for titles."""
    path = make_path(name, sigma_min)
    if isinstance(path, OTPath):
        return f"σ_min = {path.sigma_min:.2f}"
    if isinstance(path, VEPath):
        return f"s_min = {path.s_min:.2f}, s_max = {path.s_max:g}"
    if isinstance(path, VPPath):
        return f"β = {path.beta_min:g} .. {path.beta_max:g}"
    return "σ_1 = 0"


def effective_sigma_min(name: str, sigma_min: float) -> float:
    """The sigma_min the path `name` uses: sigma_min for OT, 0.0 (ignored) for the others;
    the caches are keyed by it, so moving a disabled control recomputes nothing."""
    _check(name, sigma_min)
    return sigma_min if name in SIGMA_MIN_PATHS else 0.0


def _titles(name: str, sigma_min: float, steps: int, t: float) -> tuple[str, str, str]:
    _, straightness = kinetic_energy(name, sigma_min)
    return (
        f"{name} ({describe(name, sigma_min)})\np_t and Euler particles, t = {t:.2f}",
        f"Euler, steps = {steps}\nend error {endpoint_error(name, sigma_min, steps):.3f}, "
        f"S = {straightness:.2f}",
        f"{name}: α_t (solid), σ_t (dashed)",
    )


class PathsCompared(plots.LiveFigure):
    """log p_t of the chosen path with the Euler particles at t | Euler trajectories and
    endpoints (stars: the mixture's means) | alpha_t and sigma_t of all four paths, the
    chosen one bold, a line at t.

    `PathsCompared.draw(path="VP", sigma_min=0.0, steps=8, t=0.5)` -> Figure. sigma_min
    acts on OT only (`inactive` says why elsewhere); t is drawn exactly (the heatmap is
    the closed-form p_t, the particles sit on the Euler polygon at t)."""

    NOTE = None

    def controls(self) -> dict[str, ipywidgets.ValueWidget]:
        return {
            "path": widgets.choice("path", PATH_NAMES, "OT"),
            "sigma_min": widgets.sigma_min_slider(0.0, max=0.5),
            "steps": widgets.steps_slider(4, max=64),
            "t": widgets.t_slider(0.5),
        }

    def inactive(self, path: str = "OT", **values) -> dict[str, str]:
        reason = sigma_min_reason(path)
        return {} if reason is None else {"sigma_min": reason}

    def build(self) -> Figure:
        fig, (ax_p, ax_x, ax_s) = plots.new_axes(3, size=3.2)
        ext = (-VIEW, VIEW, -VIEW, VIEW)
        self.log_p = plots.heatmap(
            ax_p,
            torch.zeros(HEAT, HEAT),
            ext,
            label="$\\log p_t(x)$",
            vmin=LOG_P_FLOOR,
            vmax=LOG_P_CEIL,
        )
        self.particles = ax_p.scatter([], [], s=4, color="white", alpha=0.8, lw=0)
        self.traj = LineCollection([], color=plots.PATH_COLOR, lw=0.6, alpha=0.6)
        ax_x.add_collection(self.traj)
        self.ends = ax_x.scatter([], [], s=5, color=plots.PATH_COLOR, alpha=0.7, lw=0)
        means = data.eight_gaussians_means()
        (stars,) = ax_x.plot(means[:, 0], means[:, 1], "*", color=plots.TARGET_COLOR, mec="k", ms=9)
        for ax in (ax_p, ax_x):
            plots.square(ax, VIEW)
        for name in PATH_NAMES:  # faint: every path, for comparison
            ts, alpha, sigma = _schedule(make_path(name))
            ax_s.plot(ts, alpha, color="0.8", lw=1)
            ax_s.plot(ts, sigma, color="0.8", lw=1, ls="--")
        (self.alpha,) = ax_s.plot([], [], color=plots.TARGET_COLOR, lw=2, label="α_t")
        (self.sigma,) = ax_s.plot([], [], color=plots.SOURCE_COLOR, lw=2, ls="--", label="σ_t")
        self.now = ax_s.axvline(0.5, color="k", lw=0.8)
        ax_s.set(xlim=(0, 1), ylim=(0, 1.25), xlabel="t")  # VE: sigma_0 = s_max, off the top
        legend = ax_s.legend(loc="upper left", fontsize=8)
        self.axes = (ax_p, ax_x, ax_s)
        for ax, title in zip(self.axes, _titles("VP", 0.0, 8, 0.5), strict=True):
            ax.set_title(title)  # placeholder: sizes the layout for the real titles
        spines = [spine for ax in self.axes for spine in ax.spines.values()]
        # static artists drawn over dynamic ones (stars, legend, frames) are redrawn too
        titles = [ax.title for ax in self.axes]
        self.dynamic(
            self.log_p,
            self.particles,
            self.traj,
            self.ends,
            stars,
            self.alpha,
            self.sigma,
            self.now,
            legend,
            *titles,
            *spines,
        )
        return fig

    def update(self, path: str = "OT", sigma_min: float = 0.0, steps: int = 8, t: float = 0.5):
        _check(path, sigma_min, steps, t)
        sigma_min = effective_sigma_min(path, sigma_min)
        with one_thread():
            traj = trajectories(path, sigma_min, steps)
            self.log_p.set_data(_log_p(path, sigma_min, t).clamp(min=LOG_P_FLOOR).numpy())
            titles = _titles(path, sigma_min, steps, t)
        self.particles.set_offsets(position_at(traj, t).numpy())
        self.traj.set_segments(list(traj[:, :N_TRAJ].transpose(0, 1).numpy()))
        self.ends.set_offsets(traj[-1].numpy())
        ts, alpha, sigma = _schedule(make_path(path, sigma_min))
        self.alpha.set_data(ts.numpy(), alpha.numpy())
        self.sigma.set_data(ts.numpy(), sigma.numpy())
        self.now.set_xdata([t, t])
        for ax, title in zip(self.axes, titles, strict=True):
            ax.title.set_text(title)


def draw_marginal_paths(times: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> Figure:
    """Static small multiples: rows = paths, columns = t; log p_t of the marginal path, one
    colour scale for every panel (the colour bar on the right)."""
    fig, axes = plots.new_axes(len(PATH_NAMES) * len(times), size=2.0, ncols=len(times))
    ext = (-VIEW, VIEW, -VIEW, VIEW)
    for i, name in enumerate(PATH_NAMES):
        for j, t in enumerate(times):
            ax = axes[i * len(times) + j]
            log_p = _log_p(name, 0.0, t).clamp(min=LOG_P_FLOOR)
            image = ax.imshow(
                log_p.numpy(),
                extent=ext,
                origin="lower",
                cmap=plots.CMAP,
                vmin=LOG_P_FLOOR,
                vmax=LOG_P_CEIL,
            )
            ax.set_title(f"{name}, t = {t:.2f}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(image, ax=axes, shrink=0.6, label="$\\log p_t(x)$ (clipped below)")
    return fig


def straightness_table(steps: tuple[int, ...] = (2, 4, 8, 16)) -> dict[str, dict]:
    """Per path (sigma_min = 0): K, S, the chord E|x_1 - x_0|^2 (= K - S), the relative
    straightness S / chord (scale-free: VE's source is wider, which inflates K, S and the
    chord alike) and the Euler endpoint error for each number of steps."""
    table = {}
    for name in PATH_NAMES:
        k, s = kinetic_energy(name, 0.0)
        traj = reference(name, 0.0)
        chord = float(((traj[-1] - traj[0]) ** 2).sum(1).mean())
        table[name] = {
            "K": k,
            "S": s,
            "chord": chord,
            "S_rel": s / chord,
            "error": [endpoint_error(name, 0.0, n) for n in steps],
        }
    return table


# The VP conditional path's speed: sigma_t ~ sqrt(beta_min (1 - t)) near t = 1.
def vp_log_growth(beta_min: float, decades: float) -> float:
    """Increase of int |sigma_t'|^2 dt (per unit E|x0|^2) when the grid near t = 1 is
    refined by `decades` decades: (beta_min / 4) ln(10^decades)."""
    return beta_min / 4 * decades * math.log(10)
