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
from fmlib.figures import all_views  # noqa: E402
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
    expected = integrate(
        lambda x, s: marginal_velocity(path, q, x, s),
        F._noise(),
        t0=0.0,
        t1=0.6,
        steps=5,
        method="midpoint",
    ).x
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
    fig = F.Continuity.draw(sigma_min=0.1, t=0.5, steps=4, n=17, field="scaled ×1.5")
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
    assert f"steps = {steps}" in left and f"t = {t:.2f}" in left
    assert f"field = {field}" in middle and f"n = {n}" in middle and "σ_min = 0.15" in middle
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


@pytest.mark.parametrize("sigma_min", [0.0, 0.5])
def test_fixed_scales_hold_the_data_at_the_offered_t(sigma_min):
    """The colour scales and the norm axis are frozen in the cached background: they must hold
    every image and every norm (the extremes are at the ends of the t control; a sweep over
    all of T_OPTIONS and sigma_min in {0, 0.1, 0.25, 0.5} gave max |R| 2.05, norms 2e-4..2.2)."""
    for t in (F.T_OPTIONS[0], 0.5, F.T_OPTIONS[-1]):
        assert float(F._density(sigma_min, t).max()) <= F.P_MAX
        for field in F.FIELDS:
            assert float(F.residual_image(sigma_min, t, field, F.NS[-1]).abs().max()) <= F.R_MAX
            assert 1e-4 <= min(F.convergence(sigma_min, t, field).norm)
            assert max(F.convergence(sigma_min, t, field).norm) <= 5.0


def test_density_scale_holds_the_path_ends():
    """p_t at t = 0 and t = 1 (drawn by the static grids) also fits the fixed scale."""
    for sigma_min in (0.0, 0.5):
        for t in (0.0, 1.0):
            assert float(F._density(sigma_min, t).max()) <= F.P_MAX


def test_t_control_offers_only_drawable_times():
    """The residual needs 0 < t < 1: the control offers exactly T_OPTIONS, each drawn as is."""
    control = F.Continuity().controls()["t"]
    offered = [value for _, value in control.options]
    assert offered == list(F.T_OPTIONS) and 0.0 not in offered and 1.0 not in offered
    for t in (0.0, 1.0):  # never clamped silently
        with pytest.raises(ValueError, match="t must be in"):
            F.convergence(0.0, t, "true")
    view = F.Continuity()
    for t in (F.T_OPTIONS[0], F.T_OPTIONS[-1]):
        view.update(t=t)
        assert f"t = {t:.2f}" in view.panels.titles[0].get_text()


def test_axis_label_states_the_time_step_used():
    """Near the ends of [0, 1] dt is capped at min(t, 1 - t): the axis label says so."""
    fig = F.Continuity().draw()
    labels = [ax.get_xlabel() for ax in fig.axes if "grid spacing" in ax.get_xlabel()]
    assert len(labels) == 1 and "dt = min(h/4, t, 1 − t)" in labels[0]
    h_coarse = 2 * F.LIM / (F.NS[0] - 1)
    assert F.DT_RATIO * h_coarse > F.T_OPTIONS[0]  # the cap is active at t = 0.05


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma_min": 1.5}, "sigma_min"),
        ({"t": 2.0}, "t must"),
        ({"t": 0.0}, "t must"),
        ({"field": "x"}, "field"),
        ({"n": 16}, "n must"),
        ({"n": 33.0}, "n must"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.Continuity.draw(**kwargs)


def test_views_are_listed():
    names = [name for name, _, _ in all_views("continuity")]
    assert names == ["continuity.Continuity", "continuity.Continuity, wrong field"]
    for _, make_view, kwargs in all_views("continuity"):
        assert isinstance(make_view().draw(**kwargs), Figure)


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def test_every_control_reads_out_what_is_drawn():
    """For values across each control's range, the figure's text shows `= <readout>` (a
    dropdown: its label)."""
    import ipywidgets as ipw

    view = F.Continuity()
    controls = view.controls()
    assert set(controls) == {"sigma_min", "t", "steps", "n", "field"}
    for name, control in controls.items():
        if isinstance(control, ipw.SelectionSlider | ipw.Dropdown):
            picks = [control.options[i] for i in (0, len(control.options) // 2, -1)]
            values = [v[1] if isinstance(v, tuple) else v for v in picks]
        else:
            ends = [control.min, (control.min + control.max) / 2, control.max]
            values = [round(v, 2) if isinstance(control, ipw.FloatSlider) else int(v) for v in ends]
        for value in values:
            control.value = value
            if isinstance(control, ipw.SelectionSlider | ipw.Dropdown):
                label = control.label
            elif isinstance(control, ipw.FloatSlider):
                label = format(value, control.readout_format)
            else:
                label = str(value)
            view.update(**{name: value})
            expected = label if isinstance(control, ipw.Dropdown) else f"= {label}"
            assert expected in _texts(view.fig), (name, value, label)


def test_particles_grid_shares_one_colour_scale_with_a_colour_bar():
    """The small multiples' densities are compared: one norm for all, and a colour bar."""
    fig = F.draw_particles_grid(sigma_mins=(0.0, 0.2), steps=(1, 3), t=0.8)
    images = [image for ax in fig.axes for image in ax.get_images()]
    assert len(images) == 4
    assert len({(image.norm.vmin, image.norm.vmax) for image in images}) == 1
    assert images[0].norm.vmin == 0.0
    vmax = max(float(F._density(s, 0.8).max()) for s in (0.0, 0.2))
    assert images[0].norm.vmax == pytest.approx(vmax)
    assert any(ax.get_ylabel().startswith("$p_t(x)$") for ax in fig.axes)  # the colour bar
    plt.close(fig)


@pytest.mark.parametrize("draw", ["panel frame", "wrong field", "particles grid"])
def test_figures_are_readable_at_1280x720(draw):
    """No overlapping, clipped or tiny text (fmlib.figure_check), the panel's default frame
    included."""
    figure_check = pytest.importorskip("fmlib.figure_check")
    from fmlib import plots

    plots.use_style()
    fig = {
        "panel frame": lambda: F.Continuity().draw(),
        "wrong field": lambda: F.Continuity.draw(field="VP path's field", n=65, t=0.95),
        "particles grid": F.draw_particles_grid,
    }[draw]()
    assert figure_check.text_problems(fig) == []
    plt.close(fig)
