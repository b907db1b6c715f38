"""Exact marginal probability paths and velocity fields for a Gaussian-mixture target.

The marginalization trick (Lipman et al. 2023, eqs. 6 and 8; seed 000):

    p_t(x) = int p_t(x | x1) q(x1) dx1,
    u_t(x) = int u_t(x | x1) p_{1|t}(x1 | x) dx1,   p_{1|t}(x1 | x) = p_t(x | x1) q(x1) / p_t(x).

When q = sum_k w_k N(m_k, s_k^2 I) is a Gaussian mixture (a finite point set is the case
s_k = 0) and the path is affine, x_t = alpha_t x1 + sigma_t x0, everything is closed form:
component k of p_t is N(alpha_t m_k, v_k I) with v_k = alpha_t^2 s_k^2 + sigma_t^2, and

    p_t(x) = sum_k w_k N(x | alpha_t m_k, v_k I),
    P(k | x_t = x) = w_k N(x | alpha_t m_k, v_k I) / p_t(x),
    E[x1 | x_t = x, k] = m_k + alpha_t s_k^2 / v_k (x - alpha_t m_k),
    u_t(x) = sum_k P(k | x) E[u_t(x | x1) | x, k],

and because u_t(x | x1) is affine in x1,
    E[u_t(x | x1) | x, k] = sigma_t'/sigma_t (x - alpha_t E_k) + alpha_t' E_k
                          = sigma_t sigma_t' (x - alpha_t m_k) / v_k + alpha_t' E_k,
using x - alpha_t E_k = sigma_t^2 / v_k (x - alpha_t m_k). The second form only divides
by v_k, so it is finite whenever v_k > 0 (e.g. at t = 1 for components with s_k > 0).

Singular edge: v_k = 0 when sigma_t = 0 (OT with sigma_min = 0, or VP, at t = 1) and the
component is a point (s_k = 0). Then p_t is a sum of deltas: `marginal_log_prob` raises
ValueError (no density); `posterior` returns the limit sigma_t -> 0, the nearest point
(ties split by weight; point components get 0 when the mixture also has s_k > 0
components); `marginal_velocity` uses for such a component the path's own conditional
u_t(x | m_k) (for OT: m_k - x, see OTPath.u_t). Never NaN.

Cost: the functions build [N, K, d] tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fmlib.paths import GaussianPath, Time, as_time


class GaussianMixture:
    """q(x) = sum_k w_k N(x | m_k, s_k^2 I); s_k = 0 makes component k a point mass.

    means: [K, d]; stds: float or [K], >= 0 (all 0 = a finite point set);
    weights: [K], > 0 (normalized to sum to 1), or None for uniform weights.
    """

    def __init__(
        self, means: Tensor, stds: float | Tensor = 0.0, weights: Tensor | None = None
    ) -> None:
        means = torch.as_tensor(means)
        if not means.is_floating_point():
            means = means.to(torch.get_default_dtype())
        if means.dim() != 2 or means.shape[0] == 0:
            raise ValueError(f"means must have shape [K, d] with K >= 1, got {tuple(means.shape)}")
        k = means.shape[0]
        stds = torch.as_tensor(stds, dtype=means.dtype, device=means.device)
        if stds.dim() == 0:
            stds = stds.expand(k).clone()
        if stds.shape != (k,):
            raise ValueError(f"stds must be a float or have shape [K] = [{k}], got {stds.shape}")
        bad = stds[~(torch.isfinite(stds) & (stds >= 0))]
        if bad.numel() > 0:
            raise ValueError(f"stds must be in [0, inf), got {bad[0].item():g}")
        if weights is None:
            weights = torch.full((k,), 1.0 / k, dtype=means.dtype, device=means.device)
        weights = torch.as_tensor(weights, dtype=means.dtype, device=means.device)
        if weights.shape != (k,):
            raise ValueError(f"weights must have shape [K] = [{k}], got {tuple(weights.shape)}")
        bad = weights[~(torch.isfinite(weights) & (weights > 0))]
        if bad.numel() > 0:
            raise ValueError(f"weights must be in (0, inf), got {bad[0].item():g}")
        self.means, self.stds = means, stds
        self.weights = weights / weights.sum()

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def is_point_set(self) -> bool:
        return bool((self.stds == 0).all())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x1 ~ q: pick k ~ Categorical(w), then x1 = m_k + s_k z, z ~ N(0, I). -> [n, d]."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer in [0, inf), got {n!r}")
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(
            n, self.dim, generator=generator, dtype=self.means.dtype, device=self.means.device
        )
        return self.means[k] + self.stds[k, None] * z

    def log_prob(self, x: Tensor) -> Tensor:
        """log q(x) = logsumexp_k [log w_k + log N(x | m_k, s_k^2 I)]. x: [N, d] -> [N].

        ValueError if some s_k = 0: a point set has no density.
        """
        if (self.stds == 0).any():
            raise ValueError("stds must be > 0 for log_prob: a point set (std 0) has no density")
        _check_points(self, x)
        m, s2 = self.means.to(x), self.stds.to(x) ** 2
        sq = ((x[:, None, :] - m[None]) ** 2).sum(-1)  # [N, K]
        log_n = -sq / (2 * s2) - self.dim / 2 * torch.log(2 * math.pi * s2)
        return torch.logsumexp(torch.log(self.weights.to(x)) + log_n, dim=1)

    def __repr__(self) -> str:
        s = self.stds
        std = f"{s[0].item():g}" if bool((s == s[0]).all()) else f"{s.min():g}..{s.max():g}"
        return f"GaussianMixture(n_components={self.n_components}, dim={self.dim}, std={std})"


def _check_points(target: GaussianMixture, x: Tensor) -> None:
    if x.dim() != 2 or x.shape[1] != target.dim:
        raise ValueError(f"x must have shape [N, {target.dim}], got {tuple(x.shape)}")


@dataclass
class _Components:
    """Per-component quantities of p_t at (x, t); shapes [N, 1], [N, K], [N, K, d]."""

    t: Tensor  # [N]
    alpha: Tensor  # [N, 1]
    var: Tensor  # v_k = alpha^2 s_k^2 + sigma^2, [N, K]
    diff: Tensor  # x - alpha m_k, [N, K, d]
    degenerate: Tensor  # v_k == 0, [N, K] bool

    @property
    def safe_var(self) -> Tensor:
        return torch.where(self.degenerate, torch.ones_like(self.var), self.var)

    def log_normal(self) -> Tensor:
        """log N(x | alpha m_k, v_k I) with the safe variance 1 where v_k = 0. -> [N, K]."""
        v, d = self.safe_var, self.diff.shape[-1]
        return -(self.diff**2).sum(-1) / (2 * v) - d / 2 * torch.log(2 * math.pi * v)


def _components(path: GaussianPath, target: GaussianMixture, x: Tensor, t: Time) -> _Components:
    _check_points(target, x)
    t = as_time(t, like=x)
    if t.dim() == 0 or t.shape == (1,):
        t = t.reshape(()).expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape [N] = [{x.shape[0]}], got {t.shape}")
    alpha, sigma = path.alpha_t(t)[:, None], path.sigma_t(t)[:, None]
    m, s2 = target.means.to(x), target.stds.to(x) ** 2
    var = alpha**2 * s2 + sigma**2
    diff = x[:, None, :] - alpha[:, :, None] * m[None]
    return _Components(t, alpha, var, diff, var == 0)


def marginal_log_prob(path: GaussianPath, target: GaussianMixture, x: Tensor, t: Time) -> Tensor:
    """log p_t(x), p_t(x) = int p_t(x | x1) q(x1) dx1 = sum_k w_k N(x | alpha_t m_k, v_k I).

    v_k = alpha_t^2 s_k^2 + sigma_t^2; computed with logsumexp. x: [N, d]; t: [N] or scalar
    -> [N]. ValueError where v_k = 0 (sigma_t = 0 with point components: no density).
    """
    c = _components(path, target, x, t)
    if c.degenerate.any():
        raise ValueError(
            "p_t has no density here: sigma_t = 0 and the target has point components "
            "(std 0); use t < 1 or sigma_min > 0"
        )
    return torch.logsumexp(torch.log(target.weights.to(x)) + c.log_normal(), dim=1)


def _posterior(c: _Components, log_w: Tensor) -> Tensor:
    logits = log_w + c.log_normal()
    if c.degenerate.any():  # sigma_t = 0 limit (see the module docstring)
        sq = (c.diff**2).sum(-1)
        all_deg = c.degenerate.all(dim=1, keepdim=True)
        nearest = sq == sq.min(dim=1, keepdim=True).values
        keep = all_deg & nearest
        logits = torch.where(c.degenerate, torch.where(keep, log_w, -math.inf), logits)
    return torch.softmax(logits, dim=1)


def posterior(path: GaussianPath, target: GaussianMixture, x: Tensor, t: Time) -> Tensor:
    """P(k | x_t = x) = w_k N(x | alpha_t m_k, v_k I) / p_t(x). x: [N, d] -> [N, K].

    For a point set this is p_{1|t}(x1 = m_k | x). At sigma_t = 0 with point components it
    returns the limit sigma_t -> 0: the nearest point (see the module docstring).
    """
    c = _components(path, target, x, t)
    return _posterior(c, torch.log(target.weights.to(x)))


def marginal_velocity(path: GaussianPath, target: GaussianMixture, x: Tensor, t: Time) -> Tensor:
    """u_t(x) = int u_t(x | x1) p_{1|t}(x1 | x) dx1 = sum_k P(k | x) E[u_t(x | x1) | x, k].

    Lipman et al. (2023), eq. (8). With E_k = m_k + alpha_t s_k^2 / v_k (x - alpha_t m_k):
        E[u_t(x | x1) | x, k] = sigma_t sigma_t' (x - alpha_t m_k) / v_k + alpha_t' E_k.
    Where v_k = 0 (a point at sigma_t = 0) the component's field is the path's own
    u_t(x | m_k) (OT, sigma_min = 0, t = 1: m_k - x, with the nearest-point posterior).
    x: [N, d]; t: [N] or scalar -> [N, d].
    """
    c = _components(path, target, x, t)
    w = _posterior(c, torch.log(target.weights.to(x)))
    m, s2 = target.means.to(x), target.stds.to(x) ** 2
    e_k = m[None] + (c.alpha * s2 / c.safe_var)[..., None] * c.diff
    sds, d_alpha = path.sigma_d_sigma_t(c.t)[:, None], path.d_alpha_t(c.t)[:, None, None]
    u_k = (sds / c.safe_var)[..., None] * c.diff + d_alpha * e_k
    if c.degenerate.any():
        u_point = path.u_t(x[:, None, :].expand_as(c.diff), m[None].expand_as(c.diff), c.t)
        u_k = torch.where(c.degenerate[..., None], u_point, u_k)
    return (w[..., None] * u_k).sum(dim=1)
