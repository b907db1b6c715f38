"""Notebook 11, model adaptation, drawn: one module for the chapter, one part per section.

Section 1: few steps of a flow map against a teacher's Euler steps.

Two static figures: trajectories (the teacher's exact ODE paths, its Euler steps and the
average-velocity model's jumps from the same noise) and sample clouds at 1, 2 and 4 network
evaluations. The notebook computes every point; these functions only draw.

Section 2: reward fine-tuning, drawn.

`reward_densities_figure`: the base density, the exact tilted density
p* = p_base e^{r / lambda} / Z, and samples of the fine-tuned and the online (two-round) models
over the tilted density's contours.
`reward_tv_figure`: the total variation to p* against the number of fine-tuning steps, with the
floor of exact samples at the same sample size.

Sections 3-4: inverse problems: sampling p(x | y), y = A x + noise, with a flow prior.

Prior: notebook 03's eight Gaussians (std 0.3, float64); its flow is the exact marginal
velocity on the OT path (fmlib.marginal), a perfectly trained prior. We observe the first
coordinate: A = [1, 0], y = 1.7. The exact posterior is a Gaussian mixture
(fmlib.inverse_problems.mixture_posterior); along the OT path its marginal at time t is the
law of t x1 + (1 - t) x0 with x1 ~ p(x | y): N(t mu_k, t^2 C_k + (1 - t)^2 I) per component.
"""

from __future__ import annotations

from functools import lru_cache

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import inverse_problems as ip
from fmlib import plots, widgets
from fmlib import reward_tuning as rt
from fmlib.data import eight_gaussians_means
from fmlib.marginal import GaussianMixture, MixtureMarginal, marginal_velocity
from fmlib.metrics import energy_distance
from fmlib.paths import OTPath
from fmlib.repro import one_thread
from fmlib.solvers import integrate, position_at

# --- section 1: flow maps ----------------------------------------------------------------------

FLOWMAP_LIM = 3.2  # the trajectories' frame
FLOWMAP_SAMPLES_LIM = 4.2  # the samples' frame: one midpoint step lands up to |x| ~ 4
FLOWMAP_MODE_RADIUS = 0.6  # 3 data standard deviations: the off-mode share's discs
FLOWMAP_COLORS = {"exact": "0.35", "euler": "tab:orange", "flow map": "tab:blue", "mode": "tab:red"}


def _flowmap_modes(ax, means: Tensor, discs: bool = False) -> None:
    m = means.detach().numpy()
    if discs:
        for x, y in m:
            ax.add_patch(plt.Circle((x, y), FLOWMAP_MODE_RADIUS, color="0.85", zorder=0))
    ax.plot(m[:, 0], m[:, 1], "*", mfc="none", mec=FLOWMAP_COLORS["mode"], ms=11, mew=1.5, zorder=5)


