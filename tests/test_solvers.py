"""fmlib.solvers against closed-form ODE solutions and Gaussian log-densities."""

import math

import numpy as np
import pytest
import torch

from fmlib.solvers import (
    euler_step,
    integrate,
    log_likelihood,
    midpoint_step,
    position_at,
    rk4_step,
    standard_normal_log_prob,
)

pytestmark = pytest.mark.usefixtures("float64")  # closed forms compared in float64


def decay(x, t):
    """dx/dt = -t x, solution x(t) = x(s) exp(-(t^2 - s^2) / 2)."""
    return -t[:, None] * x


def decay_solution(x_s, s, t):
    return x_s * math.exp(-(t**2 - s**2) / 2)


def swirl(x, t):
    """A nonlinear, time-dependent field (no closed form) for round trips."""
    a, b = x[:, 0], x[:, 1]
    return torch.stack([-b + 0.5 * torch.sin(a * t), a - 0.3 * b**3 + t], dim=1)


@pytest.mark.parametrize(
    "step, taylor",
    [
        (euler_step, lambda z: 1 + z),
        (midpoint_step, lambda z: 1 + z + z**2 / 2),
        (rk4_step, lambda z: 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24),
    ],
)
def test_one_step_on_linear_ode_is_the_taylor_polynomial(step, taylor):
    # dx/dt = a x: an order-p Runge-Kutta step multiplies x by sum_{k<=p} (ha)^k / k!.
    a, h = -1.7, 0.3
    x = torch.randn(5, 2)
    torch.testing.assert_close(step(lambda x, t: a * x, x, 0.2, h), taylor(h * a) * x)


