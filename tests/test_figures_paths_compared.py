"""Notebook 07's helpers: closed forms of kinetic energies, Simpson's rule, the flows."""

from __future__ import annotations

import math

import pytest
import torch

from fmlib.figures import paths_compared as pc
from fmlib.paths import OTPath, VEPath


def _samples(n: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x1 = pc.target().sample(n, generator=g)
    return torch.randn(n, 2, generator=g, dtype=torch.float64), x1


def test_make_path_names_and_validation():
    assert isinstance(pc.make_path("OT", 0.1), OTPath)
    ve = pc.make_path("VE", 0.0)
    assert isinstance(ve, VEPath) and ve.s_min == pc.VE_S_MIN  # s_min must stay > 0
    assert pc.make_path("VE", 0.2).s_min == 0.2
    with pytest.raises(ValueError, match="path must be one of"):
        pc.make_path("EDM")
    with pytest.raises(ValueError, match="sigma_min must be in"):
        pc.make_path("OT", 1.0)
    with pytest.raises(ValueError, match="steps must be"):
        pc.endpoint_error("OT", 0.0, 0)


def test_simpson_weights_integrate_cubics_exactly():
    w = pc.simpson_weights(6)
    t = torch.linspace(0, 1, 7, dtype=torch.float64)
    assert abs(float(w @ (4 * t**3 - 3 * t**2 + 1)) - 1.0) < 1e-14  # int = 1 - 1 + 1
    assert abs(float(w @ t**4) - 0.2) > 1e-6  # not exact beyond cubics: the test can fail
    with pytest.raises(ValueError, match="even"):
        pc.simpson_weights(5)


def test_conditional_kinetic_energy_closed_forms():
    x0, x1 = _samples()
    m = lambda a, b: float((a * b).sum(1).mean())  # noqa: E731
    ot = pc.conditional_kinetic_energy(pc.make_path("OT"), x0, x1, n=50)
    assert ot == pytest.approx(m(x1 - x0, x1 - x0), rel=1e-12)  # constant speed: exact
    cos = pc.conditional_kinetic_energy(pc.make_path("cosine"), x0, x1, n=1000)
    expected = math.pi**2 / 8 * (m(x0, x0) + m(x1, x1)) - math.pi / 2 * m(x0, x1)
    assert cos == pytest.approx(expected, rel=1e-6)
    ve = pc.make_path("VE")
    k_ve = pc.conditional_kinetic_energy(ve, x0, x1, n=2000)
    assert k_ve == pytest.approx(ve.log_ratio / 2 * (ve.s_max**2 - ve.s_min**2) * m(x0, x0), 1e-5)


def test_vp_conditional_kinetic_energy_grows_like_log():
    x0, x1 = _samples()
    vp = pc.make_path("VP")
    k = [pc.conditional_kinetic_energy(vp, x0, x1, n) for n in (1000, 100_000)]
    predicted = pc.vp_log_growth(vp.beta_min, decades=2) * float((x0**2).sum(1).mean())
    assert k[1] - k[0] == pytest.approx(predicted, rel=0.03)


def test_marginal_flow_reaches_p1_and_straightness_is_consistent():
    for name in pc.PATH_NAMES:
        k, s = pc.kinetic_energy(name, 0.0)
        traj = pc.reference(name, 0.0)
        chord = float(((traj[-1] - traj[0]) ** 2).sum(1).mean())
        assert s == pytest.approx(k - chord) and s > 0
        radius = traj[-1].norm(dim=1)  # endpoints ~ q: the circle of radius 2, std 0.2
        assert abs(float(radius.mean()) - 2.0) < 0.1
    errors = [pc.endpoint_error("OT", 0.0, n) for n in (4, 8, 16, 32)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert 0.7 < orders[-1] < 1.3  # Euler: first order against the RK4 reference