def draw_flowmap_trajectories(
    exact: Tensor, euler: dict[int, Tensor], jumps: dict[int, Tensor], means: Tensor
) -> Figure:
    """One panel per step count n: exact teacher paths exact [T, M, 2] (dark grey, dashed, on
    top), the teacher's n Euler steps euler[n] [n + 1, M, 2] (orange) and the flow map's n
    jumps jumps[n] [n + 1, M, 2] (blue), all from the same M noise points (black dots);
    means [K, 2] the data's modes (red hollow stars)."""
    counts = sorted(euler)
    fig, axes = plots.new_axes(len(counts), size=4.4)
    ex = exact.detach().numpy()
    for ax, n in zip(axes, counts, strict=True):
        for key, states in (("euler", euler[n]), ("flow map", jumps[n])):
            s = states.detach().numpy()
            ax.plot(s[:, :, 0], s[:, :, 1], "-", color=FLOWMAP_COLORS[key], lw=1.6, alpha=0.85)
            ax.plot(s[-1, :, 0], s[-1, :, 1], "o", color=FLOWMAP_COLORS[key], ms=5)
        ax.plot(ex[:, :, 0], ex[:, :, 1], "--", color=FLOWMAP_COLORS["exact"], lw=0.9)
        ax.plot(ex[0, :, 0], ex[0, :, 1], "k.", ms=6)
        _flowmap_modes(ax, means)
        plots.square(ax, FLOWMAP_LIM)
        ax.set_title(f"{n} step{'s' if n > 1 else ''} ({n} evaluation{'s' if n > 1 else ''})")
    handles = [
        plt.Line2D([], [], color=FLOWMAP_COLORS["exact"], ls="--", label="exact teacher ODE"),
        plt.Line2D([], [], color=FLOWMAP_COLORS["euler"], marker="o", label="teacher, Euler"),
        plt.Line2D([], [], color=FLOWMAP_COLORS["flow map"], marker="o", label="flow map u_θ"),
        plt.Line2D([], [], color="k", marker=".", ls="", ms=8, label="noise x0"),
        plt.Line2D(
            [], [], color=FLOWMAP_COLORS["mode"], marker="*", mfc="none", ls="", label="data modes"
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=10, frameon=False)
    fig.suptitle("From the same noise: Euler steps of the exact field vs the flow map's jumps")
    return fig


def draw_flowmap_samples(
    samples: dict[str, dict[int, Tensor]], distances: dict[str, dict[int, float]], means: Tensor
) -> Figure:
    """Rows = samplers (samples[name][nfe] [N, 2]), columns = network evaluations; each title
    gives the energy distance to the data (distances[name][nfe]) and the share of samples
    outside the frame, if any; grey discs of radius 0.6 around the modes means [K, 2] mark the
    off-mode share's region. A missing entry (midpoint at 1 evaluation) is an empty panel."""
    names = list(samples)
    nfes = sorted({n for d in samples.values() for n in d})
    lim = FLOWMAP_SAMPLES_LIM
    fig, axes = plots.new_axes(len(names) * len(nfes), size=3.3, ncols=len(nfes))
    for i, name in enumerate(names):
        for j, n in enumerate(nfes):
            ax = axes[i * len(nfes) + j]
            if n not in samples[name]:
                plots.square(ax, lim)
                ax.text(0, 0, f"{name}:\nneeds 2 evaluations", ha="center", va="center")
                ax.set_title(f"{name}, {n} eval.", fontsize=10)
                continue
            x = samples[name][n]
            _flowmap_modes(ax, means, discs=True)
            color = FLOWMAP_COLORS["flow map"] if i == 0 else FLOWMAP_COLORS["euler"]
            plots.scatter2d(ax, x, lim=lim, color=color, s=3.0, alpha=0.6)
            outside = (x.abs().amax(dim=1) > lim).double().mean().item()
            note = f", {100 * outside:.0f}% outside" if outside > 0 else ""
            title = f"{name}, {n} eval.\nenergy dist. {distances[name][n]:.4f}{note}"
            ax.set_title(title, fontsize=10)
    return fig


# --- section 2: reward fine-tuning -------------------------------------------------------------

REWARD_VIEW = 4.0  # the figures show [-4, 4]^2, the TV grid
REWARD_HEAT = 120


def _log_density_image(q: GaussianMixture) -> Tensor:
    _, _, points = plots.grid2d(REWARD_VIEW, REWARD_HEAT)
    return q.log_prob(points.double()).reshape(REWARD_HEAT, REWARD_HEAT)


def reward_densities_figure(
    base: GaussianMixture,
    tilted: GaussianMixture,
    samples: dict[str, Tensor],
    lam: float,
    centre=rt.REWARD_CENTRE,
) -> Figure:
    """Base density | tilted density (one colour scale) | each sample set of `samples`
    (name -> [N, 2], the first 2000 points) over the tilted density's contours (2%, 20% and
    60% of the densities' maximum)."""
    fig, axes = plots.new_axes(2 + len(samples), size=4.0, ncols=2)
    ext = (-REWARD_VIEW, REWARD_VIEW, -REWARD_VIEW, REWARD_VIEW)
    p_base, p_tilt = _log_density_image(base).exp(), _log_density_image(tilted).exp()
    top = float(max(p_base.max(), p_tilt.max()))
    for ax, image, title in ((axes[0], p_base, "base density $p_{base}$"), (axes[1], p_tilt, None)):
        plots.heatmap(
            ax,
            image,
            ext,
            title=title or f"tilted density $p^*$, λ = {lam:g}",
            label="density",
            vmin=0,
            vmax=top,
        )
        ax.set(xlabel="$x^{(1)}$", ylabel="$x^{(2)}$")
    xx, yy, _ = plots.grid2d(REWARD_VIEW, REWARD_HEAT)
    levels = [top * f for f in (0.02, 0.2, 0.6)]
    for ax, (name, x) in zip(axes[2:], samples.items(), strict=True):
        plots.scatter2d(ax, x[:2000], title=name, lim=REWARD_VIEW, s=4, alpha=0.5)
        ax.contour(xx, yy, p_tilt, levels=levels, colors="k", linewidths=0.6, alpha=0.7)
    for ax in axes:
        ax.plot(*centre, "*", color="white", mec="k", ms=12, label="reward centre c")
    axes[-1].legend(loc="lower left", fontsize=9)
    return fig


def reward_tv_figure(
    steps: list[int], tv: list[float], tv_se: list[float], floor: float, floor_se: float, n: int
) -> Figure:
    """TV to p* (+- 2 SE) against fine-tuning steps (0 = the base model), and the floor band:
    exact samples of p* at the same chunk size n."""
    fig, (ax,) = plots.new_axes(1, size=5.5)
    x = [max(s, 5) for s in steps]  # step 0 drawn at 5 on the log axis
    ax.errorbar(
        x, tv, yerr=[2 * s for s in tv_se], marker="o", capsize=3, label="fine-tuned model (± 2 SE)"
    )
    ax.axhspan(floor - 2 * floor_se, floor + 2 * floor_se, color="0.8", label="floor ± 2 SE")
    ax.axhline(floor, color="0.4", lw=1)
    ax.set_xscale("log")
    ax.set_xticks(x, ["0 (base)" if s == 0 else str(s) for s in steps])
    ax.minorticks_off()  # the axis is not continuous below 25
    ax.set(
        xlabel="reward-weighted CFM steps",
        ylabel=f"TV to $p^*$ (n = {n} per chunk)",
        ylim=(0, max(tv) * 1.1),
        title="distance to the tilted density (separate runs)",
    )
    ax.legend(fontsize=10)
    return fig


# --- section 3-4: inverse problems and the panel -----------------------------------------------

INVERSE_STD = 0.3
INVERSE_A = ((1.0, 0.0),)  # observe x^(1)
INVERSE_Y = 1.7
SIGMA_Y_OPTIONS = (0.05, 0.2, 0.5)  # section 3's values; the site draws 0.05 and 0.5
POSTERIOR_METHODS = ("DPS", "ΠGDM", "importance resampling")
POSTERIOR_STEPS = (8, 64)
POSTERIOR_T = tuple(round(0.05 * i, 2) for i in range(21))
POSTERIOR_VIEW = 4.2  # DPS at small sigma_y pushes particles out to |x^(2)| = 4
POSTERIOR_HEAT = 80
POSTERIOR_PARTICLES = 1000
POSTERIOR_PROPOSALS = 8000
POSTERIOR_FLOOR_SETS = (
    10  # exact sets whose distances to the reference give the floor's mean and s.d.
)


def inverse_prior() -> GaussianMixture:
    """q = (1/8) sum_k N(m_k, 0.3^2 I), m_k on the circle of radius 2 (float64)."""
    return GaussianMixture(eight_gaussians_means().double(), INVERSE_STD)


def inverse_observation() -> tuple[Tensor, Tensor]:
    """(A [1, 2], y [1]) of the chapter: y observes x^(1)."""
    return (
        torch.tensor(INVERSE_A, dtype=torch.float64),
        torch.tensor([INVERSE_Y], dtype=torch.float64),
    )


def posterior_at_time(post: ip.MixturePosterior, t: float) -> ip.MixturePosterior:
    """The law of t x1 + (1 - t) x0, x1 ~ post, x0 ~ N(0, I): component k is
    N(t mu_k, t^2 C_k + (1 - t)^2 I)."""
    eye = torch.eye(post.means.shape[1], dtype=post.means.dtype)
    return ip.MixturePosterior(post.weights, t * post.means, t**2 * post.covs + (1 - t) ** 2 * eye)


@lru_cache(maxsize=8)
def _inverse_posterior(sigma_y: float) -> ip.MixturePosterior:
    A, y = inverse_observation()
    return ip.mixture_posterior(inverse_prior(), A, y, sigma_y)


def _inverse_prior_field(x: Tensor, t: Tensor) -> Tensor:
    return marginal_velocity(OTPath(0.0), inverse_prior(), x, t)


@lru_cache(maxsize=1)
def _inverse_x0(n: int) -> Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(11), dtype=torch.float64)