@pytest.mark.parametrize("method, order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_convergence_order(method, order):
    x0 = torch.tensor([[1.0, -2.0]])
    exact = decay_solution(x0, 0.0, 1.0)
    steps = [8, 16, 32, 64]
    errors = [(integrate(decay, x0, steps=n, method=method).x - exact).abs().max() for n in steps]
    slope = np.polyfit(np.log([1 / n for n in steps]), np.log([float(e) for e in errors]), 1)[0]
    assert abs(slope - order) < 0.3, f"{method}: slope {slope:.2f}, expected {order}"


def test_dopri5_matches_exact_solution_forward_and_backward():
    x = torch.randn(10, 2)
    forward = integrate(decay, x, 0.0, 1.0, method="dopri5", rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(forward.x, decay_solution(x, 0.0, 1.0), rtol=0, atol=1e-5)
    backward = integrate(decay, x, 0.9, 0.1, method="dopri5", rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(backward.x, decay_solution(x, 0.9, 0.1), rtol=0, atol=1e-5)
    assert forward.nfe > 0 and forward.trajectory is None


def test_backward_integration_inverts_forward():
    x0 = torch.randn(20, 2)
    x1 = integrate(swirl, x0, 0.0, 1.0, steps=200, method="rk4").x
    back = integrate(swirl, x1, 1.0, 0.0, steps=200, method="rk4").x
    assert (back - x0).abs().max() < 1e-6
    assert (x1 - x0).abs().max() > 0.1  # the flow really moved the points


@pytest.mark.parametrize("method, per_step", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_nfe_and_trajectory(method, per_step):
    x = torch.randn(3, 2)
    sol = integrate(decay, x, 0.2, 0.7, steps=5, method=method, trajectory=True)
    assert sol.nfe == per_step * 5
    torch.testing.assert_close(sol.times, torch.linspace(0.2, 0.7, 6))
    assert sol.trajectory.shape == (6, 3, 2)
    torch.testing.assert_close(sol.trajectory[0], x)
    torch.testing.assert_close(sol.trajectory[-1], sol.x)


def test_dopri5_trajectory_on_the_output_grid():
    x = torch.randn(3, 2)
    sol = integrate(decay, x, steps=4, method="dopri5", trajectory=True)  # rtol = atol = 1e-5
    for k, t in enumerate(sol.times.tolist()):
        torch.testing.assert_close(sol.trajectory[k], decay_solution(x, 0.0, t), atol=1e-4, rtol=0)


def test_no_graph_unless_asked():
    w = torch.tensor(0.5, requires_grad=True)
    field = lambda x, t: -w * x
    x = torch.randn(4, 2)
    assert not integrate(field, x, steps=3).x.requires_grad
    x1 = integrate(field, x, steps=3, method="euler", enable_grad=True).x
    # x1 = (1 - w h)^3 x with h = 1/3: d sum(x1) / dw = -3 h (1 - w h)^2 sum(x)
    (g,) = torch.autograd.grad(x1.sum(), w)
    torch.testing.assert_close(g, -((1 - 0.5 / 3) ** 2) * x.sum())


def test_standard_normal_log_prob():
    x = torch.randn(6, 3)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(dim=1)
    torch.testing.assert_close(standard_normal_log_prob(x), expected)


def gaussian_flow(m, S):
    """OT path between N(0, I) and N(m, S^2), S symmetric positive definite:
    x_t = A_t x0 + t m with A_t = (1 - t) I + t S, so
    u_t(x) = m + (S - I) A_t^{-1} (x - t m) and p_1 = N(m, S^2). For S = s I this is
    u_t(x) = m + (s - 1) / (1 - t + t s) (x - t m)."""
    eye = torch.eye(len(m))

    def u(x, t):
        A_t = (1 - t)[:, None, None] * eye + t[:, None, None] * S
        y = torch.linalg.solve(A_t, (x - t[:, None] * m)[:, :, None])[:, :, 0]
        return m + y @ (S - eye).T

    return u


def test_log_likelihood_gaussian_to_gaussian_exact():
    m, s = torch.tensor([1.0, -2.0]), 0.5
    u = lambda x, t: m + (s - 1) / (1 - t + t * s)[:, None] * (x - t[:, None] * m)
    x1 = m + s * torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    log_p1, x0 = log_likelihood(u, x1, steps=100, method="rk4")
    expected = torch.distributions.Normal(m, s).log_prob(x1).sum(dim=1)
    assert (log_p1 - expected).abs().max() < 1e-4
    torch.testing.assert_close(x0, (x1 - m) / s)  # x1 = s x0 + m, inverted


def test_log_likelihood_anisotropic_gaussian_all_methods():
    m, S = torch.tensor([0.5, 1.0]), torch.tensor([[1.5, 0.6], [0.6, 0.4]])
    u = gaussian_flow(m, S)
    x1 = torch.randn(32, 2, generator=torch.Generator().manual_seed(1)) @ S + m
    expected = torch.distributions.MultivariateNormal(m, S @ S).log_prob(x1)
    for method, steps, tol in [("rk4", 20, 1e-4), ("dopri5", 1, 1e-4), ("midpoint", 20, 1e-2)]:
        log_p1, _ = log_likelihood(u, x1, steps=steps, method=method)
        assert (log_p1 - expected).abs().max() < tol, method


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_log_likelihood_equals_stepping_the_augmented_state(method):
    # Independent route: integrate z = [x, l] with d/dt z = [u, -div u], div u analytic.
    def field(x, t):
        a, b = x[:, 0], x[:, 1]
        return torch.stack([-b + 0.5 * torch.sin(a * t), a + 0.3 * torch.sin(b) + t], dim=1)

    def augmented(z, t):
        a, b = z[:, 0], z[:, 1]
        div = 0.5 * t * torch.cos(a * t) + 0.3 * torch.cos(b)
        return torch.cat([field(z[:, :2], t), -div[:, None]], dim=1)

    x1 = torch.randn(10, 2)
    z1 = torch.cat([x1, torch.zeros(10, 1)], dim=1)
    z0 = integrate(augmented, z1, 1.0, 0.0, steps=7, method=method).x
    log_p1, x0 = log_likelihood(field, x1, steps=7, method=method)
    torch.testing.assert_close(x0, z0[:, :2])
    torch.testing.assert_close(log_p1, standard_normal_log_prob(z0[:, :2]) - z0[:, 2])


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_log_likelihood_hutchinson_is_unbiased_with_the_predicted_spread(probe):
    # With probes fixed along the path the error is eps^T M eps - tr M, M = int_0^1 J dt =
    # log S (A_t and S commute). Mean 0; variance per probe 2 sum_{i != j} M_ij^2
    # (Rademacher) or 2 |M|_F^2 (Gaussian), divided by the number of probes K.
    m, S = torch.tensor([0.5, 1.0]), torch.tensor([[1.5, 0.6], [0.6, 0.4]])
    lam, V = torch.linalg.eigh(S)
    M = V @ torch.diag(lam.log()) @ V.T
    var1 = (
        2 * (M**2).sum() - (2 * M.diagonal() ** 2).sum()
        if probe == "rademacher"
        else 2 * (M**2).sum()
    )
    n = 1000
    x1 = torch.randn(n, 2, generator=torch.Generator().manual_seed(2)) @ S + m
    expected = torch.distributions.MultivariateNormal(m, S @ S).log_prob(x1)
    gen = torch.Generator().manual_seed(3)
    for K in (1, 4):
        log_p1, _ = log_likelihood(
            gaussian_flow(m, S),
            x1,
            steps=4,
            estimator="hutchinson",
            n_probes=K,
            probe=probe,
            generator=gen,
        )
        error, std = log_p1 - expected, (var1 / K).sqrt()
        assert abs(error.mean()) < 3 * std / math.sqrt(n)
        assert abs(error.std() / std - 1) < 0.15, (K, float(error.std()), float(std))


def test_bad_input_raises():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        integrate(decay, x, steps=0)
    with pytest.raises(ValueError, match="method must be one of .*'rk4'.*got 'heun'"):
        integrate(decay, x, method="heun")
    with pytest.raises(ValueError, match="t1 must be in \\[0, 1\\], got 1.5"):
        integrate(decay, x, t1=1.5)
    with pytest.raises(ValueError, match="x must be a tensor of shape \\[N, d\\]"):
        integrate(decay, torch.randn(4))
    with pytest.raises(ValueError, match="x1 must be a tensor of shape"):
        log_likelihood(decay, torch.randn(4))
    with pytest.raises(ValueError, match="t0 must be in \\[0, 1\\], got -0.1"):
        integrate(decay, x, t0=-0.1)
    with pytest.raises(ValueError, match="estimator must be one of"):
        log_likelihood(decay, x, estimator="skilling")
    with pytest.raises(ValueError, match="n_probes must be"):
        log_likelihood(decay, x, estimator="hutchinson", n_probes=0)


def test_position_at_is_the_solver_on_its_grid_and_a_shortened_last_step():
    """Linear field u = A x: Euler iterates are (I + h A)^k x0, a shortened step of length
    s is (I + s A) (Euler) or I + s A + (s A)^2 / 2 (midpoint): every position is known."""
    a = torch.tensor([[-1.0, 2.0], [-2.0, -1.0]], dtype=torch.float64)
    eye = torch.eye(2, dtype=torch.float64)
    u = lambda x, t: x @ a.T
    x0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    traj = integrate(u, x0, steps=4, method="euler", trajectory=True).trajectory
    step = eye + a / 4
    for k in range(5):  # grid times t_k = k / 4: the iterate itself
        assert torch.equal(position_at(traj, k / 4), traj[k])
        assert torch.equal(position_at(traj, k / 4, u), traj[k])
    expected = x0 @ step.T @ step.T @ (eye + 0.1 * a).T  # t = 0.6: two steps, then h = 0.1
    for x in (position_at(traj, 0.6), position_at(traj, 0.6, u)):  # polygon = shortened step
        torch.testing.assert_close(x, expected, rtol=0, atol=1e-14)
    mid = integrate(u, x0, steps=1, method="midpoint", trajectory=True).trajectory
    shortened = eye + 0.3 * a + (0.3 * a) @ (0.3 * a) / 2
    torch.testing.assert_close(position_at(mid, 0.3, u, "midpoint"), x0 @ shortened.T)
    with pytest.raises(ValueError, match="u is needed to step 'midpoint'"):
        position_at(mid, 0.3, method="midpoint")
    with pytest.raises(ValueError, match="t must be in \\[0, 1\\], got 1.2"):
        position_at(traj, 1.2)
