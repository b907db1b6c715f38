"""Notebook 07's helpers: closed forms of kinetic energies, the flows."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from fmlib import data  # noqa: E402
from fmlib.figures import paths_compared as pc  # noqa: E402
from fmlib.paths import PATH_NAMES, make_path  # noqa: E402
from fmlib.plots import LOG_P_CEIL, LOG_P_FLOOR  # noqa: E402


def _samples(n: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x1 = data.eight_gaussians_mixture().sample(n, generator=g)
    return torch.randn(n, 2, generator=g, dtype=torch.float64), x1


def test_bad_steps_raise():
    with pytest.raises(ValueError, match="steps must be"):
        pc.endpoint_error("OT", 0.0, 0)


def test_conditional_kinetic_energy_closed_forms():
    x0, x1 = _samples()
    m = lambda a, b: float((a * b).sum(1).mean())  # noqa: E731
    ot = pc.conditional_kinetic_energy(make_path("OT"), x0, x1, n=50)
    assert ot == pytest.approx(m(x1 - x0, x1 - x0), rel=1e-12)  # constant speed: exact
    cos = pc.conditional_kinetic_energy(make_path("cosine"), x0, x1, n=1000)
    expected = math.pi**2 / 8 * (m(x0, x0) + m(x1, x1)) - math.pi / 2 * m(x0, x1)
    assert cos == pytest.approx(expected, rel=1e-6)
    ve = make_path("VE")
    k_ve = pc.conditional_kinetic_energy(ve, x0, x1, n=2000)
    assert k_ve == pytest.approx(ve.log_ratio / 2 * (ve.s_max**2 - ve.s_min**2) * m(x0, x0), 1e-5)


def test_vp_conditional_kinetic_energy_grows_like_log():
    x0, x1 = _samples()
    vp = make_path("VP")
    k = [pc.conditional_kinetic_energy(vp, x0, x1, n) for n in (1000, 100_000)]
    predicted = pc.vp_log_growth(vp.beta_min, decades=2) * float((x0**2).sum(1).mean())
    assert k[1] - k[0] == pytest.approx(predicted, rel=0.03)


def test_marginal_flow_reaches_p1_and_straightness_is_consistent():
    for name in PATH_NAMES:
        k, s = pc.kinetic_energy(name, 0.0)
        traj = pc.reference(name, 0.0)
        chord = float(((traj[-1] - traj[0]) ** 2).sum(1).mean())
        # S (by its definition) = K - E|x_1 - x_0|^2 (an identity of the exact flow): two
        # computations that agree to the quadrature / RK4 error (3e-5 relative at VP)
        assert s == pytest.approx(k - chord, rel=1e-4) and s > 0
        radius = traj[-1].norm(dim=1)  # endpoints ~ q: the circle of radius 2, std 0.2
        assert abs(float(radius.mean()) - 2.0) < 0.1
    errors = [pc.endpoint_error("OT", 0.0, n) for n in (4, 8, 16, 32)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert 0.7 < orders[-1] < 1.3  # Euler: first order against the RK4 reference


def test_sigma_min_acts_on_ot_only_and_the_view_says_so():
    view = pc.PathsCompared()
    assert view.inactive(path="OT", sigma_min=0.2) == {}
    for name in ("cosine", "VP", "VE"):
        reason = view.inactive(path=name, sigma_min=0.2)["sigma_min"]
        assert name in reason and "σ_min" in reason
        assert pc.effective_sigma_min(name, 0.3) == 0.0
        # the drawn picture does not depend on a disabled control
        view.update(path=name, sigma_min=0.0, steps=4, t=0.4)
        before = view.png()
        view.update(path=name, sigma_min=0.3, steps=4, t=0.4)
        assert view.png() == before
    assert pc.effective_sigma_min("OT", 0.3) == 0.3
    view.update(path="OT", sigma_min=0.3, steps=4, t=0.35)
    titles = [ax.get_title() for ax in view.axes]
    assert "σ_min = 0.30" in titles[0] and "t = 0.35" in titles[0]
    assert "steps = 4" in titles[1]


def test_straightness_table_relative_straightness_is_scale_free():
    table = pc.straightness_table((2, 4))
    for row in table.values():
        assert row["chord"] == pytest.approx(
            row["K"] - row["S"], rel=1e-4
        )  # the identity, to quadrature error
        assert row["S_rel"] == pytest.approx(row["S"] / row["chord"])
        assert len(row["error"]) == 2
    # VE's source is 5x wider: its chord is far larger than OT's (same target, N(0, I) source)
    assert table["VE"]["chord"] > 10 * table["OT"]["chord"]


def test_kinetic_energy_steps_and_the_marginal_figure_has_one_colour_scale():
    with pytest.raises(ValueError, match="even integer >= 2"):
        pc.kinetic_energy("OT", 0.0, 5)
    fine = pc.kinetic_energy("cosine", 0.0, 2 * pc.REFERENCE_STEPS)
    coarse = pc.kinetic_energy("cosine", 0.0)
    assert abs(fine[1] - coarse[1]) < 1e-3 and fine != coarse  # converged, recomputed
    fig = pc.draw_marginal_paths(times=(0.0, 1.0))
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 2 * len(PATH_NAMES)
    assert {im.get_clim() for im in images} == {(LOG_P_FLOOR, LOG_P_CEIL)}
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 1 and "log p_t" in colorbars[0].get_ylabel()
    plt.close(fig)
