"""Notebook 11's inverse-problem panel: its runs are the lesson's samplers, its controls offer
only drawable values and its titles read them."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from fmlib import inverse_problems as ip
from fmlib import widgets
from fmlib.figures import adaptation as fig11


def _texts(view) -> str:
    return "\n".join(t.get_text() for t in view.fig.findobj(lambda a: hasattr(a, "get_text")))


def test_the_panels_runs_are_the_lessons_samplers():
    traj = fig11.posterior_trajectories(0.2, "ΠGDM", 8)
    assert traj.shape == (9, fig11.POSTERIOR_PARTICLES, 2)
    A, y = fig11.inverse_observation()
    x0 = fig11._inverse_x0(fig11.POSTERIOR_PROPOSALS)[: fig11.POSTERIOR_PARTICLES]
    alone = ip.guided_sample(fig11._inverse_prior_field, x0, A, y, 0.2, 8, "ΠGDM").x
    torch.testing.assert_close(traj[-1], alone, rtol=0, atol=0)
    resampled = fig11.posterior_trajectories(0.2, "importance resampling", 8)
    proposals = fig11._prior_proposals(8)
    # every resampled particle is a proposal's trajectory, and lies near x^(1) = y at t = 1
    same = (resampled[-1][:, None] == proposals[-1][None]).all(dim=-1).any(dim=1)
    assert bool(same.all())
    assert abs(float(resampled[-1][:, 0].mean()) - fig11.INVERSE_Y) < 0.2


def test_posterior_path_ends_at_the_posterior_and_starts_at_noise():
    post = fig11._inverse_posterior(0.2)
    end, start = fig11.posterior_at_time(post, 1.0), fig11.posterior_at_time(post, 0.0)
    torch.testing.assert_close(end.covs, post.covs)
    torch.testing.assert_close(start.covs, torch.eye(2, dtype=torch.float64).expand(8, 2, 2))
    assert float(start.means.abs().max()) == 0.0


def test_controls_offer_only_drawable_values_and_titles_read_them():
    view = fig11.PosteriorSampling()
    controls = view.controls()
    assert set(controls) == {"sigma_y", "method", "steps", "t"}
    defaults = {name: c.value for name, c in controls.items()}
    for name, control in controls.items():
        for value in widgets.sweep(control, n=3):
            control.value = value
            view.update(**{**defaults, name: value})
            assert f"= {widgets.readout(control)}" in _texts(view), (name, value)
        control.value = defaults[name]
    with pytest.raises(ValueError, match="sigma_y must be one of"):
        view.update(sigma_y=0.3)
    with pytest.raises(ValueError, match="t must be one of"):
        view.update(t=0.33)


def test_dps_loses_the_0_degree_mode_at_small_noise_in_the_panel():
    weights, ed = fig11.posterior_scores(0.05, "DPS", 64)
    mean, sd = fig11.posterior_floor(0.05)
    assert weights[0] < 0.05 and ed > mean + 10 * sd
    weights, ed = fig11.posterior_scores(0.05, "importance resampling", 64)
    assert abs(weights[0] - float(fig11._inverse_posterior(0.05).weights[0])) < 0.06
    assert 0 < fig11.proposal_ess(0.05, 64) < fig11.POSTERIOR_PROPOSALS


def test_static_draws_return_figures():
    fig = fig11.PosteriorSampling.draw(sigma_y=0.5, method="DPS", steps=8, t=0.5)
    assert fig.number in plt.get_fignums()
    plt.close(fig)
    prior = fig11.inverse_prior()
    post = {0.2: fig11._inverse_posterior(0.2)}
    x = post[0.2].sample(50, torch.Generator().manual_seed(0))
    fig = fig11.inverse_samples_figure(prior, post, {0.2: {"a": x, "b": x}})
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3 + 1  # + the colour bar
    plt.close(fig)


def test_a_built_view_has_every_setting_s_maths_ready():
    """Building the view computes what each (sigma_y, method, steps) needs, so a redraw at a
    setting never shown computes nothing but p_t on the grid (counted as cache misses)."""
    cached = (
        fig11.posterior_trajectories,
        fig11.posterior_scores,
        fig11.posterior_floor,
        fig11.proposal_ess,
        fig11._prior_proposals,
    )
    for f in cached:
        f.cache_clear()
    view = fig11.PosteriorSampling()
    misses = [f.cache_info().misses for f in cached]
    for sigma_y in fig11.SIGMA_Y_OPTIONS:
        for method in fig11.POSTERIOR_METHODS:
            for steps in fig11.POSTERIOR_STEPS:
                view.update(sigma_y=sigma_y, method=method, steps=steps, t=0.5)
    assert [f.cache_info().misses for f in cached] == misses
