"""fmlib.divergence against analytic Jacobians and independent autograd computations."""

import math

import pytest
import torch
from torch import nn

from fmlib.divergence import divergence, hutchinson, jacobian

pytestmark = pytest.mark.usefixtures("float64")  # closed forms compared in float64


def seed_field(x, t):
    """f(x, y) = (x^2 y, 5x + sin y) (seed 002), Jacobian [[2xy, x^2], [5, cos y]]."""
    a, b = x[:, 0], x[:, 1]
    return torch.stack([a**2 * b, 5 * a + torch.sin(b)], dim=1)


def seed_jacobian(x):
    a, b = x[:, 0], x[:, 1]
    row0 = torch.stack([2 * a * b, a**2], dim=1)
    row1 = torch.stack([torch.full_like(a, 5.0), torch.cos(b)], dim=1)
    return torch.stack([row0, row1], dim=1)


A = torch.tensor([[0.5, -2.0, 1.0], [3.0, -1.5, 0.2], [0.7, 0.1, 2.5]], dtype=torch.float64)


def linear_field(x, t):
    """u_t(x) = (1 + t) A x, Jacobian (1 + t) A."""
    return (1 + t)[:, None] * x @ A.T


class TinyMLP(nn.Module):
    def __init__(self, d=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d + 1, 16), nn.SiLU(), nn.Linear(16, d))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], dim=1))


def test_linear_field_jacobian_and_divergence():
    x, t = torch.randn(7, 3), torch.rand(7)
    J = jacobian(linear_field, x, t)
    expected = (1 + t)[:, None, None] * A
    torch.testing.assert_close(J, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(divergence(linear_field, x, t), (1 + t) * torch.trace(A))


def test_seed_field_jacobian_and_divergence():
    x = torch.randn(50, 2)
    torch.testing.assert_close(jacobian(seed_field, x, 0.3), seed_jacobian(x))
    expected_div = 2 * x[:, 0] * x[:, 1] + torch.cos(x[:, 1])
    torch.testing.assert_close(divergence(seed_field, x, 0.3), expected_div)


def test_mlp_matches_per_sample_autograd_jacobian():
    torch.manual_seed(0)
    model = TinyMLP()
    x, t = torch.randn(6, 3), torch.rand(6)
    J = jacobian(model, x, t)
    for n in range(6):
        f = lambda xn, n=n: model(xn[None], t[n : n + 1])[0]
        J_n = torch.autograd.functional.jacobian(f, x[n])
        torch.testing.assert_close(J[n], J_n)
        torch.testing.assert_close(divergence(model, x, t)[n], torch.trace(J_n))


def test_no_graph_by_default_and_create_graph_differentiates():
    x = torch.randn(5, 2)
    div = divergence(seed_field, x, torch.tensor(0.5))
    assert not x.requires_grad and not div.requires_grad
    # d/dx (2 x y + cos y) = (2 y, 2 x - sin y)
    x_grad = x.clone().requires_grad_(True)
    div = divergence(seed_field, x_grad, 0.5, create_graph=True)
    (g,) = torch.autograd.grad(div.sum(), x_grad)
    expected = torch.stack([2 * x[:, 1], 2 * x[:, 0] - torch.sin(x[:, 1])], dim=1)
    torch.testing.assert_close(g, expected)


def test_time_accepts_float_0d_and_batch():
    x = torch.randn(4, 3)
    ref = divergence(linear_field, x, torch.full((4,), 0.25))
    torch.testing.assert_close(divergence(linear_field, x, 0.25), ref)
    torch.testing.assert_close(divergence(linear_field, x, torch.tensor(0.25)), ref)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(probe):
    # M independent one-probe estimates at the same point: mean within 3 standard errors.
    M = 20_000
    x = torch.tensor([[0.7, -1.2]]).expand(M, 2)
    gen = torch.Generator().manual_seed(0)
    estimates = hutchinson(seed_field, x, 0.0, probe=probe, generator=gen)
    exact = divergence(seed_field, x[:1], 0.0)[0]
    std_err = estimates.std() / math.sqrt(M)
    assert estimates.std() > 0.1  # a non-diagonal Jacobian: the estimator is noisy
    assert abs(estimates.mean() - exact) < 3 * std_err


def test_hutchinson_formula_with_the_same_probes():
    # (1/K) sum_k eps_k^T J eps_k with J analytic and eps drawn from the same generator.
    x, K = torch.randn(8, 2), 5
    est = hutchinson(
        seed_field, x, 0.0, n_probes=K, probe="gaussian", generator=torch.Generator().manual_seed(3)
    )
    eps = torch.randn((K, 8, 2), generator=torch.Generator().manual_seed(3))
    expected = torch.einsum("kni,nij,knj->n", eps, seed_jacobian(x), eps) / K
    torch.testing.assert_close(est, expected)


def test_rademacher_is_exact_for_a_diagonal_jacobian():
    # u = (sin x, y^3): eps^T diag(c) eps = sum_i c_i eps_i^2 = tr when eps_i = ±1.
    field = lambda x, t: torch.stack([torch.sin(x[:, 0]), x[:, 1] ** 3], dim=1)
    x = torch.randn(100, 2)
    est = hutchinson(field, x, 0.0, n_probes=3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(est, torch.cos(x[:, 0]) + 3 * x[:, 1] ** 2)


def test_bad_input_raises():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="x must"):
        divergence(seed_field, torch.randn(4), 0.0)
    with pytest.raises(ValueError, match="t must"):
        divergence(seed_field, x, torch.zeros(3))
    with pytest.raises(ValueError, match="u\\(x, t\\) must"):
        jacobian(lambda x, t: x[:, :1], x, 0.0)
    with pytest.raises(ValueError, match="n_probes must be in \\[1, inf\\), got 0"):
        hutchinson(seed_field, x, 0.0, n_probes=0)
    with pytest.raises(ValueError, match="probe must be one of"):
        hutchinson(seed_field, x, 0.0, probe="uniform")
