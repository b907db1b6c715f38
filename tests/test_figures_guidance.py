"""Notebook 09's widget view: controls and readouts, the batched solve, the tilted heatmap."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
import torch

from fmlib import guidance, widgets
from fmlib.figures import guidance as fig09
from fmlib.paths import OTPath
from fmlib.solvers import integrate


def _texts(view) -> str:
    return "\n".join(t.get_text() for t in view.fig.findobj(lambda a: hasattr(a, "get_text")))


def test_batched_solve_equals_one_solve_per_w():
    traj = fig09.trajectories(1, 0.1, 4)
    assert traj.shape == (5, len(fig09.W_OPTIONS), fig09.N_PARTICLES, 2)
    i = fig09.W_OPTIONS.index(3.0)
    u = guidance.exact_guided_field(fig09.target(), 1, 3.0, OTPath(0.1))
    alone = integrate(u, fig09.panel_noise(), steps=4, method="euler", trajectory=True).trajectory
    assert torch.allclose(traj[:, i], alone, atol=1e-12)
    noise = fig09.panel_noise()  # the panel's x0, as a copy: the cache cannot be changed
    noise += 1.0
    assert not torch.equal(noise, fig09.panel_noise())


def test_tilted_density_is_normalized_and_w1_is_the_class():
    cell = (2 * fig09.VIEW / (fig09.HEAT - 1)) ** 2
    for w in (0.0, 2.0, 6.0):
        assert float(fig09.tilted_log_density(2, w).exp().sum()) * cell == pytest.approx(1.0)
    x = fig09._grid()
    m, s = fig09.target().means[2], 0.6
    gauss = torch.exp(-((x - m) ** 2).sum(1) / (2 * s**2)) / (2 * math.pi * s**2)
    gauss = gauss / (gauss.sum() * cell)
    assert torch.allclose(fig09.tilted_log_density(2, 1.0).exp().flatten(), gauss, atol=1e-10)


def test_trade_off_at_the_defaults():
    acc, spread = fig09.trade_off(0, 0.0, 32)
    w = fig09.W_OPTIONS
    assert acc[w.index(0.0)] < 0.5 < acc[w.index(1.0)] < acc[w.index(2.0)]  # 1/3, ~0.87, ~1
    assert all(a > b for a, b in zip(spread, spread[1:], strict=False))  # falls with every w


def test_controls_offer_only_drawable_values_and_titles_read_them():
    view = fig09.Guidance()
    controls = view.controls()
    assert set(controls) == {"w", "y", "sigma_min", "steps", "t"}
    defaults = {name: c.value for name, c in controls.items()}
    for name, control in controls.items():
        for value in widgets.sweep(control):
            control.value = value
            view.update(**{**defaults, name: value})
            assert f"= {widgets.readout(control)}" in _texts(view), (name, value)
        control.value = defaults[name]
    with pytest.raises(ValueError, match="w must be one of"):
        view.update(w=2.2)
    with pytest.raises(ValueError, match="y must be one of"):
        view.update(y="3")


def test_static_draws_return_figures():
    fig = fig09.Guidance.draw(w=3.0, y="1", steps=8, t=0.3)
    assert fig.number in plt.get_fignums()
    plt.close(fig)
    q = fig09.target()
    log_p = q.log_prob(fig09._grid())
    fig = fig09.draw_densities(log_p, log_p, fig09.VIEW, w=1.0)
    plt.close(fig)
    series = {
        "acc": [0.3, 0.9],
        "acc_se": [0.01, 0.01],
        "spread": [1.3, 0.9],
        "spread_se": [0.01, 0.01],
    }
    plt.close(fig09.draw_trade_off((0.0, 1.0), {"exact": series}))
