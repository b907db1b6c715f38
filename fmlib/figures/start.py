"""Notebook 00: the conditional path from N(0, I) to one data point, Euler vs exact."""

from __future__ import annotations

from functools import lru_cache

import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor

from fmlib import plots, widgets
from fmlib.paths import GaussianPath, OTPath, VPPath
from fmlib.solvers import euler_step, integrate

X1 = (2.5, 1.5)  # the single data point every particle travels to
N_PARTICLES = 12  # trajectories drawn
N_CLOUD = 400  # endpoints drawn


@lru_cache(maxsize=1)
def _noise() -> Tensor:
    """x0 ~ N(0, I), fixed once: the sliders only change the path and the solver."""
    return torch.randn(N_CLOUD, 2, generator=torch.Generator().manual_seed(0))


def _psi_on_grid(path: GaussianPath, x0: Tensor, x1: Tensor, times: Tensor) -> Tensor:
    """psi_t(x0 | x1) for every t in times: [T, N, 2], in one batched call."""
    n = len(x0)
    t = times.repeat_interleave(n)
    return path.psi_t(x0.repeat(len(times), 1), x1.repeat(len(times), 1), t).reshape(-1, n, 2)


def euler_vs_exact(path: GaussianPath, steps: int) -> tuple[Tensor, Tensor, float]:
    """Euler trajectories of dx/dt = u_t(x | x1) from x0 ~ N(0, I), the exact psi_t(x0 | x1)
    on the same time grid, and the max distance between their endpoints at t = 1."""
    x0 = _noise()
    x1 = torch.tensor(X1).expand_as(x0)
    sol = integrate(
        lambda x, t: path.u_t(x, x1, t), x0, steps=steps, method="euler", trajectory=True
    )
    exact = _psi_on_grid(path, x0, x1, sol.times)
    error = (sol.trajectory[-1] - exact[-1]).norm(dim=1).max().item()
    return sol.trajectory, exact, error


def euler_drawn(path: GaussianPath, steps: int) -> tuple[Tensor, Tensor, float]:
    """What a panel draws: the Euler polylines of the first N_PARTICLES particles
    [steps + 1, N_PARTICLES, 2], the Euler endpoints of all N_CLOUD [N_CLOUD, 2], and the
    max endpoint error vs psi_1(x0 | x1), as in `euler_vs_exact`.

    Only small tensors: no [steps + 1, N_CLOUD, 2] trajectory, whose element-wise ops torch
    splits over threads, and a busy machine then stalls each of them (a redraw took 0.2 s)."""
    x0 = _noise()
    x1 = torch.tensor(X1).expand_as(x0)
    h, x, drawn = 1.0 / steps, x0, [x0[:N_PARTICLES]]
    for k in range(steps):  # integrate's Euler loop (same t = k h), keeping the drawn rows
        x = euler_step(lambda y, t: path.u_t(y, x1, t), x, k * h, h)
        drawn.append(x[:N_PARTICLES])
    error = (x - path.psi_t(x0, x1, torch.ones(len(x0)))).norm(dim=1).max().item()
    return torch.stack(drawn), x, error


def _exact_curves(path: GaussianPath, n: int = N_PARTICLES) -> Tensor:
    """psi_t(x0 | x1) on a fine time grid for the first n particles: [101, n, 2]."""
    x0 = _noise()[:n]
    return _psi_on_grid(path, x0, torch.tensor(X1).expand_as(x0), torch.linspace(0, 1, 101))


_SEGMENTS: dict[tuple, list] = {}  # (path class, sigma_min) -> exact polylines


def _exact_segments(path: GaussianPath) -> list:
    """The exact curves as numpy polylines, computed once per path (steps don't change them)."""
    key = (type(path).__name__, getattr(path, "sigma_min", None))
    if key not in _SEGMENTS:
        if len(_SEGMENTS) >= 64:  # sigma_min is continuous: keep the memory bounded
            _SEGMENTS.clear()
        _SEGMENTS[key] = list(_exact_curves(path).transpose(0, 1).numpy())
    return _SEGMENTS[key]


