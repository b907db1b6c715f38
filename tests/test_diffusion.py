"""fmlib.diffusion against closed forms: Gaussian data (every marginal Gaussian), a mixture,
the OT, VP and cosine paths; DDIM = Euler on the OT path; Fokker-Planck on a grid."""

from __future__ import annotations

import math

import pytest
import torch

from fmlib import diffusion
from fmlib.continuity import continuity_residual, residual_norm
from fmlib.marginal import GaussianMixture, MixtureMarginal, marginal_log_prob, marginal_velocity
from fmlib.paths import OTPath, VPPath, cosine_path
from fmlib.solvers import integrate

D64 = torch.float64
M, S = torch.tensor([[1.0, -0.5]], dtype=D64), 0.5  # Gaussian data N(M, S^2 I)
GAUSS = GaussianMixture(M, S)
PATHS = [OTPath(0.0), OTPath(0.1), VPPath(), cosine_path()]


def _points(path, t, n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, generator=g, dtype=D64)
    return path.sample(x0, GAUSS.sample(n, g), t)


@pytest.mark.parametrize("path", PATHS, ids=repr)
@pytest.mark.parametrize("t", [0.05, 0.3, 0.7, 0.95])
def test_gaussian_predictions_and_conversions_are_the_closed_forms(path, t):
    t = torch.tensor(t, dtype=D64)
    x = _points(path, t)
    a, s = path.alpha_t(t), path.sigma_t(t)
    v = a**2 * S**2 + s**2
    score = -(x - a * M) / v  # N(a M, v I)
    x1 = M + a * S**2 * (x - a * M) / v
    eps = s * (x - a * M) / v
    pred = diffusion.mixture_predictions(path, GAUSS, x, t)
    for got, want in ((pred.score, score), (pred.x1, x1), (pred.eps, eps)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(pred.score, -pred.eps / s, rtol=0, atol=1e-12)  # Tweedie
    u = marginal_velocity(path, GAUSS, x, t)
    torch.testing.assert_close(
        diffusion.velocity_to_score(path, x, t, u), score, atol=1e-10, rtol=0
    )
    torch.testing.assert_close(diffusion.velocity_to_x1(path, x, t, u), x1, atol=1e-10, rtol=0)
    torch.testing.assert_close(diffusion.velocity_to_eps(path, x, t, u), eps, atol=1e-10, rtol=0)
    for back in (
        diffusion.score_to_velocity(path, x, t, score),
        diffusion.x1_to_velocity(path, x, t, x1),
        diffusion.eps_to_velocity(path, x, t, eps),
    ):
        torch.testing.assert_close(back, u, atol=1e-9, rtol=0)
    # the score is the gradient of log p_t (autograd of fmlib.marginal's closed form)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(marginal_log_prob(path, GAUSS, xg, t).sum(), xg)
    torch.testing.assert_close(grad, score, atol=1e-12, rtol=0)


def test_denominator_is_sigma_on_the_ot_path_and_ddpm_noise():
    t = torch.linspace(0.05, 0.95, 7, dtype=D64)
    for sm in (0.0, 0.2):
        path = OTPath(sm)
        torch.testing.assert_close(diffusion.denominator(path, t), path.sigma_t(t))
    g = diffusion.ddpm_noise(OTPath(0.0))(t)
    torch.testing.assert_close(g, torch.sqrt(2 * (1 - t) / t))
    vp = VPPath()  # DDPM's reverse noise on VP is beta(1 - t): g_t^2 = 2 D_t / alpha_t
    torch.testing.assert_close(diffusion.ddpm_noise(vp)(t) ** 2, vp.beta(1 - t))


def test_singular_ends_are_nan_not_wrong_numbers():
    path, x = OTPath(0.0), torch.ones(3, 2, dtype=D64)
    assert torch.isnan(diffusion.velocity_to_score(path, x, 1.0, x)).all()  # D_1 = 0: 0/0
    assert torch.isnan(diffusion.score_to_velocity(path, torch.zeros_like(x), 0.0, x * 0)).all()
    with pytest.raises(ValueError, match="no score"):
        diffusion.mixture_predictions(path, GaussianMixture(M, 0.0), x[:, :2], 1.0)


def test_ddim_is_euler_on_the_ot_path_not_on_vp():
    q = GaussianMixture(torch.tensor([[2.0, 0.0], [-1.0, 1.0]], dtype=D64), 0.3)
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=D64)
    for sm in (0.0, 0.1):
        u = MixtureMarginal(OTPath(sm), q).velocity
        ddim = diffusion.ddim_sample(OTPath(sm), u, x0, 6)
        euler = integrate(u, x0, steps=6, method="euler").x
        torch.testing.assert_close(ddim, euler, atol=1e-12, rtol=0)
    u = MixtureMarginal(VPPath(), q).velocity
    gap = diffusion.ddim_sample(VPPath(), u, x0, 6) - integrate(u, x0, steps=6, method="euler").x
    assert gap.abs().max() > 1e-2