@lru_cache(maxsize=8)
def _prior_proposals(steps: int) -> Tensor:
    """The prior flow's RK4 trajectories of POSTERIOR_PROPOSALS source points: [steps + 1, M, 2]."""
    u = MixtureMarginal(OTPath(0.0), inverse_prior()).velocity
    with one_thread():
        return integrate(
            u, _inverse_x0(POSTERIOR_PROPOSALS), steps=steps, method="rk4", trajectory=True
        ).trajectory


@lru_cache(maxsize=64)
def posterior_trajectories(sigma_y: float, method: str, steps: int) -> Tensor:
    """The particles' trajectories [steps + 1, POSTERIOR_PARTICLES, 2]: guided Euler from the first
    POSTERIOR_PARTICLES source points (DPS, PiGDM), or the prior flow's RK4 trajectories of the
    POSTERIOR_PARTICLES proposals drawn by importance resampling (seeded)."""
    _check_posterior_values(sigma_y, method, steps, 1.0)
    A, y = inverse_observation()
    with one_thread():
        if method == "importance resampling":
            traj = _prior_proposals(steps)
            log_w = ip.log_likelihood(traj[-1], A, y, sigma_y)
            gen = torch.Generator().manual_seed(12)
            index = torch.multinomial(
                torch.softmax(log_w, 0), POSTERIOR_PARTICLES, True, generator=gen
            )
            return traj[:, index]
        x0 = _inverse_x0(POSTERIOR_PROPOSALS)[:POSTERIOR_PARTICLES]
        sol = ip.guided_sample(
            _inverse_prior_field, x0, A, y, sigma_y, steps, method, trajectory=True
        )
        return sol.trajectory


