"""fmlib.reward_tuning: the tilted mixture against numerical integration, the grid TV, the
weighted CFM loss, the shipped checkpoints, and notebook 11's lesson lines (section 2)."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from fmlib import figure_check, plots
from fmlib import reward_tuning as rt
from fmlib.figures import adaptation as figs
from fmlib.losses import l_cfm
from fmlib.marginal import GaussianMixture
from fmlib.models import MLP
from fmlib.paths import OTPath

D64 = torch.float64
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "11_model_adaptation.ipynb"


def _mixture() -> GaussianMixture:  # unequal weights and stds: every factor of z_k matters
    means = torch.tensor([[0.0, 0.0], [3.0, -1.0], [-1.0, 2.0]], dtype=D64)
    return GaussianMixture(
        means, torch.tensor([1.0, 0.5, 0.3], dtype=D64), torch.tensor([2, 1, 1.0])
    )


def _grid(h: float = 0.05, lim: float = 10.0) -> torch.Tensor:
    axis = torch.arange(-lim, lim + h / 2, h, dtype=D64)
    return torch.cartesian_prod(axis, axis)


@pytest.mark.parametrize("lam", [0.3, 2.0, 7.0])
def test_tilted_mixture_is_the_normalised_tilt_on_a_grid(lam):
    q, c, h = _mixture(), (0.5, 1.0), 0.05
    x = _grid(h)
    log_tilt = q.log_prob(x) + rt.reward(x, c) / lam
    z_grid = float(log_tilt.exp().sum() * h**2)
    assert rt.log_normaliser(q, c, lam) == pytest.approx(math.log(z_grid), abs=1e-10)
    p = rt.tilted_mixture(q, c, lam)
    assert float((p.log_prob(x) - (log_tilt - math.log(z_grid))).abs().max()) < 1e-9
    # planted: the weights without z_k, or tilting by e^r, are far from it
    wrong = GaussianMixture(p.means, p.stds, q.weights)
    assert float((wrong.log_prob(x) - p.log_prob(x)).abs().max()) > 0.1
    if lam != 1.0:
        e_r = rt.tilted_mixture(q, c, 1.0)
        assert float((e_r.log_prob(x) - p.log_prob(x)).abs().max()) > 0.1


def test_tilts_compound_one_dimension_too():
    q = GaussianMixture(torch.tensor([[-1.0], [2.0]], dtype=D64), torch.tensor([0.4, 0.8]))
    once = rt.tilted_mixture(q, (0.5,), 2.0)
    twice = rt.tilted_mixture(once, (0.5,), 2.0)
    half = rt.tilted_mixture(q, (0.5,), 1.0)  # p e^{2 r / lam} = the tilt at lam / 2
    for a, b in ((twice.means, half.means), (twice.stds, half.stds), (twice.weights, half.weights)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
    h = 1e-3
    x = torch.arange(-12, 12, h, dtype=D64)[:, None]
    z = float((q.log_prob(x) + rt.reward(x, (0.5,)) / 2.0).exp().sum() * h)
    assert rt.log_normaliser(q, (0.5,), 2.0) == pytest.approx(math.log(z), abs=1e-10)


def test_the_gibbs_principle_on_a_grid():
    """J(p) = E_p[r] - lam KL(p || q) is lam log Z at the tilt, lower elsewhere."""
    q, c, lam, h = _mixture(), (0.5, 1.0), 1.5, 0.05
    x = _grid(h)

    def objective(p):
        log_p = p.log_prob(x)
        return float((log_p.exp() * h**2 * (rt.reward(x, c) - lam * (log_p - q.log_prob(x)))).sum())

    best = objective(rt.tilted_mixture(q, c, lam))
    assert best == pytest.approx(lam * rt.log_normaliser(q, c, lam), abs=1e-9)
    for other in (q, rt.tilted_mixture(q, c, lam / 2), rt.tilted_mixture(q, c, 2 * lam)):
        assert objective(other) < best - 1e-3


def test_cell_masses_sum_to_one_and_match_quadrature_and_samples():
    q = rt.base_mixture()
    masses = rt.cell_masses(q)
    assert masses.shape == (401,) and float(masses.sum()) == pytest.approx(1.0, abs=1e-14)
    x = _grid(0.02, 4.0 - 0.01)  # cell centres of a fine grid inside [-4, 4]^2
    fine = (q.log_prob(x).exp() * 0.02**2).reshape(400, 400)
    coarse = fine.reshape(20, 20, 20, 20).sum(dim=(1, 3)).flatten()
    assert float((coarse - masses[:-1]).abs().max()) < 1e-5  # midpoint rule, h^2 error
    hist = rt.histogram(q.sample(200_000, torch.Generator().manual_seed(0)))
    se = (masses * (1 - masses) / 200_000).sqrt()
    assert float(((hist - masses).abs() / se.clamp_min(1e-12)).max()) < 5


def test_histogram_cells_and_outside():
    x = torch.tensor([[-4.0, -4.0], [-3.59, -3.99], [3.99, 3.99], [4.0, 0.0], [0.0, -4.5]])
    hist = rt.histogram(x) * len(x)
    assert hist[0] == 1 and hist[1 * 20 + 0] == 1 and hist[399] == 1 and hist[400] == 2


def test_histogram_tv_floor_and_power():
    g = torch.Generator().manual_seed(1)
    q = rt.base_mixture()
    masses = rt.cell_masses(q)
    exact = rt.histogram_tv(q.sample(40_000, g), masses)
    wrong = rt.histogram_tv(rt.tilted_mixture(q).sample(40_000, g), masses)
    assert exact.shape == (20,) and 0.05 < float(exact.mean()) < 0.15
    assert float(wrong.mean()) > float(exact.mean()) + 0.3


def test_tilt_weights_are_a_shift_invariant_softmax():
    r = torch.tensor([-0.5, -1.0, -2.0, -4.0], dtype=D64)
    w = rt.tilt_weights(r, 2.0)
    torch.testing.assert_close(w, torch.exp(r / 2) / torch.exp(r / 2).sum())
    torch.testing.assert_close(rt.tilt_weights(r + 100.0, 2.0), w)
    with pytest.raises(ValueError, match="lam"):
        rt.tilt_weights(r, 0.0)


def test_weighted_cfm_loss_is_cfm_with_repeats():
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(0)
    model = MLP(hidden=16, layers=2, time_features=4)
    x0, x1, t = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g), torch.rand(6)
    ones = torch.ones(6)
    loss = rt.weighted_cfm_loss(model, x0, x1, t, ones)
    torch.testing.assert_close(loss, l_cfm(model, x0, x1, t, OTPath(0.0)))
    w = torch.tensor([1.0, 2.0, 0.0, 2.0, 1.0, 0.0])  # integer weights, sum 6 = repeats
    i = torch.repeat_interleave(torch.arange(6), w.long())
    torch.testing.assert_close(
        rt.weighted_cfm_loss(model, x0, x1, t, w), l_cfm(model, x0[i], x1[i], t[i], OTPath(0.0))
    )


def test_shipped_models_load_and_sample():
    x0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(3))
    for kind in ("base", "tuned", "online2"):
        for seed in rt.SEEDS:
            model = rt.load(kind, seed)
            assert not model.training and rt.sample(model, x0).isfinite().all()
    with pytest.raises(ValueError, match="kind"):
        rt.checkpoint_name("final", 0)


def test_finetune_is_deterministic_and_moves_towards_the_reward():
    base = rt.load("base", 0)
    pool = rt.sample(base, torch.randn(2000, 2, generator=torch.Generator().manual_seed(4)))
    runs = [rt.finetune(base, pool, steps=60, generator=torch.Generator().manual_seed(5))[0]]
    runs.append(rt.finetune(base, pool, steps=60, generator=torch.Generator().manual_seed(5))[0])
    x0 = torch.randn(4000, 2, generator=torch.Generator().manual_seed(6))
    a, b, before = rt.sample(runs[0], x0), rt.sample(runs[1], x0), rt.sample(base, x0)
    assert torch.equal(a, b)
    assert float(rt.reward(a).mean()) > float(rt.reward(before).mean()) + 1.0
    assert not base.training  # the frozen base is not changed by fine-tuning


def _lesson(name: str) -> dict:
    """The `def`s of notebook 11's code cell that defines `name` (section 2's lesson lines)."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and f"def {name}(" in source:
            module = ast.parse(source)
            module.body = [n for n in module.body if isinstance(n, ast.FunctionDef)]
            namespace = {"torch": torch, "math": math}
            exec(compile(module, str(NOTEBOOK), "exec"), namespace)
            return namespace
    raise AssertionError(f"no cell of {NOTEBOOK.name} defines {name}")


@pytest.mark.parametrize("plant", [False, True])
def test_lesson_tilt_components_is_fmlibs(plant):
    tilt = _lesson("tilt_components")["tilt_components"]
    q, c = _mixture(), torch.tensor([0.5, 1.0], dtype=D64)
    lam = 0.7
    means, stds, weights, log_z = tilt(q.means, q.stds, q.weights, c, lam * (1.01 if plant else 1))
    lib = rt.tilted_mixture(q, (0.5, 1.0), lam)
    ok = (
        all(
            torch.allclose(a, b, rtol=0, atol=1e-14)
            for a, b in ((means, lib.means), (stds, lib.stds), (weights, lib.weights))
        )
        and abs(float(log_z) - rt.log_normaliser(q, (0.5, 1.0), lam)) < 1e-14
    )
    assert ok != plant


@pytest.mark.parametrize("plant", [False, True])
def test_lesson_weighted_cfm_loss_is_fmlibs(plant):
    loss = _lesson("weighted_cfm_loss")["weighted_cfm_loss"]
    g = torch.Generator().manual_seed(7)
    torch.manual_seed(0)
    model = MLP(hidden=16, layers=2, time_features=4)
    x0, x1, t = torch.randn(9, 2, generator=g), torch.randn(9, 2, generator=g), torch.rand(9)
    w = torch.rand(9, generator=g)
    ours = loss(model, x0, x1 if not plant else x1 * 1.001, t, w)
    assert torch.equal(ours, rt.weighted_cfm_loss(model, x0, x1, t, w)) != plant


def test_figures_are_readable():
    plots.use_style()  # the notebooks' style (its layout engine)
    q = rt.base_mixture()
    x = rt.tilted_mixture(q).sample(3000, torch.Generator().manual_seed(8)).float()
    fig = figs.reward_densities_figure(q, rt.tilted_mixture(q), {"a": x, "b": x}, 2.0)
    assert figure_check.text_problems(fig) == []
    plt.close(fig)
    fig = figs.reward_tv_figure(
        [0, 25, 50, 100], [0.4, 0.2, 0.1, 0.1], [0.01] * 4, 0.09, 0.002, 2000
    )
    assert figure_check.text_problems(fig) == []
    plt.close(fig)