def test_ddpm_first_step_draws_from_the_prior_of_x1():
    """At t = 0 (alpha_0 = 0), r = 0, so c = sigma_t': x_t' = alpha_t' E[x1] + sigma_t' Z."""
    path, q = OTPath(0.0), GAUSS
    u = MixtureMarginal(path, q).velocity
    x0 = torch.randn(20000, 2, generator=torch.Generator().manual_seed(2), dtype=D64)
    x = diffusion.ddim_step(path, u, x0, 0.0, 0.25, eta=1.0, generator=torch.Generator())
    mean_se, var_se = 0.75 / math.sqrt(20000), 0.75**2 * math.sqrt(2 / 20000)
    assert (x.mean(0) - 0.25 * M[0]).abs().max() < 4 * mean_se
    assert (x.var(0) - 0.75**2).abs().max() < 4 * var_se
    # and the drawn point does not depend on x0 (independent of the noise it started from)
    assert abs(torch.corrcoef(torch.stack([x0[:, 0], x[:, 0]]))[0, 1]) < 4 / math.sqrt(20000)


def _ddim_noise(path, t, t_next, eta):
    """The noise level c of ddim_step itself: at x = 0 with the field u = 0, x1_hat = eps_hat =
    0 and its step is c Z; divided by the same seeded Z."""
    zero = torch.zeros(1, 3, dtype=D64)
    gen = torch.Generator().manual_seed(7)
    x = diffusion.ddim_step(path, lambda x, t: 0 * x, zero, t, t_next, eta, generator=gen)
    ratio = x / torch.randn(1, 3, generator=torch.Generator().manual_seed(7), dtype=D64)
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))  # one c, every coordinate
    return ratio[0, 0].item()


@pytest.mark.parametrize("path", [OTPath(0.0), VPPath(), cosine_path()], ids=repr)
def test_ddpm_step_noise_is_the_posterior_level_and_tends_to_g(path):
    """ddim_step(eta = 1) draws c Z with c^2 = sigma_t'^2 (1 - r^2), r = alpha_t sigma_t' /
    (alpha_t' sigma_t) (eta scales c), and c^2 / h -> g_t^2 = 2 D_t / alpha_t with a gap O(h)."""
    for t in (0.2, 0.5, 0.8):
        tt = torch.tensor(t, dtype=D64)
        g2 = diffusion.ddpm_noise(path)(tt).item() ** 2
        gaps = []
        for h in (1e-2, 1e-3):
            tn = torch.tensor(t + h, dtype=D64)
            a, s, a2, s2 = path.alpha_t(tt), path.sigma_t(tt), path.alpha_t(tn), path.sigma_t(tn)
            want = (s2 * torch.sqrt(1 - (a * s2 / (a2 * s)) ** 2)).item()
            c = _ddim_noise(path, t, t + h, 1.0)
            assert c == pytest.approx(want, rel=1e-12, abs=0)
            assert _ddim_noise(path, t, t + h, 0.5) == pytest.approx(want / 2, rel=1e-12, abs=0)
            gaps.append(abs(c**2 / h / g2 - 1))
        assert 8 < gaps[0] / gaps[1] < 12, (t, gaps)  # O(h): tenfold smaller h, tenfold gap
    assert _ddim_noise(path, 0.3, 0.4, 0.0) == 0.0  # eta = 0: DDIM, no noise


