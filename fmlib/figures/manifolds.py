"""Notebook 13: flows on the sphere and on the torus. The widget view (particles of the learned
flows at time t, for a number of geodesic Euler steps, over the data) and the static helpers
(the sphere drawn in the Mollweide equal-area projection, the torus as its square of angles).

Everything the controls select is precomputed by `precompute`, so a redraw only sets data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import ipywidgets as ipw
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from fmlib import manifolds, metrics, plots, widgets

STEP_OPTIONS = (1, 2, 4, 8, 16, 32)
N_SHOWN = 600  # particles drawn
N_QUALITY = 2000  # particles for the energy-distance readout
SQUARE_SHADE = "0.8"  # the checkerboard's dark squares: dark enough to read on a projector
DATA_GREY = "0.35"  # the data under the widget's particles, darker than the shaded squares


def lonlat(x: Tensor) -> np.ndarray:
    """Unit vectors [N, 3] -> (longitude, latitude) [N, 2] in radians, as Mollweide axes want."""
    x = x.double()
    lon = torch.atan2(x[:, 1], x[:, 0])
    lat = torch.asin(x[:, 2].clamp(-1, 1))
    return torch.stack([lon, lat], dim=1).numpy()


def sphere_axes(fig: Figure, *where) -> Axes:
    """An axes with the Mollweide equal-area projection of the sphere (areas, hence densities,
    are drawn to scale), a 30-degree graticule and no tick labels."""
    ax = fig.add_subplot(*where, projection="mollweide")
    ax.grid(True, color="0.85", lw=0.6)
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    return ax


def torus_axes(ax: Axes, squares: bool = False) -> None:
    """The torus as its square of angles [-pi, pi)^2: opposite sides are the same points.
    squares=True shades the checkerboard's 8 dark squares (fmlib.manifolds.torus_checkerboard)."""
    if squares:
        for i in range(4):
            for j in range(4):
                if (i + j) % 2 == 0:
                    corner = (-math.pi + i * math.pi / 2, -math.pi + j * math.pi / 2)
                    ax.add_patch(
                        Rectangle(
                            corner, math.pi / 2, math.pi / 2, color=SQUARE_SHADE, lw=0, zorder=0
                        )
                    )
    ax.set_xlim(-math.pi, math.pi)
    ax.set_ylim(-math.pi, math.pi)
    ax.set_aspect("equal")
    ticks = [-math.pi, -math.pi / 2, 0, math.pi / 2, math.pi]
    labels = ["-π", "-π/2", "0", "π/2", "π"]
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set(xlabel="angle θ₁", ylabel="angle θ₂")


def position(M, trajectory: Tensor, steps: int, t: float) -> Tensor:
    """The geodesic Euler polygon at time t: exp_{x_j}((t - t_j) / h log_{x_j}(x_{j+1})) for
    t_j <= t < t_{j+1}: the path the geodesic Euler step follows between its nodes."""
    j = min(int(t * steps), steps - 1)
    frac = t * steps - j
    return manifolds.geodesic(M, trajectory[j], trajectory[j + 1], frac)


@dataclass
class ManifoldAtlas:
    """Precomputed geodesic Euler trajectories of the sphere's models (one per training
    target) and of the torus model, from the same x0 for every STEP_OPTIONS; the energy
    distance of the sphere's endpoints to the data, the torus's share on the dark squares."""

    sphere_data: Tensor
    torus_data: Tensor
    sphere: dict[tuple[str, int], Tensor] = field(default_factory=dict)
    torus: dict[int, Tensor] = field(default_factory=dict)
    quality: dict[tuple[str, int], float] = field(default_factory=dict)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k[0] for k in self.sphere))


def precompute(
    sphere_models: Mapping[str, manifolds.Field],
    torus_model: manifolds.Field,
    generator: torch.Generator,
    sphere_target,
    torus_target,
) -> ManifoldAtlas:
    """Fill a ManifoldAtlas: N_QUALITY source points per manifold, every model sampled with
    every number of steps in STEP_OPTIONS; `*_target(n, generator)` draws the data."""
    S, T = manifolds.Sphere(), manifolds.Torus()
    atlas = ManifoldAtlas(sphere_target(N_QUALITY, generator), torus_target(N_QUALITY, generator))
    x0_s, x0_t = S.uniform(N_QUALITY, generator), T.uniform(N_QUALITY, generator)
    for steps in STEP_OPTIONS:
        for name, model in sphere_models.items():
            traj = manifolds.sample(S, model, x0_s, steps)
            atlas.sphere[(name, steps)] = traj[:, :N_SHOWN]
            atlas.quality[(name, steps)] = metrics.energy_distance(traj[-1], atlas.sphere_data)
        traj = manifolds.sample(T, torus_model, x0_t, steps)
        atlas.torus[steps] = traj[:, :N_SHOWN]
        atlas.quality[("torus", steps)] = float(  # share on the checkerboard's dark squares
            manifolds.in_torus_checkerboard(traj[-1]).double().mean()
        )
    return atlas


