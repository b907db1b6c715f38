"""Notebook 12's widget view: the batched run equals one run per setting, controls and readouts."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from fmlib import continuity, diffusion, widgets
from fmlib.figures import diffusion as fig12
from fmlib.solvers import position_at


def _texts(view) -> str:
    return "\n".join(t.get_text() for t in view.fig.findobj(lambda a: hasattr(a, "get_text")))


def test_levels_of_the_samplers():
    assert fig12.levels("SDE", 2.0) == (2.0, 2.0)
    c, n = fig12.levels("mistake: noise twice", 2.0)
    assert c == 2.0 and n == pytest.approx(2.0 * 2**0.5)
    assert fig12.levels("mistake: no score drift", 2.0) == (0.0, 2.0)
    with pytest.raises(ValueError, match="sampler must be one of"):
        fig12.levels("Heun", 1.0)


def test_batched_run_has_the_settings_laws():
    """gamma = 0: every sampler is the ODE, exactly Euler; the batched ODE rows agree."""
    traj = fig12._all_trajectories(4, 0.1)
    assert traj.shape == (5, len(fig12.SETTINGS), fig12.N_PARTICLES, 2)
    rows = [fig12.SETTINGS.index((s, 0.0)) for s in fig12.SAMPLERS]
    for i in rows[1:]:
        torch.testing.assert_close(traj[:, i], traj[:, rows[0]], rtol=0, atol=1e-12)
    drift, g = fig12.sampler_parts("SDE", 0.0, 0.1)
    alone = diffusion.euler_maruyama(drift, g, fig12._x0(), 4, torch.Generator(), trajectory=True)
    torch.testing.assert_close(traj[:, rows[0]], alone, rtol=0, atol=1e-12)
    # the mistake without score drift spreads the particles more than the SDE
    sde = fig12.trajectories(2.0, "SDE", 4, 0.1)[-1]
    bad = fig12.trajectories(2.0, "mistake: no score drift", 4, 0.1)[-1]
    assert bad.var(0).sum() > sde.var(0).sum()


def test_each_setting_alone_draws_the_batched_runs_particles():
    """The view's per-setting runs (with the ODE, or alone) are the batched run's rows, bit for
    bit, and its TV is continuity.histogram_error's."""
    for steps, sigma_min in ((4, 0.1), (9, 0.0)):
        batched = fig12._all_trajectories(steps, sigma_min)
        fig12._RUNS.clear()
        for i, (sampler, gamma) in enumerate(fig12.SETTINGS):
            assert torch.equal(fig12.trajectories(gamma, sampler, steps, sigma_min), batched[:, i])
        for i, setting in ((4, fig12.SETTINGS[4]), (13, fig12.SETTINGS[13])):
            assert torch.equal(fig12._run((setting,), steps, sigma_min)[:, 0], batched[:, i])
    # beyond the panel's most steps, the noise is drawn afresh, as the batched run draws it
    steps = fig12.STEPS_MAX + 1
    batched = fig12._all_trajectories(steps, 0.25)
    for i in (1, 13):
        sampler, gamma = fig12.SETTINGS[i]
        assert torch.equal(fig12.trajectories(gamma, sampler, steps, 0.25), batched[:, i])
    traj, log_p = fig12.trajectories(2.0, "SDE", 4, 0.1), fig12.marginal(0.1).log_prob
    for t in (0.0, 0.35, 1.0):
        x = position_at(traj, t)
        assert fig12._tv(x, 0.1, t) == continuity.histogram_error(
            x, log_p, t, lim=fig12.VIEW, bins=fig12.BINS
        )


def test_controls_offer_only_drawable_values_and_titles_read_them():
    view = fig12.SDESampler()
    controls = view.controls()
    assert set(controls) == {"gamma", "sampler", "steps", "sigma_min", "t"}
    defaults = {name: c.value for name, c in controls.items()}
    for name, control in controls.items():
        for value in widgets.sweep(control, n=4):
            control.value = value
            view.update(**{**defaults, name: value})
            assert f"= {widgets.readout(control)}" in _texts(view), (name, value)
        control.value = defaults[name]
    assert view.inactive(gamma=0.0) and not view.inactive(gamma=1.0)
    with pytest.raises(ValueError, match="gamma must be one of"):
        view.update(gamma=0.7)
    with pytest.raises(ValueError, match="t must be one of"):
        view.update(t=0.33)


def test_tv_floor_is_the_tv_of_exact_samples():
    mean, sd = fig12.tv_floor(0.0, sets=3)
    assert len(mean) == len(sd) == len(fig12.T_OPTIONS)
    assert all(0.05 < m < 0.3 for m in mean) and all(s > 0 for s in sd)  # 1000 particles


def test_static_draw_returns_a_figure():
    fig = fig12.SDESampler.draw(gamma=1.0, steps=8, t=0.25)
    assert fig.number in plt.get_fignums()
    plt.close(fig)
    fig = fig12.draw_quality((4, 16), {"a": {"x": [(0.1, 0.01), (0.0, 0.01)]}})
    plt.close(fig)
    fig = fig12.draw_quality((4, 16), {"b": {"x": [(0.1, 0.01), (0.0, 0.01)]}}, bars={"b": 4.3})
    (segments,) = [c for c in fig.axes[0].collections if len(c.get_segments()) == 2]
    half = [abs(seg[1][1] - seg[0][1]) / 2 for seg in segments.get_segments()]
    assert half == pytest.approx([0.043, 0.043])  # +-4.3 SE bars, as asked
    plt.close(fig)


def test_target_is_notebook_03s_mixture():
    """12's view draws notebook 03's eight Gaussians (std 0.3), which 12's text says it uses."""
    from fmlib.figures import continuity as fig03

    a, b = fig12.mixture(), fig03.mixture()
    assert torch.equal(a.means, b.means) and torch.equal(a.stds, b.stds)
