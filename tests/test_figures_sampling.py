"""fmlib.figures.sampling: the sweep behind notebook 06's widget, checked on a linear field.

For u(x, t) = A x the exact flow is x1 = exp(A) x0 and K Euler steps give
(I + A/K)^K x0, so the solver errors the widget plots are known in closed form.
"""

from __future__ import annotations

import io
import time

import matplotlib
import matplotlib.figure
import numpy as np
import PIL.Image
import pytest
import torch
from torch import nn

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


@pytest.fixture(scope="module")
def sweep() -> fs.SolverSweep:
    return fs.solver_sweep(LinearField(), n=64, steps=STEPS, tolerances=(1e-2,), seed=0)


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


def test_quality_of_data_against_itself(sweep: fs.SolverSweep) -> None:
    scores = fs.quality(sweep.data, sweep.data)
    assert scores == {"sw": 0.0, "in_support": 1.0}
    shifted = fs.quality(sweep.data + torch.tensor([0.5, 0.0]), sweep.data)
    assert shifted["sw"] == pytest.approx(0.5 / 2**0.5, rel=0.3)  # |<(0.5, 0), theta>|_rms
    assert shifted["in_support"] < 1.0


def test_draw_samples_shows_the_choice(sweep: fs.SolverSweep) -> None:
    start = time.perf_counter()
    fig = fs.draw_samples(sweep, "midpoint", 4, 32)
    elapsed = time.perf_counter() - start
    left, right = fig.axes[:2]
    assert "midpoint, 4 steps (NFE 8), 32 samples" in left.get_title()
    assert len(left.collections[0].get_offsets()) == 32
    assert {line.get_label() for line in right.get_lines()} >= {"euler", "rk4", "dopri5"}
    assert elapsed < 2.0  # loose: the real budget is checked in benchmarks/widgets.py
    matplotlib.pyplot.close(fig)


def test_view_title_and_circle_match_quality_and_curves(sweep: fs.SolverSweep) -> None:
    view = fs.SamplesView(sweep)
    view.update(solver="rk4", steps=2, batch=40)
    first = np.asarray(PIL.Image.open(io.BytesIO(view.png())).convert("RGB"), dtype=np.int16)
    view.fig.canvas.draw()  # the first PNG (background cached now) has its title too
    full = np.asarray(view.fig.canvas.buffer_rgba())[..., :3].astype(np.int16)
    assert (np.abs(first - full).max(axis=2) > 40).mean() < 2e-4
    x1 = sweep.samples[("rk4", 2)][:40]
    q = fs.quality(x1, sweep.data[:40])
    title = view.panels.left.get_title()
    assert title == (
        f"rk4, 2 steps (NFE 8), 40 samples\nSW {q['sw']:.3f}, on squares {q['in_support']:.0%}"
    )
    np.testing.assert_allclose(view.panels.points.get_offsets(), x1.numpy())
    rk4 = fs.curves(sweep)["rk4"]
    assert list(view.panels.choice.get_xdata()) == [8]
    assert list(view.panels.choice.get_ydata()) == [rk4["sw"][rk4["nfe"].index(8)]]
    with pytest.raises(ValueError, match="batch must be"):
        view.update(solver="rk4", steps=2, batch=1)


def test_views_entries_build() -> None:
    for name, make_view, kwargs in fs.VIEWS:
        assert name.startswith("sampling.")
        assert isinstance(make_view().draw(**kwargs), matplotlib.figure.Figure)


def test_draw_grid_and_curves(sweep: fs.SolverSweep) -> None:
    fig = fs.draw_grid(sweep, steps=(1, 4))
    assert sum(ax.get_visible() for ax in fig.axes) == 6
    matplotlib.pyplot.close(fig)
    fig = fs.draw_nfe_curves(sweep, "in_support")
    assert fig.axes[0].get_ylabel() == "fraction on the squares"
    matplotlib.pyplot.close(fig)


def test_bad_arguments_raise(sweep: fs.SolverSweep) -> None:
    with pytest.raises(ValueError, match="\\(solver, steps\\) must be one of"):
        fs.draw_samples(sweep, "rk4", 3, 10)
    with pytest.raises(ValueError, match="batch must be an integer in \\[2, 64\\], got 65"):
        fs.draw_samples(sweep, "rk4", 2, 65)
    with pytest.raises(ValueError, match="metric must be one of"):
        fs.draw_nfe_curves(sweep, "kl")
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        fs.solver_sweep(LinearField(), n=1)
