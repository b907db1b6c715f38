"""Tests for fmlib.paths: boundary conditions, d/dt psi_t = u_t(psi_t) = target, Monte Carlo
moments, the paper's closed forms (Lipman et al. 2023, eqs. 17, 19, 21), edges, errors."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlib.paths import (
    PATH_NAMES,
    VE_S_MIN,
    AffinePath,
    GaussianPath,
    OTPath,
    VEPath,
    VPPath,
    as_time,
    cosine_path,
    make_path,
    ot_conditional_velocity,
)

F64 = torch.float64


def linear_autograd_path() -> AffinePath:
    """OT-like schedule with no derivatives given: exercises the autograd fallback."""
    return AffinePath(alpha=lambda t: t**2, sigma=lambda t: 1 - t**2 + 0.1 * t**2)


PATHS = {
    "ot0": OTPath(0.0),
    "ot": OTPath(0.1),
    "vp": VPPath(),
    "ve": VEPath(),
    "cosine": cosine_path(),
    "affine_autograd": linear_autograd_path(),
}


def vp_end() -> float:
    """a(1) = exp(-T(1)/2), T(1) = beta_min + (beta_max - beta_min)/2 with the defaults."""
    return math.exp(-(0.1 + (20.0 - 0.1) / 2) / 2)


# name -> (alpha_0, alpha_1, sigma_0, sigma_1, tolerance)
BOUNDARIES = {
    "ot0": (0.0, 1.0, 1.0, 0.0, 0.0),
    "ot": (0.0, 1.0, 1.0, 0.1, 1e-15),
    # VP: alpha_0 = a(1) ~ 0.0066 and sigma_0 = sqrt(1 - a(1)^2) ~ 1 - 2e-5 (approximate).
    "vp": (vp_end(), 1.0, math.sqrt(1 - vp_end() ** 2), 0.0, 1e-12),
    # VE: alpha = 1 always, sigma_0 = s_max, sigma_1 = s_min ~ 0 (approximate noise source).
    "ve": (1.0, 1.0, 5.0, 0.01, 1e-12),
    "cosine": (0.0, 1.0, 1.0, 0.0, 0.0),
    "affine_autograd": (0.0, 1.0, 1.0, 0.1, 1e-15),
}


@pytest.mark.parametrize("name", BOUNDARIES)
def test_boundary_conditions(name: str) -> None:
    path = PATHS[name]
    a0, a1, s0, s1, tol = BOUNDARIES[name]
    zero, one = torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64)
    assert abs(path.alpha_t(zero).item() - a0) <= tol
    assert abs(path.alpha_t(one).item() - a1) <= tol
    assert abs(path.sigma_t(zero).item() - s0) <= tol
    assert abs(path.sigma_t(one).item() - s1) <= tol


def test_vp_and_ve_sources_are_only_approximately_noise() -> None:
    vp, ve = VPPath(), VEPath()
    assert 0 < vp.alpha_t(0.0).item() < 0.01
    assert abs(vp.sigma_t(0.0).item() - 1) < 1e-4
    assert ve.alpha_t(0.0).item() == 1.0  # p_0(x | x1) = N(x1, s_max^2): mean x1, not 0
    assert 0 < ve.sigma_t(1.0).item() <= 0.01


def autograd_dt(f, t: torch.Tensor) -> torch.Tensor:
    """Elementwise d f(t) / dt for f acting row-wise on t: [N]."""
    t = t.clone().requires_grad_(True)
    y = f(t)
    if not y.requires_grad:  # constant schedule (VE's alpha_t = 1)
        return torch.zeros_like(y)
    cols = [torch.autograd.grad(y[:, i].sum(), t, retain_graph=True)[0] for i in range(y.shape[1])]
    return torch.stack(cols, dim=1)


@pytest.mark.parametrize("name", PATHS)
def test_schedule_derivatives_match_autograd(name: str) -> None:
    path = PATHS[name]
    t = torch.linspace(0.0, 0.99, 23, dtype=F64)
    for f, df in ((path.alpha_t, path.d_alpha_t), (path.sigma_t, path.d_sigma_t)):
        exact = autograd_dt(lambda s, f=f: f(s)[:, None], t)[:, 0]
        torch.testing.assert_close(df(t), exact, rtol=1e-10, atol=1e-12)
    expected = path.sigma_t(t) * path.d_sigma_t(t)
    torch.testing.assert_close(path.sigma_d_sigma_t(t), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", PATHS)
def test_velocity_generates_the_path(name: str) -> None:
    """d/dt psi_t(x0 | x1) (autograd in t) = u_t(psi_t(x0 | x1) | x1) = target(x0, x1, t)."""
    path = PATHS[name]
    g = torch.Generator().manual_seed(0)
    n = 64
    x0 = torch.randn(n, 2, generator=g, dtype=F64)
    x1 = 3 * torch.randn(n, 2, generator=g, dtype=F64)
    t = torch.rand(n, generator=g, dtype=F64) * 0.999
    t[0] = 0.0
    dpsi = autograd_dt(lambda s: path.psi_t(x0, x1, s), t)
    x_t = path.psi_t(x0, x1, t)
    torch.testing.assert_close(path.target(x0, x1, t), dpsi, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(path.u_t(x_t, x1, t), dpsi, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("path", [OTPath(0.1), VEPath()], ids=repr)
def test_velocity_generates_the_path_at_t1_when_sigma1_positive(path: GaussianPath) -> None:
    x0, x1 = torch.randn(5, 2, dtype=F64), torch.randn(5, 2, dtype=F64)
    t = torch.ones(5, dtype=F64)
    dpsi = autograd_dt(lambda s: path.psi_t(x0, x1, s), t)
    torch.testing.assert_close(path.u_t(path.psi_t(x0, x1, t), x1, t), dpsi)


def test_closed_forms_of_the_paper() -> None:
    """Eqs. (17), (19), (21), computed here independently, equal the paths' u_t."""
    g = torch.Generator().manual_seed(1)
    x, x1 = torch.randn(50, 3, generator=g, dtype=F64), torch.randn(50, 3, generator=g, dtype=F64)
    t = torch.rand(50, generator=g, dtype=F64) * 0.99
    tc = t[:, None]
    # OT, eq. (21), and the generic eq. (15) of the base class
    ot = OTPath(0.05)
    eq21 = (x1 - 0.95 * x) / (1 - 0.95 * tc)
    torch.testing.assert_close(ot.u_t(x, x1, t), eq21)
    torch.testing.assert_close(GaussianPath.u_t(ot, x, x1, t), eq21)
    torch.testing.assert_close(ot_conditional_velocity(x, x1, t, 0.05), eq21)
    # VP, eq. (19): a(s) = exp(-T(s)/2), a'(s) = -beta(s) a(s) / 2
    s = 1 - tc
    big_t = 0.1 * s + 19.9 * s**2 / 2
    a = torch.exp(-big_t / 2)
    da = -(0.1 + 19.9 * s) * a / 2
    eq19 = da / (1 - a**2) * (a * x - x1)
    torch.testing.assert_close(VPPath().u_t(x, x1, t), eq19)
    torch.testing.assert_close(VPPath().psi_t(x, x1, t), a * x1 + torch.sqrt(1 - a**2) * x)
    # VE, eq. (17): s_r = s_min (s_max/s_min)^r, u = -(s'_{1-t}/s_{1-t}) (x - x1)
    eq17 = -math.log(5.0 / 0.01) * (x - x1)
    torch.testing.assert_close(VEPath().u_t(x, x1, t), eq17)
    torch.testing.assert_close(VEPath().sigma_t(t), 0.01 * (5.0 / 0.01) ** (1 - t))


