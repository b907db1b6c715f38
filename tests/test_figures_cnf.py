"""The draw functions behind notebook 02's widget compute the right numbers."""

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fmlib import figure_check
from fmlib.figures import all_views  # noqa: E402
from fmlib.figures import cnf as figs  # noqa: E402


def test_ode_density_matches_closed_form_with_rk4():
    res = figs.density_at_t(0.3, "rk4", 40, 0.7)
    assert res["error"] < 1e-8
    torch.testing.assert_close(res["grid_ode"], res["grid_exact"], atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(res["line_ode"], res["line_exact"], atol=1e-8, rtol=1e-6)


def test_error_orders_of_the_solvers():
    # log-likelihood error = quadrature error of int div u dt: orders 1, 2, 4
    for method, order in (("euler", 1), ("midpoint", 2), ("rk4", 4)):
        e1 = figs.density_at_t(0.5, method, 16, 1.0)["error"]
        e2 = figs.density_at_t(0.5, method, 32, 1.0)["error"]
        assert abs(torch.log2(torch.tensor(e1 / e2)).item() - order) < 0.3, method


def test_density_at_t_zero_is_exact_and_point_mass_has_no_nan():
    assert figs.density_at_t(0.2, "euler", 1, 0.0)["error"] < 1e-12
    res = figs.density_at_t(0.0, "rk4", 10, 1.0)
    assert res["error"] is None
    assert torch.allclose(
        res["x_t"], torch.tensor(figs.M, dtype=res["x_t"].dtype).expand(figs.N_SAMPLES, 2)
    )
    plt.close(figs.ODEDensity.draw(sigma_min=0.0, method="rk4", steps=10, t=1.0))


def test_density_grid_integrates_to_one():
    res = figs.density_at_t(0.5, "rk4", 50, 0.5)
    cell = (2 * figs.LIM / (figs.N_GRID - 1)) ** 2
    assert abs(res["grid_ode"].sum().item() * cell - 1) < 1e-2


def test_draw_functions_return_figures():
    fig = figs.ODEDensity.draw(sigma_min=0.3, method="midpoint", steps=5, t=0.6)
    assert len(fig.axes) == 3  # heatmap, its colorbar, the slice
    plt.close(fig)
    fig = figs.draw_density_grid((0.1, 0.5), (1, 4))
    assert len(fig.axes) == 4
    plt.close(fig)
    assert [name for name, _, _ in all_views("cnf")] == ["cnf.ODEDensity"]
    for _, make_view, kwargs in all_views("cnf"):
        plt.close(make_view().draw(**kwargs))
    assert not hasattr(figs, "BENCH")


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
@pytest.mark.parametrize("sigma_min, steps, t", [(0.3, 4, 1.0), (0.05, 13, 0.8), (0.0, 7, 0.6)])
def test_density_at_t_is_the_ode_solve(method, sigma_min, steps, t):
    # the batched solver map gives what integrate() gives step by step, to rounding
    res = figs.density_at_t(sigma_min, method, steps, t)
    grid, x0 = figs._points()
    g = figs.flow(sigma_min)
    log_p = figs.ode_log_density(g, grid, t, steps, method)
    torch.testing.assert_close(
        res["grid_ode"], log_p.exp().reshape(figs.N_GRID, figs.N_GRID), rtol=1e-10, atol=1e-14
    )
    x_t = g.psi_t(x0, t)
    error = (figs.ode_log_density(g, x_t, t, steps, method) - g.log_p_t(x_t, t)).abs().mean()
    assert res["error"] == pytest.approx(error.item(), rel=1e-8, abs=1e-14)


def test_contour_lines_are_what_contour_draws():
    z = figs.density_at_t(0.3, "rk4", 10, 0.7)["grid_exact"].numpy()
    fig, ax = plt.subplots()
    contours = ax.contour(z, levels=4, extent=figs.EXTENT)
    drawn = [p.vertices for p in contours.get_paths() if len(p.vertices)]
    ours = figs.contour_lines(z)
    assert len(ours) == len(drawn) >= 3
    for a, b in zip(ours, drawn, strict=True):
        np.testing.assert_allclose(a, b)
    plt.close(fig)


def test_density_view_shows_the_helper_numbers():
    view = figs.ODEDensity()
    cases = [(0.3, "euler", 4, 1.0), (0.0, "rk4", 10, 1.0), (0.12, "midpoint", 37, 0.45)]
    for sigma_min, method, steps, t in cases:
        view.draw(sigma_min=sigma_min, method=method, steps=steps, t=t)
        res = figs.density_at_t(sigma_min, method, steps, t)
        title = view.slice.ax.get_title()
        if res["error"] is None:  # the point mass: samples, no image
            assert "point mass" in title and not view.image.get_visible()
            assert view.samples.get_visible() and view.map.get_title() == "all samples sit at m"
            assert not view.colorbar.ax.get_visible()
            continue
        assert f"log-likelihood error {res['error']:.2e}" in title
        assert f"σ_min = {sigma_min:.2f}, t = {t:.2f},\n{method}, steps = {steps}" in title
        assert view.map.get_title() == f"p_t by the ODE, t = {t:.2f}"
        assert view.image.get_visible() and view.colorbar.ax.get_visible()
        density = res["grid_ode"].numpy()
        np.testing.assert_array_equal(view.image.get_array(), density)
        assert view.image.get_clim() == (density.min(), density.max())
        np.testing.assert_array_equal(view.slice.ode.get_ydata(), res["line_ode"].numpy())
        legend = [text.get_text() for text in view.slice.legend.get_texts()]
        assert legend[0].startswith(f"ODE ({method}, {steps} steps)")
        lo, hi = view.slice.ax.get_ylim()
        ode_peak, exact_peak = res["line_ode"].max().item(), res["line_exact"].max().item()
        assert lo < res["line_ode"].min().item() and hi > exact_peak
        # the y axis shows the ODE up to CLIP x the closed form's peak; above, the legend
        # names the peak
        assert (hi > ode_peak) == (ode_peak <= figs.CLIP * exact_peak)
        assert ("off the scale" in legend[0]) == (hi <= ode_peak)
    plt.close(view.fig)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="sigma_min"):
        figs.density_at_t(-0.1, "rk4", 10, 0.5)
    with pytest.raises(ValueError, match="method"):
        figs.density_at_t(0.1, "leapfrog", 10, 0.5)
    with pytest.raises(ValueError, match="t"):
        figs.density_at_t(0.1, "rk4", 10, 1.5)


