"""Notebook 12: the SDEs dX = [u_t + (g_t^2/2) grad log p_t] dt + g_t dW that share the
marginals p_t of an OT path, sampled by Euler-Maruyama, with exact fields.

Target: notebook 03's mixture (eight Gaussians, std 0.3; `mixture()` below).
The field u_t and p_t are closed forms (fmlib.marginal.MixtureMarginal); the score comes from
the velocity by fmlib.diffusion.velocity_to_score. Noise g_t = gamma sigma_t. The samplers:
the correct SDE, and the two published mistakes: noise drawn twice in a step (in law: noise
sqrt(2) g_t with the drift of g_t) and noise without the score drift (drift u_t alone).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache

import ipywidgets
import numpy as np
import torch
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import continuity, diffusion, plots, widgets
from fmlib.checks import check_int
from fmlib.data import eight_gaussians_means
from fmlib.marginal import GaussianMixture, MixtureMarginal
from fmlib.paths import OTPath
from fmlib.repro import one_thread
from fmlib.solvers import position_at

GAMMAS = (0.0, 0.5, 1.0, 2.0, 3.0)
SAMPLERS = ("SDE", "mistake: noise twice", "mistake: no score drift")
STEPS_OPTIONS = (4, 8, 16, 32, 64, 128)
STEPS_MAX = max(STEPS_OPTIONS)
SIGMA_MIN_OPTIONS = (0.0, 0.05, 0.1, 0.25)
T_OPTIONS = tuple(round(0.05 * i, 2) for i in range(21))
STD = 0.3  # std of each of notebook 03's eight Gaussians
VIEW = 4.0
BINS = 20
HEAT = 80
N_PARTICLES = 1000
NOISE_SEED = 13  # the batched run's Euler-Maruyama draws (every setting's noise is its rows)
N_TRACKS = 10
P_MAX = 0.25  # fixed colour scale (square root) of p_t over every setting


def mixture() -> GaussianMixture:
    """Notebook 03's q = (1/8) sum_k N(m_k, 0.3^2 I), m_k on the circle of radius 2 (float64)."""
    return GaussianMixture(eight_gaussians_means().double(), STD)


def _check(gamma: float, sampler: str, steps: int, sigma_min: float, t: float) -> None:
    if gamma not in GAMMAS:
        raise ValueError(f"gamma must be one of {GAMMAS}, got {gamma!r}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    check_int("steps", steps)
    if not 0.0 <= sigma_min < 1.0:
        raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min}")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be in [0, 1], got {t}")


@lru_cache(maxsize=8)
def marginal(sigma_min: float) -> MixtureMarginal:
    """The closed-form marginal path of the mixture on OTPath(sigma_min)."""
    return MixtureMarginal(OTPath(sigma_min), mixture())


def levels(sampler: str, gamma: float) -> tuple[float, float]:
    """(c, n): `sampler` steps with drift u_t + (c sigma_t)^2 / 2 s_t and noise n sigma_t.

    SDE: (gamma, gamma); noise drawn twice: (gamma, sqrt(2) gamma) (z1 + z2 ~ sqrt(2) z, in
    law); no score drift: (0, gamma)."""
    if sampler == "SDE":
        return gamma, gamma
    if sampler == "mistake: noise twice":
        return gamma, math.sqrt(2) * gamma
    if sampler == "mistake: no score drift":
        return 0.0, gamma
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")


def sampler_parts(sampler: str, gamma: float, sigma_min: float):
    """(drift, noise) whose Euler-Maruyama steps are `sampler`'s steps, in law."""
    path = OTPath(sigma_min)
    u = marginal(sigma_min).velocity
    c, n = levels(sampler, gamma)
    drift = diffusion.sde_drift(u, diffusion.score_field(path, u), diffusion.scaled_sigma(path, c))
    return drift, diffusion.scaled_sigma(path, n)


SETTINGS = tuple((s, g) for s in SAMPLERS for g in GAMMAS)  # every (sampler, gamma) drawn


@lru_cache(maxsize=1)
def _x0() -> Tensor:
    return torch.randn(
        N_PARTICLES, 2, generator=torch.Generator().manual_seed(12), dtype=torch.float64
    )


