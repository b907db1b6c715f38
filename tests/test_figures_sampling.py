"""fmlib.figures.sampling: the sweep behind notebook 06's widget, checked on a linear field.

For u(x, t) = A x the exact flow is x1 = exp(A) x0 and K Euler steps give
(I + A/K)^K x0, so the solver errors the widget plots are known in closed form.
"""

from __future__ import annotations

import io

import matplotlib
import matplotlib.figure
import numpy as np
import PIL.Image
import pytest
import torch
from torch import nn

from fmlib import metrics
from fmlib.figures import all_views
from fmlib.figures import sampling as fs
from fmlib.solvers import integrate

matplotlib.use("Agg")
A = torch.tensor([[-0.5, 1.0], [-1.0, -0.5]])
STEPS = (1, 2, 4)


class LinearField(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(A)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class ScaledField(LinearField):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 2 * self.linear(x)


@pytest.fixture(scope="module")
def sweep() -> fs.SolverSweep:
    return fs.solver_sweep(LinearField(), n=64, steps=STEPS, tolerances=(1e-2,), seed=0)


@pytest.fixture(scope="module")
def sweeps(sweep: fs.SolverSweep) -> dict[float, fs.SolverSweep]:
    """Two 'models' standing for two sigma_min checkpoints, from the same x0."""
    other = fs.solver_sweep(ScaledField(), n=64, steps=STEPS, tolerances=(1e-2,), seed=0)
    return {0.0: sweep, 0.1: other}


def test_sweep_samples_are_the_plain_solves(sweep: fs.SolverSweep) -> None:
    for (method, k), x1 in sweep.samples.items():
        assert torch.equal(x1, integrate(LinearField(), sweep.x0, steps=k, method=method).x)
    exact = sweep.x0 @ torch.linalg.matrix_exp(A).T
    torch.testing.assert_close(sweep.reference, exact, rtol=0, atol=1e-5)


def test_curves_match_closed_form_errors(sweep: fs.SolverSweep) -> None:
    scores = fs.curves(sweep)
    assert scores["euler"]["nfe"] == [1, 2, 4]
    assert scores["midpoint"]["nfe"] == [2, 4, 8]
    assert scores["rk4"]["nfe"] == [4, 8, 16]
    exact = sweep.x0 @ torch.linalg.matrix_exp(A).T
    for k, error in zip(STEPS, scores["euler"]["error"], strict=True):
        euler = sweep.x0 @ torch.linalg.matrix_power(torch.eye(2) + A / k, k).T
        assert error == pytest.approx((euler - exact).norm(dim=1).mean().item(), abs=1e-4)
    for method in fs.METHODS:  # the error falls with the number of steps
        errors = scores[method]["error"]
        assert all(a > b for a, b in zip(errors[:-1], errors[1:], strict=True))
    assert scores["dopri5"]["nfe"][0] >= 6  # at least one accepted dopri5 step
    assert fs.curves(sweep) is scores  # cached


def test_static_draw_shows_the_choice(sweeps) -> None:
    fig = fs.SamplesView.draw(sweeps, sigma_min=0.0, solver="midpoint", steps=4, batch=32)
    left, right = fig.axes[:2]
    assert "σ_min = 0.00, midpoint, steps = 4 (NFE 8)" in left.get_title()
    assert "batch = 32" in left.get_title()
    assert len(left.collections[0].get_offsets()) == 32
    assert {line.get_label() for line in right.get_lines()} >= {"σ_min 0.00", "σ_min 0.10"}
    matplotlib.pyplot.close(fig)


def test_sigma_min_sweeps_share_the_noise() -> None:
    both = fs.sigma_min_sweeps({0.0: LinearField(), 0.25: ScaledField()}, n=16)
    assert torch.equal(both[0.0].x0, both[0.25].x0)
    assert torch.equal(both[0.0].data, both[0.25].data)
    assert not torch.equal(both[0.0].reference, both[0.25].reference)


def test_view_title_lines_and_circle_match_quality_and_curves(sweeps) -> None:
    view = fs.SamplesView(sweeps)
    view.update(sigma_min=0.1, solver="rk4", steps=2, batch=40)
    first = np.asarray(PIL.Image.open(io.BytesIO(view.png())).convert("RGB"), dtype=np.int16)
    view.fig.canvas.draw()  # the first PNG (background cached now) has its title too
    full = np.asarray(view.fig.canvas.buffer_rgba())[..., :3].astype(np.int16)
    assert (np.abs(first - full).max(axis=2) > 40).mean() < 2e-4
    x1 = sweeps[0.1].samples[("rk4", 2)][:40]
    q = metrics.quality(x1, sweeps[0.1].data[:40])
    assert view.left.get_title() == (
        "σ_min = 0.10, rk4, steps = 2 (NFE 8)\n"
        f"t = 1.00, batch = 40: SW {q['sw']:.3f}, on squares {q['in_support']:.0%}"
    )
    np.testing.assert_allclose(view.points.get_offsets(), x1.numpy())
    rk4 = fs.curves(sweeps[0.1])["rk4"]
    assert list(view.choice.get_xdata()) == [8]
    assert list(view.choice.get_ydata()) == [rk4["sw"][rk4["nfe"].index(8)]]
    assert view.lines[0.1].get_linewidth() > view.lines[0.0].get_linewidth()  # chosen: bold
    assert list(view.lines[0.0].get_ydata()) == fs.curves(sweeps[0.0])["rk4"]["sw"]
    with pytest.raises(ValueError, match="batch must be"):
        view.update(sigma_min=0.1, solver="rk4", steps=2, batch=1)
    with pytest.raises(ValueError, match="sigma_min must be one of"):
        view.update(sigma_min=0.05, solver="rk4", steps=2, batch=10)


def test_state_at_is_the_solver_on_its_grid_and_a_shortened_last_step(sweep) -> None:
    """Linear field u = A x: Euler iterates are (I + h A)^k x0, so every state is known."""
    eye = torch.eye(2)
    x0 = sweep.x0
    for t, expected in (
        (0.0, x0),
        (0.5, x0 @ (eye + A / 4).T @ (eye + A / 4).T),  # grid time t_2 of 4 steps
        (0.6, x0 @ (eye + A / 4).T @ (eye + A / 4).T @ (eye + 0.1 * A).T),  # 0.5, then 0.1
        (1.0, sweep.samples[("euler", 4)]),
    ):
        x_t, t_k = fs.state_at(sweep, "euler", 4, t)
        torch.testing.assert_close(x_t, expected, rtol=0, atol=1e-6)
        assert t_k == (0.5 if t == 0.6 else t)
    x_mid, _ = fs.state_at(sweep, "midpoint", 1, 0.3)  # one midpoint step of h = 0.3
    step = eye + 0.3 * A + (0.3 * A) @ (0.3 * A) / 2
    torch.testing.assert_close(x_mid, x0 @ step.T, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="t must be in \\[0, 1\\], got 1.5"):
        fs.state_at(sweep, "euler", 4, 1.5)


def test_view_draws_the_particles_at_t(sweeps) -> None:
    view = fs.SamplesView(sweeps)
    view.update(sigma_min=0.0, solver="euler", steps=4, batch=64, t=0.6)
    x_t, _ = fs.state_at(sweeps[0.0], "euler", 4, 0.6)
    np.testing.assert_allclose(view.points.get_offsets(), x_t.numpy())
    title = view.left.get_title()
    assert "t = 0.60, batch = 64" in title and "from t_k = 0.5 to t" in title
    view.update(sigma_min=0.0, solver="euler", steps=4, batch=64, t=0.75)  # on the grid
    assert "t = 0.75" in view.left.get_title() and "shortened" not in view.left.get_title()
    matplotlib.pyplot.close(view.fig)


def test_controls_offer_exactly_the_precomputed_values(sweeps) -> None:
    view = fs.SamplesView(sweeps)
    controls = view.controls()
    assert [v for _, v in controls["sigma_min"].options] == [0.0, 0.1]
    assert [v for _, v in controls["steps"].options] == list(STEPS)
    assert list(controls["batch"].options) == [64]  # every BATCHES value is > n = 64
    assert view.inactive(sigma_min=0.0, solver="euler", steps=1, batch=64, t=0.5) == {}
    assert controls["t"].value == 1.0 and len(controls["t"].options) == 21


def test_views_entries_build() -> None:
    for name, make_view, kwargs in all_views("sampling"):
        assert name.startswith("sampling.")
        assert isinstance(make_view().draw(**kwargs), matplotlib.figure.Figure)


def test_draw_grid_and_curves(sweep: fs.SolverSweep, sweeps) -> None:
    fig = fs.draw_grid(sweeps, steps=(1, 4))
    assert sum(ax.get_visible() for ax in fig.axes) == 4  # 2 sigma_min x 2 steps
    assert fig.axes[3].get_title() == "σ_min = 0.10, steps = 4"
    matplotlib.pyplot.close(fig)
    fig = fs.draw_nfe_curves(sweep, "in_support")
    assert fig.axes[0].get_ylabel() == "fraction on the squares"
    matplotlib.pyplot.close(fig)
    fig = fs.draw_sigma_min_curves(sweeps, "error", "euler")
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["σ_min 0.00", "σ_min 0.10"]
    assert list(lines[1].get_ydata()) == fs.curves(sweeps[0.1])["euler"]["error"]
    matplotlib.pyplot.close(fig)


def test_bad_arguments_raise(sweep: fs.SolverSweep, sweeps) -> None:
    with pytest.raises(ValueError, match="\\(solver, steps\\) must be one of"):
        fs.SamplesView.draw(sweeps, sigma_min=0.0, solver="rk4", steps=3, batch=10)
    with pytest.raises(ValueError, match="batch must be an integer in \\[2, 64\\], got 65"):
        fs.SamplesView.draw(sweeps, sigma_min=0.0, solver="rk4", steps=2, batch=65)
    with pytest.raises(ValueError, match="sweeps must map sigma_min"):
        fs.SamplesView(sweep)
    with pytest.raises(ValueError, match="solver must be one of"):
        fs.draw_sigma_min_curves(sweeps, "sw", "heun")
    with pytest.raises(ValueError, match="metric must be one of"):
        fs.draw_nfe_curves(sweep, "kl")
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        fs.solver_sweep(LinearField(), n=1)


def test_seed_curves_and_their_figure() -> None:
    """Two 'seeds' per sigma_min: the rows are the single-solver curves of each model, and
    the figure plots their mean with a one-SE error bar."""
    seed_models = {0.0: [LinearField(), ScaledField()], 0.1: [ScaledField(), ScaledField()]}
    rows = fs.seed_curves(seed_models, n=64)
    one = fs.curves(fs.solver_sweep(ScaledField(), n=64, methods=("midpoint",), tolerances=()))
    assert rows[0.1][0] == one["midpoint"] and rows[0.0][1] == one["midpoint"]
    fig = fs.draw_seed_curves(rows, "error")
    ax = fig.axes[0]
    bars = {c.get_label(): c for c in ax.containers}
    assert list(bars) == ["σ_min 0.00", "σ_min 0.10"]
    mean = [(a + b) / 2 for a, b in zip(rows[0.0][0]["error"], rows[0.0][1]["error"], strict=True)]
    drawn = np.asarray(bars["σ_min 0.00"].lines[0].get_ydata(), dtype=float)
    np.testing.assert_allclose(drawn, mean, rtol=1e-12)
    assert "mean ± SE of 2 seeds" in ax.get_title()
    matplotlib.pyplot.close(fig)


def test_sw_axis_has_several_labelled_ticks(sweep: fs.SolverSweep) -> None:
    """The SW panel spans about one decade: more than one labelled y tick (was one, 10^0)."""
    fig = fs.draw_nfe_curves(sweep, "sw")
    ax = fig.axes[0]
    ax.set_ylim(0.14, 2.5)
    fig.canvas.draw()
    lo, hi = ax.get_ylim()
    labels = [t.get_text() for t in ax.get_yticklabels() if lo <= t.get_position()[1] <= hi]
    assert len([s for s in labels if s]) >= 3, labels
    matplotlib.pyplot.close(fig)
