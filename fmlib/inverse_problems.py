"""Inverse problems with a flow prior: y = A x + noise, a Gaussian-mixture prior, and two
ways of sampling the posterior p(x | y) with the prior's flow, without retraining.

Observation model: y = A x + sigma_y eps, eps ~ N(0, I_m), A: [m, d], so
    p(y | x) = N(y; A x, sigma_y^2 I_m).

Exact posterior of a mixture prior q(x) = sum_k w_k N(x; m_k, S_k) (Bishop 2006, sec. 2.3.3,
for one component; the mixture by Bayes' rule component by component):
    p(x | y) = sum_k w'_k N(x; mu_k, C_k),
    w'_k proportional to w_k N(y; A m_k, A S_k A^T + sigma_y^2 I)      (the evidence of k),
    G_k = S_k A^T (A S_k A^T + sigma_y^2 I)^-1                          (the gain),
    mu_k = m_k + G_k (y - A m_k),   C_k = S_k - G_k A S_k.

Posterior sampling with the prior's velocity u_t on the OT path (x_t = t x1 + (1 - t) x0):
- guidance through the one-step estimate x1_hat(x, t) = x + (1 - t) u_t(x) (= E[x1 | x_t = x]
  for the exact field). The posterior's field is u_t(x) + (1 - t)/t grad_x log p(y | x_t = x);
  DPS (Chung et al. 2023) replaces p(y | x_t) by N(y; A x1_hat, sigma_y^2 I), PiGDM (Song et
  al. 2023; for flows Pokle et al. 2024) by N(y; A x1_hat, sigma_y^2 I + r_t^2 A A^T) with
  r_t^2 = (1 - t)^2 / (t^2 + (1 - t)^2); both differentiate through x1_hat (autograd).
  Approximations: biased, even with the exact prior field and many steps.
- importance resampling of the source: x0 ~ N(0, I), x1 = the ODE solve of the prior flow,
  weights proportional to p(y | x1), resampled. Exact as the number of proposals grows (for a
  deterministic flow that pushes N(0, I) onto the prior); its cost is the effective sample size
  ESS = (sum w)^2 / sum w^2, which collapses as sigma_y -> 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fmlib.checks import Field, check_int
from fmlib.marginal import GaussianMixture
from fmlib.solvers import integrate

GUIDANCE = ("DPS", "ΠGDM")


def _check_observation(A: Tensor, sigma_y: float, d: int | None = None) -> None:
    if not isinstance(A, Tensor) or A.dim() != 2:
        raise ValueError(f"A must be a [m, d] tensor, got {getattr(A, 'shape', type(A))}")
    if d is not None and A.shape[1] != d:
        raise ValueError(f"A must have d = {d} columns, got {A.shape[1]}")
    if not 0 < sigma_y < math.inf:
        raise ValueError(f"sigma_y must be in (0, inf), got {sigma_y}")


def observe(x: Tensor, A: Tensor, sigma_y: float, generator: torch.Generator | None = None):
    """y = A x + sigma_y eps, eps ~ N(0, I). x: [N, d] -> [N, m]."""
    _check_observation(A, sigma_y, x.shape[1])
    eps = torch.randn(x.shape[0], A.shape[0], generator=generator, dtype=x.dtype)
    return x @ A.T.to(x) + sigma_y * eps


def log_likelihood(x: Tensor, A: Tensor, y: Tensor, sigma_y: float) -> Tensor:
    """log p(y | x) = log N(y; A x, sigma_y^2 I_m). x: [N, d], y: [m] -> [N]."""
    _check_observation(A, sigma_y, x.shape[1])
    r = y.to(x) - x @ A.T.to(x)
    m = A.shape[0]
    return -(r**2).sum(1) / (2 * sigma_y**2) - m / 2 * math.log(2 * math.pi * sigma_y**2)


def _log_normal(x: Tensor, mean: Tensor, cov: Tensor) -> Tensor:
    """log N(x; mean, cov), batched over leading dims: x, mean [..., m], cov [..., m, m]."""
    chol = torch.linalg.cholesky(cov)
    z = torch.linalg.solve_triangular(chol, (x - mean)[..., None], upper=False)[..., 0]
    half_log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (z**2).sum(-1) - half_log_det - x.shape[-1] / 2 * math.log(2 * math.pi)


@dataclass
class MixturePosterior:
    """p(x | y) = sum_k weights_k N(x; means_k, covs_k): weights [K], means [K, d],
    covs [K, d, d]."""

    weights: Tensor
    means: Tensor
    covs: Tensor

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """k ~ Categorical(weights), x = means_k + L_k z (L_k L_k^T = covs_k). -> [n, d]."""
        check_int("n", n, 0)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        chol = torch.linalg.cholesky(self.covs)
        return self.means[k] + (chol[k] @ z[..., None])[..., 0]

    def _log_joint(self, x: Tensor) -> Tensor:
        """log w'_k + log N(x; mu_k, C_k). x: [N, d] -> [N, K]."""
        log_n = _log_normal(x.to(self.means)[:, None, :], self.means[None], self.covs[None])
        return torch.log(self.weights) + log_n

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x | y) = logsumexp_k [log w'_k + log N(x; mu_k, C_k)]. x: [N, d] -> [N]."""
        return torch.logsumexp(self._log_joint(x), dim=1)

    def component_probs(self, x: Tensor) -> Tensor:
        """P(k | x) under the posterior mixture: [N, K] (which mode a sample belongs to)."""
        return torch.softmax(self._log_joint(x), dim=1)


def mixture_posterior(
    prior: GaussianMixture, A: Tensor, y: Tensor, sigma_y: float
) -> MixturePosterior:
    """The exact posterior of y = A x + sigma_y eps under a Gaussian-mixture prior (module
    docstring): w'_k proportional to w_k N(y; A m_k, A S_k A^T + sigma_y^2 I), mu_k = m_k +
    G_k (y - A m_k), C_k = S_k - G_k A S_k, G_k = S_k A^T (A S_k A^T + sigma_y^2 I)^-1."""
    _check_observation(A, sigma_y, prior.dim)
    m, d = prior.means, prior.dim
    A, y = A.to(m), y.to(m).reshape(-1)
    if y.shape != (A.shape[0],):
        raise ValueError(f"y must have m = {A.shape[0]} entries, got {tuple(y.shape)}")
    S = prior.stds[:, None, None] ** 2 * torch.eye(d, dtype=m.dtype)  # [K, d, d]
    evidence_cov = A @ S @ A.T + sigma_y**2 * torch.eye(A.shape[0], dtype=m.dtype)  # [K, m, m]
    gain = S @ A.T @ torch.linalg.inv(evidence_cov)  # [K, d, m]
    residual = y - m @ A.T  # [K, m]
    means = m + (gain @ residual[..., None])[..., 0]
    covs = S - gain @ A @ S
    log_w = torch.log(prior.weights) + _log_normal(y.expand_as(residual), m @ A.T, evidence_cov)
    return MixturePosterior(torch.softmax(log_w, dim=0), means, (covs + covs.mT) / 2)


def one_step_estimate(u: Field, x: Tensor, t: Tensor) -> Tensor:
    """x1_hat = x + (1 - t) u_t(x): one Euler step to t = 1 (OT path; = E[x1 | x_t = x] for
    the exact marginal field). x: [N, d], t: [N] -> [N, d]."""
    return x + (1 - t)[:, None] * u(x, t)


def guided_field(
    u: Field, A: Tensor, y: Tensor, sigma_y: float, method: str = "DPS", scale: float = 1.0
) -> Field:
    """u_t(x) + scale (1 - t)/t grad_x log N(y; A x1_hat(x, t), Sigma_t), x1_hat =
    `one_step_estimate`, Sigma_t = sigma_y^2 I (DPS) or sigma_y^2 I + r_t^2 A A^T (PiGDM,
    r_t^2 = (1 - t)^2 / (t^2 + (1 - t)^2)). At t = 0 the factor (1 - t)/t is infinite and the
    gradient 0 (x1_hat is the prior mean wherever x is): the term is taken as 0 there."""
    if method not in GUIDANCE:
        raise ValueError(f"method must be one of {GUIDANCE}, got {method!r}")

    def field(x: Tensor, t: Tensor) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            v = u(x, t)
            x1_hat = x + (1 - t)[:, None] * v
            t0 = float(t[0])
            r2 = (1 - t0) ** 2 / (t0**2 + (1 - t0) ** 2) if method == "ΠGDM" else 0.0
            cov = sigma_y**2 * torch.eye(A.shape[0], dtype=x.dtype) + r2 * A.to(x) @ A.to(x).T
            r = y.to(x) - x1_hat @ A.T.to(x)  # [N, m]
            log_lik = -0.5 * (r * torch.linalg.solve(cov, r.T).T).sum()
            (grad,) = torch.autograd.grad(log_lik, x)
        weight = torch.where(t > 0, (1 - t) / t.clamp_min(1e-12), torch.zeros_like(t))
        return (v + scale * weight[:, None] * grad).detach()

    return field


def guided_sample(
    u: Field,
    x0: Tensor,
    A: Tensor,
    y: Tensor,
    sigma_y: float,
    steps: int = 100,
    method: str = "DPS",
    scale: float = 1.0,
    trajectory: bool = False,
):
    """Euler from x0 ~ N(0, I) with `guided_field`: fmlib.solvers.integrate's ODESolution."""
    _check_observation(A, sigma_y, x0.shape[1])
    field = guided_field(u, A, y, sigma_y, method, scale)
    return integrate(field, x0, steps=steps, method="euler", trajectory=trajectory)


def effective_sample_size(log_w: Tensor) -> float:
    """ESS = (sum w)^2 / sum w^2 of unnormalised log-weights [N] (Kong 1992): N for equal
    weights, 1 when one weight dominates."""
    w = torch.softmax(log_w.double(), dim=0)
    return float(1.0 / (w**2).sum())


@dataclass
class Resampled:
    """Importance resampling's result: samples [n, d], the index of each in the proposals
    [n], the proposals x1 [N, d] and their log-weights [N], and the ESS of the weights."""

    samples: Tensor
    index: Tensor
    proposals: Tensor
    log_w: Tensor
    ess: float


def importance_resample(
    u: Field,
    x0: Tensor,
    A: Tensor,
    y: Tensor,
    sigma_y: float,
    n: int,
    steps: int = 100,
    method: str = "rk4",
    generator: torch.Generator | None = None,
) -> Resampled:
    """x1 = ODE solve of the prior flow from x0 ~ N(0, I) [N, d]; log w = log p(y | x1);
    n indices drawn with replacement with probabilities w / sum w."""
    _check_observation(A, sigma_y, x0.shape[1])
    check_int("n", n)
    x1 = integrate(u, x0, steps=steps, method=method).x
    log_w = log_likelihood(x1, A, y, sigma_y)
    probs = torch.softmax(log_w, dim=0)
    index = torch.multinomial(probs, n, replacement=True, generator=generator)
    return Resampled(x1[index], index, x1, log_w, effective_sample_size(log_w))