def _posterior_reference(sigma_y: float) -> Tensor:
    gen = torch.Generator().manual_seed(13)
    return _inverse_posterior(sigma_y).sample(POSTERIOR_PARTICLES, gen)


@lru_cache(maxsize=8)
def posterior_floor(sigma_y: float) -> tuple[float, float]:
    """(mean, s.d.) of the energy distance of POSTERIOR_FLOOR_SETS sets of POSTERIOR_PARTICLES exact
    posterior samples to the panel's reference set: where an exact sampler's distance falls."""
    gen = torch.Generator().manual_seed(14)
    post, ref = _inverse_posterior(sigma_y), _posterior_reference(sigma_y)
    with one_thread():
        d = [energy_distance(post.sample(len(ref), gen), ref) for _ in range(POSTERIOR_FLOOR_SETS)]
    d = torch.tensor(d, dtype=torch.float64)
    return float(d.mean()), float(d.std())


@lru_cache(maxsize=64)
def posterior_scores(sigma_y: float, method: str, steps: int) -> tuple[np.ndarray, float]:
    """(mode weights of the final particles [8], their energy distance to the reference set of
    POSTERIOR_PARTICLES exact posterior samples)."""
    post = _inverse_posterior(sigma_y)
    x = posterior_trajectories(sigma_y, method, steps)[-1]
    with one_thread():
        weights = post.component_probs(x).mean(0).numpy()
        return weights, energy_distance(x, _posterior_reference(sigma_y))


@lru_cache(maxsize=64)
def proposal_ess(sigma_y: float, steps: int) -> float:
    """ESS of the importance weights p(y | x1) of the panel's POSTERIOR_PROPOSALS proposals (the
    prior's exact flow, `steps` RK4 steps)."""
    A, y = inverse_observation()
    x1 = _prior_proposals(steps)[-1]
    return ip.effective_sample_size(ip.log_likelihood(x1, A, y, sigma_y))


@lru_cache(maxsize=256)
def _posterior_density(sigma_y: float, t: float) -> np.ndarray:
    """p_t(x | y) on the view's grid, divided by its largest value."""
    _, _, pts = plots.grid2d(POSTERIOR_VIEW, POSTERIOR_HEAT)
    with one_thread():
        log_p = posterior_at_time(_inverse_posterior(sigma_y), t).log_prob(pts.double())
    p = (log_p - log_p.max()).exp().reshape(POSTERIOR_HEAT, POSTERIOR_HEAT)
    return p.numpy()


def warm_posterior_caches() -> None:
    """Every (sigma_y, method, steps) the panel offers: its particles, scores, ESS and the
    exact sets' floor, computed once (1.5-2 s of CPU, measured). A first visit then costs the
    panel only p_t on its grid and the drawing (< 0.1 s) instead of up to 0.3 s of maths."""
    for sigma_y in SIGMA_Y_OPTIONS:
        posterior_floor(sigma_y)
        for steps in POSTERIOR_STEPS:
            proposal_ess(sigma_y, steps)
            for method in POSTERIOR_METHODS:
                posterior_scores(sigma_y, method, steps)


