"""Tests for fmlib.marginal: the continuity equation by autograd, Monte-Carlo posterior
averages, normalisation on a grid, closed forms at t = 0 and t = 1, edges, errors; and
MixtureMarginal against the general closed forms."""

import math

import pytest
import torch

from fmlib import data
from fmlib.divergence import batch_time
from fmlib.marginal import (
    GaussianMixture,
    MixtureMarginal,
    marginal_log_prob,
    marginal_velocity,
    posterior,
)
from fmlib.paths import GaussianPath, OTPath, VEPath, VPPath, cosine_path

F64 = torch.float64


def mixture() -> GaussianMixture:
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=F64)
    return GaussianMixture(means, torch.tensor([0.5, 0.3, 0.8], dtype=F64), [0.5, 0.3, 0.2])


def point_set() -> GaussianMixture:
    g = torch.Generator().manual_seed(3)
    return GaussianMixture(2 * torch.randn(6, 2, generator=g, dtype=F64), 0.0)


def continuity_residual(path, target, x, t, field=None) -> torch.Tensor:
    """d/dt log p_t + div u_t + u_t . grad log p_t at (x, t), all by autograd."""
    x = x.clone().requires_grad_(True)
    t = torch.full((x.shape[0],), t, dtype=F64, requires_grad=True)
    log_p = marginal_log_prob(path, target, x, t)
    dlogp_dt, grad_logp = torch.autograd.grad(log_p.sum(), (t, x))
    u = (field or (lambda y, s: marginal_velocity(path, target, y, s)))(x, t)
    div = sum(torch.autograd.grad(u[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(2))
    return dlogp_dt + div + (u * grad_logp).sum(1)


def points_on_path(path, target, t: float, n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(4)
    x1 = target.sample(n, generator=g)
    return path.psi_t(torch.randn(n, 2, generator=g, dtype=F64), x1, t)


CASES = [
    (OTPath(0.0), "mixture"),
    (OTPath(0.05), "points"),
    (VPPath(), "mixture"),
    (VPPath(), "points"),
    (cosine_path(), "mixture"),
    (VEPath(), "mixture"),
]


@pytest.mark.parametrize(("path", "kind"), CASES, ids=lambda c: repr(c))
@pytest.mark.parametrize("t", [0.0, 0.3, 0.7, 0.95])
def test_continuity_equation(path: GaussianPath, kind: str, t: float) -> None:
    target = mixture() if kind == "mixture" else point_set()
    x = points_on_path(path, target, t)
    residual = continuity_residual(path, target, x, t)
    assert residual.abs().max().item() < 1e-8  # measured <= 3e-14 in float64
    # a wrong field: u_t + 0.1 x leaves 0.1 (d + x . grad log p_t), clearly nonzero
    wrong = continuity_residual(
        path, target, x, t, lambda y, s: marginal_velocity(path, target, y, s) + 0.1 * y
    )
    assert wrong.abs().max().item() > 1e-2
    if t >= 0.3 and not isinstance(path, VEPath):  # 1.1 u_t leaves -0.1 d/dt log p_t
        # (tiny for VP near t = 0, where p_t ~ N(0, I), and for VE near t = 1, where p_t ~ q)
        scaled = continuity_residual(
            path, target, x, t, lambda y, s: 1.1 * marginal_velocity(path, target, y, s)
        )
        assert scaled.abs().max().item() > 1e-2


def test_another_paths_field_does_not_generate_the_path() -> None:
    target = mixture()
    x = points_on_path(OTPath(0.0), target, 0.5)
    vp_field = lambda y, s: marginal_velocity(VPPath(), target, y, s)
    assert continuity_residual(OTPath(0.0), target, x, 0.5).abs().max() < 1e-4
    assert continuity_residual(OTPath(0.0), target, x, 0.5, vp_field).abs().max() > 1e-2


@pytest.mark.parametrize("path", [OTPath(0.05), VPPath()], ids=repr)
@pytest.mark.parametrize("kind", ["mixture", "points"])
def test_velocity_and_posterior_equal_monte_carlo_posterior_averages(path, kind) -> None:
    """u_t(x) = E[u_t(x | x1) | x_t = x]: self-normalised importance sampling, x1 ~ q,
    weights p_t(x | x1); agreement within 5 standard errors (delta method)."""
    target = mixture() if kind == "mixture" else point_set()
    t, m = 0.5, 40_000
    g = torch.Generator().manual_seed(5)
    x = points_on_path(path, target, t, n=3)
    k = torch.multinomial(target.weights, m, replacement=True, generator=g)
    x1 = target.means[k] + target.stds[k, None] * torch.randn(m, 2, generator=g, dtype=F64)
    exact_u = marginal_velocity(path, target, x, t)
    exact_w = posterior(path, target, x, t)
    for i in range(x.shape[0]):
        xi = x[i : i + 1].expand(m, 2)
        log_w = path.log_prob(xi, x1, t)
        w = torch.exp(log_w - log_w.max())
        w = w / w.sum()
        for values, exact in (
            (path.u_t(xi, x1, t), exact_u[i]),
            (torch.nn.functional.one_hot(k, target.n_components).to(F64), exact_w[i]),
        ):
            estimate = (w[:, None] * values).sum(0)
            se = torch.sqrt((w[:, None] ** 2 * (values - estimate) ** 2).sum(0))
            assert ((estimate - exact).abs() <= 5 * se + 1e-6).all(), (estimate, exact, se)


@pytest.mark.parametrize(
    ("path", "kind", "t"),
    [(OTPath(0.0), "mixture", 0.5), (OTPath(0.1), "points", 0.9), (VPPath(), "points", 0.8)],
    ids=repr,
)
def test_marginal_density_integrates_to_one(path, kind, t) -> None:
    target = mixture() if kind == "mixture" else point_set()
    n, lim = 201, 8.0
    g = torch.linspace(-lim, lim, n, dtype=F64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    grid = torch.stack([xx.flatten(), yy.flatten()], dim=1)
    mass = marginal_log_prob(path, target, grid, t).exp().sum() * (g[1] - g[0]) ** 2
    assert abs(mass.item() - 1) < 1e-9  # measured ~2e-15


def test_ot_source_and_target_in_closed_form() -> None:
    """p_0 = N(0, I); p_1 = q for sigma_min = 0 and q * N(0, sigma_min^2 I) otherwise."""
    target = mixture()
    x = 3 * torch.randn(50, 2, dtype=F64)
    std_normal = -(x**2).sum(1) / 2 - math.log(2 * math.pi)
    torch.testing.assert_close(marginal_log_prob(OTPath(0.0), target, x, 0.0), std_normal)
    torch.testing.assert_close(marginal_log_prob(OTPath(0.0), target, x, 1.0), target.log_prob(x))
    smoothed = GaussianMixture(target.means, torch.sqrt(target.stds**2 + 0.2**2), target.weights)
    torch.testing.assert_close(marginal_log_prob(OTPath(0.2), target, x, 1.0), smoothed.log_prob(x))


@pytest.mark.parametrize("path", [OTPath(0.0), OTPath(0.1), VPPath(), VEPath()], ids=repr)
def test_single_point_gives_the_conditional_field(path: GaussianPath) -> None:
    """q = delta_{x1}: the marginal field is u_t(x | x1), including the edges."""
    x1 = torch.tensor([[0.7, -1.2]], dtype=F64)
    target = GaussianMixture(x1, 0.0)
    x = torch.randn(20, 2, dtype=F64)
    for t in (0.0, 0.4, 0.999, 1.0):
        expected = path.u_t(x, x1.expand(20, 2), t)
        torch.testing.assert_close(marginal_velocity(path, target, x, t), expected)


@pytest.mark.parametrize("path", [OTPath(0.0), VPPath(), cosine_path()], ids=repr)
def test_single_gaussian_gives_the_gaussian_flow(path: GaussianPath) -> None:
    """q = N(m, s^2 I): p_t = N(alpha_t m, std_t^2 I), std_t^2 = alpha_t^2 s^2 + sigma_t^2, and
    u_t(x) = alpha_t' m + std_t'/std_t (x - alpha_t m) (std_t' by autograd)."""
    m, s = torch.tensor([[1.0, -0.5]], dtype=F64), 0.6
    target = GaussianMixture(m, s)
    x = torch.randn(10, 2, dtype=F64)
    # VP: sigma_t = sqrt(...) has an infinite autograd slope at t = 1, so stop at 0.999
    for t in (0.0, 0.3, 0.8, 0.999 if isinstance(path, VPPath) else 1.0):
        tt = torch.tensor(t, dtype=F64, requires_grad=True)
        std = torch.sqrt(path.alpha_t(tt) ** 2 * s**2 + path.sigma_t(tt) ** 2)
        (d_std,) = torch.autograd.grad(std, tt)
        t64 = tt.detach()  # (a Python float t gives float32 schedules: default dtype)
        expected = path.d_alpha_t(t64) * m + d_std / std.detach() * (x - path.alpha_t(t64) * m)
        torch.testing.assert_close(marginal_velocity(path, target, x, t), expected)


@pytest.mark.parametrize("path", [OTPath(0.0), VPPath()], ids=repr)
@pytest.mark.parametrize("t", [0.0, 1.0])
def test_no_nan_at_the_edges(path: GaussianPath, t: float) -> None:
    x = 3 * torch.randn(40, 2, dtype=F64)
    for target in (mixture(), point_set()):
        assert torch.isfinite(marginal_velocity(path, target, x, t)).all()
        w = posterior(path, target, x, t)
        assert torch.isfinite(w).all()
        torch.testing.assert_close(w.sum(1), torch.ones(40, dtype=F64))
    assert torch.isfinite(marginal_log_prob(path, mixture(), x, t)).all()


def test_velocity_is_continuous_into_t1_for_a_mixture() -> None:
    x = 3 * torch.randn(30, 2, dtype=F64)
    for path in (OTPath(0.0), VPPath()):
        at_1 = marginal_velocity(path, mixture(), x, 1.0)
        near_1 = marginal_velocity(path, mixture(), x, 1 - 1e-7)
        torch.testing.assert_close(at_1, near_1, rtol=1e-4, atol=1e-4)


def test_point_set_at_t1_nearest_point_limit() -> None:
    target = point_set()
    x = 3 * torch.randn(40, 2, dtype=F64)
    nearest = torch.cdist(x, target.means).argmin(1)
    w = posterior(OTPath(0.0), target, x, 1.0)
    torch.testing.assert_close(w, torch.nn.functional.one_hot(nearest, 6).to(F64))
    u = marginal_velocity(OTPath(0.0), target, x, 1.0)
    torch.testing.assert_close(u, target.means[nearest] - x)  # OT's x1 - x convention
    # and the posterior is the limit of the t < 1 posteriors
    torch.testing.assert_close(posterior(OTPath(0.0), target, x, 1 - 1e-6), w)
    with pytest.raises(ValueError, match="no density"):
        marginal_log_prob(OTPath(0.0), target, x, 1.0)


def test_posterior_at_t0_is_the_prior() -> None:
    target = mixture()
    x = torch.randn(5, 2, dtype=F64)
    torch.testing.assert_close(posterior(OTPath(0.0), target, x, 0.0), target.weights.expand(5, 3))


def test_mixture_sample_and_log_prob() -> None:
    target = mixture()
    x = target.sample(100_000, generator=torch.Generator().manual_seed(6))
    w, m, s = target.weights, target.means, target.stds
    mean = (w[:, None] * m).sum(0)
    comp_cov = (s**2)[:, None, None] * torch.eye(2, dtype=F64)  # s_k^2 I, [K, 2, 2]
    second = (w[:, None, None] * (m[:, :, None] * m[:, None, :] + comp_cov)).sum(0)
    cov = second - mean[:, None] * mean[None, :]
    se = torch.sqrt(torch.diagonal(cov) / x.shape[0])
    assert ((x.mean(0) - mean).abs() <= 5 * se).all()
    torch.testing.assert_close(torch.cov(x.T), cov, rtol=0.03, atol=0.03)
    y = torch.randn(20, 2, dtype=F64)
    comps = torch.distributions.Independent(torch.distributions.Normal(m, s[:, None]), 1)
    ref = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(w), comps)
    torch.testing.assert_close(target.log_prob(y), ref.log_prob(y))


def test_mixture_errors() -> None:
    means = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"stds must be in \[0, inf\), got -0.1"):
        GaussianMixture(means, -0.1)
    with pytest.raises(ValueError, match="stds must be"):
        GaussianMixture(means, torch.tensor([0.1, float("nan"), 0.1]))
    with pytest.raises(ValueError, match="stds must be a float or have shape"):
        GaussianMixture(means, torch.ones(2))
    with pytest.raises(ValueError, match="means must have shape"):
        GaussianMixture(torch.zeros(3))
    with pytest.raises(ValueError, match="weights must be in"):
        GaussianMixture(means, 0.1, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="no density"):
        GaussianMixture(means, 0.0).log_prob(torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"x must have shape \[N, 2\]"):
        marginal_velocity(OTPath(), GaussianMixture(means, 0.1), torch.zeros(4, 3), 0.5)
    with pytest.raises(ValueError, match=r"t must be in \[0, 1\]"):
        posterior(OTPath(), GaussianMixture(means, 0.1), torch.zeros(4, 2), 1.5)
    assert "0x" not in repr(mixture())
    assert repr(point_set()) == "GaussianMixture(n_components=6, dim=2, std=0)"


def _checkerboard_points(n: int) -> GaussianMixture:
    """n checkerboard samples (seed 0, float64) as a point set: notebook 04's training set."""
    x1 = data.sample("checkerboard", n, generator=torch.Generator().manual_seed(0)).double()
    return GaussianMixture(x1, 0.0)


_TARGETS = {
    "10 points": _checkerboard_points(10),
    "50 points": _checkerboard_points(50),
    "mixture": GaussianMixture(torch.randn(6, 2, generator=torch.Generator().manual_seed(2)), 0.3),
}
_PATHS = {"OT 0": OTPath(0.0), "OT 0.05": OTPath(0.05), "VP": VPPath()}


@pytest.mark.parametrize("path", _PATHS.values(), ids=_PATHS.keys())
@pytest.mark.parametrize("target", _TARGETS.values(), ids=_TARGETS.keys())
def test_mixture_marginal_is_fmlib_marginal(path, target):
    """Same numbers as the general closed forms for every kind of time, t = 1 (sigma_t = 0)
    included."""
    fast = MixtureMarginal(path, target)
    x = 3 * torch.randn(400, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rows = torch.rand(400, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    full = torch.full((400,), 0.8, dtype=torch.float64)  # one time, repeated
    for t in (0.0, 0.3, 0.97, 1.0, torch.tensor(0.6), batch_time(0.45, x), full, rows):
        u = marginal_velocity(path, target, x, t)
        assert torch.allclose(fast.velocity(x, t), u, rtol=1e-9, atol=1e-9 * u.abs().max())
        w = posterior(path, target, x, t)
        assert torch.allclose(fast.posterior(x, t), w, atol=1e-10)
        try:
            log_p = marginal_log_prob(path, target, x, t)
        except ValueError:  # a point set at sigma_t = 0 has no density: the same error
            with pytest.raises(ValueError):
                fast.log_prob(x, t)
            continue
        log_p_fast, certainty = fast.log_prob_and_certainty(x, t)
        assert torch.allclose(log_p_fast, log_p, rtol=1e-10, atol=1e-9)
        assert torch.allclose(certainty, w.max(dim=1).values, atol=1e-10)


def test_mixture_marginal_needs_equal_weights_and_stds():
    means = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="equal weights"):
        MixtureMarginal(OTPath(), GaussianMixture(means, torch.tensor([0.1, 0.2])))
    with pytest.raises(ValueError, match="equal weights"):
        MixtureMarginal(OTPath(), GaussianMixture(means, 0.1, torch.tensor([1.0, 2.0])))
