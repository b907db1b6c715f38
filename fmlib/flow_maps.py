"""Flow maps and average velocities: few-step sampling of a flow (MeanFlow, shortcut models).

Course convention: t = 0 is the noise, t = 1 the data. The flow map X_{a->b} carries a point
of the ODE dx/dt = v(x, t) from time a to time b; it is a semigroup,
X_{s->b} o X_{a->s} = X_{a->b}, and X_{a->a} = id. The average velocity of the segment between
t and r, read at the point x of time t (Geng et al. 2025, MeanFlow):

    u(x, r, t) = 1/(t - r) int_r^t v(x_s, s) ds,   x_t = x,   u(x, t, t) = v(x, t),

so that one step of any length is exact: X_{t->r}(x) = x + (r - t) u(x, r, t). Multiplying by
(t - r) and differentiating in t along the trajectory (r fixed) gives the MeanFlow identity

    u(x, r, t) = v(x, t) - (t - r) d/dt u(x_t, r, t),   d/dt u = v . grad_x u + d_t u,

the total derivative is one Jacobian-vector product with tangents (v, 0, 1) for (x, r, t).
Shortcut models (Frans et al. 2025) train the same object through the semigroup: one step of
length 2d equals two steps of length d.

Exact reference: for Gaussian data N(mu, s^2 I) on the OT path with sigma_min
(x_t = t x1 + (1 - (1 - sigma_min) t) x0) the marginal is p_t = N(m_t, S_t^2 I),
m_t = t mu, S_t^2 = t^2 s^2 + (1 - (1 - sigma_min) t)^2, its velocity is affine,
v(x, t) = m_t' + (S_t'/S_t)(x - m_t), and so is its flow map:
X_{a->b}(x) = m_b + (S_b/S_a)(x - m_a).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from fmlib import resources
from fmlib.checks import check_range
from fmlib.models import sinusoidal_embedding

AverageVelocity = Callable[[Tensor, Tensor, Tensor], Tensor]  # u(x [N, d], r [N], t [N])
FLOWMAP_SEEDS = (0, 1, 2)  # the shipped average-velocity models (benchmarks/train_flowmap.py)


class GaussianOT:
    """The OT path (sigma_min) from N(0, I) to Gaussian data N(mu, s^2 I), in closed form.

    p_t = N(m_t, S_t^2 I): m_t = t mu, S_t = sqrt(t^2 s^2 + (1 - (1 - sigma_min) t)^2).
    Times are floats or tensors (broadcast against x's rows: [N] or scalar).
    """

    def __init__(self, mu: Tensor, s: float, sigma_min: float = 0.0) -> None:
        self.mu = torch.as_tensor(mu, dtype=torch.float64)
        if self.mu.dim() != 1:
            raise ValueError(f"mu must have shape [d], got {tuple(self.mu.shape)}")
        if not (isinstance(s, (int, float)) and 0 < s < math.inf):
            raise ValueError(f"s must be in (0, inf), got {s!r}")
        self.s = float(s)
        self.sigma_min = check_range("sigma_min", sigma_min, 0.0, 1.0, high_open=True)

    def _col(self, t, x: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        return t.reshape(-1, 1) if t.dim() == 1 else t

    def mean(self, t, x: Tensor) -> Tensor:
        """m_t = t mu: [N, d] or [1, d]."""
        return self._col(t, x) * self.mu.to(x)

    def std(self, t, x: Tensor) -> Tensor:
        """S_t = sqrt(t^2 s^2 + sigma_t^2), sigma_t = 1 - (1 - sigma_min) t."""
        t = self._col(t, x)
        sigma = 1 - (1 - self.sigma_min) * t
        return torch.sqrt(t * t * self.s**2 + sigma * sigma)

    def d_std(self, t, x: Tensor) -> Tensor:
        """S_t' = (t s^2 - (1 - sigma_min) sigma_t) / S_t."""
        t = self._col(t, x)
        sigma = 1 - (1 - self.sigma_min) * t
        return (t * self.s**2 - (1 - self.sigma_min) * sigma) / self.std(t, x)

    def velocity(self, x: Tensor, t) -> Tensor:
        """v(x, t) = mu + (S_t'/S_t)(x - m_t): the marginal field. x: [N, d]."""
        return self.mu.to(x) + self.d_std(t, x) / self.std(t, x) * (x - self.mean(t, x))

    def flow_map(self, x: Tensor, a, b) -> Tensor:
        """X_{a->b}(x) = m_b + (S_b/S_a)(x - m_a): where the ODE takes x from time a to b."""
        return self.mean(b, x) + self.std(b, x) / self.std(a, x) * (x - self.mean(a, x))

    def average_velocity(self, x: Tensor, r, t) -> Tensor:
        """u(x, r, t) = (X_{t->r}(x) - x) / (r - t), x at time t; v(x, t) where r = t."""
        r_col, t_col = self._col(r, x), self._col(t, x)
        same = r_col == t_col
        step = torch.where(same, torch.ones_like(r_col), r_col - t_col)
        u = (self.flow_map(x, t, r) - x) / step
        return torch.where(same, self.velocity(x, t), u)

    def euler_error(self, x: Tensor, a, b) -> Tensor:
        """X_{a->b}(x) - (x + (b - a) v(x, a)) = (S_b - S_a - (b - a) S_a') / S_a (x - m_a).

        m_t is linear in t, so one Euler step only misses the curvature of S_t: its
        Taylor remainder, times the point's offset from the mean."""
        a_col, b_col = self._col(a, x), self._col(b, x)
        remainder = self.std(b, x) - self.std(a, x) - (b_col - a_col) * self.d_std(a, x)
        return remainder / self.std(a, x) * (x - self.mean(a, x))


def meanflow_target(
    u: AverageVelocity, v: Tensor, x: Tensor, r: Tensor, t: Tensor
) -> tuple[Tensor, Tensor]:
    """(u(x, r, t), v - (t - r) d/dt u): the MeanFlow identity's right-hand side.

    d/dt u = v . grad_x u + d_t u is the JVP of u at (x, r, t) with tangents (v, 0, 1)
    (torch.func.jvp). Geng et al. (2025), MeanFlow. x, v: [N, d]; r, t: [N]."""
    tangents = (v, torch.zeros_like(r), torch.ones_like(t))
    u_value, du_dt = torch.func.jvp(u, (x, r, t), tangents)
    return u_value, v - (t - r)[:, None] * du_dt


class AverageVelocityMLP(nn.Module):
    """u_theta(x, r, t): [x, gamma(t), gamma(r - t)] -> MLP (SiLU) -> R^d.

    The time features gamma are fmlib.models' sinusoidal embedding; feeding r - t
    (the step) rather than r makes r = t (the plain velocity) one input value."""

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3, features: int = 16):
        super().__init__()
        self.config = {"dim": dim, "hidden": hidden, "layers": layers, "features": features}
        self.register_buffer("frequencies", torch.logspace(0.0, 1.0, features // 2))
        widths = [dim + 2 * features] + [hidden] * layers
        blocks: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            blocks += [nn.Linear(w_in, w_out), nn.SiLU()]
        blocks.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """x: [N, d], r and t: [N] -> [N, d]."""
        gamma_t = sinusoidal_embedding(t, self.frequencies)
        gamma_step = sinusoidal_embedding(r - t, self.frequencies)
        return self.net(torch.cat([x, gamma_t, gamma_step], dim=1))


def few_step_sample(u: AverageVelocity, x0: Tensor, steps: int, trajectory: bool = False):
    """x_{k+1} = x_k + (t_{k+1} - t_k) u(x_k, t_{k+1}, t_k) on t_k = k / steps (steps NFE).

    Returns x_1 [N, d], or all states [steps + 1, N, d] when `trajectory`."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    x, states = x0, [x0]
    times = torch.linspace(0, 1, steps + 1, dtype=x0.dtype)
    for t, r in zip(times[:-1], times[1:], strict=True):
        n = x.shape[0]
        x = x + (r - t) * u(x, r.expand(n), t.expand(n))
        states.append(x)
    return torch.stack(states) if trajectory else x


def sample_times(
    n: int, equal_fraction: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """(r, t): t <= r uniform pairs (the sorted pair of two uniforms); r = t on a fraction."""
    a, b = torch.rand(n, generator=generator), torch.rand(n, generator=generator)
    t, r = torch.minimum(a, b), torch.maximum(a, b)
    equal = torch.rand(n, generator=generator) < equal_fraction
    return torch.where(equal, t, r), t


def meanflow_loss(model: AverageVelocity, x: Tensor, v: Tensor, r: Tensor, t: Tensor) -> Tensor:
    """|u_theta(x, r, t) - sg(v - (t - r) d/dt u_theta)|^2, averaged: the MeanFlow loss."""
    u_value, target = meanflow_target(model, v, x, r, t)
    return ((u_value - target.detach()) ** 2).sum(dim=1).mean()


def flowmap_checkpoint(seed: int) -> Path:
    """The shipped average-velocity model of training seed `seed` (FLOWMAP_SEEDS)."""
    if seed not in FLOWMAP_SEEDS:
        raise ValueError(f"seed must be one of {FLOWMAP_SEEDS}, got {seed!r}")
    # benchmarks/train_flowmap.py writes it there; resources.path() would refuse a missing file
    return resources.DIRECTORY / f"flowmap_eight_gaussians_seed{seed}.pt"


def save_model(model: AverageVelocityMLP, path: str | Path, meta: dict | None = None) -> None:
    """Write config, float32 state and `meta` (training record) to `path`."""
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": model.config, "state_dict": state, "meta": meta or {}}, Path(path))


def load_model(path: str | Path) -> tuple[AverageVelocityMLP, dict]:
    """(model in eval mode, meta) from `save_model`'s file."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = AverageVelocityMLP(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload["meta"]


def train_meanflow(
    model: AverageVelocityMLP,
    teacher_velocity: Callable[[Tensor, Tensor], Tensor],
    sample_x1: Callable[[int, torch.Generator], Tensor],
    steps: int,
    generator: torch.Generator,
    batch: int = 512,
    lr: float = 1e-3,
    equal_fraction: float = 0.25,
) -> list[float]:
    """Adam on the MeanFlow loss with a teacher's marginal field v(x, t) (distillation):
    x_t = t x1 + (1 - t) x0 (OT, sigma_min = 0), v = teacher_velocity(x_t, t), (r, t) from
    sample_times; cosine-decayed learning rate. Returns the loss of every step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    losses = []
    for _ in range(steps):
        x0 = torch.randn(batch, 2, generator=generator)
        x1 = sample_x1(batch, generator)
        r, t = sample_times(batch, equal_fraction, generator)
        x_t = t[:, None] * x1 + (1 - t[:, None]) * x0
        with torch.no_grad():
            v = teacher_velocity(x_t, t)
        loss = meanflow_loss(model, x_t, v, r, t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


def average_velocity_by_ode(
    v: Callable[[Tensor, Tensor], Tensor], x: Tensor, r: Tensor, t: Tensor, steps: int = 100
) -> Tensor:
    """u(x, r, t) = (X_{t->r}(x) - x) / (r - t) by an RK4 solve of the field v, each row
    from its own t to its own r: in s in [0, 1], dx/ds = (r - t) v(x, t + s (r - t)).
    x: [N, d], r, t: [N] with r != t."""
    from fmlib.solvers import integrate

    step = (r - t).to(x)
    if bool((step == 0).any()):
        raise ValueError("r must differ from t in every row (u(x, t, t) is v(x, t))")
    t = t.to(x)

    def scaled(y: Tensor, s: Tensor) -> Tensor:
        return step[:, None] * v(y, t + s * step)

    x_r = integrate(scaled, x, 0.0, 1.0, steps=steps, method="rk4").x
    return (x_r - x) / step[:, None]
