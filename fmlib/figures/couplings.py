"""Notebook 08: couplings. The widget view (pairs of a coupling, the learned flow's Euler
trajectories, its samples) and the static figures (pairs side by side, flows side by side).

A model is keyed by (coupling, OT batch size, sigma_min): ("independent", 1, s),
("minibatch OT", b, s) and ("reflow", 0, 0.0). Everything the controls can select is
precomputed by `precompute`, so a redraw only sets artist data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import ipywidgets as ipw
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import couplings, data, metrics, plots, widgets
from fmlib.checks import Field, check_range
from fmlib.solvers import integrate

COUPLINGS = ("independent", "minibatch OT", "reflow")
STEP_OPTIONS = (1, 2, 4, 8, 16)
N_SHOWN = 500  # particles drawn
N_QUALITY = 1000  # particles for the sliced Wasserstein readout
N_TRAJ = 40
N_PAIRS = 64
LIM = 3.5
Key = tuple[str, int, float]


def key(coupling: str, batch_size: int, sigma_min: float) -> Key:
    """The model key: the OT batch size only matters for minibatch OT, sigma_min not for reflow
    (trained at sigma_min = 0 on deterministic pairs)."""
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {', '.join(COUPLINGS)}, got {coupling!r}")
    if coupling == "independent":
        return (coupling, 1, float(sigma_min))
    if coupling == "reflow":
        return (coupling, 0, 0.0)
    return (coupling, int(batch_size), float(sigma_min))


@dataclass
class CouplingAtlas:
    """Precomputed pictures of every model: its training pairs, Euler trajectories from the
    same x0 for each number of steps in STEP_OPTIONS, their sliced Wasserstein distance to
    the data, and the straightness S of the flow."""

    x0: Tensor  # [N_QUALITY, 2] source points, the first N_SHOWN drawn
    target: Tensor  # [N_QUALITY, 2] data points
    pairs: dict[Key, tuple[Tensor, Tensor]] = field(default_factory=dict)
    trajectories: dict[tuple[Key, int], Tensor] = field(default_factory=dict)
    quality: dict[tuple[Key, int], float] = field(default_factory=dict)
    straightness: dict[Key, float] = field(default_factory=dict)
    crossings: dict[Key, int] = field(default_factory=dict)

    @property
    def batches(self) -> tuple[int, ...]:
        return tuple(sorted({k[1] for k in self.pairs if k[0] == "minibatch OT"}))

    @property
    def sigma_mins(self) -> tuple[float, ...]:
        return tuple(sorted({k[2] for k in self.pairs if k[0] != "reflow"}))

    def position(self, k: Key, steps: int, t: float) -> Tensor:
        """The Euler polygon at time t: x_j + (t - t_j) / h (x_{j+1} - x_j), t_j <= t < t_{j+1}
        (the piecewise-linear path that Euler's method follows), [N_SHOWN, 2]."""
        traj = self.trajectories[(k, steps)]
        j = min(int(t * steps), steps - 1)
        frac = t * steps - j
        return traj[j] + frac * (traj[j + 1] - traj[j])


def precompute(
    models: Mapping[Key, Field],
    samplers: Mapping[Key, couplings.SamplePairs],
    x0: Tensor,
    target: Tensor,
    generator: torch.Generator | None = None,
) -> CouplingAtlas:
    """Fill a CouplingAtlas: for each key, N_PAIRS pairs from its sampler, Euler solutions from
    x0 for every STEP_OPTIONS, SW_2 of the endpoints to `target` (same size as x0), S."""
    if set(models) != set(samplers):
        raise ValueError("models and samplers must have the same keys")
    if x0.shape != target.shape:
        raise ValueError(f"target must have the shape of x0 {tuple(x0.shape)}")
    atlas = CouplingAtlas(x0=x0, target=target)
    for k, model in models.items():
        a, b = samplers[k](N_PAIRS, generator)
        atlas.pairs[k] = (a, b)
        atlas.crossings[k] = couplings.count_crossings(a, b)
        atlas.straightness[k], _ = metrics.straightness(model, x0[:N_SHOWN], steps=16)
        for steps in STEP_OPTIONS:
            traj = integrate(model, x0, steps=steps, method="euler", trajectory=True).trajectory
            atlas.trajectories[(k, steps)] = traj[:, :N_SHOWN]
            sw_gen = torch.Generator().manual_seed(0)  # the same directions for every model
            atlas.quality[(k, steps)] = metrics.sliced_wasserstein(traj[-1], target, 64, sw_gen)
    return atlas


def _segments(a: Tensor, b: Tensor) -> list:
    return list(torch.stack([a, b], dim=1).numpy())


class CouplingsView(plots.LiveFigure):
    """Training pairs of the chosen coupling with x_t on their conditional paths | the
    learned flow's Euler trajectories and particles at t | its samples after `steps` Euler
    steps over the data, with their SW_2 and the flow's straightness S.

    `CouplingsView.draw(atlas, coupling="minibatch OT", batch_size=8, sigma_min=0.0,
    steps=2, t=0.5)` -> Figure."""

    NOTE = "σ_min blurs the end of every conditional path: x_1 is reached as x_1 + σ_min x_0."

    def __init__(self, atlas: CouplingAtlas, pyplot: bool = False) -> None:
        self.atlas = atlas
        super().__init__(pyplot=pyplot)

    def build(self) -> Figure:
        fig, (ax_c, ax_f, ax_s) = plots.new_axes(3, size=3.2)
        self.pair_lines = LineCollection([], color="0.6", lw=0.7)
        ax_c.add_collection(self.pair_lines)
        self.pair_x0 = ax_c.scatter([], [], s=9, color=plots.SOURCE_COLOR, lw=0, zorder=3)
        self.pair_x1 = ax_c.scatter([], [], s=9, color=plots.TARGET_COLOR, lw=0, zorder=3)
        self.pair_xt = ax_c.scatter([], [], s=16, color=plots.PATH_COLOR, lw=0, zorder=4)
        self.traj = LineCollection([], color=plots.PATH_COLOR, lw=0.6, alpha=0.6)
        ax_f.add_collection(self.traj)
        self.particles = ax_f.scatter([], [], s=3, color=plots.SOURCE_COLOR, lw=0, alpha=0.7)
        target = self.atlas.target[:N_SHOWN]
        ax_s.scatter(target[:, 0], target[:, 1], s=3, color="0.75", lw=0)
        self.samples = ax_s.scatter([], [], s=3, color=plots.TARGET_COLOR, lw=0, alpha=0.8)
        self.axes = (ax_c, ax_f, ax_s)
        for ax in self.axes:
            plots.square(ax, LIM)
        for ax, title in zip(self.axes, ("a\nb", "a\nb", "a\nb"), strict=True):
            ax.set_title(title)  # placeholder two-line titles: they size the layout
        spines = [spine for ax in self.axes for spine in ax.spines.values()]
        artists = (
            self.pair_lines,
            self.pair_x0,
            self.pair_x1,
            self.pair_xt,
            self.traj,
            self.particles,
            self.samples,
        )
        self.dynamic(*artists, *(ax.title for ax in self.axes), *spines)
        return fig

    def controls(self) -> dict[str, ipw.ValueWidget]:
        """coupling, OT batch size, sigma_min, Euler steps, t: only the precomputed values."""
        batches = self.atlas.batches
        return {
            "coupling": widgets.choice("coupling", COUPLINGS, "minibatch OT"),
            "batch_size": ipw.SelectionSlider(
                options=[(str(b), b) for b in batches],
                value=batches[0],
                description="OT batch",
                continuous_update=True,
            ),
            "sigma_min": widgets.sigma_min_slider(0.0, options=self.atlas.sigma_mins),
            "steps": widgets.steps_slider(2, options=STEP_OPTIONS),
            "t": widgets.t_slider(1.0),
        }

    def inactive(self, **values) -> dict[str, str]:
        """The OT batch size only matters for minibatch OT; reflow is trained at sigma_min = 0;
        an atlas with one sigma_min (the site's shipped models) offers no other."""
        off = {}
        if values.get("coupling") != "minibatch OT":
            off["batch_size"] = "only minibatch OT pairs points within batches"
        if values.get("coupling") == "reflow":
            off["sigma_min"] = "reflow's pairs (x0, flow(x0)) are deterministic: σ_min = 0"
        elif len(self.atlas.sigma_mins) == 1:  # the site's shipped models: one sigma_min
            off["sigma_min"] = f"only σ_min = {self.atlas.sigma_mins[0]:g} models are drawn here"
        return off

    def _check(self, coupling: str, batch_size: int, sigma_min: float, steps: int, t: float):
        k = key(coupling, batch_size, sigma_min)
        if k not in self.atlas.pairs:
            raise ValueError(
                f"batch_size and sigma_min must be among {self.atlas.batches} and "
                f"{self.atlas.sigma_mins}, got {batch_size} and {sigma_min}"
            )
        if steps not in STEP_OPTIONS:
            raise ValueError(f"steps must be one of {STEP_OPTIONS}, got {steps!r}")
        check_range("t", t, 0.0, 1.0)
        return k

    def update(
        self,
        coupling: str = "minibatch OT",
        batch_size: int = 8,
        sigma_min: float = 0.0,
        steps: int = 2,
        t: float = 1.0,
    ) -> None:
        k = self._check(coupling, batch_size, sigma_min, steps, t)
        a, b = self.atlas.pairs[k]
        s = k[2]
        end = b + s * a  # psi_1(x0 | x1) = sigma_min x0 + x1
        self.pair_lines.set_segments(_segments(a, end))
        self.pair_x0.set_offsets(a.numpy())
        self.pair_x1.set_offsets(end.numpy())
        self.pair_xt.set_offsets(((1 - (1 - s) * t) * a + t * b).numpy())
        traj = self.atlas.trajectories[(k, steps)]
        self.traj.set_segments(list(traj[:, :N_TRAJ].transpose(0, 1).numpy()))
        self.particles.set_offsets(self.atlas.position(k, steps, t).numpy())
        self.samples.set_offsets(traj[-1].numpy())
        batch = f", batch = {batch_size}" if coupling == "minibatch OT" else ""
        titles = (
            f"coupling = {coupling}{batch}\nσ_min = {s:.2f}, {self.atlas.crossings[k]} crossings",
            f"learned flow, Euler steps = {steps}\nparticles at t = {t:.2f}",
            f"samples after {steps} Euler steps\n"
            f"SW₂ = {self.atlas.quality[(k, steps)]:.3f}, S = {self.atlas.straightness[k]:.3f}",
        )
        for ax, title in zip(self.axes, titles, strict=True):
            ax.title.set_text(title)


def draw_pairs(panels: Mapping[str, tuple[Tensor, Tensor]]) -> Figure:
    """Static: one panel per coupling, its pairs as segments x0 -> x1 (blue -> orange)."""
    fig, axes = plots.new_axes(len(panels), size=3.0)
    for ax, (title, (a, b)) in zip(axes, panels.items(), strict=True):
        ax.add_collection(LineCollection(_segments(a, b), color="0.6", lw=0.7))
        ax.scatter(a[:, 0], a[:, 1], s=9, color=plots.SOURCE_COLOR, lw=0, zorder=3)
        ax.scatter(b[:, 0], b[:, 1], s=9, color=plots.TARGET_COLOR, lw=0, zorder=3)
        plots.square(ax, LIM)
        ax.set_title(f"{title}\n{couplings.count_crossings(a, b)} crossing pairs")
    return fig


def draw_flows(
    models: Mapping[str, Field], x0: Tensor, target: Tensor, lim: float = LIM, steps: int = 32
) -> Figure:
    """Static: one panel per model, its ODE trajectories (RK4, `steps` steps) from x0 over
    the data (grey), endpoints in orange."""
    fig, axes = plots.new_axes(len(models), size=3.0)
    for ax, (title, model) in zip(axes, models.items(), strict=True):
        traj = integrate(model, x0, steps=steps, method="rk4", trajectory=True).trajectory
        ax.scatter(target[:, 0], target[:, 1], s=2, color="0.8", lw=0)
        ax.add_collection(
            LineCollection(list(traj.transpose(0, 1).numpy()), color=plots.PATH_COLOR, lw=0.5)
        )
        ax.scatter(x0[:, 0], x0[:, 1], s=4, color=plots.SOURCE_COLOR, lw=0, zorder=3)
        ax.scatter(traj[-1][:, 0], traj[-1][:, 1], s=4, color=plots.TARGET_COLOR, lw=0, zorder=3)
        plots.square(ax, lim)
        ax.set_title(title)
    return fig


# --------------------------------------------------------------------------- benchmark
@lru_cache(maxsize=1)
def _bench_atlas(seed: int = 1) -> CouplingAtlas:
    """Notebook 08's models of training seed `seed`, shipped with fmlib (independent, minibatch
    OT with b = 4, 8, 64 and reflow, all at sigma_min = 0: couplings.load_seed_replicate),
    with their couplings' samplers; reflow's pairs are (x0, the seed's independent flow of x0)
    as in the notebook."""

    def source(n, g):
        return torch.randn(n, 2, generator=g)

    def target(n, g):
        return data.sample("eight_gaussians", n, g)

    shipped = couplings.load_seed_replicate(seed)["models"]
    g = torch.Generator().manual_seed(seed)
    x0_pool = source(2048, g)
    with torch.no_grad():
        x1_pool = integrate(shipped["independent"], x0_pool, steps=16, method="rk4").x
    models = {key("independent", 1, 0.0): shipped["independent"]}
    samplers = {key("independent", 1, 0.0): couplings.coupled_sampler(source, target)}
    for b in (4, 8, 64):
        models[key("minibatch OT", b, 0.0)] = shipped[f"OT b={b}"]
        samplers[key("minibatch OT", b, 0.0)] = couplings.coupled_sampler(
            source, target, "minibatch OT", b
        )
    models[key("reflow", 0, 0.0)] = shipped["reflow"]
    samplers[key("reflow", 0, 0.0)] = couplings.pair_sampler(x0_pool, x1_pool)
    return precompute(models, samplers, source(N_QUALITY, g), target(N_QUALITY, g), g)


def bench_view() -> CouplingsView:
    """The view over notebook 08's shipped models of training seed 1 (`_bench_atlas`), for
    the benchmark, the tests and the static site: trained flows, as in the notebook (whose
    panel shows its own seed-0 models and also offers sigma_min = 0.3; the site has the
    shipped sigma_min = 0 models only)."""
    return CouplingsView(_bench_atlas())