def test_autograd_schedule_matches_explicit_derivatives() -> None:
    h = math.pi / 2
    explicit = cosine_path()
    implicit = AffinePath(lambda t: torch.sin(h * t), lambda t: torch.sin(h * (1 - t)))
    t = torch.linspace(0, 1, 11, dtype=F64)
    torch.testing.assert_close(implicit.d_alpha_t(t), explicit.d_alpha_t(t))
    torch.testing.assert_close(implicit.d_sigma_t(t), explicit.d_sigma_t(t))


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("t", [0.0, 0.3, 0.9])
def test_monte_carlo_mean_and_std(name: str, t: float) -> None:
    """x_t = psi_t(x0 | x1), x0 ~ N(0, I), has mean alpha_t x1 and std sigma_t (5 s.e.)."""
    path = PATHS[name]
    g = torch.Generator().manual_seed(2)
    n = 40_000
    x1 = torch.tensor([[1.5, -2.0]], dtype=F64).expand(n, 2)
    x_t = path.sample(torch.randn(n, 2, generator=g, dtype=F64), x1, t)
    alpha, sigma = path.alpha_t(t).item(), path.sigma_t(t).item()
    se_mean, se_std = sigma / math.sqrt(n), sigma / math.sqrt(2 * n)
    assert (x_t.mean(0) - alpha * x1[0]).abs().max().item() < 5 * se_mean
    assert (x_t.std(0) - sigma).abs().max().item() < 5 * se_std


