"""fmlib.flows against closed forms and independent computations."""

import math

import pytest
import torch

from fmlib.divergence import jacobian
from fmlib.flows import (
    AffineLayer,
    CouplingLayer,
    DiscreteFlow,
    GaussianFlow,
    ResidualLayer,
    log_abs_det,
    polygon_area,
    pushforward_log_prob,
    square_boundary,
    uniform_log_prob,
)
from fmlib.solvers import integrate, log_likelihood, standard_normal_log_prob

D64 = torch.float64


def normal_1d(z):
    return -0.5 * z[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)


def test_uniform_pushforward_seed_example():
    # x = 2 z + 1, z ~ U[0, 1]  =>  p(x) = 1/2 on [1, 3] (seed 002), 0 elsewhere.
    x = torch.tensor([[0.5], [1.2], [2.0], [2.9], [3.5]], dtype=D64)
    log_p = pushforward_log_prob(lambda z: uniform_log_prob(z[:, 0]), lambda y: (y - 1) / 2, x)
    expected = torch.tensor([0.0, 0.5, 0.5, 0.5, 0.0], dtype=D64)
    torch.testing.assert_close(log_p.exp(), expected)


def test_tanh_pushforward_matches_formula_and_integrates_to_one():
    # x = tanh(z), z ~ N(0, 1): p(x) = phi(atanh x) / (1 - x^2).
    x = torch.linspace(-0.999, 0.999, 4001, dtype=D64)[:, None]
    log_p = pushforward_log_prob(normal_1d, torch.atanh, x)
    z = torch.atanh(x[:, 0])
    expected = -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - torch.log1p(-(x[:, 0] ** 2))
    torch.testing.assert_close(log_p, expected)
    assert abs(torch.trapezoid(log_p.exp(), x[:, 0]).item() - 1) < 1e-3


def test_2d_pushforward_of_linear_map_is_gaussian():
    A = torch.tensor([[2.0, 0.5], [0.0, 0.5]], dtype=D64)
    x = torch.randn(7, 2, dtype=D64)
    log_p = pushforward_log_prob(
        standard_normal_log_prob, lambda y: torch.linalg.solve(A, y.T).T, x
    )
    cov = A @ A.T
    mvn = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=D64), cov)
    torch.testing.assert_close(log_p, mvn.log_prob(x))


def test_polygon_area_square_and_linear_image():
    sq = square_boundary(torch.tensor([0.3, -0.2], dtype=D64), 0.5, n=3)
    assert sq.shape == (12, 2)
    assert abs(polygon_area(sq).item() - 0.25) < 1e-12
    A = torch.tensor([[1.0, 2.0], [-0.5, 3.0]], dtype=D64)
    assert abs(polygon_area(sq @ A.T).item() - 0.25 * abs(torch.det(A).item())) < 1e-12


def test_area_ratio_tends_to_abs_det_jacobian():
    def f(p):
        x, y = p[:, 0], p[:, 1]
        return torch.stack([x**2 * y, 5 * x + torch.sin(y)], dim=1)

    c = torch.tensor([1.0, 0.5], dtype=D64)
    det = abs(2 * 1.0 * 0.5 * math.cos(0.5) - 5 * 1.0**2)
    side = 1e-3
    ratio = polygon_area(f(square_boundary(c - side / 2, side, n=20))) / side**2
    assert abs(ratio.item() / det - 1) < 1e-2


def _coupling_flow() -> DiscreteFlow:
    A = torch.tensor([[1.2, 0.4], [-0.3, 0.8]], dtype=D64)
    return DiscreteFlow(
        [
            AffineLayer(A, torch.tensor([0.5, -0.2], dtype=D64)),
            CouplingLayer(lambda a: 0.5 * torch.tanh(a), lambda a: torch.sin(2 * a), flip=False),
            CouplingLayer(lambda a: -0.3 * torch.tanh(a), lambda a: 0.25 * a**2, flip=True),
        ]
    )


def test_discrete_flow_inverse_and_log_det_match_autograd():
    flow = _coupling_flow()
    z = torch.randn(64, 2, dtype=D64, generator=torch.Generator().manual_seed(1))
    x, log_det = flow.forward(z)
    torch.testing.assert_close(flow.inverse(x), z)
    J = jacobian(lambda y, t: flow.forward(y)[0], z, 0.0)
    torch.testing.assert_close(log_det, log_abs_det(J))


def test_discrete_flow_density_integrates_to_one():
    flow = _coupling_flow()
    axis = torch.linspace(-8, 8, 401, dtype=D64)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    for k in (0, 1, 3):
        p = flow.log_prob(pts, standard_normal_log_prob, upto=k).exp()
        mass = p.sum().item() * (axis[1] - axis[0]).item() ** 2
        assert abs(mass - 1) < 5e-3, (k, mass)


def test_residual_layer_is_an_euler_step_and_inverts():
    g = GaussianFlow(torch.tensor([1.0, 0.5], dtype=D64), 0.5, omega=1.0)
    layer = ResidualLayer(g, t=0.2, h=0.1)
    z = torch.randn(10, 2, dtype=D64)
    x, log_det = layer.forward(z)
    sigma_0, sigma_1 = g.sigma_t(0.2), g.sigma_t(0.3)
    # I + h J_u = (sigma_{t+h} / sigma_t) I + h omega J: det = ratio^2 + (h omega)^2
    expected = math.log((sigma_1 / sigma_0) ** 2 + 0.1**2)
    torch.testing.assert_close(log_det, torch.full((10,), expected, dtype=D64))
    torch.testing.assert_close(layer.inverse(x), z)


