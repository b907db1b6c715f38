"""The draw functions behind notebook 01's widget compute the right numbers."""

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
    fig = figs.draw_residual_flow(0.0, 5)
    assert len(fig.axes) == 2
    plt.close(fig)
    fig = figs.draw_residual_grid((0.0, 0.2), (2, 4))
    assert len(fig.axes) == 4
    plt.close(fig)
    flow = DiscreteFlow([AffineLayer(torch.eye(2, dtype=torch.float64) * 1.5,
                                     torch.zeros(2, dtype=torch.float64))])  # fmt: skip
    fig = figs.draw_layer_densities(flow, standard_normal_log_prob, lim=4.0, n=40)
    assert len(fig.axes) == 4  # two heatmaps and their colorbars
    plt.close(fig)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="sigma_min"):
        figs.residual_flow(1.5, 3)
    with pytest.raises(ValueError, match="steps"):
        figs.residual_flow(0.1, 0)


def test_bench_entries_are_callable():
    for name, fn, kwargs in figs.BENCH:
        assert name.startswith("change_of_variables.") and callable(fn)
        plt.close(fn(**kwargs))
    assert math.isfinite(figs.residual_flow(0.1, 10)[1]["hist_max_z"])
