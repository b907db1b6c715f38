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

Cost: the functions build [N, K, d] tensors. `MixtureMarginal` evaluates the same closed
forms for an equal-weight, equal-std mixture in a few [N, K] operations (the widget panels
of notebooks 03, 04 and 07 integrate with it at every redraw).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fmlib.checks import check_int
from fmlib.paths import GaussianPath, OTPath, Time, as_time


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
        check_int("n", n, 0)
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


class MixtureMarginal:
    """The marginal path of an equal-weight, equal-std mixture, in a few tensor operations.

    The closed forms above for an affine path (x_t = alpha_t x1 + sigma_t x0)
    specialised to q = (1/K) sum_k N(m_k, s^2 I): every component of p_t has the same
    variance v = alpha_t^2 s^2 + sigma_t^2, so with logits l_k = -|x - alpha_t m_k|^2 / 2v
    and P(k | x) = softmax_k(l_k),

        log p_t(x) = logsumexp_k l_k + log(1/K) - (d/2) log(2 pi v),
        u_t(x) = c (x - alpha_t mbar) + alpha_t' mbar,   mbar = sum_k P(k | x) m_k,
        c = (sigma_t sigma_t' + alpha_t' alpha_t s^2) / v.

    The same numbers as marginal_log_prob / marginal_velocity / posterior (to round-off)
    with ~15 tensor operations instead of ~60: the panels evaluate the field hundreds of
    times per redraw. One time for the whole batch (a float, a 0-d tensor or the expanded
    [N] time of fmlib.solvers) is handled as a Python float; a [N] tensor row by row.
    Where v = 0 (a point at sigma_t = 0) it defers to fmlib.marginal. x: [N, d].
    """

    def __init__(self, path: GaussianPath, target: GaussianMixture) -> None:
        stds, weights = target.stds, target.weights
        if not (bool((stds == stds[0]).all()) and bool((weights == weights[0]).all())):
            raise ValueError("target must have equal weights and one std for every component")
        self.path, self.target = path, target
        self.s2 = float(stds[0]) ** 2  # the float64 square, as _components' stds.to(x) ** 2
        self._means: dict[torch.dtype, tuple[Tensor, Tensor]] = {}
        self._floats: dict[tuple[float, torch.dtype], tuple[float, ...]] = {}  # schedules

    def _m(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(m [K, d], [m, 1] [K, d + 1]) in the dtype of x."""
        if x.dtype not in self._means:
            m = self.target.means.to(x)
            self._means[x.dtype] = (m, torch.cat([m, torch.ones_like(m[:, :1])], dim=1))
        return self._means[x.dtype]

    def _schedule(self, x: Tensor, t: Time) -> tuple:
        """(alpha_t, sigma_t, alpha_t', sigma_t sigma_t', v): floats when t is one time for
        the batch, else [N, 1] tensors."""
        path = self.path
        if isinstance(t, Tensor) and (t.dim() == 0 or (t.dim() == 1 and t.stride(0) == 0)):
            t = t.reshape(-1)[0]  # one time: a 0-d tensor or an expanded one
            t = float(t) if t.dtype == x.dtype else t  # (as_time checks a float cheaper)
        t = as_time(t, like=x)  # validated, clamped and in x's dtype, as marginal_log_prob
        if t.dim() == 1 and len(t) > 0 and bool((t == t[0]).all()):
            t = t[0]  # one time repeated (torch.full, as fmlib.continuity's grids)
        t = float(t) if t.dim() == 0 else t.reshape(-1, 1)
        if isinstance(path, OTPath):  # alpha_t = t, sigma_t = 1 - (1 - sigma_min) t
            rate = -(1 - path.sigma_min)
            alpha, sigma, d_alpha = t, 1 + rate * t, 1.0
            sds = sigma * rate
        elif isinstance(t, float):  # solvers revisit the same times: remember them
            key = (t, x.dtype)
            if key not in self._floats:
                tt = torch.tensor(t, dtype=x.dtype)  # the path's schedule takes tensors
                funcs = (path.alpha_t, path.sigma_t, path.d_alpha_t, path.sigma_d_sigma_t)
                if len(self._floats) >= 4096:
                    self._floats.clear()
                self._floats[key] = tuple(float(f(tt)) for f in funcs)
            alpha, sigma, d_alpha, sds = self._floats[key]
        else:
            t = t.reshape(-1)
            funcs = (path.alpha_t, path.sigma_t, path.d_alpha_t, path.sigma_d_sigma_t)
            alpha, sigma, d_alpha, sds = (f(t).reshape(-1, 1) for f in funcs)
        return alpha, sigma, d_alpha, sds, alpha * alpha * self.s2 + sigma * sigma

    def _logits(self, x: Tensor, alpha, var) -> Tensor:
        """l_k = -|x - alpha m_k|^2 / 2v coordinate by coordinate: [N, K]."""
        m, _ = self._m(x)
        sq = (x[:, :1] - alpha * m[:, 0]) ** 2
        for j in range(1, x.shape[1]):
            sq += (x[:, j : j + 1] - alpha * m[:, j]) ** 2
        return sq.mul_(-0.5 / var)

    @staticmethod
    def _singular(var) -> bool:
        return var == 0 if isinstance(var, float) else bool((var == 0).any())

    def log_prob(self, x: Tensor, t: Time) -> Tensor:
        """log p_t(x): [N] (ValueError where p_t has no density, as marginal_log_prob)."""
        return self.log_prob_and_certainty(x, t)[0]

    def log_prob_and_certainty(self, x: Tensor, t: Time) -> tuple[Tensor, Tensor]:
        """(log p_t(x), max_k P(k | x)): two [N] from the same logits."""
        alpha, _, _, _, var = self._schedule(x, t)
        if self._singular(var):
            log_p = marginal_log_prob(self.path, self.target, x, t)  # raises: no density
            return log_p, posterior(self.path, self.target, x, t).max(dim=1).values
        d, log_w = x.shape[1], math.log(float(self.target.weights[0]))  # w_k = 1/K, as stored
        log_var = math.log(var) if isinstance(var, float) else torch.log(var).reshape(-1)
        norm = d / 2 * (math.log(2 * math.pi) + log_var) - log_w
        logits = self._logits(x, alpha, var)
        lse = torch.logsumexp(logits, dim=1)
        return lse - norm, (logits.amax(dim=1) - lse).exp()

    def posterior(self, x: Tensor, t: Time) -> Tensor:
        """P(k | x_t = x): [N, K]."""
        alpha, _, _, _, var = self._schedule(x, t)
        if self._singular(var):
            return posterior(self.path, self.target, x, t)
        return torch.softmax(self._logits(x, alpha, var), dim=1)

    def velocity(self, x: Tensor, t: Time) -> Tensor:
        """u_t(x): [N, d] (the signature of every field in fmlib)."""
        alpha, _, d_alpha, sds, var = self._schedule(x, t)
        if self._singular(var):
            return marginal_velocity(self.path, self.target, x, t)
        m, m1 = self._m(x)
        if isinstance(var, float):
            # l_k + |x|^2 / 2v = x.m_k alpha/v - alpha^2 |m_k|^2 / 2v: one matrix product
            # (softmax ignores the per-row constant |x|^2 / 2v)
            a = alpha / var
            logits = torch.addmm((m * m).sum(1) * (-0.5 * alpha * a), x, m.T * a)
        else:
            logits = self._logits(x, alpha, var)
        # sum_k softmax(l)_k [m_k, 1] in one product: numerator and normaliser together
        e = logits.sub_(logits.amax(dim=1, keepdim=True)).exp_() @ m1
        mbar = e[:, : x.shape[1]] / e[:, x.shape[1] :]
        c = (sds + d_alpha * alpha * self.s2) / var
        return c * (x - alpha * mbar) + d_alpha * mbar
