"""Tests of fmlib.figures.training: each compares with a closed form or an independent sum."""

from __future__ import annotations

import io
import json
import math

import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import pytest
import torch
from matplotlib.figure import Figure

from fmlib import data, metrics
from fmlib.figures import all_views
from fmlib.figures import training as ft
from fmlib.paths import OTPath

C = torch.tensor([0.7, -1.3])


def constant_field(x, t):
    """u(x, t) = c: the flow is x0 + t c, which Euler integrates exactly."""
    return C.expand_as(x)


def contracting_field(x, t):
    """u(x, t) = -x: Euler gives x_k = (1 - h)^k x0 in closed form."""
    return -x


@pytest.fixture(scope="module")
def atlas():
    g = torch.Generator().manual_seed(0)
    x1 = data.sample("checkerboard", 200, g)
    models = {0.0: constant_field, 0.25: contracting_field}
    return ft.precompute_atlas(models, x1, step_grid=(1, 4, 8), generator=g)


def test_running_mean_matches_explicit_windows():
    rng = np.random.default_rng(0)
    v = rng.normal(size=37)
    m = ft.running_mean(v, 5)
    explicit = [v[max(0, k - 4) : k + 1].mean() for k in range(len(v))]
    np.testing.assert_allclose(m, explicit, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("window", [0, -1, 2.5, True])
def test_running_mean_rejects_bad_window(window):
    with pytest.raises(ValueError, match="window"):
        ft.running_mean([1.0, 2.0], window)


def test_nearest():
    assert ft.nearest(0.12, (0.0, 0.1, 0.25)) == 0.1
    assert ft.nearest(30, (1, 8, 32, 64)) == 32
    with pytest.raises(ValueError, match="options"):
        ft.nearest(1.0, ())


def test_atlas_constant_field_is_straight_line(atlas):
    # x_t = x0 + t c exactly, at every grid time, for every number of steps.
    for k in (1, 4, 8):
        for j in range(k + 1):
            x, t = atlas.samples_at(0.0, k, j / k)
            assert t == pytest.approx(j / k)
            torch.testing.assert_close(x, atlas.x0 + t * C, rtol=0, atol=1e-5)


def test_atlas_euler_closed_form_and_snapping(atlas):
    # sigma_min 0.3 snaps to 0.25 (u = -x); steps 6 snaps to 4 or 8 (nearest: 4 on a tie? no:
    # |6-4| = |6-8|, the first, 4); t = 0.6 with 4 steps is the iterate k = 2 (t = 0.5).
    s, k, traj = atlas.trajectory(0.3, 6)
    assert (s, k) == (0.25, 4)
    x, t = atlas.samples_at(0.3, 6, 0.6)
    assert t == pytest.approx(0.5)
    torch.testing.assert_close(x, (1 - 0.25) ** 2 * atlas.x0, rtol=0, atol=1e-6)
    torch.testing.assert_close(traj[-1], (0.75) ** 4 * atlas.x0, rtol=0, atol=1e-6)


def test_atlas_path_samples_is_ot_psi(atlas):
    for s, t in ((0.0, 0.3), (0.25, 1.0)):
        expected = (1 - (1 - s) * t) * atlas.x0 + t * atlas.x1
        torch.testing.assert_close(atlas.path_samples(s, t), expected)
        torch.testing.assert_close(atlas.path_samples(s, t), OTPath(s).psi_t(atlas.x0, atlas.x1, t))


def test_atlas_in_support_against_independent_count(atlas):
    # u = c shifts x0 by c at t = 1: count the checkerboard squares by hand.
    x = atlas.x0 + C
    u, v = (x / data.CHECKER_SCALE).unbind(1)
    inside = (u.abs() <= 2) & (v.abs() <= 2) & ((u.floor() + v.floor()) % 2 == 0)
    assert atlas.in_support(0.0, 8) == pytest.approx(inside.float().mean().item())


def test_atlas_rejects_bad_t(atlas):
    with pytest.raises(ValueError, match="t must be in"):
        atlas.samples_at(0.0, 4, 1.5)


def test_draw_returns_three_panels_with_values_in_titles(atlas):
    before = set(plt.get_fignums())
    fig = ft.FlowAtlasView.draw(atlas, sigma_min=0.24, steps=7, t=0.5)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert any("σ_min = 0.25" in s and "Euler steps = 8" in s for s in titles)
    assert any("t = 0.50" in s for s in titles)
    assert len([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]) == 3
    assert set(plt.get_fignums()) - before == {fig.number}
    plt.close(fig)


def test_field_on_grid_values():
    xx, yy, u = ft.field_on_grid(contracting_field, 0.5, lim=2.0, n=5)
    torch.testing.assert_close(u[..., 0], -xx)
    torch.testing.assert_close(u[..., 1], -yy)
    with pytest.raises(ValueError, match="t must be in"):
        ft.field_on_grid(contracting_field, -0.1)


def test_static_figures_draw():
    g = torch.Generator().manual_seed(0)
    losses = list(10 + torch.rand(120, generator=g).numpy())
    fig = ft.draw_loss_curve(losses, floor=9.5, floor_err=0.2, window=10)
    assert "loss floor ≈ 9.50" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
    x1 = data.sample("moons", 100, g)
    traj = torch.stack([(1 - t) * torch.randn(100, 2, generator=g) + t * x1 for t in (0, 0.5, 1)])
    times = torch.tensor([0.0, 0.5, 1.0])
    fig = ft.draw_snapshots(traj, times, "test", ts=(0.0, 0.4, 1.0))
    assert [ax.get_title() for ax in fig.axes] == ["t = 0.00", "t = 0.50", "t = 1.00"]
    plt.close(fig)
    row = ft.GalleryRow("moons", x1, traj, times, contracting_field)
    fig = ft.draw_gallery([row, row], ts=(0.5,))
    assert sum(ax.get_title() == "samples (t = 1)" for ax in fig.axes) == 2
    plt.close(fig)
    bent = traj.clone()
    bent[1, :5] += 3.0  # five trajectories detour through a far point: they are not straight
    fig = ft.draw_trajectories([ft.GalleryRow("moons", x1, bent, times, contracting_field)], 5)
    median = metrics.chord_over_length(bent[:, :5]).median()
    assert median < 0.9  # the title reports the drawn lines, not all of them
    assert fig.axes[0].get_title() == f"moons\nchord / length: median {median:.2f}"
    plt.close(fig)
    log_q = torch.full((6, 6), math.log(0.02))
    fig = ft.draw_likelihood(log_q - 0.1, log_q, lim=4.0)
    assert len(fig.axes) == 4  # two images, two colorbars
    plt.close(fig)
    with pytest.raises(ValueError, match="log_p_model"):
        ft.draw_likelihood(log_q[:3], log_q, lim=4.0)
    fig = ft.draw_sigma_steps_grid(
        ft.precompute_atlas({0.0: constant_field}, x1, (1, 2), generator=g), [0.0], [1, 2]
    )
    assert "σ_min = 0.00, 2 steps" in fig.axes[1].get_title()
    plt.close(fig)


def test_field_grid_is_field_on_grid(atlas):
    # Precomputed at the slider's t = k / 20, evaluated elsewhere: both are field_on_grid.
    for s, model in atlas.models.items():
        for t in (0.0, 0.35, 0.1 + 0.2, 0.37, 1.0):
            torch.testing.assert_close(atlas.field_grid(s, t), ft.field_on_grid(model, t)[2])
    # max |u|: |c| for u = c; for u = -x the grid corner, |(4.5, 4.5)| = 4.5 sqrt(2).
    assert atlas.max_speed() == pytest.approx(max(C.norm().item(), 4.5 * math.sqrt(2)))


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(PIL.Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def test_view_titles_and_data_match_the_atlas(atlas):
    view = ft.FlowAtlasView(atlas)
    view.update(sigma_min=0.3, steps=6, t=0.6)
    first = _pixels(view.png())  # the first PNG (background cached now) has its titles too
    view.fig.canvas.draw()
    full = np.asarray(view.fig.canvas.buffer_rgba())[..., :3].astype(np.int16)
    assert (np.abs(first - full).max(axis=2) > 40).mean() < 2e-4
    # sigma_min 0.3 -> 0.25, steps 6 -> 4, t = 0.6 -> the Euler iterate at t_k = 0.5.
    x, t_k = atlas.samples_at(0.3, 6, 0.6)
    p, s, u = view.panels.ax_p, view.panels.ax_s, view.panels.ax_u
    assert p.get_title() == "true p_t, t = 0.60"
    assert s.get_title() == f"model, σ_min = 0.25, Euler steps = 4\niterate at t_k = {t_k:.2f}"
    assert t_k == 0.5 and u.get_title() == "learned field u_θ(x, 0.60)"
    np.testing.assert_allclose(view.panels.model_points.get_offsets(), x.numpy())
    np.testing.assert_allclose(view.panels.path_points.get_offsets(), atlas.path_samples(0.25, 0.6))
    expected = ft.field_on_grid(contracting_field, 0.6)[2].reshape(-1, 2).numpy()
    np.testing.assert_allclose(view.panels.arrows.U, expected[:, 0], rtol=1e-6)
    np.testing.assert_allclose(view.panels.arrows.V, expected[:, 1], rtol=1e-6)
    # The static figure is the same picture, as a pyplot figure.
    fig = ft.FlowAtlasView.draw(atlas, sigma_min=0.3, steps=6, t=0.6)
    assert [ax.get_title() for ax in fig.axes[:3]] == [p.get_title(), s.get_title(), u.get_title()]
    plt.close(fig)


def test_views_entries_build():
    for name, make_view, kwargs in all_views("training"):
        assert name.startswith("training.")
        assert isinstance(make_view().draw(**kwargs), Figure)


def test_view_controls_offer_exactly_the_precomputed_values(atlas):
    """Issue 12: sigma_min offers the trained models, steps the precomputed grid; for each
    value every control offers, the figure's text reads '= <the control's label>'."""
    view = ft.FlowAtlasView(atlas)
    controls = view.controls()
    assert set(controls) == {"sigma_min", "steps", "t"}
    assert [v for _, v in controls["sigma_min"].options] == list(atlas.sigma_mins)
    assert [v for _, v in controls["steps"].options] == list(atlas.step_grid)
    defaults = {name: c.value for name, c in controls.items()}
    for name, control in controls.items():
        for label, value in control.options:
            view.update(**{**defaults, name: value})
            text = " ".join(ax.get_title() for ax in view.fig.axes)
            assert f"= {label}" in text, (name, label, text)


def test_ablation_runs_reads_the_benchmark_file(tmp_path):
    runs = [
        {"name": "plain loop", "seed": 0, "steps": 10, "kl": 1.0},
        {"name": "plain loop", "seed": 0, "steps": 20, "kl": 0.5},
    ]
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"runs": runs}))
    assert ft.ablation_runs(20, path) == [runs[1]]
    with pytest.raises(ValueError, match="path must hold"):
        ft.ablation_runs(20, tmp_path / "missing.json")
