"""fmlib.losses: Bregman divergences in closed form; L_CFM = L_FM + constant; equal gradients."""

from __future__ import annotations

import pytest
import torch

from fmlib import losses as L
from fmlib.marginal import GaussianMixture, marginal_velocity
from fmlib.paths import OTPath

POINTS = torch.tensor([[2.0, 0.0], [-1.0, 1.5], [-1.0, -1.5], [0.5, 0.5]], dtype=torch.float64)
TARGET = GaussianMixture(POINTS, 0.0)
PATH = OTPath(sigma_min=0.05)


def batch(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x1 = TARGET.sample(n, generator=g)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    return x0, x1, t


class Linear(torch.nn.Module):
    """v(x, t) = A x + b t + c: a tiny model with parameters theta = (A, b, c)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = torch.nn.Parameter(torch.randn(2, 2, generator=g, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.randn(2, generator=g, dtype=torch.float64))
        self.c = torch.nn.Parameter(torch.randn(2, generator=g, dtype=torch.float64))

    def forward(self, x, t):
        return x @ self.A.T + t[:, None] * self.b + self.c


def test_bregman_of_squared_norm_is_squared_distance():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 50, 3, generator=g, dtype=torch.float64)
    d = L.bregman(L.phi_squared)(a, b)
    assert torch.allclose(d, ((a - b) ** 2).sum(1))
    assert torch.allclose(L.squared_euclidean(a, b), d)


def test_bregman_of_exp_closed_form_and_positivity():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 50, 3, generator=g, dtype=torch.float64)
    d = L.bregman(L.phi_exp)(a, b)
    expected = (a.exp() - b.exp() - b.exp() * (a - b)).sum(1)
    assert torch.allclose(d, expected)
    assert (d > 0).all()
    assert torch.allclose(L.bregman(L.phi_exp)(a, a), torch.zeros(50, dtype=torch.float64))


@pytest.mark.parametrize("D", [L.squared_euclidean, L.bregman(L.phi_exp)])
def test_bregman_minimiser_is_the_weighted_mean(D):
    """d/dv sum_k w_k D(u_k, v) = 0 at v = sum_k w_k u_k: the posterior mean is the optimum."""
    g = torch.Generator().manual_seed(2)
    u = torch.randn(5, 2, generator=g, dtype=torch.float64)
    w = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    v = (w[:, None] * u).sum(0, keepdim=True).requires_grad_(True)
    (grad,) = torch.autograd.grad((w * D(u, v.expand(5, 2))).sum(), v)
    assert grad.abs().max() < 1e-12


def test_euclidean_norm_minimiser_is_not_the_mean():
    u = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    v = u.mean(0, keepdim=True).requires_grad_(True)
    (grad,) = torch.autograd.grad(L.euclidean_norm(u, v.expand(3, 2)).sum(), v)
    assert grad.abs().max() > 0.5


def test_fm_loss_vanishes_at_the_marginal_field_and_cfm_equals_the_gap():
    x0, x1, t = batch(2000)
    exact = lambda x, t: marginal_velocity(PATH, TARGET, x, t)  # noqa: E731
    assert float(L.l_fm(exact, x0, x1, t, PATH, TARGET)) == pytest.approx(0.0, abs=1e-20)
    gap = L.conditional_gap(x0, x1, t, PATH, TARGET).mean()
    assert float(L.l_cfm(exact, x0, x1, t, PATH)) == pytest.approx(float(gap), rel=1e-12)
    # the CFM target is the conditional velocity at x_t: u_t(x_t | x1) = x1 - (1 - s) x0
    x_t = PATH.sample(x0, x1, t)
    assert torch.allclose(PATH.target(x0, x1, t), PATH.u_t(x_t, x1, t), atol=1e-9)


def _difference_between_models(D, n=40000):
    """(L_CFM - L_FM)(theta_a) - (L_CFM - L_FM)(theta_b), per sample: mean, standard error."""
    x0, x1, t = batch(n, seed=3)
    with torch.no_grad():
        diffs = []
        for seed in (10, 11):
            m = Linear(seed)
            diffs.append(
                L.cfm_terms(m, x0, x1, t, PATH, D) - L.fm_terms(m, x0, x1, t, PATH, TARGET, D)
            )
    delta = diffs[0] - diffs[1]
    return float(delta.mean()), float(delta.std() / n**0.5)


@pytest.mark.parametrize("D", [L.squared_euclidean, L.bregman(L.phi_exp)])
def test_cfm_minus_fm_is_constant_for_bregman(D):
    mean, se = _difference_between_models(D)
    assert abs(mean) < 4 * se


def test_cfm_minus_fm_is_not_constant_for_the_plain_norm():
    x0, x1, t = batch(40000, seed=4)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    exact = lambda x, t: marginal_velocity(PATH, TARGET, x, t)  # noqa: E731
    D = L.euclidean_norm
    d_zero = L.cfm_terms(zero, x0, x1, t, PATH, D) - L.fm_terms(zero, x0, x1, t, PATH, TARGET, D)
    d_exact = L.cfm_terms(exact, x0, x1, t, PATH, D) - L.fm_terms(exact, x0, x1, t, PATH, TARGET, D)
    delta = d_zero - d_exact
    assert abs(float(delta.mean())) > 10 * float(delta.std() / len(delta) ** 0.5)


def test_gradients_agree():
    x0, x1, t = batch(40000, seed=5)
    model = Linear(12)
    g_fm = L.flat_grad(L.l_fm(model, x0, x1, t, PATH, TARGET), model.parameters())
    g_cfm = L.flat_grad(L.l_cfm(model, x0, x1, t, PATH), model.parameters())
    assert L.cosine_similarity(g_fm, g_cfm) > 0.99
    assert L.relative_error(g_cfm, g_fm) < 0.1


def test_bad_input_raises():
    x0, x1, t = batch(10)
    with pytest.raises(ValueError, match="t must have shape"):
        L.l_cfm(Linear(0), x0, x1, t[:5], PATH)
    with pytest.raises(ValueError, match="t must be in"):
        L.l_cfm(Linear(0), x0, x1, t + 2, PATH)
    with pytest.raises(ValueError, match="a and b"):
        L.squared_euclidean(x0, x0[:3])
