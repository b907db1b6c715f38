"""Notebook 00's panel: the numbers it draws, and the figure it returns."""

import matplotlib.pyplot as plt
import pytest
import torch

from fmlib import figure_check
from fmlib.figures import start
from fmlib.paths import OTPath, VPPath


@pytest.mark.parametrize("sigma_min", [0.0, 0.3])
def test_euler_exact_on_straight_ot_paths(sigma_min):
    euler, exact, error = start.euler_vs_exact(OTPath(sigma_min), steps=3)
    assert euler.shape == exact.shape == (4, start.N_CLOUD, 2)
    assert error < 1e-5
    x1 = torch.tensor(start.X1)
    spread = (exact[-1] - x1).std(0).mean().item()
    assert spread == pytest.approx(sigma_min, abs=0.02)  # ends in N(x1, sigma_min^2 I)


def test_euler_converges_on_curved_vp_path():
    """Euler converges on the VP path, but not with order 1: sigma_t'/sigma_t ~ -1/(2(1 - t))
    near t = 1, the last step removes only half of what is left (notebook 00 measures order
    1/2); from 20 to 100 steps the error falls by far less than order 1's factor 5."""
    errors = [start.euler_vs_exact(VPPath(), k)[2] for k in (1, 4, 20, 100)]
    assert errors == sorted(errors, reverse=True)
    assert errors[0] > 1.0 and errors[-1] < 0.1
    assert 1.5 < errors[2] / errors[3] < 3


def test_figures_are_readable_at_1280_px(course_style):
    """No overlapping, clipped or sub-8-pt text: the printed grid (inline: cut to what is
    drawn) and the panel's frame (shown whole)."""
    fig = start.draw_small_multiples(sigma_mins=(0.0, 0.3), steps=(1, 3, 20))
    assert figure_check.text_problems(fig, clipped=False) == []
    plt.close(fig)
    for sigma_min, steps in ((0.1, 4), (0.0, 100), (0.5, 1)):
        fig = start.ConditionalPath.draw(sigma_min=sigma_min, steps=steps)
        assert figure_check.text_problems(fig) == []
        plt.close(fig)


def test_draw_conditional_path_titles():
    fig = start.ConditionalPath.draw(sigma_min=0.2, steps=5)
    titles = [ax.get_title() for ax in fig.axes]
    assert "σ_min = 0.20" in titles[0] and "steps = 5" in titles[0]
    assert "VP" in titles[1] and "no σ_min" in titles[1] and "steps = 5" in titles[1]
    plt.close(fig)
    fig = start.draw_small_multiples(sigma_mins=(0.0,), steps=(1, 2))
    assert len(fig.axes) == 4
    plt.close(fig)


def test_controls_and_note():
    """The panel's controls are sigma_min and steps; the NOTE says the VP panel ignores
    sigma_min, and the VP title is the same at every sigma_min (it really ignores it)."""
    view = start.ConditionalPath()
    controls = view.controls()
    assert set(controls) == {"sigma_min", "steps"}
    assert "VP" in view.NOTE and "σ_min" in view.NOTE
    view.update(sigma_min=0.0, steps=3)
    vp_a = view.vp.ax.get_title()
    view.update(sigma_min=0.4, steps=3)
    assert view.vp.ax.get_title() == vp_a
    assert view.ot.ax.get_title().startswith("OT path, σ_min = 0.40, steps = 3")


def test_what_a_panel_draws_is_euler_vs_exact():
    """euler_drawn (the view's lighter computation) gives the same polylines, endpoints and
    error as euler_vs_exact, bit for bit."""
    for path in (OTPath(0.0), OTPath(0.3), VPPath()):
        for steps in (1, 4, 37):
            trajectory, _, error = start.euler_vs_exact(path, steps)
            drawn, end, error_drawn = start.euler_drawn(path, steps)
            assert torch.equal(drawn, trajectory[:, : start.N_PARTICLES])
            assert torch.equal(end, trajectory[-1]) and error_drawn == error
