"""fmlib.figures.continuity: the numbers behind the notebook-03 panel, and its view."""

from __future__ import annotations

import math
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fmlib.data import eight_gaussians_means  # noqa: E402
from fmlib.figures import continuity as F  # noqa: E402
from fmlib.marginal import GaussianMixture, marginal_log_prob, marginal_velocity  # noqa: E402
from fmlib.paths import OTPath, VPPath  # noqa: E402
from fmlib.solvers import integrate  # noqa: E402


def test_mixture_marginal_at_t0_is_standard_normal():
    """p_0 of the OT marginal path is N(0, I) whatever the target: compare with the formula."""
    log_p, _ = F.pair(0.0)
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=torch.float64)
    expected = -0.5 * (x**2).sum(1) - math.log(2 * math.pi)
    assert torch.allclose(log_p(x, torch.zeros(2, dtype=torch.float64)), expected, atol=1e-12)


@pytest.mark.parametrize("sigma_min", [0.0, 0.2])
def test_pair_is_fmlib_marginal(sigma_min):
    """The panel's fast closed forms are fmlib.marginal's p_t and fields (to round-off)."""
    q, x = F.mixture(), 3 * torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    x = x.double()
    t = torch.rand(300, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    paths = {
        "true": OTPath(sigma_min),
        "scaled ×1.5": OTPath(sigma_min),
        "VP path's field": VPPath(),
    }
    for field, path in paths.items():
        log_p, u = F.pair(sigma_min, field)
        scale = 1.5 if field == "scaled ×1.5" else 1.0
        assert torch.allclose(
            log_p(x, t), marginal_log_prob(OTPath(sigma_min), q, x, t), atol=1e-10
        )
        assert torch.allclose(u(x, t), scale * marginal_velocity(path, q, x, t), atol=1e-10)


def test_particles_are_the_midpoint_ode_of_the_marginal_field():
    q = GaussianMixture(eight_gaussians_means(), F.STD)
    path = OTPath(0.1)
    expected = integrate(lambda x, s: marginal_velocity(path, q, x, s), F._noise(), t0=0.0,
                         t1=0.6, steps=5, method="midpoint").x  # fmt: skip
    assert torch.allclose(F.particles(0.1, 0.6, 5), expected, atol=1e-12)


def test_true_field_converges_and_wrong_fields_stall():
    true = F.convergence(0.0, 0.5, "true")
    assert true.order == pytest.approx(2.0, abs=0.35)
    for field in F.FIELDS[1:]:
        wrong = F.convergence(0.0, 0.5, field)
        assert abs(wrong.order) < 0.6
        assert wrong.norm[-1] > 10 * true.norm[-1]


def test_particle_error_shrinks_with_steps():
    assert F.particle_error(0.0, 0.8, 1) > 3 * F.particle_error(0.0, 0.8, 8)


def test_draw_returns_a_figure_with_three_panels():
    fig = F.draw_continuity(sigma_min=0.1, t=0.5, steps=4, n=17, field="scaled ×1.5")
    assert isinstance(fig, Figure)
    assert len([a for a in fig.axes if a.get_title()]) == 3
    plt.close(fig)


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in {text!r}"
    return float(match.group(1))


@pytest.mark.parametrize("field", F.FIELDS)
def test_view_shows_the_helpers_numbers(field):
    """Titles, legend, heatmap and particles of the view are the module's numbers."""
    view = F.Continuity()
    sigma_min, t, steps, n = 0.15, 0.65, 3, 17
    view.update(sigma_min=sigma_min, t=t, steps=steps, n=n, field=field)
    panels = view.panels
    left, middle = (text.get_text() for text in panels.titles)
    tv = F.particle_error(sigma_min, t, steps)
    assert _number(r"TV = ([\d.]+)", left) == pytest.approx(tv, abs=5e-4)
    assert f"{steps}-step" in left and f"t = {t:.2f}" in left
    assert field in middle and f"n = {n}" in middle and "σ_min = 0.15" in middle
    other = field if field != "true" else F.FIELDS[1]
    labels = [text.get_text() for text in panels.legend.get_texts()]
    for label, name in zip(labels, ("true", other), strict=False):
        assert label.startswith(name)
        slope = F.convergence(sigma_min, t, name).order
        assert _number(r"slope (-?[\d.]+)", label) == pytest.approx(slope, abs=5e-3)
    shown = torch.as_tensor(np.asarray(panels.residual.get_array()))
    assert torch.equal(shown, F.residual_image(sigma_min, t, field, n))
    x = F.particles(sigma_min, t, steps)[: F.N_DRAWN]
    assert torch.equal(torch.as_tensor(np.asarray(panels.cloud.get_offsets())), x)


@pytest.mark.parametrize("sigma_min, t", [(0.0, 1.0), (0.5, 0.0), (0.0, 0.5), (0.5, 1.0)])
def test_fixed_colour_scales_hold_the_data(sigma_min, t):
    """The colour scales are frozen in the cached background: they must hold every image."""
    assert float(F._density(sigma_min, t).max()) <= F.P_MAX
    for field in F.FIELDS:
        assert float(F.residual_image(sigma_min, t, field, F.NS[-1]).abs().max()) <= F.R_MAX


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma_min": 1.5}, "sigma_min"),
        ({"t": 2.0}, "t must"),
        ({"field": "x"}, "field"),
        ({"n": 16}, "n must"),
        ({"n": 33.0}, "n must"),
    ],  # fmt: skip
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.draw_continuity(**kwargs)


def test_views_are_listed():
    names = [name for name, _, _ in F.VIEWS]
    assert names == ["continuity.Continuity", "continuity.Continuity, wrong field"]
    for _, make_view, kwargs in F.VIEWS:
        assert isinstance(make_view().draw(**kwargs), Figure)