def test_density_controls_and_inactive():
    """Controls: sigma_min, solver, steps, t; at t = 0 only t acts, at the point mass the
    solver and steps have nothing to integrate, and the point-mass title still reads out
    sigma_min and t."""
    view = figs.ODEDensity()
    assert set(view.controls()) == {"sigma_min", "method", "steps", "t"}
    assert set(view.inactive(sigma_min=0.2, method="rk4", steps=3, t=0.0)) == {
        "sigma_min",
        "method",
        "steps",
    }
    assert set(view.inactive(sigma_min=0.0, method="rk4", steps=3, t=1.0)) == {"method", "steps"}
    assert view.inactive(sigma_min=0.0, method="rk4", steps=3, t=0.95) == {}
    view.update(sigma_min=0.0, method="rk4", steps=3, t=1.0)
    assert "σ_min = 0.00, t = 1.00" in view.slice.ax.get_title()
    # at t = 0 sigma_min really has no effect: the same density for two sigma_min
    a = figs.density_at_t(0.1, "euler", 3, 0.0)["grid_ode"]
    b = figs.density_at_t(0.4, "euler", 3, 0.0)["grid_ode"]
    assert torch.equal(a, b)
    plt.close(view.fig)


def test_figures_are_readable_at_1280_px(course_style):
    """No overlapping, clipped or sub-8-pt text in the printed figures (inline: cut to what
    is drawn) and in the panel's frames (shown whole), the point mass included."""
    fig = figs.draw_density_grid(sigma_mins=(0.1, 0.5), steps=(1, 4, 20), method="euler", t=1.0)
    fig.suptitle("p_1 along a slice through m: Euler with 1, 4, 20 steps (green) vs closed form")
    assert figure_check.text_problems(fig, clipped=False) == []
    plt.close(fig)
    fig = figs.draw_flow_map(figs.flow(0.3), times=(0.0, 0.5, 1.0))
    assert figure_check.text_problems(fig, clipped=False) == []
    plt.close(fig)
    for args in ((0.3, "euler", 4, 1.0), (0.0, "rk4", 10, 1.0), (0.12, "midpoint", 37, 0.45)):
        fig = figs.ODEDensity.draw(
            **dict(zip(("sigma_min", "method", "steps", "t"), args, strict=True))
        )
        assert figure_check.text_problems(fig) == []
        plt.close(fig)


def test_slice_shows_the_closed_form_when_the_ode_is_far_off():
    """One Euler step at sigma_min = 0.1 puts the ODE's peak near 1e7, 6e5 times the closed
    form's: the y axis follows the closed form (up to CLIP x its peak) and the legend names
    the ODE's peak."""
    fig = figs.draw_density_grid(sigma_mins=(0.1,), steps=(1,), method="euler", t=1.0)
    (ax,) = fig.axes
    res = figs.density_at_t(0.1, "euler", 1, 1.0)
    exact_peak, ode_peak = res["line_exact"].max().item(), res["line_ode"].max().item()
    assert ode_peak > 1e5 * exact_peak
    top = ax.get_ylim()[1]
    assert exact_peak < top <= 1.1 * figs.CLIP * exact_peak
    assert f"ODE peak {ode_peak:.2g}, off the scale" in ax.get_title()
    assert ax.get_legend() is None and fig.legends  # one legend under the panels
    plt.close(fig)