def test_euler_maruyama_brownian_motion_and_g_zero_is_euler():
    x0 = torch.zeros(40000, 2, dtype=D64)
    g = diffusion.scaled_sigma(OTPath(0.0), 0.0)
    x = diffusion.euler_maruyama(
        lambda x, t: torch.zeros_like(x),
        lambda t: torch.tensor(1.5, dtype=D64),
        x0,
        10,
        torch.Generator().manual_seed(3),
    )
    assert (x.var(0) - 1.5**2).abs().max() < 4 * 1.5**2 * math.sqrt(2 / 40000)  # g^2 t
    u = MixtureMarginal(OTPath(0.0), GAUSS).velocity
    y0 = torch.randn(100, 2, generator=torch.Generator().manual_seed(4), dtype=D64)
    em = diffusion.euler_maruyama(u, g, y0, 8, torch.Generator())
    torch.testing.assert_close(em, integrate(u, y0, steps=8, method="euler").x, rtol=0, atol=0)
    traj = diffusion.euler_maruyama(u, g, y0, 8, torch.Generator(), trajectory=True)
    assert traj.shape == (9, 100, 2)


def test_sde_keeps_the_gaussian_marginals():
    """q = N(M, S^2 I): p_1 = q. Euler-Maruyama with g = 2 sigma_t, 200 steps, 8000 points."""
    path = OTPath(0.0)
    u = MixtureMarginal(path, GAUSS).velocity
    g = diffusion.scaled_sigma(path, 2.0)
    b = diffusion.sde_drift(u, diffusion.score_field(path, u), g)
    x0 = torch.randn(8000, 2, generator=torch.Generator().manual_seed(5), dtype=D64)
    x = diffusion.euler_maruyama(b, g, x0, 200, torch.Generator().manual_seed(6))
    assert (x.mean(0) - M[0]).abs().max() < 4 * S / math.sqrt(8000)
    assert (x.var(0) - S**2).abs().max() < 4 * S**2 * math.sqrt(2 / 8000)
    # without the score drift the variance grows far beyond
    x_bad = diffusion.euler_maruyama(u, g, x0, 200, torch.Generator().manual_seed(6))
    assert x_bad.var(0).min() > S**2 * 1.5


def test_fokker_planck_residual():
    path = OTPath(0.0)
    q = GaussianMixture(torch.tensor([[1.5, 0.0], [-1.0, 1.0]], dtype=D64), 0.4)
    exact = MixtureMarginal(path, q)
    u, s = exact.velocity, diffusion.score_field(path, exact.velocity)
    g = 0.8
    right = diffusion.sde_drift(u, s, lambda t: torch.tensor(g, dtype=D64))
    norms = {}
    for name, drift in (("right", right), ("wrong", u)):
        for n in (33, 65):  # dt = h / 4: both errors O(h^2)
            h = 7.0 / (n - 1)
            R = diffusion.fokker_planck_residual(exact.log_prob, drift, g, 0.5, 3.5, n, dt=h / 4)
            norms[name, n] = residual_norm(R, 3.5)
    assert 3.5 < norms["right", 33] / norms["right", 65] < 4.5  # order 2: -> 0
    assert norms["wrong", 65] > 0.1 and abs(norms["wrong", 33] / norms["wrong", 65] - 1) < 0.1
    plain = continuity_residual(exact.log_prob, u, 0.5, lim=3.5, n=33, dt=0.05)
    same = diffusion.fokker_planck_residual(exact.log_prob, u, 0.0, 0.5, lim=3.5, n=33, dt=0.05)
    torch.testing.assert_close(plain, same, rtol=0, atol=0)  # g = 0: the continuity equation


def test_inputs_are_checked():
    path, x = OTPath(0.0), torch.zeros(2, 2, dtype=D64)
    with pytest.raises(ValueError, match="gamma must be in"):
        diffusion.scaled_sigma(path, -1.0)
    with pytest.raises(ValueError, match="t0 < t1"):
        diffusion.euler_maruyama(lambda x, t: x, lambda t: t, x, 4, t0=0.5, t1=0.5)
    with pytest.raises(ValueError, match="t < t_next"):
        diffusion.ddim_step(path, lambda x, t: x, x, 0.5, 0.4)
    with pytest.raises(ValueError, match="g must be in"):
        diffusion.fokker_planck_residual(lambda x, t: x[:, 0], lambda x, t: x, -1.0, 0.5)
    with pytest.raises(ValueError, match="steps"):
        diffusion.euler_maruyama(lambda x, t: x, lambda t: t, x, 0)
    exact = diffusion.mixture_predictions(path, GAUSS, x, 0.5)
    assert exact.x1.shape == exact.eps.shape == exact.score.shape == (2, 2)
    assert torch.isfinite(marginal_velocity(path, GAUSS, x, 0.5)).all()
