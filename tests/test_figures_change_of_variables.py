"""The draw functions behind notebook 01's widget compute the right numbers."""

import math

import matplotlib
import matplotlib.figure
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fmlib import figure_check
from fmlib.figures import all_views  # noqa: E402
from fmlib.figures import change_of_variables as figs  # noqa: E402
from fmlib.flows import AffineLayer, DiscreteFlow  # noqa: E402
from fmlib.solvers import standard_normal_log_prob  # noqa: E402


@pytest.mark.parametrize("sigma_min, steps", [(0.1, 10), (0.0, 1), (0.0, 100), (0.5, 3)])
def test_residual_flow_stats_match_formula(sigma_min, steps):
    traj, stats = figs.residual_flow(sigma_min, steps)
    assert traj.shape == (steps + 1, figs.N_SAMPLES, 2)
    assert torch.isfinite(traj).all()
    # samples' spread agrees with the change-of-variables std s_K (4000 samples: ~1.1% error)
    assert abs(stats["std_samples"] / stats["std_formula"] - 1) < 0.05
    assert stats["hist_max_z"] < 5
    assert stats["std_formula"] == pytest.approx(figs.flow(sigma_min).euler_std(steps))


def test_residual_flow_converges_to_sigma_min():
    s = [figs.residual_flow(0.3, k)[1]["std_formula"] for k in (25, 50, 100)]
    errors = [abs(v - 0.3) for v in s]
    assert errors[2] < errors[1] < errors[0] < 0.1
    assert 1.7 < errors[1] / errors[2] < 2.3  # first order in h = 1/K


def test_residual_flow_endpoint_mean_is_m():
    traj, _ = figs.residual_flow(0.2, 20)
    mean = traj[-1].mean(0)
    assert (mean - torch.tensor(figs.M, dtype=mean.dtype)).abs().max() < 0.05


def test_draw_functions_return_figures():
    fig = figs.ResidualFlow.draw(sigma_min=0.0, steps=5)
    assert len(fig.axes) == 2
    plt.close(fig)
    fig = figs.draw_residual_grid((0.0, 0.2), (2, 4))
    assert len(fig.axes) == 4
    plt.close(fig)
    flow = DiscreteFlow(
        [AffineLayer(torch.eye(2, dtype=torch.float64) * 1.5, torch.zeros(2, dtype=torch.float64))]
    )
    fig = figs.draw_layer_densities(flow, standard_normal_log_prob, lim=4.0, n=40)
    assert len(fig.axes) == 4  # two heatmaps and their colorbars
    plt.close(fig)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="sigma_min"):
        figs.residual_flow(1.5, 3)
    with pytest.raises(ValueError, match="steps"):
        figs.residual_flow(0.1, 0)


def test_residual_flow_equals_the_loop_of_residual_layers():
    # the batched composition of the (affine) layers is the plain loop x + h u_t(x), to rounding
    sigma_min, steps = 0.2, 7
    g, h = figs.flow(sigma_min), 1.0 / steps
    x = figs._noise()
    states = [x]
    for k in range(steps):
        x = x + h * g(x, torch.full((x.shape[0],), k * h, dtype=x.dtype))
        states.append(x)
    traj, _ = figs.residual_flow(sigma_min, steps)
    torch.testing.assert_close(traj, torch.stack(states), atol=1e-12, rtol=0)


def test_ode_paths_follow_psi_t():
    g = figs.flow(0.3)
    z = figs._noise()[:4]
    paths = figs._ode_paths(0.3, z.numpy(), n_times=11)
    for i, t in enumerate(torch.linspace(0, 1, 11, dtype=torch.float64).tolist()):
        torch.testing.assert_close(torch.from_numpy(paths[i]), g.psi_t(z, t), atol=1e-12, rtol=0)


def test_residual_flow_view_shows_the_helper_numbers():
    view = figs.ResidualFlow()
    for sigma_min, steps in [(0.1, 10), (0.27, 33), (0.0, 100)]:
        fig = view.draw(sigma_min=sigma_min, steps=steps)
        traj, stats = figs.residual_flow(sigma_min, steps)
        suptitle = fig.get_suptitle()
        assert f"s_K = {stats['std_formula']:.3f}" in suptitle
        assert f"from samples {stats['std_samples']:.3f}" in suptitle
        assert f"σ_min = {sigma_min:.2f}, steps K = {steps}:" in suptitle
        hist_title = view.hist.ax.get_title()
        assert f"K = {steps}: hist − formula ≤ {stats['hist_max_z']:.1f} std" in hist_title
        assert view.paths.ax.get_title().startswith(f"K = {steps} residual layers")
        # the bars are the histogram of x_K^(1) on M[0] +- 4 max(s_K, 0.05)
        width = 4 * max(stats["std_formula"], 0.05)
        heights, edges = np.histogram(
            traj[-1, :, 0].numpy(),
            bins=figs.BINS,
            density=True,
            range=(figs.M[0] - width, figs.M[0] + width),
        )
        bars = view.hist.bars.get_data()
        np.testing.assert_allclose(bars.values, heights)
        np.testing.assert_allclose(bars.edges, edges)
        lo, hi = view.hist.ax.get_xlim()
        assert lo < edges[0] and hi > edges[-1]
        assert view.hist.ax.get_ylim()[1] >= heights.max()
        # the green polylines are the first trajectories, the orange cloud the endpoints
        segments = view.paths.layers.get_segments()
        np.testing.assert_allclose(segments[3], traj[:, 3].numpy())
        np.testing.assert_allclose(view.paths.ends.get_offsets(), traj[-1, :1500].numpy())
        assert view.hist.limit.get_visible() == (sigma_min > 0)
        assert view.hist.point_mass.get_visible() == (sigma_min == 0)
    plt.close(fig)


