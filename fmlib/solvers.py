"""ODE solvers for dx/dt = u_t(x), and the log-likelihood of a flow.

Fixed-step methods are written by hand, one short function per step; "dopri5" (adaptive
Dormand-Prince 5(4)) comes from torchdiffeq. Fields are called with t of shape [N].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchdiffeq
from torch import Tensor

from fmlib.checks import check_int
from fmlib.divergence import (
    Field,
    batch_time,
    check_points,
    draw_probes,
    value_and_divergence,
    value_and_hutchinson,
)

METHODS = ("euler", "midpoint", "rk4", "dopri5")
ESTIMATORS = ("exact", "hutchinson")


def euler_step(u: Field, x: Tensor, t: Tensor | float, h: float) -> Tensor:
    """x_{t+h} = x_t + h u_t(x_t)   (Euler, order 1)."""
    return x + h * u(x, batch_time(t, x))


def midpoint_step(u: Field, x: Tensor, t: Tensor | float, h: float) -> Tensor:
    """x_{t+h} = x_t + h u_{t+h/2}(x_t + h/2 u_t(x_t))   (explicit midpoint, order 2)."""
    x_mid = x + h / 2 * u(x, batch_time(t, x))
    return x + h * u(x_mid, batch_time(t + h / 2, x))


def rk4_step(u: Field, x: Tensor, t: Tensor | float, h: float) -> Tensor:
    """Classical Runge-Kutta (order 4):

    k1 = u_t(x), k2 = u_{t+h/2}(x + h/2 k1), k3 = u_{t+h/2}(x + h/2 k2), k4 = u_{t+h}(x + h k3),
    x_{t+h} = x + h/6 (k1 + 2 k2 + 2 k3 + k4).
    """
    k1 = u(x, batch_time(t, x))
    k2 = u(x + h / 2 * k1, batch_time(t + h / 2, x))
    k3 = u(x + h / 2 * k2, batch_time(t + h / 2, x))
    k4 = u(x + h * k3, batch_time(t + h, x))
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


STEPS = {"euler": euler_step, "midpoint": midpoint_step, "rk4": rk4_step}


@dataclass
class ODESolution:
    """x: final state [N, d]; times: [steps + 1]; trajectory: [steps + 1, N, d] or None;
    nfe: number of field evaluations."""

    x: Tensor
    times: Tensor
    trajectory: Tensor | None
    nfe: int


class _Counted:
    """Wraps a field and counts its evaluations (NFE)."""

    def __init__(self, u: Field) -> None:
        self.u, self.nfe = u, 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        return self.u(x, t)


def _check(t0: float, t1: float, steps: int, method: str) -> None:
    for name, value in (("t0", t0), ("t1", t1)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    check_int("steps", steps)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _solve(
    u: Field, x: Tensor, times: Tensor, method: str, trajectory: bool, rtol: float, atol: float
) -> tuple[Tensor, Tensor | None]:
    """Solve from times[0] to times[-1]; returns (final state, states at all times or None)."""
    if method == "dopri5":
        if times[0] == times[-1]:
            return x.clone(), x.expand(len(times), *x.shape).clone() if trajectory else None
        grid = times if trajectory else times[[0, -1]]
        f = lambda t, y: u(y, batch_time(t, y))
        states = torchdiffeq.odeint(f, x, grid, rtol=rtol, atol=atol, method="dopri5")
        return states[-1], states if trajectory else None
    step = STEPS[method]
    t0, steps = float(times[0]), len(times) - 1
    h = (float(times[-1]) - t0) / steps
    states = [x]
    for k in range(steps):
        x = step(u, x, t0 + k * h, h)
        if trajectory:
            states.append(x)
    return x, torch.stack(states) if trajectory else None


def integrate(
    u: Field,
    x: Tensor,
    t0: float = 0.0,
    t1: float = 1.0,
    steps: int = 100,
    method: str = "midpoint",
    trajectory: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    enable_grad: bool = False,
) -> ODESolution:
    """Solve dx/dt = u_t(x) from x(t0) = x to t1 (t1 < t0 integrates backward in time).

    Fixed-step methods take `steps` steps of h = (t1 - t0) / steps on the grid
    t_k = t0 + k h. "dopri5" chooses its own steps (rtol, atol); `steps` then only sets
    the output grid of the trajectory. No autograd graph unless enable_grad=True.
    """
    _check(t0, t1, steps, method)
    check_points(x)
    times = torch.linspace(float(t0), float(t1), steps + 1, dtype=x.dtype, device=x.device)
    counted = _Counted(u)
    with torch.set_grad_enabled(enable_grad):
        x_end, states = _solve(counted, x, times, method, trajectory, rtol, atol)
    return ODESolution(x=x_end, times=times, trajectory=states, nfe=counted.nfe)


def position_at(
    trajectory: Tensor, t: float, u: Field | None = None, method: str = "euler"
) -> Tensor:
    """x_t on a fixed-step solver's own solution, from its iterates trajectory [steps + 1, N, d]
    on t_k = k / steps (as `integrate(..., trajectory=True)` returns them).

    At a grid time t_k: the k-th iterate. Between t_k and t_k+1: one step of `method` from
    x_k shortened to h = t - t_k (what the solver returns if its last step ends at t), which
    needs the field u. For Euler (the default) that step is x_k + (t - t_k) u(x_k, t_k), the
    straight segment between x_k and x_k+1, so without u it is read off the polygon,
    x_k + (t steps - k)(x_k+1 - x_k): Euler's continuous solution at every t, not a snap.
    """
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be in [0, 1], got {t!r}")
    if trajectory.ndim < 2 or len(trajectory) < 2:
        shape = tuple(trajectory.shape)
        raise ValueError(f"trajectory must hold steps + 1 >= 2 iterates, got shape {shape}")
    steps = len(trajectory) - 1
    k = min(math.floor(t * steps + 1e-9), steps)
    t_k = k / steps
    if t - t_k < 1e-9:
        return trajectory[k]
    if u is None:
        if method != "euler":
            raise ValueError(f"u is needed to step {method!r} between grid times, got None")
        return trajectory[k] + (t * steps - k) * (trajectory[k + 1] - trajectory[k])
    return integrate(u, trajectory[k], t0=t_k, t1=t, steps=1, method=method).x


def standard_normal_log_prob(x: Tensor) -> Tensor:
    """log N(x; 0, I) = -1/2 |x|^2 - d/2 log(2 pi), shape [N]."""
    d = x.shape[-1]
    return -0.5 * (x**2).sum(dim=-1) - 0.5 * d * math.log(2 * math.pi)


def log_likelihood(
    u: Field,
    x1: Tensor,
    log_p0: Callable[[Tensor], Tensor] = standard_normal_log_prob,
    steps: int = 100,
    method: str = "rk4",
    estimator: str = "exact",
    n_probes: int = 1,
    generator: torch.Generator | None = None,
    probe: str = "rademacher",
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> tuple[Tensor, Tensor]:
    """log p_1(x1) by the instantaneous change of variables (Chen et al. 2018;
    Lipman et al. 2023, eq. 29). Solve backward from t = 1 to t = 0 the augmented ODE

        d/dt [x_t, l_t] = [u_t(x_t), -div u_t(x_t)],   x_1 = x1, l_1 = 0,

    so that x_0 = psi_1^{-1}(x1) and l_0 = int_0^1 div u_t(x_t) dt; then

        log p_1(x1) = log p_0(x_0) - l_0.

    estimator="exact" uses the trace of the Jacobian (d backward passes per evaluation);
    "hutchinson" uses eps^T (∂u/∂x) eps with n_probes probes drawn once per sample and
    kept along the path (FFJORD; probe "rademacher" or "gaussian").
    Fixed-step methods use the hand-written steps (see _StageDivergence: the divergence is
    only computed at stages that enter the update), "dopri5" torchdiffeq on [x, l].
    Returns (log_p1 [N], x0 [N, d]); no graph is kept.
    """
    _check(1.0, 0.0, steps, method)
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if n_probes < 1:
        raise ValueError(f"n_probes must be in [1, inf), got {n_probes}")
    check_points(x1, "x1")
    d = x1.shape[1]
    if estimator == "exact":
        trace = lambda x, t: value_and_divergence(u, x, t)
    else:
        eps = draw_probes((n_probes, *x1.shape), probe, generator, x1.dtype, x1.device)
        trace = lambda x, t: value_and_hutchinson(u, x, t, eps)

    if method == "dopri5":  # torchdiffeq on the augmented state z = [x, l]

        def augmented(z: Tensor, t: Tensor) -> Tensor:
            u_x, div = trace(z[:, :d], t)
            return torch.cat([u_x, -div[:, None]], dim=1)

        z1 = torch.cat([x1.detach(), torch.zeros_like(x1[:, :1])], dim=1)
        z0 = integrate(augmented, z1, 1.0, 0.0, steps, method, rtol=rtol, atol=atol).x
        x0, l0 = z0[:, :d], z0[:, d]
    else:
        x0, l0 = _fixed_step_log_density_change(u, trace, x1.detach(), steps, method)
    return log_p0(x0) - l0, x0


# b_i, the weight of stage i in x_{t+h} = x_t + h sum_i b_i k_i, in the order the steps
# above evaluate their stages.
STAGE_WEIGHTS = {"euler": (1.0,), "midpoint": (0.0, 1.0), "rk4": (1 / 6, 1 / 3, 1 / 3, 1 / 6)}


class _StageDivergence:
    """The field u for one step of the augmented ODE d/dt [x, l] = [u_t(x), -div u_t(x)].

    A Runge-Kutta step of [x, l] moves x exactly as a step of x alone (the stages never
    read l) and adds l += h sum_i b_i (-div u)(stage i). So we step x with the same
    hand-written step and collect sum_i b_i div u here, at the stages where b_i != 0 only:
    the first midpoint stage (b_1 = 0) costs one forward pass instead of d + 1 passes.
    """

    def __init__(self, u: Field, trace: Callable, weights: tuple[float, ...]) -> None:
        self.u, self.trace, self.weights = u, trace, weights
        self.stage, self.weighted_div = 0, 0.0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        b = self.weights[self.stage]
        self.stage += 1
        if b == 0.0:
            return self.u(x, t)
        u_x, div = self.trace(x, t)
        self.weighted_div = self.weighted_div + b * div
        return u_x


def _fixed_step_log_density_change(
    u: Field, trace: Callable, x1: Tensor, steps: int, method: str
) -> tuple[Tensor, Tensor]:
    """Step [x, l] from t = 1 (x1, 0) to t = 0 with `steps` fixed steps; returns (x0, l0)."""
    h = -1.0 / steps
    x, l_t = x1, torch.zeros_like(x1[:, 0])
    with torch.no_grad():
        for k in range(steps):
            field = _StageDivergence(u, trace, STAGE_WEIGHTS[method])
            x = STEPS[method](field, x, 1.0 + k * h, h)
            l_t = l_t - h * field.weighted_div
    return x, l_t
