"""Notebook 14: flows on sklearn's 8 x 8 handwritten digits (64 dimensions).

Pictures of many digits at once (`montage`: one image of rows x cols digits with a one-pixel
gap), and the panel `Digits`: the guided flow of the shipped class-conditional network
(fmlib.guidance.load_digits, training seed 0) moving 16 noise images to digits of a class,
at time t, with Euler steps and a guidance weight w. One Euler solve per (class, steps) moves
the particles of every offered w at once (one weight per particle), cached.
"""

from __future__ import annotations

from functools import lru_cache

import ipywidgets
import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mpl_toolkits.axes_grid1 import make_axes_locatable
from torch import Tensor

from fmlib import data, guidance, plots, widgets
from fmlib.checks import check_int
from fmlib.repro import one_thread
from fmlib.solvers import integrate, position_at

W_OPTIONS = (0.0, 1.0, 2.0, 3.0, 5.0)
CLASSES = tuple(str(k) for k in range(10))
STEPS_OPTIONS = (1, 2, 4, 8, 16, 32)
SIGMA_MIN_OPTIONS = (0.0,)  # the conditional networks were trained at sigma_min = 0 only
N_PARTICLES = 16
COLS = 4  # a 4 x 4 montage
IMAGE_CMAP = "gray_r"  # ink dark on white paper, as the digits were written
LIMITS = (-1.0, 1.0)  # the scaled pixel range of fmlib.data.scale_pixels


def montage(x: Tensor, cols: int) -> np.ndarray:
    """Digits x: [N, 64] (scaled pixels) -> one image [rows * 9 - 1, cols * 9 - 1] of rows x
    cols 8 x 8 digits, row-major, separated by one-pixel gaps (NaN: drawn as the background);
    missing digits in the last row stay blank."""
    check_int("cols", cols)
    n = x.shape[0]
    rows = -(-n // cols)
    side = data.DIGITS_SIDE
    out = np.full((rows * (side + 1) - 1, cols * (side + 1) - 1), np.nan)
    images = x.detach().double().reshape(n, side, side).numpy()
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (side + 1) : r * (side + 1) + side, c * (side + 1) : c * (side + 1) + side] = image
    return out


def show_digits(ax: Axes, x: Tensor, cols: int, title: str | None = None):
    """Draw `montage(x, cols)` on ax with the course's pixel scale [-1, 1]; returns the image."""
    cmap = matplotlib.colormaps[IMAGE_CMAP].with_extremes(bad="white")
    image = ax.imshow(montage(x, cols), cmap=cmap, vmin=LIMITS[0], vmax=LIMITS[1])
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return image


def pixel_colorbar(fig: Figure, ax: Axes, image, label: str = "scaled pixel value"):
    """A colour bar beside ax exactly as tall as the image ax draws (not the figure's height)."""
    cax = make_axes_locatable(ax).append_axes("right", size="2.5%", pad=0.08)
    return fig.colorbar(image, cax=cax, label=label)


@lru_cache(maxsize=1)
def network() -> guidance.ConditionalMLP:
    """The shipped class-conditional digits network of training seed 0."""
    return guidance.load_digits(0)[0]


@lru_cache(maxsize=1)
def _x0() -> Tensor:
    return torch.randn(N_PARTICLES, data.DIGITS_DIM, generator=torch.Generator().manual_seed(14))


@lru_cache(maxsize=64)
def trajectories(y: int, steps: int) -> Tensor:
    """Euler iterates of the guided flow of class y for every w in W_OPTIONS from the same 16
    noise images: [steps + 1, len(W_OPTIONS), N_PARTICLES, 64]."""
    w = torch.tensor(W_OPTIONS).repeat_interleave(N_PARTICLES)
    u = guidance.cfg_field(network(), y, w)
    with torch.no_grad(), one_thread():
        traj = integrate(u, _x0().repeat(len(W_OPTIONS), 1), steps=steps, method="euler",
                         trajectory=True).trajectory  # fmt: skip
    return traj.reshape(steps + 1, len(W_OPTIONS), N_PARTICLES, data.DIGITS_DIM)


def _check(w: float, y: str, sigma_min: float, steps: int, t: float) -> None:
    if w not in W_OPTIONS:
        raise ValueError(f"w must be one of {W_OPTIONS}, got {w!r}")
    if y not in CLASSES:
        raise ValueError(f"y must be one of {', '.join(CLASSES)}, got {y!r}")
    if not 0.0 <= sigma_min < 1.0:  # accepted and ignored: no network was trained at another
        raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min}")
    if steps not in STEPS_OPTIONS:
        raise ValueError(f"steps must be one of {STEPS_OPTIONS}, got {steps!r}")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be in [0, 1], got {t}")


class Digits(plots.LiveFigure):
    """16 images of the guided flow of class y at time t (Euler, `steps` steps, weight w),
    from the same noise for every setting, with the pixel scale as a colour bar.

    `Digits().draw(w=2.0, y="3", sigma_min=0.0, steps=16, t=1.0)` -> Figure."""

    NOTE = (
        "The shipped class-conditional network of training seed 0 (guidance.load_digits), "
        "guided by (1 - w) u(x | ∅) + w u(x | y). No σ_min control: the networks were "
        "trained at σ_min = 0 only, so it would have no effect."
    )

    def controls(self) -> dict[str, ipywidgets.ValueWidget]:
        return {
            "w": ipywidgets.SelectionSlider(
                options=[(f"{w:.1f}", w) for w in W_OPTIONS],
                value=2.0,
                description="w",
                continuous_update=True,
                style={"description_width": "initial"},
                layout=ipywidgets.Layout(width="300px"),
            ),
            "y": widgets.choice("class y", CLASSES, "3"),
            "steps": widgets.steps_slider(16, options=STEPS_OPTIONS),
            "t": widgets.t_slider(1.0),
        }

    def build(self) -> Figure:
        fig, (ax,) = plots.new_axes(1, size=5.5)
        self.image = show_digits(ax, torch.zeros(N_PARTICLES, data.DIGITS_DIM), cols=COLS)
        colorbar = fig.colorbar(self.image, ax=ax, fraction=0.046, pad=0.03)
        colorbar.set_label("scaled pixel value")
        self.ax = ax
        ax.set_title(self._title(2.0, 3, 16, 1.0), fontsize=10)  # sizes the layout
        self.dynamic(self.image, ax.title, *ax.spines.values())  # the spines lie on the image
        return fig

    def _title(self, w: float, y: int, steps: int, t: float) -> str:
        return (
            f"guided flow of class y = {y} at t = {t:.2f}\n"
            f"w = {w:.1f}, Euler steps = {steps}, σ_min = 0"
        )

    def update(
        self, w: float = 2.0, y: str = "3", sigma_min: float = 0.0, steps: int = 16, t: float = 1.0
    ) -> None:
        _check(w, y, sigma_min, steps, t)
        label = int(y)
        traj = trajectories(label, steps)[:, W_OPTIONS.index(w)]
        with one_thread():
            x_t = position_at(traj, t)
        self.image.set_data(montage(x_t, cols=COLS))
        self.ax.title.set_text(self._title(w, label, steps, t))
