"""fmlib.repro, plots, widgets and exercises: what every notebook relies on."""

import random

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from fmlib import exercises, plots, repro, widgets


def test_seed_everything_reproduces():
    g1 = repro.seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g1))
    g2 = repro.seed_everything(7)
    b = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g2))
    assert a == b
    assert torch.get_num_threads() == 2
    assert torch.are_deterministic_algorithms_enabled()


def test_repro_bad_input():
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        repro.seed_everything(-1)
    with pytest.raises(ValueError, match="threads must be None or an integer >= 1"):
        repro.seed_everything(0, threads=0)
    with pytest.raises(ValueError, match="prefer_gpu must be True or False"):
        repro.get_device("cuda")


def test_device_is_cpu_by_default():
    assert repro.get_device() == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert repro.get_device(prefer_gpu=True).type == expected
    report = repro.environment_report()
    assert report["torch"] == torch.__version__ and "gpu" in report


def test_grid2d_matches_heatmap_convention():
    xx, yy, pts = plots.grid2d(2.0, 5)
    assert pts.shape == (25, 2)
    assert torch.equal(pts[:, 0].reshape(5, 5), xx) and torch.equal(pts[:, 1].reshape(5, 5), yy)
    assert yy[0, 0] == -2 and yy[-1, 0] == 2 and xx[0, -1] == 2  # row index is y
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        plots.grid2d(2.0, 1)
    with pytest.raises(ValueError, match="lim must be > 0"):
        plots.grid2d(0.0, 5)


def test_axes_helpers():
    plots.use_style()
    fig, axes = plots.new_axes(3, ncols=2)
    assert len(axes) == 3
    plots.scatter2d(axes[0], torch.zeros(4, 2), title="x")
    plots.heatmap(axes[1], torch.rand(4, 4), extent=(-1, 1, -1, 1), label="p")
    assert axes[0].get_aspect() == 1.0 and axes[0].get_title() == "x"
    plt.close(fig)
    with pytest.raises(ValueError, match=r"x must have shape \[N, 2\]"):
        plots.scatter2d(axes[0], torch.zeros(4, 3))
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        plots.new_axes(0)


def test_slider_ranges():
    s = widgets.sigma_min_slider()
    assert (s.min, s.max, s.value) == (0.0, 0.5, 0.0)
    k = widgets.steps_slider(5)
    assert (k.min, k.max, k.value) == (1, 100, 5)
    t = widgets.t_slider()
    assert (t.min, t.max) == (0.0, 1.0)
    assert widgets.solver_dropdown().value == "midpoint"
    assert widgets.dataset_dropdown().value == "checkerboard"
    with pytest.raises(ValueError, match="value must be in \\[0, 0.5\\], got 0.7"):
        widgets.sigma_min_slider(0.7)
    with pytest.raises(ValueError, match="value must be an integer in \\[1, 100\\], got 0"):
        widgets.steps_slider(0)
    with pytest.raises(ValueError, match="value must be in \\[0, 1\\]"):
        widgets.t_slider(2.0)
    with pytest.raises(ValueError, match="value must be one of euler, midpoint, rk4"):
        widgets.solver_dropdown("heun")
    with pytest.raises(ValueError, match="value must be one of"):
        widgets.dataset_dropdown("mnist")


def test_panel_redraws_on_change():
    calls = []

    def draw(sigma_min, steps):
        calls.append((sigma_min, steps))
        fig, _ = plots.new_axes(1)
        return fig

    s, k = widgets.sigma_min_slider(), widgets.steps_slider(3)
    box = widgets.panel(draw, sigma_min=s, steps=k)
    assert isinstance(box, ipywidgets.VBox)
    s.value = 0.2
    k.value = 7
    assert calls[-1] == (0.2, 7)
    assert len(calls) >= 3  # initial draw + one per change
    with pytest.raises(ValueError, match="controls must name at least one widget"):
        widgets.panel(draw)
    with pytest.raises(ValueError, match="draw must be callable"):
        widgets.panel(None, sigma_min=s)


def test_exercise_check(capsys):
    assert exercises.check("area", 2.0000001, 2.0, tol=1e-6)
    assert "✅ area" in capsys.readouterr().out
    assert not exercises.check("area", 2.1, 2.0)
    assert "❌ area: off by 0.1" in capsys.readouterr().out
    assert not exercises.check("area", None, 2.0)
    assert "⏳" in capsys.readouterr().out
    assert exercises.check("vec", torch.tensor([1.0, 2.0]), [1.0, 2.0])
    assert not exercises.check("vec", [1.0, 2.0, 3.0], [1.0, 2.0])
    assert not exercises.check("nan", float("nan"), 1.0)
    with pytest.raises(ValueError, match="tol must be >= 0"):
        exercises.check("x", 1, 1, tol=-1)


def test_one_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with repro.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
