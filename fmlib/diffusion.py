"""Flows and diffusion: four ways to write one affine Gaussian path's field, and the SDEs that
share its marginals.

Path (course time: t = 0 noise, t = 1 data): x_t = alpha_t x1 + sigma_t x0, x0 ~ N(0, I).
Given x_t = x, a network may predict any of

    data   x1_hat(x) = E[x1 | x_t = x],        noise  eps_hat(x) = E[x0 | x_t = x],
    score  s(x) = grad log p_t(x) = -eps_hat(x) / sigma_t          (Tweedie / Vincent 2011),
    velocity u_t(x) = alpha_t' x1_hat(x) + sigma_t' eps_hat(x)     (Lipman et al. 2023, eq. 8),

tied by x = alpha_t x1_hat + sigma_t eps_hat. Solving the two linear equations for
(x1_hat, eps_hat), with D_t = alpha_t' sigma_t^2 - alpha_t sigma_t sigma_t' (OT path: D_t =
sigma_t; products sigma sigma' only, finite on the VP path too):

    x1_hat = (sigma_t^2 u - sigma_t sigma_t' x) / D_t,
    eps_hat = sigma_t (alpha_t' x - alpha_t u) / D_t,      s = -(alpha_t' x - alpha_t u) / D_t,
    u = (alpha_t' x + D_t s) / alpha_t
      = alpha_t' x1_hat + sigma_t sigma_t' (x - alpha_t x1_hat) / sigma_t^2
      = alpha_t' (x - sigma_t eps_hat) / alpha_t + sigma_t' eps_hat.

Singular ends: from the velocity, all three divide by D_t, which vanishes with sigma_t when
sigma_t' stays finite (OT: t = 1 when sigma_min = 0: 0/0; on VP, sigma_t sigma_t' = -alpha_t
alpha_t' gives D_t = alpha_t' > 0); back to the velocity, s and eps_hat divide by alpha_t (t = 0:
x_0 says nothing about x1), x1_hat by sigma_t^2 (t = 1 when sigma_min = 0).

SDEs with the same marginals (Karras et al. 2022, eq. 6, in diffusion time; Fokker-Planck):

    dX = [u_t(X) + (g_t^2 / 2) s_t(X)] dt + g_t dW,   for any g_t >= 0; g = 0 is the ODE,

because div(p (g^2/2) grad log p) = (g^2/2) Laplacian p cancels the diffusion term. DDPM's
ancestral step is a discretisation of the member g_t^2 = 2 D_t / alpha_t (its reverse-time
noise), and DDIM (eta = 0) of the probability-flow ODE g = 0 (Song et al. 2021, eq. 13).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from fmlib.checks import Field, LogDensity, check_int
from fmlib.continuity import continuity_residual, grid_axis, grid_points
from fmlib.divergence import batch_time
from fmlib.marginal import GaussianMixture, _components, _posterior
from fmlib.paths import GaussianPath, Time

Noise = Callable[[Tensor], Tensor]  # g(t: [N] or 0-d) -> g_t, same shape


def _schedule(path: GaussianPath, t: Time, x: Tensor) -> tuple[Tensor, ...]:
    """(alpha, sigma, alpha', sigma sigma', D) at t, each shaped to broadcast against x."""
    t = batch_time(t, x)
    cols = [
        f(t).to(x).reshape(-1, *([1] * (x.dim() - 1)))
        for f in (path.alpha_t, path.sigma_t, path.d_alpha_t, path.sigma_d_sigma_t)
    ]
    alpha, sigma, d_alpha, sds = cols
    return alpha, sigma, d_alpha, sds, d_alpha * sigma**2 - alpha * sds


def denominator(path: GaussianPath, t: Time) -> Tensor:
    """D_t = alpha_t' sigma_t^2 - alpha_t sigma_t sigma_t' (OT path: sigma_t)."""
    alpha, sigma = path.alpha_t(t), path.sigma_t(t)
    return path.d_alpha_t(t) * sigma**2 - alpha * path.sigma_d_sigma_t(t)


# --- conversions: velocity -> the others -------------------------------------------------
def velocity_to_x1(path: GaussianPath, x: Tensor, t: Time, u: Tensor) -> Tensor:
    """x1_hat = (sigma_t^2 u - sigma_t sigma_t' x) / D_t. x, u: [N, d]; t: [N] or scalar."""
    _, sigma, _, sds, den = _schedule(path, t, x)
    return (sigma**2 * u - sds * x) / den


def velocity_to_eps(path: GaussianPath, x: Tensor, t: Time, u: Tensor) -> Tensor:
    """eps_hat = sigma_t (alpha_t' x - alpha_t u) / D_t (0/0 where sigma_t = 0)."""
    alpha, sigma, d_alpha, _, den = _schedule(path, t, x)
    return sigma * (d_alpha * x - alpha * u) / den


def velocity_to_score(path: GaussianPath, x: Tensor, t: Time, u: Tensor) -> Tensor:
    """s = grad log p_t = -(alpha_t' x - alpha_t u) / D_t (singular where D_t = 0)."""
    alpha, _, d_alpha, _, den = _schedule(path, t, x)
    return -(d_alpha * x - alpha * u) / den


# --- conversions: the others -> velocity -------------------------------------------------
def x1_to_velocity(path: GaussianPath, x: Tensor, t: Time, x1_hat: Tensor) -> Tensor:
    """u = alpha_t' x1_hat + sigma_t sigma_t' (x - alpha_t x1_hat) / sigma_t^2 (singular at
    sigma_t = 0)."""
    alpha, sigma, d_alpha, sds, _ = _schedule(path, t, x)
    return d_alpha * x1_hat + sds * (x - alpha * x1_hat) / sigma**2


def eps_to_velocity(path: GaussianPath, x: Tensor, t: Time, eps_hat: Tensor) -> Tensor:
    """u = alpha_t' (x - sigma_t eps_hat) / alpha_t + sigma_t' eps_hat (singular at alpha_t = 0)."""
    alpha, sigma, d_alpha, _, _ = _schedule(path, t, x)
    d_sigma = path.d_sigma_t(batch_time(t, x)).to(x).reshape(alpha.shape)
    return d_alpha * (x - sigma * eps_hat) / alpha + d_sigma * eps_hat


def score_to_velocity(path: GaussianPath, x: Tensor, t: Time, score: Tensor) -> Tensor:
    """u = (alpha_t' x + D_t s) / alpha_t (singular at alpha_t = 0)."""
    alpha, _, d_alpha, _, den = _schedule(path, t, x)
    return (d_alpha * x + den * score) / alpha


# --- exact predictions for a Gaussian mixture ---------------------------------------------
@dataclass
class Predictions:
    """E[x1 | x_t = x], E[x0 | x_t = x] and grad log p_t(x), each [N, d]."""

    x1: Tensor
    eps: Tensor
    score: Tensor


def mixture_predictions(
    path: GaussianPath, target: GaussianMixture, x: Tensor, t: Time
) -> Predictions:
    """Closed forms for q = sum_k w_k N(m_k, s_k^2 I), with v_k = alpha_t^2 s_k^2 + sigma_t^2:

        E[x1 | x, k] = m_k + alpha_t s_k^2 (x - alpha_t m_k) / v_k,
        E[x0 | x, k] = sigma_t (x - alpha_t m_k) / v_k,
        grad log p_t(x) = -sum_k P(k | x) (x - alpha_t m_k) / v_k,

    averaged with the posterior P(k | x) of fmlib.marginal. Needs every v_k > 0.
    """
    c = _components(path, target, x, t)
    if c.degenerate.any():
        raise ValueError("v_k = 0 (sigma_t = 0 and a point component): no score; use t < 1")
    w = _posterior(c, torch.log(target.weights.to(x)))[..., None]  # [N, K, 1]
    m, s2 = target.means.to(x), target.stds.to(x) ** 2
    z = c.diff / c.var[..., None]  # (x - alpha m_k) / v_k
    sigma = path.sigma_t(c.t).to(x)[:, None]
    x1 = (w * (m[None] + (c.alpha[..., None] * s2[None, :, None]) * z)).sum(1)
    return Predictions(x1=x1, eps=sigma * (w * z).sum(1), score=-(w * z).sum(1))


# --- the SDE family -----------------------------------------------------------------------
def score_field(path: GaussianPath, u: Field) -> Field:
    """The score field s_t(x) = velocity_to_score(path, x, t, u_t(x)) of a velocity field u."""

    def s(x: Tensor, t: Tensor) -> Tensor:
        return velocity_to_score(path, x, t, u(x, t))

    return s


def _noise_at(g: Noise, t: Tensor, x: Tensor) -> Tensor:
    """g_t as a scalar or a column [N, 1, ...] (a per-particle noise level) against x."""
    g_t = g(batch_time(t, x)).to(x)
    return g_t.reshape(-1, *([1] * (x.dim() - 1))) if g_t.dim() else g_t


def sde_drift(u: Field, score: Field, g: Noise) -> Field:
    """b_t(x) = u_t(x) + (g_t^2 / 2) grad log p_t(x): the drift that keeps the marginals p_t.

    g(t) may return one level per particle ([N]): each row gets its own member of the family.
    """

    def b(x: Tensor, t: Tensor) -> Tensor:
        return u(x, t) + _noise_at(g, t, x) ** 2 / 2 * score(x, t)

    return b


def scaled_sigma(path: GaussianPath, gamma: float) -> Noise:
    """g_t = gamma sigma_t: noise that fades as the path reaches the data (gamma = 0: the ODE)."""
    if not (gamma >= 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be in [0, inf), got {gamma}")
    return lambda t: gamma * path.sigma_t(t)


def ddpm_noise(path: GaussianPath) -> Noise:
    """g_t = sqrt(2 D_t / alpha_t): the noise of DDPM's ancestral step as its step -> 0
    (OT path: sqrt(2 sigma_t / t), infinite at t = 0)."""
    return lambda t: torch.sqrt(2 * denominator(path, t) / path.alpha_t(t))


def euler_maruyama(
    drift: Field,
    g: Noise,
    x0: Tensor,
    steps: int,
    generator: torch.Generator | None = None,
    t0: float = 0.0,
    t1: float = 1.0,
    trajectory: bool = False,
) -> Tensor:
    """X_{k+1} = X_k + h b_{t_k}(X_k) + g_{t_k} sqrt(h) Z_k, Z_k ~ N(0, I), h = (t1 - t0)/steps.

    One fresh Z_k per step (Kloeden & Platen 1992, ch. 9). g(t) may return a level per
    particle ([N]). Returns X_K: [N, d], or with trajectory=True all iterates
    [steps + 1, N, d]. Weak order 1: E f(X_K) is off by O(h).
    """
    check_int("steps", steps)
    if not 0.0 <= t0 < t1 <= 1.0:
        raise ValueError(f"need 0 <= t0 < t1 <= 1, got t0 = {t0}, t1 = {t1}")
    h = (t1 - t0) / steps
    x, states = x0, [x0]
    for k in range(steps):
        t = torch.tensor(t0 + k * h, dtype=x.dtype)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = x + h * drift(x, t) + _noise_at(g, t, x) * math.sqrt(h) * z
        if trajectory:
            states.append(x)
    return torch.stack(states) if trajectory else x


def ddim_step(
    path: GaussianPath,
    u: Field,
    x: Tensor,
    t: float,
    t_next: float,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """x_{t'} = alpha_{t'} x1_hat + sqrt(sigma_{t'}^2 - c^2) eps_hat + c z   (Song et al. 2021a).

    x1_hat, eps_hat from the velocity (conversions above), evaluated at t < 1. c^2 = eta^2
    sigma_{t'}^2 (1 - r^2), r = alpha_t sigma_{t'} / (alpha_{t'} sigma_t): eta = 0 is DDIM
    (deterministic), eta = 1 DDPM's ancestral step, a draw from p(x_{t'} | x_t, x1 = x1_hat).
    """
    if not 0.0 <= t < t_next <= 1.0:
        raise ValueError(f"need 0 <= t < t_next <= 1, got t = {t}, t_next = {t_next}")
    tt = torch.tensor(t, dtype=x.dtype)
    v = u(x, batch_time(tt, x))
    x1_hat, eps_hat = velocity_to_x1(path, x, tt, v), velocity_to_eps(path, x, tt, v)
    a, s = float(path.alpha_t(tt)), float(path.sigma_t(tt))
    a_next = float(path.alpha_t(torch.tensor(t_next, dtype=torch.float64)))
    s_next = float(path.sigma_t(torch.tensor(t_next, dtype=torch.float64)))
    r = a * s_next / (a_next * s)
    c = eta * s_next * math.sqrt(max(1.0 - r * r, 0.0))
    x_next = a_next * x1_hat + math.sqrt(max(s_next**2 - c**2, 0.0)) * eps_hat
    if c > 0:
        x_next = x_next + c * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x_next


def ddim_sample(
    path: GaussianPath,
    u: Field,
    x0: Tensor,
    steps: int,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """`steps` ddim_step's on the uniform grid t_k = k / steps, from x0 at t = 0 to t = 1."""
    check_int("steps", steps)
    x = x0
    for k in range(steps):
        x = ddim_step(path, u, x, k / steps, (k + 1) / steps, eta, generator)
    return x


# --- Fokker-Planck on a grid (notebook 03's continuity check, plus diffusion) -------------
def fokker_planck_residual(
    log_p: LogDensity,
    drift: Field,
    g: float,
    t: float,
    lim: float = 3.0,
    n: int = 64,
    dt: float | None = None,
) -> Tensor:
    """R = d/dt p_t + div(p_t b_t) - (g^2 / 2) Laplacian p_t on the n x n grid of [-lim, lim]^2.

    The first two terms are fmlib.continuity.continuity_residual; the Laplacian is the
    five-point stencil (p(x + h e1) + p(x - h e1) + p(x + h e2) + p(x - h e2) - 4 p(x)) / h^2,
    second order like the rest. For the SDE dX = b dt + g dW with marginals p_t the exact R
    is 0 (Fokker-Planck), so R -> 0 like h^2. Returns the image R: [n, n].
    """
    if not (g >= 0 and math.isfinite(g)):
        raise ValueError(f"g must be in [0, inf), got {g}")
    residual = continuity_residual(log_p, drift, t, lim=lim, n=n, dt=dt)
    axis, h = grid_axis(lim, n)
    wide = torch.cat([axis[:1] - h, axis, axis[-1:] + h])
    x = grid_points(wide)
    p = log_p(x, torch.full((len(x),), float(t), dtype=x.dtype)).exp().reshape(n + 2, n + 2)
    lap = (p[1:-1, 2:] + p[1:-1, :-2] + p[2:, 1:-1] + p[:-2, 1:-1] - 4 * p[1:-1, 1:-1]) / h**2
    return residual - g**2 / 2 * lap
