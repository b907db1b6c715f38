"""fmlib.repro and plots: what every notebook relies on (widgets and exercises: their own tests)."""

import random

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from fmlib import plots, repro


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
    with pytest.raises(ValueError, match="threads must be None, -1 or an integer >= 1"):
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


def test_one_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with repro.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_seed_everything_threads_follow_the_environment(monkeypatch):
    previous = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        repro.seed_everything(0)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        repro.seed_everything(0)
        assert torch.get_num_threads() == 3
        monkeypatch.setenv("OMP_NUM_THREADS", "junk")
        assert repro.default_threads() == 2
    finally:
        torch.set_num_threads(previous)