def test_conditional_log_prob_is_the_gaussian_density() -> None:
    path = OTPath(0.1)
    x, x1 = torch.randn(7, 2, dtype=F64), torch.randn(7, 2, dtype=F64)
    t = torch.rand(7, dtype=F64)
    mean, std = t[:, None] * x1, (1 - 0.9 * t)[:, None]
    expected = torch.distributions.Normal(mean, std).log_prob(x).sum(1)
    torch.testing.assert_close(path.log_prob(x, x1, t), expected)
    with pytest.raises(ValueError, match="sigma_t"):
        OTPath(0.0).log_prob(x, x1, 1.0)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("t", [0.0, 1.0])
def test_no_nan_at_the_edges(name: str, t: float) -> None:
    path = PATHS[name]
    x0, x1 = torch.randn(9, 2), torch.randn(9, 2)
    x = torch.randn(9, 2)
    for value in (
        path.u_t(x, x1, t),
        path.u_t(path.psi_t(x0, x1, t), x1, t),
        path.target(x0, x1, t),
        path.psi_t(x0, x1, t),
        path.d_sigma_t(t),
    ):
        assert torch.isfinite(value).all()


def test_ot_edges_sigma_min_zero() -> None:
    path = OTPath(0.0)
    x0, x1, x = torch.randn(6, 2), torch.randn(6, 2), torch.randn(6, 2)
    torch.testing.assert_close(path.psi_t(x0, x1, 0.0), x0)
    torch.testing.assert_close(path.psi_t(x0, x1, 1.0), x1)
    torch.testing.assert_close(path.target(x0, x1, 1.0), x1 - x0)
    torch.testing.assert_close(path.u_t(x, x1, 1.0), x1 - x)  # documented safe value
    torch.testing.assert_close(path.u_t(x, x1, 0.0), x1 - x)  # eq. (21) at t = 0
    # the generic base formula at sigma_t = 0 returns mu_t' on the path (documented)
    torch.testing.assert_close(GaussianPath.u_t(path, x1, x1, 1.0), x1)


def test_time_shapes_broadcast_rowwise() -> None:
    path = VPPath()
    x0, x1 = torch.randn(4, 2), torch.randn(4, 2)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    rows = [path.u_t(x0[i : i + 1], x1[i : i + 1], t[i].item()) for i in range(4)]
    torch.testing.assert_close(path.u_t(x0, x1, t), torch.cat(rows))
    torch.testing.assert_close(path.psi_t(x0, x1, t[:, None]), path.psi_t(x0, x1, t))
    torch.testing.assert_close(path.psi_t(x0, x1, torch.tensor(0.5)), path.psi_t(x0, x1, 0.5))
    assert path.alpha_t(0.5).shape == () and path.alpha_t(t).shape == (4,)
    images = torch.randn(4, 1, 3, 3)  # [N, C, H, W] also broadcasts
    assert path.psi_t(images, images, t).shape == images.shape


def test_time_round_off_is_clamped() -> None:
    assert as_time(1 + 1e-9).item() == 1.0
    assert as_time(-1e-9).item() == 0.0
    u = OTPath().u_t(torch.ones(1, 2), torch.zeros(1, 2), 1 + 1e-9)
    torch.testing.assert_close(u, -torch.ones(1, 2))  # t clamped to 1: x1 - x


@pytest.mark.parametrize("bad", [1.5, -0.1, 1 + 1e-3, float("nan"), torch.tensor([0.5, 2.0])])
def test_t_out_of_range_raises(bad) -> None:
    with pytest.raises(ValueError, match=r"t must be in \[0, 1\]"):
        OTPath().psi_t(torch.zeros(2, 2), torch.zeros(2, 2), bad)


@pytest.mark.parametrize("sigma_min", [-0.1, 1.0, 1.5])
def test_sigma_min_out_of_range_raises(sigma_min: float) -> None:
    with pytest.raises(ValueError, match=r"sigma_min must be in \[0, 1\), got"):
        OTPath(sigma_min)


