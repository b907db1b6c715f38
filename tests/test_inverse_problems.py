"""fmlib.inverse_problems against closed forms: the mixture posterior (Bayes' rule on a grid,
a one-component Kalman update), the one-step estimate (= E[x1 | x_t] for the exact field), DPS
guidance's closed form, importance resampling's exactness and its ESS."""

from __future__ import annotations

import math

import pytest
import torch

from fmlib import inverse_problems as ip
from fmlib.data import eight_gaussians_means
from fmlib.marginal import GaussianMixture, MixtureMarginal, marginal_velocity, posterior
from fmlib.paths import OTPath

D64 = torch.float64
PATH = OTPath(0.0)


def _prior() -> GaussianMixture:
    means = torch.tensor([[-1.0, 0.5], [2.0, 1.0], [0.5, -2.0]], dtype=D64)
    return GaussianMixture(
        means, torch.tensor([0.4, 0.7, 0.5], dtype=D64), torch.tensor([1, 2, 3.0])
    )


def _observation():
    return torch.tensor([[1.0, 0.5], [-0.3, 1.0]], dtype=D64), torch.tensor([0.7, 0.2], dtype=D64)


def test_posterior_equals_bayes_rule_on_a_grid():
    prior, (A, y) = _prior(), _observation()
    post = ip.mixture_posterior(prior, A, y, 0.4)
    axis = torch.linspace(-5, 5, 301, dtype=D64)
    h = float(axis[1] - axis[0])
    grid = torch.cartesian_prod(axis, axis)
    log_joint = prior.log_prob(grid) + ip.log_likelihood(grid, A, y, 0.4)
    p_grid = torch.softmax(log_joint, 0) / h**2
    tv = 0.5 * float((p_grid - post.log_prob(grid).exp()).abs().sum()) * h**2
    assert tv < 1e-9
    # a planted mistake (weights without the evidence) fails the same check
    wrong = ip.MixturePosterior(prior.weights, post.means, post.covs)
    assert 0.5 * float((p_grid - wrong.log_prob(grid).exp()).abs().sum()) * h**2 > 0.05


def test_one_component_is_the_kalman_update():
    m, s, sigma_y = torch.tensor([[1.0, -1.0]], dtype=D64), 0.8, 0.3
    A, y = torch.tensor([[2.0, 1.0]], dtype=D64), torch.tensor([0.5], dtype=D64)
    post = ip.mixture_posterior(GaussianMixture(m, s), A, y, sigma_y)
    S = s**2 * torch.eye(2, dtype=D64)
    precision = torch.linalg.inv(S) + A.T @ A / sigma_y**2  # C^-1 = S^-1 + A^T A / sigma^2
    cov = torch.linalg.inv(precision)
    mean = cov @ (torch.linalg.inv(S) @ m[0] + A.T[:, 0] * y / sigma_y**2)
    torch.testing.assert_close(post.covs[0], cov, rtol=0, atol=1e-12)
    torch.testing.assert_close(post.means[0], mean, rtol=0, atol=1e-12)
    assert float(post.weights[0]) == 1.0


def test_posterior_samples_have_the_mixtures_moments():
    post = ip.mixture_posterior(_prior(), *_observation(), 0.4)
    x = post.sample(200_000, torch.Generator().manual_seed(0))
    mean = (post.weights[:, None] * post.means).sum(0)
    second = (
        post.weights[:, None, None] * (post.covs + post.means[:, :, None] * post.means[:, None])
    ).sum(0)
    cov = second - mean[:, None] * mean[None]
    torch.testing.assert_close(x.mean(0), mean, rtol=0, atol=0.01)
    torch.testing.assert_close(torch.cov(x.T), cov, rtol=0, atol=0.01)
    probs = post.component_probs(x)
    torch.testing.assert_close(probs.mean(0), post.weights, rtol=0, atol=0.01)


def test_one_step_estimate_is_the_posterior_mean_for_the_exact_field():
    q = GaussianMixture(eight_gaussians_means().double(), 0.3)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=D64)
    t = torch.full((50,), 0.4, dtype=D64)
    x1_hat = ip.one_step_estimate(lambda x, t: marginal_velocity(PATH, q, x, t), x, t)
    w = posterior(PATH, q, x, t)  # E[x1 | x_t] = sum_k P(k | x) (m_k + t s^2 / v (x - t m_k))
    v = 0.4**2 * 0.09 + 0.6**2
    e_k = q.means[None] + 0.4 * 0.09 / v * (x[:, None] - 0.4 * q.means[None])
    torch.testing.assert_close(x1_hat, (w[..., None] * e_k).sum(1), rtol=0, atol=1e-12)