def _all_trajectories(steps: int, sigma_min: float) -> Tensor:
    """One Euler-Maruyama run for every (sampler, gamma) of SETTINGS at once, each from the
    same noise x0 (one level pair per particle; its own draws):
    [steps + 1, len(SETTINGS), N_PARTICLES, 2]. The reference that `trajectories` reproduces
    setting by setting (tests/test_figures_diffusion.py); the view does not call it."""
    path = OTPath(sigma_min)
    pairs = torch.tensor([levels(s, g) for s, g in SETTINGS], dtype=torch.float64)
    c, n = (pairs[:, i].repeat_interleave(N_PARTICLES) for i in (0, 1))
    u = marginal(sigma_min).velocity
    drift = diffusion.sde_drift(u, diffusion.score_field(path, u), lambda t: c * path.sigma_t(t))
    noise = lambda t: n * path.sigma_t(t)  # noqa: E731
    gen = torch.Generator().manual_seed(NOISE_SEED)
    with one_thread():
        states = diffusion.euler_maruyama(
            drift, noise, _x0().repeat(len(SETTINGS), 1), steps, gen, trajectory=True
        )
    return states.reshape(steps + 1, len(SETTINGS), N_PARTICLES, 2)


ODE = ("SDE", 0.0)  # gamma = 0: every sampler is this one run (the ODE, Euler)
_RUNS: OrderedDict[tuple, Tensor] = OrderedDict()  # (sampler, gamma, steps, sigma_min) -> run
_RUNS_KEPT = 64


def _draws(steps: int) -> list[Tensor]:
    """The batched run's first `steps` draws, randn([len(SETTINGS) N_PARTICLES, 2]) each, from
    its seed, in its order."""
    gen = torch.Generator().manual_seed(NOISE_SEED)
    shape = (len(SETTINGS) * N_PARTICLES, 2)
    return [torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(steps)]


@lru_cache(maxsize=1)
def _noise() -> list[Tensor]:
    """`_draws` for the most steps the panel offers, drawn once, when the view is built (0.07 s,
    31 MB), so that no redraw waits for noise; a setting's noise at step k is its rows of
    draw k."""
    return _draws(STEPS_MAX)


def _setting_noise(i: int, steps: int) -> list[Tensor]:
    """Setting i's rows of the batched run's first `steps` draws (beyond the panel's most
    steps, as tests ask, drawn afresh)."""
    draws = _noise()[:steps] if steps <= STEPS_MAX else _draws(steps)
    return [z[i * N_PARTICLES : (i + 1) * N_PARTICLES] for z in draws]


def _run(settings: tuple[tuple[str, float], ...], steps: int, sigma_min: float) -> Tensor:
    """`_all_trajectories`' rows of a few settings, bit for bit, without the others:
    [steps + 1, len(settings), N_PARTICLES, 2]. The same x0, levels and Euler-Maruyama step
    (fmlib.diffusion.euler_maruyama with sde_drift), u_t evaluated once per step, the score
    term only where a level c is > 0, and per setting with noise its rows of the batched
    run's seeded draws (`_setting_noise`; none at noise 0, where the term is 0)."""
    path, u = OTPath(sigma_min), marginal(sigma_min).velocity
    pairs = torch.tensor([levels(s, g) for s, g in settings], dtype=torch.float64)
    c, n = (pairs[:, j].repeat_interleave(N_PARTICLES) for j in (0, 1))
    noises = [
        _setting_noise(SETTINGS.index(st), steps) if levels(*st)[1] > 0 else None for st in settings
    ]
    scored, noisy = bool((c > 0).any()), any(z is not None for z in noises)
    zeros = torch.zeros(N_PARTICLES, 2, dtype=torch.float64)
    h, rate = 1.0 / steps, 1.0 - path.sigma_min  # OT: alpha_t = t, sigma_t = 1 - rate t
    x = _x0().repeat(len(settings), 1)
    states = [x]
    with one_thread():
        for k in range(steps):
            t = k * h  # a float: fmlib.paths.as_time checks it without tensor ops
            b = u(x, t)
            # path.sigma_t(t) and velocity_to_score(path, x, t, b) with the OT schedule as
            # floats: the same IEEE operations in the same order (alpha' = 1, sigma' = -rate,
            # D_t = alpha' sigma^2 - alpha sigma sigma'), without their per-call tensors
            sigma = 1 - rate * t
            if scored:
                den = torch.tensor([[sigma**2 - t * (sigma * -rate)]], dtype=torch.float64)
                score = -(x - t * b) / den  # a [1, 1] tensor: divided element by element
                b = b + (c * sigma).reshape(-1, 1) ** 2 / 2 * score
            if noisy:
                z = torch.cat([zeros if rows is None else rows[k] for rows in noises])
                x = x + h * b + (n * sigma).reshape(-1, 1) * math.sqrt(h) * z
            else:
                x = x + h * b
            states.append(x)
    return torch.stack(states).reshape(steps + 1, len(settings), N_PARTICLES, 2)


