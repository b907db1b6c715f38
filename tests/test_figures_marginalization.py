"""fmlib.figures.marginalization: memorisation numbers, the fast closed forms, the view."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fmlib.figures import marginalization as F  # noqa: E402
from fmlib.marginal import (  # noqa: E402
    GaussianMixture,
    marginal_velocity,
)
from fmlib.paths import OTPath  # noqa: E402


def test_nearest_distance_by_hand():
    pts = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    x = torch.tensor([[0.0, 1.0], [3.0, 3.0], [6.0, 8.0]], dtype=torch.float64)
    assert torch.allclose(
        F.nearest_distance(x, pts), torch.tensor([1.0, 1.0, 5.0], dtype=torch.float64)
    )


def test_memorisation_follows_sigma_min():
    """p_1 = (1/K) sum_k N(x_k, sigma_min^2 I): mean nearest distance ~ sqrt(pi/2) sigma_min."""
    d_big = F.memorisation_distance(0.2, steps=20, n_points=5)
    d_zero = F.memorisation_distance(0.0, steps=20, n_points=5)
    assert d_big == pytest.approx(1.2533 * 0.2, rel=0.2)
    assert d_zero < 1e-3


def test_draw_returns_a_figure():
    fig = F.Marginalization.draw(sigma_min=0.1, t=0.7, steps=5, n_points=5)
    assert isinstance(fig, Figure)
    assert len([a for a in fig.axes if a.get_title()]) == 3
    plt.close(fig)


@pytest.mark.parametrize("sigma_min, t", [(0.1, 0.7), (0.0, 0.99), (0.2, 1.0)])
def test_view_shows_the_helpers_numbers(sigma_min, t):
    """Titles, arrows, heatmaps and points of the view are the module's numbers."""
    view = F.Marginalization()
    view.update(sigma_min=sigma_min, t=t, steps=7, n_points=15)
    panels = view.panels
    left, middle, right = (ax.get_title() for ax in panels.axes)
    assert f"t = {t:.2f}" in left and f"t = {t:.2f}" in middle  # drawn as asked, never replaced
    assert f"σ_min = {sigma_min:.2f}" in left and "steps = 7" in right and "K = 15" in middle
    dist = float(re.search(r"dist\. ([\d.]+)", right).group(1))
    assert dist == pytest.approx(F.memorisation_distance(sigma_min, 7, 15), abs=5e-4)
    _, log_p, w_max, _, u = F._fields(sigma_min, t, 15)
    assert np.array_equal(panels.quiver.U, u[:, 0].numpy())
    assert np.array_equal(panels.quiver.V, u[:, 1].numpy())
    assert np.array_equal(np.asarray(panels.w_max.get_array()), w_max.numpy())
    assert np.array_equal(np.asarray(panels.log_p.get_array()), log_p.clamp(min=-12).numpy())
    points = F.training_points(15).numpy()
    for star in panels.stars:
        assert np.array_equal(np.asarray(star.get_xdata()), points[:, 0])
    _, x_end = F.endpoints(sigma_min, 7, 15)
    assert np.array_equal(np.asarray(panels.ends.get_offsets()), x_end.numpy())


def test_t_control_ends_at_0_99_and_t_1_is_refused_at_sigma_min_0():
    """p_1 of a point set at sigma_min = 0 is a sum of deltas: the control never offers t = 1,
    and the view raises instead of drawing another t."""
    controls = F.Marginalization().controls()
    offered = [value for _, value in controls["t"].options]
    assert offered == list(F.T_OPTIONS) and offered[-1] == 0.99 and 1.0 not in offered
    assert list(controls["n_points"].options) == list(F.N_POINTS_OPTIONS)
    with pytest.raises(ValueError, match="t must be < 1"):
        F.Marginalization().update(sigma_min=0.0, t=1.0)


def test_schematic_is_the_posterior_average():
    """The schematic's black arrow is fmlib.marginal's marginal field at its point x."""
    pts, x, w, u_k, u = F.schematic_numbers(t=0.5, sigma_min=0.1)
    target = GaussianMixture(pts, 0.0)
    assert torch.allclose(u, marginal_velocity(OTPath(0.1), target, x, 0.5)[0], atol=1e-12)
    assert float(w.max()) < 0.6  # no single point dominates: the picture shows a blend
    fig = F.draw_marginalization_schematic()
    assert isinstance(fig, Figure)
    plt.close(fig)


def test_log_density_scale_covers_most_of_the_path():
    """The fixed colour scale of log p_t saturates only near t = 1 (spikes on the points)."""
    for n_points in (5, 10, 50):
        for t in (0.0, 0.5, 0.8):
            log_p = F._fields(0.05, t, n_points)[1]
            assert F.LOG_P_FLOOR < float(log_p.max()) < F.LOG_P_CEIL


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"sigma_min": -0.1}, "sigma_min"), ({"steps": 0}, "steps"), ({"n_points": 0}, "n_points")],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.Marginalization.draw(**kwargs)


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def test_every_control_reads_out_what_is_drawn():
    """For values across each control's range, the figure's text shows `= <readout>`."""
    import ipywidgets as ipw

    view = F.Marginalization()
    controls = view.controls()
    assert set(controls) == {"sigma_min", "t", "steps", "n_points"}
    for name, control in controls.items():
        if isinstance(control, ipw.SelectionSlider):
            picks = [control.options[i] for i in (0, len(control.options) // 2, -1)]
            values = [v[1] if isinstance(v, tuple) else v for v in picks]
        else:
            values = [control.min, (control.min + control.max) / 2, control.max]
            values = [
                round(v, 2) if isinstance(control, ipw.FloatSlider) else int(v) for v in values
            ]
        for value in values:
            control.value = value
            if isinstance(control, ipw.SelectionSlider):
                label = control.label
            elif isinstance(control, ipw.FloatSlider):
                label = format(value, control.readout_format)
            else:
                label = str(value)
            kwargs = {name: value}
            if name == "sigma_min" and value == 0:
                kwargs["t"] = 0.5
            view.update(**kwargs)
            assert f"= {label}" in _texts(view.fig), (name, value, label)


def test_schematic_weights_sit_beside_their_stars_not_under_them():
    """Each 'P = w' label is readable: its box covers no star and stays inside the figure."""
    from fmlib import plots

    plots.use_style()
    fig = F.draw_marginalization_schematic()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[1]
    labels = [text for text in ax.texts if text.get_text().startswith("P = ")]
    assert len(labels) == 3
    stars = ax.transData.transform(np.array(F.SCHEMATIC_POINTS))
    for text in labels:
        box = text.get_window_extent(renderer)
        assert not any(box.contains(*star) for star in stars), text.get_text()
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, text.get_text()
    plt.close(fig)


@pytest.mark.parametrize("draw", ["panel frame", "schematic", "memorisation grid"])
def test_figures_are_readable_at_1280x720(draw):
    """No overlapping, clipped or tiny text (fmlib.figure_check), the panel's default frame
    included."""
    figure_check = pytest.importorskip("fmlib.figure_check")
    from fmlib import plots

    plots.use_style()
    fig = {
        "panel frame": lambda: F.Marginalization().draw(),
        "schematic": F.draw_marginalization_schematic,
        "memorisation grid": lambda: F.draw_memorisation_grid(steps=(2, 10, 50)),
    }[draw]()
    assert figure_check.text_problems(fig) == []
    plt.close(fig)