class ManifoldView(plots.LiveFigure):
    """Particles of the learned flow at time t after geodesic Euler steps: on the sphere
    (Mollweide projection, the model trained with the chosen target) and on the torus (the
    square of angles), over the data in grey; titles give the fit of the samples at t = 1.

    `ManifoldView(atlas).draw(target="geodesic", steps=8, t=0.5)` -> Figure."""

    NOTE = (
        "Grey: data; orange: particles at t. The target menu is the sphere's (the torus model "
        "uses the geodesic target); no σ_min: geodesic paths end exactly on the data."
    )

    def __init__(self, atlas: ManifoldAtlas, pyplot: bool = False) -> None:
        self.atlas = atlas
        super().__init__(pyplot=pyplot)

    def build(self) -> Figure:
        fig = plt.figure(figsize=(12, 4.8), layout="constrained")  # 960 px wide at 80 dpi
        grid = fig.add_gridspec(1, 2, width_ratios=(1.6, 1))
        self.ax_s = sphere_axes(fig, grid[0])
        self.ax_t = fig.add_subplot(grid[1])
        torus_axes(self.ax_t, squares=True)
        self.ax_t.tick_params(labelsize=10)
        self.ax_t.xaxis.label.set_fontsize(11)
        self.ax_t.yaxis.label.set_fontsize(11)
        d = self.atlas.sphere_data[:N_SHOWN]
        self.ax_s.scatter(*lonlat(d).T, s=7, color=DATA_GREY, lw=0)
        d = self.atlas.torus_data[:N_SHOWN]
        self.ax_t.scatter(d[:, 0], d[:, 1], s=7, color=DATA_GREY, lw=0)
        # above the graticule and the spines (zorder 2.5), as in the blitted picture
        self.pts_s = self.ax_s.scatter([], [], s=9, color=plots.TARGET_COLOR, lw=0, zorder=3)
        self.pts_t = self.ax_t.scatter([], [], s=9, color=plots.TARGET_COLOR, lw=0, zorder=3)
        for ax in (self.ax_s, self.ax_t):
            ax.set_title("a\nb", fontsize=12)  # placeholder two-line titles: they size the layout
        self.dynamic(self.pts_s, self.pts_t, self.ax_s.title, self.ax_t.title)
        return fig

    def controls(self) -> dict[str, ipw.ValueWidget]:
        """the sphere model's training target, geodesic Euler steps, t: the precomputed values."""
        return {
            "target": widgets.choice("target", self.atlas.targets, "geodesic"),
            "steps": widgets.steps_slider(8, options=STEP_OPTIONS),
            "t": widgets.t_slider(1.0),
        }

    def update(self, target: str = "geodesic", steps: int = 8, t: float = 1.0) -> None:
        if (target, steps) not in self.atlas.sphere:
            raise ValueError(
                f"target and steps must be among {self.atlas.targets} and {STEP_OPTIONS}, "
                f"got {target!r} and {steps!r}"
            )
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t must be in [0, 1], got {t}")
        S, T = manifolds.Sphere(), manifolds.Torus()
        self.pts_s.set_offsets(lonlat(position(S, self.atlas.sphere[(target, steps)], steps, t)))
        self.pts_t.set_offsets(position(T, self.atlas.torus[steps], steps, t).numpy())
        q_s, q_t = self.atlas.quality[(target, steps)], self.atlas.quality[("torus", steps)]
        self.ax_s.title.set_text(
            f"sphere, target = {target}, Euler steps = {steps}, t = {t:.2f}\n"
            f"energy distance of the samples (t = 1): {q_s:.4f}"
        )
        self.ax_t.title.set_text(
            f"torus, geodesic, steps = {steps}, t = {t:.2f}\n"
            f"on the dark squares at t = 1: {q_t:.2f}"
        )


# --------------------------------------------------------------------------- benchmark
@lru_cache(maxsize=1)
def _bench_atlas() -> ManifoldAtlas:
    """Untrained small models (a redraw costs the same whatever the weights)."""
    from fmlib.models import MLP

    torch.manual_seed(0)
    S, T = manifolds.Sphere(), manifolds.Torus()
    small = dict(hidden=32, layers=2, time_features=16, max_frequency=30.0)
    sphere_models = {
        name: manifolds.TangentField(S, MLP(dim=3, **small)).eval() for name in manifolds.TARGETS
    }
    torus_model = manifolds.TangentField(T, MLP(dim=4, **small)).eval()
    mus = torch.eye(3)
    return precompute(
        sphere_models,
        torus_model,
        torch.Generator().manual_seed(1),
        lambda n, g: manifolds.vmf_mixture_sample(mus, 20.0, n, g),
        manifolds.torus_checkerboard,
    )


def bench_view() -> ManifoldView:
    """The view over untrained models, for the benchmark, the tests and the site."""
    return ManifoldView(_bench_atlas())
