"""The draw functions behind notebook 02's widget compute the right numbers."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
    plt.close(figs.draw_density(0.0, "rk4", 10, 1.0))


def test_density_grid_integrates_to_one():
    res = figs.density_at_t(0.5, "rk4", 50, 0.5)
    cell = (2 * figs.LIM / (figs.N_GRID - 1)) ** 2
    assert abs(res["grid_ode"].sum().item() * cell - 1) < 1e-2


def test_draw_functions_return_figures():
    fig = figs.draw_density(0.3, "midpoint", 5, 0.6)
    assert len(fig.axes) == 3  # heatmap, its colorbar, the slice
    plt.close(fig)
    fig = figs.draw_density_grid((0.1, 0.5), (1, 4))
    assert len(fig.axes) == 4
    plt.close(fig)
    for _, fn, kwargs in figs.BENCH:
        plt.close(fn(**kwargs))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="sigma_min"):
        figs.density_at_t(-0.1, "rk4", 10, 0.5)
    with pytest.raises(ValueError, match="method"):
        figs.density_at_t(0.1, "leapfrog", 10, 0.5)
    with pytest.raises(ValueError, match="t"):
        figs.density_at_t(0.1, "rk4", 10, 1.5)