def test_residual_flow_std_matches_euler_std_and_converges():
    g = GaussianFlow(torch.tensor([2.0, 1.0], dtype=D64), 0.3, omega=2.0)
    for K in (3, 10):
        flow = DiscreteFlow([ResidualLayer(g, k / K, 1 / K) for k in range(K)])
        z = torch.randn(5, 2, dtype=D64)
        _, log_det = flow.forward(z)
        torch.testing.assert_close(
            log_det, torch.full((5,), 2 * math.log(g.euler_std(K)), dtype=D64)
        )
    errors = [abs(g.euler_std(K) - 0.3) for K in (100, 200, 400)]
    assert 1.8 < errors[0] / errors[1] < 2.2 and 1.8 < errors[1] / errors[2] < 2.2  # order 1
    # Without swirl, Euler is exact on the straight OT trajectories.
    assert abs(GaussianFlow(g.m, 0.3).euler_std(3) - 0.3) < 1e-12
    assert GaussianFlow(g.m, 0.0).euler_std(4) == 0.0


def test_gaussian_flow_closed_forms():
    g = GaussianFlow(torch.tensor([2.0, -1.0], dtype=D64), 0.4, omega=1.5)
    x0 = torch.randn(20, 2, dtype=D64, generator=torch.Generator().manual_seed(2))
    t = 0.37
    # psi_t solves d/dt psi = u_t(psi): compare with a central difference in t.
    dt = 1e-6
    d_psi = (g.psi_t(x0, t + dt) - g.psi_t(x0, t - dt)) / (2 * dt)
    torch.testing.assert_close(d_psi, g.u_t(g.psi_t(x0, t), t), atol=1e-7, rtol=1e-7)
    torch.testing.assert_close(g.psi_t_inverse(g.psi_t(x0, t), t), x0)
    # divergence: closed form vs autograd trace
    x = g.psi_t(x0, t)
    J = jacobian(g, x, t)
    torch.testing.assert_close(g.div_u_t(x, t), J.diagonal(dim1=1, dim2=2).sum(-1))
    # p_t = N(t m, sigma_t^2 I) against torch.distributions
    mvn = torch.distributions.MultivariateNormal(
        t * g.m, g.sigma_t(t) ** 2 * torch.eye(2, dtype=D64)
    )
    torch.testing.assert_close(g.log_p_t(x, t), mvn.log_prob(x))


def test_gaussian_flow_brief_formula_without_swirl():
    m, s, t = torch.tensor([1.0, 2.0, -1.0], dtype=D64), 0.2, 0.6
    g = GaussianFlow(m, s)
    x = torch.randn(4, 3, dtype=D64)
    expected = m + (s - 1) / (1 - t + t * s) * (x - t * m)
    torch.testing.assert_close(g(x, torch.full((4,), t, dtype=D64)), expected)


def test_ode_and_log_likelihood_match_closed_form():
    g = GaussianFlow(torch.tensor([2.0, 1.0], dtype=D64), 0.3, omega=2.0)
    x0 = torch.randn(8, 2, dtype=D64)
    x1 = integrate(g, x0, steps=100, method="rk4").x
    torch.testing.assert_close(x1, g.psi_t(x0, 1.0), atol=1e-8, rtol=0)
    log_p1, z = log_likelihood(g, x1, steps=100, method="rk4")
    torch.testing.assert_close(log_p1, g.log_p_t(x1, 1.0), atol=1e-7, rtol=0)
    torch.testing.assert_close(z, x0, atol=1e-8, rtol=0)


def test_gaussian_flow_edges_have_no_nan():
    g = GaussianFlow(torch.tensor([1.0, 1.0]), 0.0, omega=1.0)
    x = torch.randn(6, 2)
    assert torch.isfinite(g(x, torch.ones(6))).all()
    assert torch.isinf(g.div_u_t(x, 1.0)).all()
    log_p = g.log_p_t(torch.tensor([[1.0, 1.0], [0.0, 0.0]]), 1.0)
    assert log_p[0] == math.inf and log_p[1] == -math.inf
    assert torch.isfinite(integrate(g, x, steps=5, method="rk4").x).all()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: GaussianFlow(torch.zeros(2), -0.1), "s must be in"),
        (lambda: GaussianFlow(torch.zeros(1), 0.5, omega=1.0), "omega"),
        (lambda: GaussianFlow(torch.zeros(2), 0.5).sigma_t(1.5), "t must be in"),
        (lambda: GaussianFlow(torch.zeros(2), 0.0).psi_t_inverse(torch.zeros(1, 2), 1.0), "t must"),
        (lambda: GaussianFlow(torch.zeros(2), 0.5).euler_std(0), "steps"),
        (lambda: AffineLayer(torch.zeros(2, 2), torch.zeros(2)), "invertible"),
        (lambda: DiscreteFlow([]), "layers"),
        (lambda: _coupling_flow().forward(torch.zeros(1, 2, dtype=D64), upto=9), "upto"),
        (lambda: uniform_log_prob(torch.zeros(3), 1.0, 0.0), "high"),
        (lambda: polygon_area(torch.zeros(2, 2)), "vertices"),
        (lambda: ResidualLayer(lambda x, t: x, 0.0, h=0.0), "h must be"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_gaussian_flow_is_the_field_of_notebook_02():
    """u_t(x) = m + (s - 1)/(1 - t + t s) (x - t m) (no swirl; notebook 02) is GaussianFlow."""
    gen = torch.Generator().manual_seed(4)
    m, s = torch.tensor([2.0, 1.0], dtype=torch.float64), 0.3
    x = torch.randn(20, 2, generator=gen, dtype=torch.float64)
    for t in (0.0, 0.4, 0.9):
        formula = m + (s - 1) / (1 - t + t * s) * (x - t * m)
        field = GaussianFlow(m, s)(x, torch.full((20,), t, dtype=torch.float64))
        torch.testing.assert_close(field, formula, rtol=0, atol=1e-12)
