"""The continuity equation d/dt p_t + div(p_t u_t) = 0, checked numerically on a grid.

A pair (p_t, u_t) satisfies the continuity equation iff u_t generates p_t (Lipman et al.,
Flow Matching Guide and Code 2024, Theorem 2, "mass conservation"). Here everything is a
plain callable, so the same check runs on a conditional path, a marginal path or a wrong
field:

- `log_p(x: [N, d], t: [N]) -> [N]`: the log-density log p_t(x) (exp gives p_t);
- `u(x: [N, d], t: [N]) -> [N, d]`: a field, the signature of every field in fmlib.

The grid is 2D (the course's pictures); computations run in float64 so that the
finite-difference truncation error O(h^2), not round-off, is what we measure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from fmlib.checks import Field, LogDensity, check_int

DTYPE = torch.float64


def _check_grid(lim: float, n: int) -> None:
    if not (isinstance(lim, (int, float)) and lim > 0 and math.isfinite(lim)):
        raise ValueError(f"lim must be a finite number > 0, got {lim!r}")
    check_int("n", n, 3)


def _check_t(t: float, dt: float) -> None:
    if not isinstance(dt, (int, float)) or not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt!r}")
    if not (t - dt >= -1e-12 and t + dt <= 1.0 + 1e-12):
        raise ValueError(f"t must be in [dt, 1 - dt] = [{dt:.3g}, {1 - dt:.3g}], got {t!r}")


def grid_axis(lim: float, n: int) -> tuple[Tensor, float]:
    """n equally spaced float64 nodes on [-lim, lim] and their spacing h = 2 lim / (n - 1)."""
    _check_grid(lim, n)
    return torch.linspace(-lim, lim, n, dtype=DTYPE), 2 * lim / (n - 1)


def grid_points(axis: Tensor) -> Tensor:
    """All (x^(1), x^(2)) pairs of a 1D axis of length n as [n*n, 2], row index = x^(2).

    `f(points).reshape(n, n)` is then an image with rows along x^(2) (as fmlib.plots.heatmap).
    """
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def square_grid(lim: float, n: int) -> Tensor:
    """The n x n float64 grid of [-lim, lim]^2 as points [n*n, 2] (grid_points of grid_axis):
    `f(points).reshape(n, n)` is an image with rows along x^(2)."""
    return grid_points(grid_axis(lim, n)[0])


def _times(t: float, n: int) -> Tensor:
    return torch.full((n,), float(t), dtype=DTYPE)


def density_on_grid(log_p: LogDensity, t: float, lim: float, n: int) -> Tensor:
    """p_t on the n x n grid of [-lim, lim]^2 as an image [n, n] (rows along x^(2))."""
    x = square_grid(lim, n)
    return log_p(x, _times(t, len(x))).exp().reshape(n, n)


def continuity_residual(
    log_p: LogDensity, u: Field, t: float, lim: float = 3.0, n: int = 64, dt: float | None = None
) -> Tensor:
    """R = d/dt p_t + div(p_t u_t) by central differences on the n x n grid of [-lim, lim]^2.

        d/dt p_t(x)        ~ (p_{t+dt}(x) - p_{t-dt}(x)) / (2 dt)
        d/dx^(i) (p_t u^i) ~ ((p u^i)(x + h e_i) - (p u^i)(x - h e_i)) / (2 h)

    Both differences are second order: R = (exact residual) + O(h^2 + dt^2). For a pair
    where u_t generates p_t the exact residual is 0 (continuity equation, Lipman et al.
    2024, eq. 3.25), so R -> 0 like h^2 when dt = h; for a wrong field R tends to the
    non-zero exact residual. The flux p u is evaluated on the grid extended by one node on
    every side; dt defaults to h (capped so that [t - dt, t + dt] stays inside [0, 1]).
    Returns the image R: [n, n] (rows along x^(2)).
    """
    if not 0.0 < t < 1.0:
        raise ValueError(f"t must be in (0, 1) (central differences in t), got {t!r}")
    axis, h = grid_axis(lim, n)
    dt = min(h, t, 1.0 - t) if dt is None else dt
    _check_t(t, dt)
    # time derivative on the grid itself
    x = grid_points(axis)
    p_plus = log_p(x, _times(t + dt, len(x))).exp()
    p_minus = log_p(x, _times(t - dt, len(x))).exp()
    dp_dt = ((p_plus - p_minus) / (2 * dt)).reshape(n, n)
    # flux F = p_t u_t on the grid extended by one node: [n + 2, n + 2, 2]
    wide = torch.linspace(-lim - h, lim + h, n + 2, dtype=DTYPE)
    xw = grid_points(wide)
    tw = _times(t, len(xw))
    flux = (log_p(xw, tw).exp()[:, None] * u(xw, tw)).reshape(n + 2, n + 2, 2)
    d_flux1 = (flux[1:-1, 2:, 0] - flux[1:-1, :-2, 0]) / (2 * h)  # d/dx^(1): along columns
    d_flux2 = (flux[2:, 1:-1, 1] - flux[:-2, 1:-1, 1]) / (2 * h)  # d/dx^(2): along rows
    return dp_dt + d_flux1 + d_flux2


def residual_norm(residual: Tensor, lim: float) -> float:
    """Discrete L2 norm over the box: ||R|| = sqrt(sum_ij R_ij^2 h^2), h = 2 lim / (n - 1)."""
    n = residual.shape[-1]
    _check_grid(lim, n)
    h = 2 * lim / (n - 1)
    return float(torch.sqrt((residual**2).sum() * h**2))


@dataclass(frozen=True)
class Convergence:
    """Residual norms on refined grids and the fitted order: ||R(h)|| ~ C h^order."""

    n: tuple[int, ...]
    h: tuple[float, ...]
    norm: tuple[float, ...]
    order: float


def fitted_order(h: Tensor | list[float], err: Tensor | list[float]) -> float:
    """Least-squares slope of log(err) against log(h): the observed order of convergence."""
    lh = torch.log(torch.as_tensor(h, dtype=DTYPE))
    le = torch.log(torch.as_tensor(err, dtype=DTYPE))
    if len(lh) < 2 or len(lh) != len(le):
        raise ValueError(f"h and err must have the same length >= 2, got {len(lh)}, {len(le)}")
    lh_c = lh - lh.mean()
    return float((lh_c * (le - le.mean())).sum() / (lh_c**2).sum())


def residual_convergence(
    log_p: LogDensity,
    u: Field,
    t: float,
    lim: float = 3.0,
    ns: tuple[int, ...] = (33, 65, 129),
    dt_ratio: float = 1.0,
) -> Convergence:
    """||R(h)|| for grids of n nodes in ns (dt = dt_ratio h) and the log-log slope.

    Slope ~ 2 (the scheme's order) when u_t generates p_t; slope ~ 0 (a floor, the exact
    residual) when it does not.
    """
    norms, hs = [], []
    for n in ns:
        h = 2 * lim / (n - 1)
        r = continuity_residual(log_p, u, t, lim=lim, n=n, dt=min(dt_ratio * h, t, 1 - t))
        norms.append(residual_norm(r, lim))
        hs.append(h)
    return Convergence(tuple(ns), tuple(hs), tuple(norms), fitted_order(hs, norms))


def mass(log_p: LogDensity, t: float, lim: float = 6.0, n: int = 201) -> float:
    """integral of p_t over [-lim, lim]^2 by the trapezoid rule on an n x n grid.

    For a density that decays fast inside the box this is accurate to many digits (the
    trapezoid rule is spectrally accurate for smooth, rapidly decaying integrands), so
    mass(p_t) = 1 for every t checks mass conservation.
    """
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be in [0, 1], got {t!r}")
    axis, h = grid_axis(lim, n)
    p = density_on_grid(log_p, t, lim, n)
    w = torch.ones(n, dtype=DTYPE)
    w[0] = w[-1] = 0.5  # trapezoid weights
    return float((w[:, None] * w[None, :] * p).sum() * h**2)


def histogram_error(x: Tensor, log_p: LogDensity, t: float, lim: float = 4.0, bins: int = 24):
    """Total-variation distance between the histogram of particles x: [N, 2] and p_t.

        TV = 1/2 sum_bins | count_b / N - P_t(bin b) |,

    P_t(bin) by the midpoint rule on a 4x finer grid. Exact samples give TV ~ O(sqrt(bins^2 / N))
    (Monte-Carlo noise): the floor that a good ODE solver reaches.
    """
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be in [0, 1], got {t!r}")
    check_int("bins", bins, 2)
    x = x.detach().to(DTYPE)
    edges = torch.linspace(-lim, lim, bins + 1, dtype=DTYPE)
    hist = torch.histogramdd(x, bins=[edges, edges]).hist / len(x)  # [bins(x1), bins(x2)]
    fine = 4 * bins
    hb = 2 * lim / fine
    centers = torch.linspace(-lim + hb / 2, lim - hb / 2, fine, dtype=DTYPE)
    pts = grid_points(centers)
    p = log_p(pts, _times(t, len(pts))).exp().reshape(fine, fine) * hb**2  # rows: x^(2)
    prob = p.reshape(bins, 4, bins, 4).sum(dim=(1, 3)).T  # -> [bins(x1), bins(x2)]
    return float(0.5 * (hist - prob).abs().sum())


@dataclass(frozen=True)
class AlongTrajectory:
    """d/dt log p_t(x_t) by finite differences (lhs) and -div u_t(x_t) (rhs), at times."""

    times: Tensor  # [K]
    lhs: Tensor  # [K, N]
    rhs: Tensor  # [K, N]

    @property
    def max_error(self) -> float:
        return float((self.lhs - self.rhs).abs().max())


def log_density_along_trajectory(
    log_p: LogDensity,
    u: Field,
    div_u: Callable[[Tensor, Tensor], Tensor],
    trajectory: Tensor,
    times: Tensor,
) -> AlongTrajectory:
    """Check d/dt log p_t(x_t) = -div u_t(x_t) along ODE trajectories dx_t/dt = u_t(x_t).

    Lipman et al. (2024), eq. (3.31) (instantaneous change of variables), derived from the
    continuity equation: d/dt log p_t(x_t) = (d/dt p_t + <grad p_t, u_t>) / p_t = -div u_t.
    trajectory: [K, N, d] states at the K equally spaced `times` [K]. The left side is a
    central difference of log p_t(x_t) over neighbouring times (interior times only, K - 2
    of them); the right side is div_u(x, t) -> [N] (e.g. fmlib.divergence.divergence).
    """
    if trajectory.ndim != 3 or trajectory.shape[0] != len(times) or len(times) < 3:
        raise ValueError(
            f"trajectory must be [K, N, d] with K = len(times) >= 3, got {tuple(trajectory.shape)}"
        )
    k, n, _ = trajectory.shape
    log_pt = torch.stack([log_p(trajectory[i], times[i].expand(n)) for i in range(k)])
    lhs = (log_pt[2:] - log_pt[:-2]) / (times[2:] - times[:-2])[:, None]
    rhs = torch.stack([-div_u(trajectory[i], times[i].expand(n)) for i in range(1, k - 1)])
    return AlongTrajectory(times[1:-1], lhs.detach(), rhs.detach())
