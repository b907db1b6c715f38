"""fmlib.manifolds against closed forms: the sphere's exp / log maps and geodesics, the torus's
wrap, the vMF law, the wrapped normal's lattice sum, the trap's cos(t theta) factor."""

from __future__ import annotations

import math

import pytest
import torch

from fmlib import manifolds

S, T = manifolds.Sphere(), manifolds.Torus()
D64 = torch.float64


def pairs(M, n=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    return M.uniform(n, g, dtype=D64), M.uniform(n, g, dtype=D64)


def test_sphere_exp_log_closed_forms():
    x = torch.tensor([[1.0, 0.0, 0.0]], dtype=D64)
    y = torch.tensor([[0.0, 1.0, 0.0]], dtype=D64)
    torch.testing.assert_close(S.log(x, y), torch.tensor([[0.0, math.pi / 2, 0.0]], dtype=D64))
    torch.testing.assert_close(S.exp(x, S.log(x, y)), y)
    assert float(S.dist(x, y)) == pytest.approx(math.pi / 2, abs=1e-15)
    # exp of the zero vector is the point, log of the point itself is 0
    torch.testing.assert_close(S.exp(x, torch.zeros_like(x)), x)
    assert float(S.log(x, x).abs().max()) == 0.0
    # float32 too (no NaN at w = 0)
    assert not S.log(x.float(), x.float()).isnan().any()


def test_sphere_exp_inverts_log_and_geodesic_invariants():
    x0, x1 = pairs(S)
    torch.testing.assert_close(S.exp(x0, S.log(x0, x1)), x1, atol=1e-12, rtol=0)
    d = S.dist(x0, x1)
    for t in (0.0, 0.25, 0.5, 0.9, 1.0):
        x_t = manifolds.geodesic(S, x0, x1, t)
        assert float((x_t.norm(dim=1) - 1).abs().max()) < 1e-14
        assert float((S.dist(x_t, x1) - (1 - t) * d).abs().max()) < 1e-12
        assert float((S.dist(x0, x_t) - t * d).abs().max()) < 1e-12


def test_conditional_velocity_is_the_time_derivative():
    x0, x1 = pairs(S)
    d = S.dist(x0, x1)
    for t in (0.1, 0.5, 0.8):
        tt = torch.tensor(t, dtype=D64)
        x_t, v = torch.func.jvp(
            lambda s: manifolds.geodesic(S, x0, x1, s), (tt,), (torch.ones_like(tt),)
        )
        u = manifolds.conditional_velocity(S, x_t, x1, t)
        torch.testing.assert_close(u, v, atol=1e-11, rtol=0)
        assert float((v.norm(dim=1) - d).abs().max()) < 1e-12  # constant speed
        assert float((x_t * v).sum(1).abs().max()) < 1e-13  # tangent
        # the trap: P_{x_t} log_{x0}(x1) = cos(t theta) u
        trap = S.project(x_t, S.log(x0, x1))
        torch.testing.assert_close(trap, torch.cos(t * d)[:, None] * u, atol=1e-11, rtol=0)
    with pytest.raises(ValueError, match="t must be < 1"):
        manifolds.conditional_velocity(S, x0, x1, 1.0)


def test_torus_wrap_log_and_flat_velocity():
    x = torch.tensor([[3.0, -3.0]], dtype=D64)
    y = torch.tensor([[-3.0, 3.0]], dtype=D64)
    w = 2 * math.pi - 6
    torch.testing.assert_close(T.log(x, y), torch.tensor([[w, -w]], dtype=D64))
    assert float(T.dist(x, y)) == pytest.approx(math.sqrt(2) * w, abs=1e-14)
    a = torch.tensor([-math.pi, math.pi, 3 * math.pi, 0.5], dtype=D64)
    torch.testing.assert_close(
        T.wrap(a), torch.tensor([-math.pi, -math.pi, -math.pi, 0.5], dtype=D64)
    )
    x0, x1 = pairs(T)
    for t in (0.0, 0.3, 0.7):
        x_t = manifolds.geodesic(T, x0, x1, t)
        u = manifolds.conditional_velocity(T, x_t, x1, t)
        torch.testing.assert_close(u, T.log(x0, x1), atol=1e-12, rtol=0)  # flat: no transport


def test_torus_to_tangent_is_the_circle_projection():
    g = torch.Generator().manual_seed(3)
    x = T.uniform(50, g, dtype=D64)
    out = torch.randn(50, 4, generator=g, dtype=D64)
    v = T.to_tangent(x, out)
    f = T.to_features(x)
    # chain rule: d/ds features(x + s e_i) = (-sin x_i, cos x_i) in the i-th pair
    for i in range(2):
        tangent = torch.stack([-x[:, i].sin(), x[:, i].cos()], dim=1)
        torch.testing.assert_close(v[:, i], (out[:, 2 * i : 2 * i + 2] * tangent).sum(1))
    assert f.shape == (50, 4)


def test_vmf_sampler_matches_the_closed_form_mean_cosine():
    """E[mu . x] = coth(kappa) - 1 / kappa for vMF on S^2 (Mardia & Jupp 2000)."""
    mu = torch.tensor([0.0, 0.6, 0.8], dtype=D64)
    n = 200_000
    for kappa in (2.0, 20.0):
        x = manifolds.vmf_sample(mu, kappa, n, torch.Generator().manual_seed(1))
        assert float((x.norm(dim=1) - 1).abs().max()) < 1e-12
        c = (x @ mu).double()
        expected = 1 / math.tanh(kappa) - 1 / kappa
        assert abs(float(c.mean()) - expected) < 4 * float(c.std()) / math.sqrt(n)
        # the component orthogonal to mu has mean zero (uniform direction)
        ortho = x - c[:, None] * mu
        assert float(ortho.mean(0).norm()) < 4 * math.sqrt(float((ortho**2).sum(1).mean()) / n)


def test_vmf_log_prob_normalised():
    """Integral of vMF over the sphere = 1 (quadrature in the polar angle about mu)."""
    mu = torch.tensor([0.0, 0.0, 1.0], dtype=D64)
    th = torch.linspace(0, math.pi, 20001, dtype=D64)
    x = torch.stack([th.sin(), torch.zeros_like(th), th.cos()], dim=1)
    for kappa in (0.5, 20.0):
        dens = manifolds.vmf_log_prob(x, mu, kappa).exp() * 2 * math.pi * th.sin()
        assert float(torch.trapezoid(dens, th)) == pytest.approx(1.0, abs=1e-7)


def test_wrapped_normal_is_periodic_and_normalised():
    n = 201
    a = torch.linspace(-math.pi, math.pi, n, dtype=D64)
    yy, xx = torch.meshgrid(a, a, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    mean = torch.tensor([2.5, -1.0], dtype=D64)
    p = manifolds.wrapped_normal_log_prob(pts, mean, 1.5).exp().reshape(n, n)
    w = torch.ones(n, dtype=D64)
    w[0] = w[-1] = 0.5
    h = 2 * math.pi / (n - 1)
    assert float((w[:, None] * w[None] * p).sum() * h**2) == pytest.approx(1.0, abs=1e-10)
    shifted = manifolds.wrapped_normal_log_prob(pts + 2 * math.pi, mean, 1.5).exp().reshape(n, n)
    torch.testing.assert_close(shifted, p, atol=1e-14, rtol=1e-12)
    # a narrow one equals the plane's Gaussian away from the sides
    x = torch.tensor([[0.1, 0.2]], dtype=D64)
    plain = -0.5 * ((x - 0.0) ** 2).sum() / 0.3**2 - math.log(2 * math.pi * 0.3**2)
    assert float(manifolds.wrapped_normal_log_prob(x, torch.zeros(2, dtype=D64), 0.3)) == (
        pytest.approx(float(plain), abs=1e-12)
    )


def test_geodesic_euler_with_the_conditional_field_lands_exactly():
    x0, x1 = pairs(S, 200)
    x = x0
    for k in range(3):
        t = k / 3
        x = manifolds.euler_step(S, lambda y, s: S.log(y, x1) / (1 - s[:, None]), x, t, 1 / 3)
    assert float(S.dist(x, x1).max()) < 1e-12


def test_cfm_terms_targets():
    x0, x1 = pairs(S, 100)
    t = torch.full((100,), 0.4, dtype=D64)

    def exact(x, s):  # the conditional velocity itself: loss 0 for the geodesic target
        return S.log(x, x1) / (1 - s[:, None])

    assert float(manifolds.cfm_terms(S, exact, x0, x1, t).max()) < 1e-20
    assert float(manifolds.cfm_terms(S, exact, x0, x1, t, "logmap(x0, x1)").mean()) > 0.1
    with pytest.raises(ValueError, match="target must be one of"):
        manifolds.cfm_terms(S, exact, x0, x1, t, "euclid")
    with pytest.raises(ValueError, match="sphere only"):
        manifolds.cfm_terms(T, exact, *pairs(T, 100), t, "chord")


def test_torus_checkerboard_on_the_dark_squares():
    x = manifolds.torus_checkerboard(5000, torch.Generator().manual_seed(0))
    assert bool(manifolds.in_torus_checkerboard(x).all())
    assert float(manifolds.in_torus_checkerboard(T.uniform(20000)).double().mean()) == (
        pytest.approx(0.5, abs=0.02)
    )


def test_seed_replicates_load():
    for seed in (1, 2):
        models = manifolds.load_seed_replicate(seed)
        assert set(models) == {f"sphere {k}" for k in manifolds.TARGETS} | {"torus geodesic"}
