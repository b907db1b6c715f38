"""fmlib.metrics against closed forms: energy distance, sliced W2, support, KL."""

import math

import numpy as np
import pytest
import torch

from fmlib import data, metrics
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


def test_straightness_of_known_fields():
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shift = torch.tensor([1.0, -2.0], dtype=torch.float64)
    s_const, x_end = metrics.straightness(lambda x, t: shift.expand_as(x), x0, steps=8)
    assert s_const < 1e-20 and torch.allclose(x_end, x0 + shift)
    # u = a x: x_t = x0 e^{a t}, chord x0 (e^a - 1); S = E|x0|^2 int (a e^{a t} - (e^a - 1))^2 dt
    a = 1.0
    s_lin, _ = metrics.straightness(lambda x, t: a * x, x0, steps=256)
    e = np.exp(a)
    per_unit = a * (e**2 - 1) / 2 - 2 * (e - 1) ** 2 + (e - 1) ** 2  # the integral in closed form
    assert s_lin == pytest.approx(per_unit * float((x0**2).sum(1).mean()), rel=1e-3)
    # per particle: |x0_i|^2 times the same integral; their mean is S
    terms, _ = metrics.straightness_terms(lambda x, t: a * x, x0, steps=256)
    assert torch.allclose(terms, per_unit * (x0**2).sum(1), rtol=1e-3)
    assert float(terms.mean()) == pytest.approx(s_lin, rel=1e-12)


def test_quadrature_weights_integrate_polynomials():
    nodes = torch.linspace(0, 1, 7, dtype=torch.float64)
    trap, simp = metrics.quadrature_weights(6), metrics.quadrature_weights(6, "simpson")
    assert float(trap @ nodes) == pytest.approx(0.5, abs=1e-15)  # exact for lines
    assert float(trap @ nodes**2) == pytest.approx(1 / 3 + 1 / (6 * 36), abs=1e-15)  # h^2/6 off
    for p in range(4):  # Simpson: exact for cubics, not for quartics (the test can fail)
        assert float(simp @ nodes**p) == pytest.approx(1 / (p + 1), abs=1e-15)
    assert abs(float(simp @ (4 * nodes**3 - 3 * nodes**2 + 1)) - 1.0) < 1e-14
    assert abs(float(simp @ nodes**4) - 0.2) > 1e-6
    with pytest.raises(ValueError, match="steps must be an even integer >= 2, got 5"):
        metrics.quadrature_weights(5, "simpson")
    with pytest.raises(ValueError, match="rule must be one of"):
        metrics.quadrature_weights(4, "midpoint")


def test_path_energy_kinetic_energy_and_straightness_of_a_line_at_changing_speed():
    """x_t = t^2 v: a straight line run at speed 2t |v|. K = int 4 t^2 |v|^2 = 4/3 |v|^2,
    S = K - |v|^2 = |v|^2 / 3 (Simpson is exact for these quadratics); chord_over_length = 1."""
    v = torch.tensor([[3.0, -4.0], [1.0, 0.0]], dtype=torch.float64)  # |v|^2 = 25, 1
    times = torch.linspace(0, 1, 9, dtype=torch.float64)
    traj = times[:, None, None] ** 2 * v
    k, s = metrics.path_energy(lambda x, t: 2 * t[:, None] * v, traj, times, "simpson")
    assert torch.allclose(k, torch.tensor([100 / 3, 4 / 3], dtype=torch.float64), rtol=1e-12)
    assert torch.allclose(s, torch.tensor([25 / 3, 1 / 3], dtype=torch.float64), rtol=1e-12)
    assert torch.allclose(metrics.chord_over_length(traj), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="times must have 9 nodes"):
        metrics.path_energy(lambda x, t: x, traj, times[:-1])


def test_chord_over_length_closed_forms():
    t = torch.linspace(0, 1, 11)[:, None, None]
    line = t * torch.tensor([[3.0, 4.0]])  # a straight segment: ratio 1
    angle = math.pi * t[..., 0]
    half_circle = torch.stack([angle.cos(), angle.sin()], dim=-1)  # chord 2, length ~pi
    ratio = metrics.chord_over_length(torch.cat([line, half_circle], dim=1))
    polygon = 10 * 2 * math.sin(math.pi / 20)  # the 10 chords of the half circle
    torch.testing.assert_close(ratio, torch.tensor([1.0, 2 / polygon]))
    with pytest.raises(ValueError, match="trajectory must have shape"):
        metrics.chord_over_length(torch.zeros(1, 4, 2))


def test_quality_of_data_against_itself_and_shifted() -> None:
    y = data.sample("checkerboard", 500, torch.Generator().manual_seed(0))
    assert metrics.quality(y, y) == {"sw": 0.0, "in_support": 1.0}
    shifted = metrics.quality(y + torch.tensor([0.5, 0.0]), y)
    assert shifted["sw"] == pytest.approx(0.5 / 2**0.5, rel=0.3)  # |<(0.5, 0), theta>|_rms
    assert shifted["in_support"] < 1.0
    # the same directions for every call (seeded), the seed's own for another seed
    assert metrics.quality(y + 0.5, y)["sw"] == metrics.quality(y + 0.5, y)["sw"]
    assert metrics.quality(y + 0.5, y, seed=1)["sw"] != metrics.quality(y + 0.5, y)["sw"]


def test_solver_error_is_the_mean_distance_to_the_reference() -> None:
    reference = torch.zeros(4, 2)
    x1 = torch.tensor([[3.0, 4.0], [0.0, 1.0], [0.0, 0.0], [-2.0, 0.0]])
    assert metrics.solver_error(x1, reference) == pytest.approx((5 + 1 + 0 + 2) / 4)


def test_mean_se_is_the_standard_error_over_seeds() -> None:
    mean, se = metrics.mean_se([1.0, 2.0, 6.0])
    assert mean == pytest.approx(3.0) and se == pytest.approx(np.sqrt(7.0 / 3.0))
    with pytest.raises(ValueError, match="at least 2 values"):
        metrics.mean_se([1.0])


def test_chunked_energy_distances() -> None:
    """One block per chunk, float64; about 0 for two samples of one law, clearly positive for a
    shifted one; mismatched shapes, a ragged split and one chunk are refused."""
    gen = torch.Generator().manual_seed(5)
    x, z = torch.randn(2000, 2, generator=gen), torch.randn(2000, 2, generator=gen)
    same = metrics.chunked_energy_distances(x, z, 20)
    shifted = metrics.chunked_energy_distances(x + 1.0, z, 20)
    assert same.shape == (20,) and same.dtype == torch.float64
    assert abs(float(same.mean())) < 4 * float(same.std()) / 20**0.5
    assert float(shifted.mean()) > 0.5
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g)
    values = metrics.chunked_energy_distances(a, b, 4)
    assert bool((metrics.chunked_energy_distances(a + 2.0, b, 4) > values + 0.5).all())
    with pytest.raises(ValueError, match="same N"):
        metrics.chunked_energy_distances(x, z[:300], 20)
    with pytest.raises(ValueError, match="divisible"):
        metrics.chunked_energy_distances(a, b, 3)
    with pytest.raises(ValueError, match="chunks must be"):
        metrics.chunked_energy_distances(x, z, 1)


def test_mean_se_takes_a_tensor() -> None:
    assert metrics.mean_se(torch.tensor([1.0, 2.0, 6.0])) == metrics.mean_se([1.0, 2.0, 6.0])
