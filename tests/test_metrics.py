"""fmlib.metrics against closed forms: energy distance, sliced W2, support, KL."""

import math

import pytest
import torch

from fmlib import data
from fmlib.metrics import (
    energy_distance,
    in_support_fraction,
    kl_checkerboard,
    kl_to_target,
    sliced_wasserstein,
)


def test_energy_distance_of_identical_samples():
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    assert energy_distance(x, x, unbiased=False) == pytest.approx(0.0, abs=1e-12)
    assert abs(energy_distance(x, x)) < 0.02  # the U-statistic: -2 E|X - X'| / n


def test_energy_distance_between_shifted_gaussians():
    """1D: D^2 = 2 E|N(m, 2)| - 2 E|N(0, 2)|, E|N(mu, s^2)| = s sqrt(2/pi) e^(-mu^2/2s^2)
    + mu (1 - 2 Phi(-mu / s))."""
    g = torch.Generator().manual_seed(1)
    m, s = 1.0, math.sqrt(2.0)
    x, y = torch.randn(3000, 1, generator=g), m + torch.randn(3000, 1, generator=g)
    phi = 0.5 * (1 + math.erf(-m / s / math.sqrt(2)))
    mean_abs = s * math.sqrt(2 / math.pi) * math.exp(-(m**2) / (2 * s**2)) + m * (1 - 2 * phi)
    expected = 2 * mean_abs - 2 * s * math.sqrt(2 / math.pi)
    assert energy_distance(x, y) == pytest.approx(expected, abs=0.03)


def test_sliced_wasserstein_of_a_shift():
    """y = x + m: W2 along theta is |theta . m|; SW2^2 = mean (theta . m)^2 -> |m|^2 / 2."""
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(2))
    m = torch.tensor([1.0, -2.0])
    sw = sliced_wasserstein(x, x + m, n_projections=400, generator=torch.Generator().manual_seed(3))
    theta = torch.randn(2, 400, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    assert sw == pytest.approx(((m.double() @ theta) ** 2).mean().sqrt().item(), rel=1e-5)
    assert sw == pytest.approx(m.norm().item() / math.sqrt(2), rel=0.05)
    assert sliced_wasserstein(x, x, 10) == pytest.approx(0.0, abs=1e-12)


def test_in_support_fraction():
    x = data.sample("checkerboard", 1000, torch.Generator().manual_seed(4))
    assert in_support_fraction(x) == 1.0
    # one square to the right: dark squares become light ones or leave the board
    assert in_support_fraction(x + torch.tensor([1 / 0.45, 0.0])) == 0.0


def _gaussian_flow(m: torch.Tensor, s: float):
    """The OT field taking N(0, I) to N(m, s^2 I): psi_t(x0) = (1 - t + t s) x0 + t m, so
    u_t(x) = (s - 1) (x - t m) / (1 - t + t s) + m."""

    def u(x, t):
        t = t[:, None]
        return (s - 1) * (x - t * m) / (1 - t + t * s) + m

    return u


def test_kl_of_a_flow_with_known_density():
    """p_theta = N(m, s^2 I): KL(q || p) = E_q[-log N(x | m, s^2 I)] - H(q), where for the
    checkerboard E_q x = 0 and E_q |x|^2 = 2 (4/3) / 0.45^2 (uniform marginals on [-2, 2]/0.45)."""
    m, s = torch.tensor([0.5, -0.3]), 2.5
    u = _gaussian_flow(m, s)
    kl = kl_checkerboard(u, n=2000, steps=20, generator=torch.Generator().manual_seed(5))
    x = data.sample("checkerboard", 2000, torch.Generator().manual_seed(5))
    neg_log_p = ((x - m) ** 2).sum(1) / (2 * s**2) + math.log(2 * math.pi * s**2)
    same_samples = neg_log_p.mean().item() - data.checkerboard_entropy()
    assert kl == pytest.approx(same_samples, abs=1e-4)
    second_moment = 2 * (4 / 3) / 0.45**2 + (m**2).sum().item()
    closed_form = second_moment / (2 * s**2) + math.log(2 * math.pi * s**2)
    assert kl == pytest.approx(closed_form - data.checkerboard_entropy(), abs=0.05)


def test_kl_to_target_eight_gaussians_is_log_q_minus_log_p():
    u = _gaussian_flow(torch.zeros(2), 2.0)
    kl = kl_to_target(
        u, "eight_gaussians", n=500, steps=10, generator=torch.Generator().manual_seed(6)
    )
    x = data.sample("eight_gaussians", 500, torch.Generator().manual_seed(6))
    log_p = -(x**2).sum(1) / 8 - math.log(2 * math.pi * 4)
    assert kl == pytest.approx(
        (data.log_prob("eight_gaussians", x) - log_p).mean().item(), abs=1e-4
    )
    assert kl > 0


@pytest.mark.parametrize(
    ("call", "arg"),
    [
        (lambda: kl_to_target(lambda x, t: x, n=0), "n"),
        (lambda: kl_to_target(lambda x, t: x, steps=0), "steps"),
        (lambda: energy_distance(torch.zeros(5, 2), torch.zeros(5, 3)), "y"),
        (lambda: energy_distance(torch.zeros(1, 2), torch.zeros(5, 2)), "x"),
        (lambda: sliced_wasserstein(torch.zeros(5, 2), torch.zeros(4, 2)), "y"),
        (lambda: sliced_wasserstein(torch.zeros(5, 2), torch.zeros(5, 2), 0), "n_projections"),
        (lambda: in_support_fraction(torch.zeros(5, 2), "moons"), "name"),
    ],
)
def test_bad_arguments_raise(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