def trajectories(gamma: float, sampler: str, steps: int, sigma_min: float) -> Tensor:
    """Euler-Maruyama iterates of one setting from the panel's seeded noise:
    [steps + 1, N_PARTICLES, 2], its slice of the batched run `_all_trajectories` (run with
    the ODE, which the panel draws beside it, unless kept; the last _RUNS_KEPT are kept)."""
    _check(gamma, sampler, steps, sigma_min, 0.0)
    setting = ODE if gamma == 0 else (sampler, gamma)
    missing = tuple(
        st for st in dict.fromkeys((setting, ODE)) if (*st, steps, sigma_min) not in _RUNS
    )
    if missing:
        for st, traj in zip(missing, _run(missing, steps, sigma_min).unbind(1), strict=True):
            _RUNS[(*st, steps, sigma_min)] = traj
        while len(_RUNS) > _RUNS_KEPT:
            _RUNS.popitem(last=False)
    key = (*setting, steps, sigma_min)
    _RUNS.move_to_end(key)
    return _RUNS[key]


@lru_cache(maxsize=256)
def _bin_probs(sigma_min: float, t: float) -> Tensor:
    """P_t(bin) of continuity.histogram_error's bins (lim VIEW, BINS), computed as it does."""
    fine = 4 * BINS
    hb = 2 * VIEW / fine
    centers = torch.linspace(-VIEW + hb / 2, VIEW - hb / 2, fine, dtype=continuity.DTYPE)
    pts = continuity.grid_points(centers)
    times = torch.full((len(pts),), float(t), dtype=continuity.DTYPE)
    with one_thread():
        p = marginal(sigma_min).log_prob(pts, times).exp().reshape(fine, fine) * hb**2
    return p.reshape(BINS, 4, BINS, 4).sum(dim=(1, 3)).T


def _tv(x: Tensor, sigma_min: float, t: float) -> float:
    """continuity.histogram_error(x, p_t, t, lim=VIEW, bins=BINS), the same arithmetic, with
    P_t(bin) computed once per (sigma_min, t)."""
    x = x.detach().to(continuity.DTYPE)
    edges = torch.linspace(-VIEW, VIEW, BINS + 1, dtype=continuity.DTYPE)
    hist = torch.histogramdd(x, bins=[edges, edges]).hist / len(x)
    return float(0.5 * (hist - _bin_probs(sigma_min, t)).abs().sum())


@lru_cache(maxsize=128)
def tv_curve(gamma: float, sampler: str, steps: int, sigma_min: float) -> list[float]:
    """TV(histogram of the particles at t, p_t) at every t of T_OPTIONS (fmlib.continuity)."""
    traj = trajectories(gamma, sampler, steps, sigma_min)
    with one_thread():
        return [_tv(position_at(traj, t), sigma_min, t) for t in T_OPTIONS]


@lru_cache(maxsize=8)
def tv_floor(sigma_min: float, sets: int = 10) -> tuple[list[float], list[float]]:
    """TV of N_PARTICLES exact samples of p_t (x_t = alpha_t x1 + sigma_t x0) at each t of
    T_OPTIONS: (mean, s.d.) over `sets` seeded sets, the Monte-Carlo floor of the TV curve."""
    path, q = OTPath(sigma_min), mixture()
    values = torch.zeros(sets, len(T_OPTIONS), dtype=torch.float64)
    with one_thread():
        for i in range(sets):
            g = torch.Generator().manual_seed(1000 + i)
            x0 = torch.randn(N_PARTICLES, 2, generator=g, dtype=torch.float64)
            x1 = q.sample(N_PARTICLES, g)
            for j, t in enumerate(T_OPTIONS):
                values[i, j] = _tv(path.sample(x0, x1, t), sigma_min, t)
    return values.mean(0).tolist(), values.std(0).tolist()