def test_dps_field_is_the_closed_form_kalman_push():
    """For the exact field, (1 - t)/t d x1_hat/dx = Cov[x1 | x_t]/(1 - t) (Tweedie), so DPS's
    field is u + Cov[x1 | x_t] A^T (y - A x1_hat) / (sigma_y^2 (1 - t))."""
    q = GaussianMixture(eight_gaussians_means().double(), 0.3)
    u = lambda x, t: marginal_velocity(PATH, q, x, t)  # noqa: E731
    A, y, sigma_y, t_f = (
        torch.tensor([[1.0, 0.0]], dtype=D64),
        torch.tensor([1.7], dtype=D64),
        0.2,
        0.3,
    )
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(2), dtype=D64)
    t = torch.full((20,), t_f, dtype=D64)
    field = ip.guided_field(u, A, y, sigma_y, "DPS")(x, t)
    w = posterior(PATH, q, x, t)
    v = t_f**2 * 0.09 + (1 - t_f) ** 2
    e_k = q.means[None] + t_f * 0.09 / v * (x[:, None] - t_f * q.means[None])  # [N, K, 2]
    mean = (w[..., None] * e_k).sum(1)
    within = 0.09 * (1 - t_f) ** 2 / v  # Cov[x1 | x_t, k] = s^2 sigma_t^2 / v I
    diff = e_k - mean[:, None]
    cov = within * torch.eye(2, dtype=D64) + (
        w[..., None, None] * diff[..., None] * diff[..., None, :]
    ).sum(1)
    push = (cov @ A.T @ (y - mean @ A.T)[..., None])[..., 0] / (sigma_y**2 * (1 - t_f))
    torch.testing.assert_close(field, u(x, t) + push, rtol=0, atol=1e-10)
    # PiGDM inflates the variance: a smaller push here (one observed coordinate)
    pig = ip.guided_field(u, A, y, sigma_y, "ΠGDM")(x, t) - u(x, t)
    r2 = (1 - t_f) ** 2 / (t_f**2 + (1 - t_f) ** 2)
    torch.testing.assert_close(pig, push * sigma_y**2 / (sigma_y**2 + r2), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="method must be one of"):
        ip.guided_field(u, A, y, sigma_y, "dps")


def test_guided_field_at_t0_is_the_prior_field():
    q = GaussianMixture(eight_gaussians_means().double(), 0.3)
    u = lambda x, t: marginal_velocity(PATH, q, x, t)  # noqa: E731
    A, y = torch.tensor([[1.0, 0.0]], dtype=D64), torch.tensor([1.7], dtype=D64)
    x, t = torch.randn(5, 2, dtype=D64), torch.zeros(5, dtype=D64)
    field = ip.guided_field(u, A, y, 0.2)(x, t)
    assert torch.isfinite(field).all()
    torch.testing.assert_close(field, u(x, t), rtol=0, atol=0)


def test_importance_resampling_matches_the_posterior_and_its_ess():
    q = GaussianMixture(eight_gaussians_means().double(), 0.3)
    A, y, sigma_y = torch.tensor([[1.0, 0.0]], dtype=D64), torch.tensor([1.7], dtype=D64), 0.2
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(20_000, 2, generator=gen, dtype=D64)
    u = MixtureMarginal(PATH, q).velocity
    res = ip.importance_resample(u, x0, A, y, sigma_y, 4000, steps=32, generator=gen)
    post = ip.mixture_posterior(q, A, y, sigma_y)
    p = post.component_probs(res.proposals)
    w = torch.softmax(res.log_w, 0)
    est = (w[:, None] * p).sum(0)
    se = ((w[:, None] * (p - est)) ** 2).sum(0).sqrt()
    assert bool(((est - post.weights).abs() <= 4 * se + 1e-6).all())
    assert res.samples.shape == (4000, 2) and torch.equal(res.samples, res.proposals[res.index])

    # ESS / N -> Z(sigma)^2 sqrt(4 pi sigma^2) / Z(sigma / sqrt 2)
    def evidence(s):
        normal = torch.distributions.Normal(q.means[:, 0], math.sqrt(0.09 + s**2))
        return float((q.weights * normal.log_prob(y).exp()).sum())

    predicted = (
        evidence(sigma_y) ** 2 * math.sqrt(4 * math.pi * sigma_y**2) / evidence(sigma_y / 2**0.5)
    )
    assert abs(res.ess / len(x0) - predicted) < 0.02


def test_effective_sample_size_extremes():
    assert ip.effective_sample_size(torch.zeros(10)) == pytest.approx(10.0)
    assert ip.effective_sample_size(torch.tensor([0.0, -1000.0, -1000.0])) == pytest.approx(1.0)


def test_input_checks():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2000, 2, generator=gen)
    with pytest.raises(ValueError, match="sigma_y must be in"):
        ip.log_likelihood(x, torch.eye(2), torch.zeros(2), 0.0)
    with pytest.raises(ValueError, match="A must have d = 2 columns"):
        ip.observe(x, torch.ones(1, 3), 0.1)
    y = ip.observe(x.double(), torch.tensor([[1.0, 0.0]], dtype=D64), 0.1, gen)
    assert y.shape == (2000, 1)
