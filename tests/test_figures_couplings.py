"""Notebook 08's view: keys, the Euler polygon, the precomputed atlas, the readout of every
control value, and the static figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.text import Text

from fmlib import couplings, widgets
from fmlib.figures import couplings as fig08
from fmlib.solvers import integrate


@pytest.fixture(scope="module")
def atlas():
    """Untrained small MLPs on the notebook's grid (sigma_min 0 and 0.3): the atlas's
    mechanics do not depend on the weights."""
    from fmlib import data
    from fmlib.models import MLP

    def source(n, g):
        return torch.randn(n, 2, generator=g)

    def target(n, g):
        return data.sample("eight_gaussians", n, g)

    torch.manual_seed(0)
    samplers = {}
    for s in (0.0, 0.3):
        samplers[fig08.key("independent", 1, s)] = couplings.coupled_sampler(source, target)
        for b in (4, 8, 64):
            samplers[fig08.key("minibatch OT", b, s)] = couplings.coupled_sampler(
                source, target, "minibatch OT", b
            )
    samplers[fig08.key("reflow", 0, 0.0)] = couplings.coupled_sampler(source, target)
    models = {
        k: MLP(hidden=32, layers=2, time_features=16, max_frequency=30.0).eval() for k in samplers
    }
    g = torch.Generator().manual_seed(1)
    return fig08.precompute(
        models, samplers, source(fig08.N_QUALITY, g), target(fig08.N_QUALITY, g), g
    )


def test_the_site_and_benchmark_view_shows_the_shipped_trained_models():
    """bench_view (site, benchmark): notebook 08's shipped seed-1 models, sigma_min = 0; the
    trained independent flow with 16 Euler steps lands near the eight Gaussians (SW_2 0.10)
    and reflow's with one step too (0.11), as in the notebook."""
    shipped = fig08._bench_atlas()
    assert shipped.sigma_mins == (0.0,) and shipped.batches == (4, 8, 64)
    assert shipped.quality[(fig08.key("independent", 1, 0.0), 16)] < 0.2
    assert shipped.quality[(fig08.key("reflow", 0, 0.0), 1)] < 0.3  # reflow: nearly straight


def test_key_ignores_what_has_no_effect():
    assert fig08.key("independent", 64, 0.3) == ("independent", 1, 0.3)
    assert fig08.key("reflow", 8, 0.3) == ("reflow", 0, 0.0)
    assert fig08.key("minibatch OT", 8, 0.3) == ("minibatch OT", 8, 0.3)
    with pytest.raises(ValueError, match="coupling must be one of"):
        fig08.key("sinkhorn", 8, 0.0)


def test_atlas_grid_and_euler_polygon(atlas):
    assert atlas.batches == (4, 8, 64) and atlas.sigma_mins == (0.0, 0.3)
    k = fig08.key("minibatch OT", 8, 0.0)
    traj = atlas.trajectories[(k, 4)]
    for j in range(5):  # at the nodes t_j = j / 4: the Euler iterates themselves
        assert torch.allclose(atlas.position(k, 4, j / 4), traj[j])
    mid = atlas.position(k, 4, 0.375)  # halfway between t_1 and t_2
    assert torch.allclose(mid, (traj[1] + traj[2]) / 2, atol=1e-6)


def test_atlas_pairs_are_the_couplings(atlas):
    k = fig08.key("minibatch OT", 64, 0.0)
    a, b = atlas.pairs[k]  # one OT block of 64: already optimally paired
    assert couplings.ot_permutation(a, b).tolist() == list(range(64))
    assert atlas.crossings[k] == couplings.count_crossings(a, b)
    a, b = atlas.pairs[fig08.key("independent", 1, 0.0)]  # random pairs: not optimal
    assert couplings.ot_permutation(a, b).tolist() != list(range(64))
    assert atlas.trajectories[(k, 2)].shape == (3, fig08.N_SHOWN, 2)


def test_precompute_matches_integrate():
    def source(n, g):
        return torch.randn(n, 2, generator=g)

    def field(x, t):
        return -x + t[:, None]

    sampler = couplings.coupled_sampler(source, source)
    k = fig08.key("independent", 1, 0.0)
    g = torch.Generator().manual_seed(0)
    x0, y = source(fig08.N_QUALITY, g), source(fig08.N_QUALITY, g)
    atlas = fig08.precompute({k: field}, {k: sampler}, x0, y, g)
    expected = integrate(field, x0, steps=8, method="euler", trajectory=True).trajectory
    assert torch.allclose(atlas.trajectories[(k, 8)], expected[:, : fig08.N_SHOWN])
    with pytest.raises(ValueError, match="same keys"):
        fig08.precompute({k: field}, {}, x0, y, g)


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


def test_every_control_value_is_read_out(atlas):
    view = fig08.CouplingsView(atlas)
    controls = view.controls()
    assert set(controls) == {"coupling", "batch_size", "sigma_min", "steps", "t"}
    base = {name: c.value for name, c in controls.items()}
    for name, control in controls.items():
        for value in widgets.sweep(control):
            for coupling in fig08.COUPLINGS:
                values = {**base, "coupling": coupling, name: value}
                if name == "coupling":
                    values["coupling"] = value
                control.value = value
                view.update(**values)
                if name in view.inactive(**values):
                    continue
                assert f"= {widgets.readout(control)}" in _texts(view.fig), (name, value)
        control.value = base[name]


def test_inactive_controls_and_bad_values(atlas):
    view = fig08.CouplingsView(atlas)
    assert set(view.inactive(coupling="reflow")) == {"batch_size", "sigma_min"}
    assert set(view.inactive(coupling="independent")) == {"batch_size"}
    assert view.inactive(coupling="minibatch OT") == {}
    with pytest.raises(ValueError, match="batch_size and sigma_min must be among"):
        view.update(coupling="minibatch OT", batch_size=5, sigma_min=0.0, steps=2, t=0.5)
    with pytest.raises(ValueError, match="steps must be one of"):
        view.update(coupling="minibatch OT", batch_size=8, sigma_min=0.0, steps=3, t=0.5)
    with pytest.raises(ValueError, match="t must be in"):
        view.update(coupling="minibatch OT", batch_size=8, sigma_min=0.0, steps=2, t=1.5)


def test_static_figures():
    x0 = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    x1 = x0 + 1
    fig = fig08.draw_pairs({"shifted": (x0, x1)})
    assert "0 crossing pairs" in fig.axes[0].get_title()  # parallel segments never cross
    plt.close(fig)
    fig = fig08.draw_flows({"drift": lambda x, t: torch.ones_like(x)}, x0, x1)
    assert fig.axes[0].get_title() == "drift"
    plt.close(fig)