def _check_posterior_values(sigma_y: float, method: str, steps: int, t: float) -> None:
    if sigma_y not in SIGMA_Y_OPTIONS:
        raise ValueError(f"sigma_y must be one of {SIGMA_Y_OPTIONS}, got {sigma_y!r}")
    if method not in POSTERIOR_METHODS:
        raise ValueError(f"method must be one of {POSTERIOR_METHODS}, got {method!r}")
    if steps not in POSTERIOR_STEPS:
        raise ValueError(f"steps must be one of {POSTERIOR_STEPS}, got {steps!r}")
    if t not in POSTERIOR_T:
        raise ValueError(f"t must be one of {POSTERIOR_T}, got {t!r}")


def posterior_mode_labels() -> list[str]:
    """The eight prior modes by their angle on the circle, in (-180°, 180°]: '0°', '45°', ..."""
    return [f"{45 * k if k <= 4 else 45 * (k - 8)}°" for k in range(8)]


class PosteriorSampling(plots.LiveFigure):
    """p_t(x | y) with the particles at t | the posterior's mode weights, exact and sampled.

    `PosteriorSampling.draw(sigma_y=0.2, method="DPS", steps=64, t=1.0)` -> Figure."""

    NOTE = (
        "Prior: eight Gaussians (std 0.3), its exact flow; y = x⁽¹⁾ + noise = 1.7. "
        "DPS and ΠGDM: guided Euler from the same 1000 noise points; importance resampling: "
        "1000 of 8000 prior-flow trajectories (RK4), drawn by their weight p(y | x₁). "
        "No σ_min control: the prior's exact field is that of the OT path with σ_min = 0."
    )

    def controls(self) -> dict[str, ipywidgets.ValueWidget]:
        return {
            "sigma_y": ipywidgets.SelectionSlider(
                options=[(f"{s:.2f}", s) for s in SIGMA_Y_OPTIONS],
                value=0.05,
                description="σ_y (noise of y)",
                continuous_update=True,
                style={"description_width": "initial"},
                layout=ipywidgets.Layout(width="300px"),
            ),
            "method": widgets.choice("method", POSTERIOR_METHODS, "DPS"),
            "steps": widgets.steps_slider(64, options=POSTERIOR_STEPS),
            "t": widgets.t_slider(1.0, options=POSTERIOR_T),
        }

    def build(self) -> Figure:
        warm_posterior_caches()  # the controls' every setting, once: each redraw stays light
        fig, (ax_p, ax_w) = plots.new_axes(2, size=4.6)
        ext = (-POSTERIOR_VIEW, POSTERIOR_VIEW, -POSTERIOR_VIEW, POSTERIOR_VIEW)
        self.image = ax_p.imshow(
            np.zeros((POSTERIOR_HEAT, POSTERIOR_HEAT)),
            origin="lower",
            extent=ext,
            cmap=plots.CMAP,
            vmin=0,
            vmax=1,
        )
        fig.colorbar(self.image, ax=ax_p, shrink=0.8, label="$p_t(x\\,|\\,y)$ / its maximum")
        self.points = ax_p.scatter([], [], s=3, color="white", lw=0, alpha=0.8)
        plots.square(ax_p, POSTERIOR_VIEW)
        ax_p.grid(False)
        pos = np.arange(8)
        self.bars_exact = ax_w.bar(pos - 0.2, np.zeros(8), 0.4, color="0.55", label="exact $w'_k$")
        self.bars_sampled = ax_w.bar(
            pos + 0.2, np.zeros(8), 0.4, color=plots.TARGET_COLOR, label="sampled (at t = 1)"
        )
        ax_w.set_xticks(pos, posterior_mode_labels(), fontsize=10)
        ax_w.set(
            xlabel="prior mode (angle on the circle)", ylabel="posterior weight", ylim=(0, 1.5)
        )
        ax_w.set_yticks(np.linspace(0, 1, 6))  # above 1: room for the readout and the legend
        leg = ax_w.legend(fontsize=10, loc="upper right", bbox_to_anchor=(1.0, 0.8))
        self.how = ax_w.text(0.03, 0.97, "", transform=ax_w.transAxes, va="top", fontsize=10)
        self.axes = (ax_p, ax_w)
        for ax, title in zip(self.axes, self._titles(0.05, "DPS", 64, 1.0), strict=True):
            ax.set_title(title, fontsize=11)
        self.dynamic(
            self.image,
            self.points,
            *self.bars_exact,
            *self.bars_sampled,
            leg,
            self.how,
            *[ax.title for ax in self.axes],
            *ax_p.spines.values(),
        )
        return fig

    def _titles(self, sigma_y: float, method: str, steps: int, t: float) -> tuple[str, str]:
        return (
            f"$p_t(x\\,|\\,y)$ and particles, t = {t:.2f}\nσ_y = {sigma_y:.2f}, y = {INVERSE_Y}",
            f"posterior weights of the modes\nmethod = {method}, steps = {steps}",
        )

    @staticmethod
    def _how(sigma_y: float, method: str, steps: int) -> str:
        """How the particles were drawn, and their energy distance to exact samples."""
        _, ed = posterior_scores(sigma_y, method, steps)
        mean, sd = posterior_floor(sigma_y)
        if method == "importance resampling":
            ess = proposal_ess(sigma_y, steps)
            how = f"{POSTERIOR_PARTICLES} of {POSTERIOR_PROPOSALS} proposals (RK4), ESS {ess:.0f}"
        else:
            how = f"guided Euler from {POSTERIOR_PARTICLES} noise points"
        return f"{how}\nenergy distance {ed:.3f}\n(exact sets: {mean:.3f} ± {sd:.3f} s.d.)"

    def update(
        self, sigma_y: float = 0.05, method: str = "DPS", steps: int = 64, t: float = 1.0
    ) -> None:
        _check_posterior_values(sigma_y, method, steps, t)
        traj = posterior_trajectories(sigma_y, method, steps)
        weights, _ = posterior_scores(sigma_y, method, steps)
        x_t = position_at(traj, t)  # on the polygon of the solver's iterates
        self.image.set_data(_posterior_density(sigma_y, t))
        self.points.set_offsets(x_t.numpy())
        for bar, h in zip(
            self.bars_exact, _inverse_posterior(sigma_y).weights.numpy(), strict=True
        ):
            bar.set_height(h)
        for bar, h in zip(self.bars_sampled, weights, strict=True):
            bar.set_height(h)
        for ax, title in zip(self.axes, self._titles(sigma_y, method, steps, t), strict=True):
            ax.title.set_text(title)
        self.how.set_text(self._how(sigma_y, method, steps))