def test_shape_mismatch_raises() -> None:
    path = OTPath()
    with pytest.raises(ValueError, match="x0 and x1 must have the same shape"):
        path.psi_t(torch.zeros(3, 2), torch.zeros(4, 2), 0.5)
    with pytest.raises(ValueError, match="x and x1"):
        path.u_t(torch.zeros(3, 2), torch.zeros(3, 3), 0.5)
    with pytest.raises(ValueError, match="t must be a scalar or have shape"):
        path.psi_t(torch.zeros(3, 2), torch.zeros(3, 2), torch.rand(5))


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError, match="beta_min"):
        VPPath(beta_min=-1.0)
    with pytest.raises(ValueError, match="beta_max"):
        VPPath(beta_min=1.0, beta_max=0.5)
    with pytest.raises(ValueError, match="s_min"):
        VEPath(s_min=0.0)
    with pytest.raises(ValueError, match="s_max"):
        VEPath(s_min=1.0, s_max=0.5)
    with pytest.raises(ValueError, match=r"alpha\(0\) must be 0"):
        AffinePath(lambda t: t + 0.1, lambda t: 1 - t)
    with pytest.raises(ValueError, match=r"alpha\(1\) must be 1"):
        AffinePath(lambda t: 0.5 * t, lambda t: 1 - t)
    with pytest.raises(ValueError, match=r"sigma\(0\) must be 1"):
        AffinePath(lambda t: t, lambda t: 2 - t)


def test_reprs_are_readable() -> None:
    reprs = [repr(p) for p in PATHS.values()]
    assert reprs[:5] == [
        "OTPath(sigma_min=0.0)",
        "OTPath(sigma_min=0.1)",
        "VPPath(beta_min=0.1, beta_max=20.0)",
        "VEPath(s_min=0.01, s_max=5.0)",
        "AffinePath(name='cosine')",
    ]
    assert all("0x" not in r for r in reprs)


xy = st.lists(st.floats(-10, 10), min_size=2, max_size=2)


@settings(max_examples=60, deadline=None)
@given(sigma_min=st.floats(0.0, 0.99), t=st.floats(0.0, 1.0), x0=xy, x1=xy)
def test_ot_properties(sigma_min: float, t: float, x0: list, x1: list) -> None:
    path = OTPath(sigma_min)
    x0_, x1_ = torch.tensor([x0], dtype=F64), torch.tensor([x1], dtype=F64)
    x_t = path.psi_t(x0_, x1_, t)
    sigma = 1 - (1 - sigma_min) * t
    torch.testing.assert_close(x_t, t * x1_ + sigma * x0_)  # closed form
    target = path.target(x0_, x1_, t)
    tt = torch.tensor([t], dtype=F64)
    torch.testing.assert_close(target, autograd_dt(lambda s: path.psi_t(x0_, x1_, s), tt))
    u = path.u_t(x_t, x1_, t)
    assert torch.isfinite(u).all() and torch.isfinite(target).all()
    if sigma > 1e-6:  # eq. (21) on the path equals the target up to round-off / sigma_t
        tol = 1e-12 * (1 + x0_.abs().max().item() + x1_.abs().max().item()) / sigma
        assert (u - target).abs().max().item() <= tol + 1e-10
    elif sigma == 0:  # safe denominator: x1 - (1 - sigma_min) x_t, finite
        torch.testing.assert_close(u, x1_ - (1 - sigma_min) * x_t)


def test_ot_flow_is_the_line_of_notebook_00():
    """x_t = (1 - (1 - sigma_min) t) x0 + t x1 (notebook 00's line) is OTPath.psi_t."""
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    x1 = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    for sigma_min in (0.0, 0.1, 0.4):
        for t in (0.0, 0.3, 1.0):
            line = (1 - (1 - sigma_min) * t) * x0 + t * x1
            torch.testing.assert_close(OTPath(sigma_min).psi_t(x0, x1, t), line, rtol=0, atol=1e-15)


def test_make_path_names_and_validation():
    assert isinstance(make_path("OT", 0.1), OTPath) and make_path("OT", 0.1).sigma_min == 0.1
    assert make_path("cosine").name == "cosine" and isinstance(make_path("VP"), VPPath)
    ve = make_path("VE", 0.0)
    assert isinstance(ve, VEPath) and ve.s_min == VE_S_MIN  # s_min must stay > 0
    assert make_path("VE", 0.2).s_min == VE_S_MIN  # sigma_min is OT's only: no clamp
    assert PATH_NAMES == ("OT", "cosine", "VP", "VE")
    with pytest.raises(ValueError, match="path must be one of OT, cosine, VP, VE, got 'EDM'"):
        make_path("EDM")
    with pytest.raises(ValueError, match=r"sigma_min must be in \[0, 1\), got 1.0"):
        make_path("OT", 1.0)
    with pytest.raises(ValueError, match=r"sigma_min must be in \[0, 1\), got -0.1"):
        make_path("cosine", -0.1)  # checked for every path, used by OT only