def test_views_are_listed():
    names = [name for name, _, _ in all_views("change_of_variables")]
    assert names == ["change_of_variables.ResidualFlow"]
    for _, make_view, kwargs in all_views("change_of_variables"):
        assert isinstance(make_view().draw(**kwargs), matplotlib.figure.Figure)
    assert not hasattr(figs, "BENCH")
    assert math.isfinite(figs.residual_flow(0.1, 10)[1]["hist_max_z"])


def test_residual_flow_controls():
    view = figs.ResidualFlow()
    controls = view.controls()
    assert set(controls) == {"sigma_min", "steps"}
    assert view.inactive(sigma_min=0.0, steps=1) == {}  # both always change the picture
    plt.close(view.fig)


def test_pushforward_schematic_maps_the_square():
    """The filled patch on the right is f(square): its area is |det J_f| x side^2 to first
    order (the mass argument the schematic illustrates)."""
    from fmlib.flows import polygon_area

    def f(p):
        return torch.stack([p[:, 0] ** 2 * p[:, 1], 5 * p[:, 0] + torch.sin(p[:, 1])], dim=1)

    fig = figs.draw_pushforward_schematic(f, corner=(0.85, 0.35), side=0.3)
    ax_z, ax_x = fig.axes[:2]
    square, image = ax_z.patches[0].get_xy(), ax_x.patches[0].get_xy()
    assert polygon_area(torch.from_numpy(square)).item() == pytest.approx(0.09, abs=1e-9)
    centre = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    jac = abs(2 * 1.0 * 0.5 * torch.cos(centre[0, 1]).item() - 1.0 * 5)  # |2xy cos y - 5 x^2|
    assert polygon_area(torch.from_numpy(image)).item() == pytest.approx(jac * 0.09, rel=0.05)
    plt.close(fig)


def _f(p):
    return torch.stack([p[:, 0] ** 2 * p[:, 1], 5 * p[:, 0] + torch.sin(p[:, 1])], dim=1)


def test_figures_are_readable_at_1280_px(course_style):
    """No overlapping, clipped or sub-8-pt text in the printed figures (inline: cut to what
    is drawn) and in the panel's frames (shown whole)."""
    from fmlib.flows import AffineLayer, DiscreteFlow
    from fmlib.solvers import standard_normal_log_prob

    fig = figs.draw_residual_grid(sigma_mins=(0.0, 0.3), steps=(2, 8, 32))
    fig.suptitle("histogram of x_K (green) vs the formula N(m, s_K²) (black) and the limit")
    assert figure_check.text_problems(fig, clipped=False) == []
    assert fig.legends and all(t.get_fontsize() >= 9 for t in fig.legends[0].get_texts())
    assert all(ax.get_legend() is None for ax in fig.axes)  # one legend, no line across it
    plt.close(fig)
    fig = figs.draw_pushforward_schematic(_f)
    assert figure_check.text_problems(fig, clipped=False) == []
    plt.close(fig)
    flow = DiscreteFlow(
        [AffineLayer(torch.eye(2, dtype=torch.float64) * 1.1, torch.zeros(2, dtype=torch.float64))]
    )
    fig = figs.draw_layer_densities(flow, standard_normal_log_prob, lim=4.0, n=100)
    assert figure_check.text_problems(fig, clipped=False) == []
    assert "in view" in fig.axes[0].get_title()
    plt.close(fig)
    for sigma_min, steps in ((0.1, 10), (0.0, 100), (0.5, 1)):
        fig = figs.ResidualFlow.draw(sigma_min=sigma_min, steps=steps)
        assert figure_check.text_problems(fig) == []
        plt.close(fig)


def test_schematic_label_sits_in_the_z_plane(course_style):
    """The arrow's label 'x = f(z)' lies inside the z-plane panel, off the x-plane's axis."""
    fig = figs.draw_pushforward_schematic(_f)
    fig.canvas.draw()
    ax_z, ax_x = fig.axes[:2]
    (label,) = [t for t in ax_z.texts if t.get_text() == "x = f(z)"]
    box = label.get_window_extent()
    assert ax_z.bbox.contains(box.x0, box.y0) and ax_z.bbox.contains(box.x1, box.y1)
    assert not box.overlaps(ax_x.get_tightbbox())
    plt.close(fig)