def inverse_samples_figure(
    prior: GaussianMixture,
    posteriors: dict[float, ip.MixturePosterior],
    samples: dict[float, dict[str, Tensor]],
    n_show: int = 600,
) -> Figure:
    """One row per sigma_y: the exact posterior's density, then each method's samples over its
    contours (the first n_show of each; a title counts the samples beyond the frame)."""
    rows = list(posteriors)
    names = list(next(iter(samples.values())))
    fig, axes = plots.new_axes(len(rows) * (1 + len(names)), size=3.6, ncols=1 + len(names))
    _, _, pts = plots.grid2d(POSTERIOR_VIEW, 120)
    ext = (-POSTERIOR_VIEW, POSTERIOR_VIEW, -POSTERIOR_VIEW, POSTERIOR_VIEW)
    for r, sigma_y in enumerate(rows):
        log_p = posteriors[sigma_y].log_prob(pts.double())
        p = (log_p - log_p.max()).exp().reshape(120, 120).numpy()
        ax = axes[r * (1 + len(names))]
        im = ax.imshow(p, origin="lower", extent=ext, cmap=plots.CMAP, vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, shrink=0.8, pad=0.08)  # the title says what is shown
        ax.scatter(*prior.means.numpy().T, s=12, color="white", marker="x", lw=1)
        plots.square(ax, POSTERIOR_VIEW)
        ax.grid(False)
        ax.set_title(f"exact $p(x\\,|\\,y)$ / max, σ_y = {sigma_y:.2f}", fontsize=11)
        for c, name in enumerate(names):
            ax = axes[r * (1 + len(names)) + 1 + c]
            ax.contour(*plots.grid2d(POSTERIOR_VIEW, 120)[:2], p, levels=[0.05, 0.5], colors="0.5")
            shown = samples[sigma_y][name][:n_show]
            plots.scatter2d(ax, shown, lim=POSTERIOR_VIEW, s=6, alpha=0.7)
            outside = float((shown.abs() > POSTERIOR_VIEW).any(dim=1).double().mean())
            note = f"\n{100 * outside:.0f} % outside the frame" if outside > 0 else ""
            ax.set_title(f"{name}, σ_y = {sigma_y:.2f}{note}", fontsize=11)
    return fig