@lru_cache(maxsize=256)
def _density(sigma_min: float, t: float) -> np.ndarray:
    with one_thread():
        return continuity.density_on_grid(marginal(sigma_min).log_prob, t, VIEW, HEAT).numpy()


class SDESampler(plots.LiveFigure):
    """p_t with the particles at t | x^(1) of a few particles against time, the SDE's and
    the ODE's (g = 0) from the same noise | TV(particles, p_t) against t.

    `SDESampler().draw(gamma=1.0, sampler="SDE", steps=32, sigma_min=0.0, t=0.5)` -> Figure."""

    NOTE = (
        "Exact field and score (closed forms), noise g_t = γ σ_t; "
        "Euler–Maruyama from the same 1000 noise points x₀ for every setting."
    )

    def controls(self) -> dict[str, ipywidgets.ValueWidget]:
        return {
            "gamma": ipywidgets.SelectionSlider(
                options=[(f"{g:.1f}", g) for g in GAMMAS],
                value=1.0,
                description="γ (g_t = γ σ_t)",
                continuous_update=True,
                style={"description_width": "initial"},
                layout=ipywidgets.Layout(width="300px"),
            ),
            "sampler": widgets.choice("sampler", SAMPLERS, "SDE"),
            "steps": widgets.steps_slider(32, options=STEPS_OPTIONS),
            "sigma_min": widgets.sigma_min_slider(0.0, options=SIGMA_MIN_OPTIONS),
            "t": widgets.t_slider(0.5, options=T_OPTIONS),
        }

    def inactive(self, gamma: float = 1.0, **_values) -> dict[str, str]:
        return {"sampler": "no effect when γ = 0 (every sampler is the ODE)"} if gamma == 0 else {}

    def build(self) -> Figure:
        # What a move of gamma, steps or sigma_min would otherwise wait for, made before the
        # panel shows (about 0.3 s, once per kernel): every step's noise, and the TV floor
        # of each sigma_min (benchmarks/RESULTS.md, "Notebook 12's first visits").
        _noise()
        for sigma_min in SIGMA_MIN_OPTIONS:
            tv_floor(sigma_min)
        fig, (ax_p, ax_x, ax_tv) = plots.new_axes(3, size=4.2)
        ext = (-VIEW, VIEW, -VIEW, VIEW)
        self.image = ax_p.imshow(
            np.zeros((HEAT, HEAT)),
            origin="lower",
            extent=ext,
            cmap=plots.CMAP,
            norm=PowerNorm(0.5, vmin=0, vmax=P_MAX),
        )
        fig.colorbar(self.image, ax=ax_p, shrink=0.8, label="density $p_t$")
        self.points = ax_p.scatter([], [], s=2, color="white", lw=0, alpha=0.7)
        plots.square(ax_p, VIEW)
        ax_p.grid(False)
        times = np.linspace(0, 1, 2)
        self.sde_lines = [
            ax_x.plot(times, times, color=plots.PATH_COLOR, lw=1)[0] for _ in range(N_TRACKS)
        ]
        self.ode_lines = [
            ax_x.plot(times, times, color="0.6", lw=1, ls="--")[0] for _ in range(N_TRACKS)
        ]
        self.now_x = ax_x.axvline(0.5, color="k", lw=0.8)
        ax_x.set(xlabel="t", ylabel="$x^{(1)}$", xlim=(0, 1), ylim=(-VIEW, VIEW))
        leg_x = ax_x.legend(
            [self.sde_lines[0], self.ode_lines[0]],
            ["chosen sampler", "ODE (g = 0)"],
            fontsize=10,
            loc="lower left",
        )
        (self.tv,) = ax_tv.plot(
            T_OPTIONS, T_OPTIONS, "o-", ms=3, color=plots.TARGET_COLOR, label="chosen sampler"
        )
        (self.tv_ode,) = ax_tv.plot(
            T_OPTIONS, T_OPTIONS, "s--", ms=3, color="0.5", label="ODE (g = 0)"
        )
        self.now_tv = ax_tv.axvline(0.5, color="k", lw=0.8)
        self.floor = ax_tv.fill_between(
            T_OPTIONS, T_OPTIONS, T_OPTIONS, color="0.8", label="exact samples (mean ± 2 s.d.)"
        )
        ax_tv.set(xlabel="t", ylabel="TV(particles, $p_t$)", xlim=(0, 1), ylim=(0, 0.6))
        leg_tv = ax_tv.legend(fontsize=10, loc="upper left")
        self.axes = (ax_p, ax_x, ax_tv)
        for ax, title in zip(self.axes, self._titles(1.0, "SDE", 32, 0.0, 0.5), strict=True):
            ax.set_title(title, fontsize=11)
        self.dynamic(
            self.image,
            self.points,
            *self.sde_lines,
            *self.ode_lines,
            self.now_x,
            self.tv,
            self.tv_ode,
            self.now_tv,
            self.floor,
            leg_x,
            leg_tv,
            *[ax.title for ax in self.axes],
            # the image and the TV band touch the frame: redraw the frame over them, as a
            # full render does (spines' zorder 2.5)
            *ax_p.spines.values(),
            *ax_tv.spines.values(),
        )
        return fig

    def _titles(self, gamma: float, sampler: str, steps: int, sigma_min: float, t: float):
        tv = tv_curve(gamma, sampler, steps, sigma_min)[T_OPTIONS.index(t)]
        return (
            f"$p_t$ and particles, t = {t:.2f}\nσ_min = {sigma_min:.2f}, TV = {tv:.3f}",
            f"sampler = {sampler}, γ = {gamma:.1f}\nEuler–Maruyama steps = {steps}",
            f"TV to $p_t$ against t\n(ODE: {steps} Euler steps)",
        )

    def update(
        self,
        gamma: float = 1.0,
        sampler: str = "SDE",
        steps: int = 32,
        sigma_min: float = 0.0,
        t: float = 0.5,
    ) -> None:
        _check(gamma, sampler, steps, sigma_min, t)
        if t not in T_OPTIONS:
            raise ValueError(f"t must be one of {T_OPTIONS}, got {t}")
        traj = trajectories(gamma, sampler, steps, sigma_min)
        ode = trajectories(0.0, "SDE", steps, sigma_min)
        times = np.linspace(0, 1, steps + 1)
        self.image.set_data(_density(sigma_min, t))
        self.points.set_offsets(position_at(traj, t).numpy())
        for i, (a, b) in enumerate(zip(self.sde_lines, self.ode_lines, strict=True)):
            a.set_data(times, traj[:, i, 0].numpy())
            b.set_data(times, ode[:, i, 0].numpy())
        self.now_x.set_xdata([t, t])
        self.now_tv.set_xdata([t, t])
        self.tv.set_ydata(tv_curve(gamma, sampler, steps, sigma_min))
        self.tv_ode.set_ydata(tv_curve(0.0, "SDE", steps, sigma_min))
        mean, sd = (np.array(v) for v in tv_floor(sigma_min))
        lo, hi = mean - 2 * sd, mean + 2 * sd
        self.floor.set_verts([np.concatenate([np.c_[T_OPTIONS, lo], np.c_[T_OPTIONS, hi][::-1]])])
        for ax, title in zip(
            self.axes, self._titles(gamma, sampler, steps, sigma_min, t), strict=True
        ):
            ax.title.set_text(title)