def _title(name: str, steps: int, error: float) -> str:
    """'<path>, steps = <k>' then the endpoint error: the readout the panel's sliders show."""
    return f"{name}, steps = {steps}\nEuler endpoint error {error:.3f}"


class _PathArtists:
    """One panel: wide grey exact curves, green Euler polylines and endpoints, x0, x1."""

    def __init__(self, ax) -> None:
        self.ax = ax
        self.exact = LineCollection([], color="0.55", lw=3, alpha=0.5)
        self.euler = LineCollection([], color=plots.PATH_COLOR, lw=1)
        ax.add_collection(self.exact)
        ax.add_collection(self.euler)
        (self.nodes,) = ax.plot([], [], "o", ms=2.5, color=plots.PATH_COLOR)
        self.cloud = ax.scatter([], [], s=3, alpha=0.4, color=plots.PATH_COLOR, lw=0)
        x0 = _noise()[:N_PARTICLES]
        (self.x0,) = ax.plot(x0[:, 0], x0[:, 1], "o", ms=4, color=plots.SOURCE_COLOR)
        (self.x1,) = ax.plot(*X1, marker="*", ms=14, color=plots.TARGET_COLOR, mec="k", ls="none")
        plots.square(ax)
        ax.set_title(_title("x", 1, 0.0))  # placeholder: sizes the layout for two lines

    @property
    def artists(self) -> tuple:
        """What `set` changes, plus the static markers drawn on top of it."""
        return self.exact, self.euler, self.nodes, self.cloud, self.x0, self.x1, self.ax.title

    def set(self, path: GaussianPath, steps: int, name: str) -> float:
        drawn, end, error = euler_drawn(path, steps)
        self.exact.set_segments(_exact_segments(path))
        polylines = drawn.transpose(0, 1).numpy()  # [n, steps + 1, 2]; numpy: matplotlib
        self.euler.set_segments(list(polylines))  # iterates a torch tensor element by element
        self.nodes.set_data(polylines[..., 0].reshape(-1), polylines[..., 1].reshape(-1))
        self.cloud.set_offsets(end.numpy())
        self.ax.set_title(_title(name, steps, error))
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
            _PathArtists(axes[i * len(cols) + j]).set(path, k, name)
    return fig


VP_NAME = "VP path (has no σ_min)"


class ConditionalPath(plots.LiveFigure):
    """Left: the OT path (straight lines); right: the VP path (curved). Wide grey: exact
    psi_t(x0 | x1); green: Euler on u_t(x | x1) with `steps` steps; star: x1.

    `ConditionalPath.draw(sigma_min=0.1, steps=4)` -> Figure; `widgets.panel(view)` shows
    its controls. sigma_min moves only the OT panel: the VP path's width sigma_t =
    sqrt(1 - alpha_t^2) has no sigma_min (it reaches 0 at t = 1), as the NOTE says."""

    NOTE = (
        "σ_min sets the final width of the OT path (left) only; the VP path (right) has no "
        "σ_min: its width sqrt(1 − α_t²) reaches 0 at t = 1, so it ignores this slider."
    )

    def controls(self) -> dict:
        return {"sigma_min": widgets.sigma_min_slider(0.1), "steps": widgets.steps_slider(4)}

    def build(self) -> Figure:
        fig, (ax_ot, ax_vp) = plots.new_axes(2, size=3.6)
        self.ot, self.vp = _PathArtists(ax_ot), _PathArtists(ax_vp)
        self.dynamic(*self.ot.artists, *self.vp.artists)
        return fig

    def update(self, sigma_min: float = 0.0, steps: int = 4) -> None:
        self.ot.set(OTPath(sigma_min), steps, f"OT path, σ_min = {sigma_min:.2f}")
        if getattr(self, "_vp_steps", None) != steps:  # sigma_min does not change the VP panel
            self.vp.set(VPPath(), steps, VP_NAME)
            self._vp_steps = steps