def draw_quality(
    nfes: tuple[int, ...],
    panels: dict[str, dict[str, list[tuple[float, float]]]],
    bars: dict[str, float] | None = None,
):
    """Energy distance to the data against NFE, one panel per title in `panels`: each maps a
    sampler's name to its (mean, SE) at each NFE, drawn with +-k SE bars on a log NFE axis,
    k = bars[title] (default 2: say in the title which k a panel uses)."""
    bars = bars or {}
    fig, axes = plots.new_axes(len(panels), size=5.6)
    for ax, (title, rows) in zip(axes, panels.items(), strict=True):
        k = bars.get(title, 2.0)
        for i, (name, cells) in enumerate(rows.items()):
            means, ses = zip(*cells, strict=True)
            shift = 1 + 0.03 * (i - len(rows) / 2)  # side by side, not on top of each other
            ax.errorbar(
                [n * shift for n in nfes],
                means,
                yerr=[k * s for s in ses],
                marker="o",
                ms=4,
                capsize=2,
                label=name,
            )
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(nfes, [str(n) for n in nfes])
        ax.tick_params(labelsize=10)
        ax.set(xlabel="NFE (field evaluations)", ylabel="energy distance to the data")
        ax.set_title(title, fontsize=11)
        ax.legend(fontsize=10)
    return fig
