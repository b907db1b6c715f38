"""fmlib.flow_maps against closed forms: the Gaussian flow map, the MeanFlow identity, the
semigroup, Euler's one-step error; the sampler, the loss, the checkpoints, the figures, and the
lesson lines of notebook 11 (section 1) against fmlib's copies."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import pytest
import torch

from fmlib import data, flow_maps, marginal, paths, solvers
from fmlib.figures import adaptation

matplotlib.use("Agg")
F64 = torch.float64
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "11_model_adaptation.ipynb"
MU, S, SIGMA_MIN = torch.tensor([1.0, -0.5], dtype=F64), 0.5, 0.1


@pytest.fixture
def gauss():
    return flow_maps.GaussianOT(MU, S, SIGMA_MIN)


def field():  # the same marginal field from fmlib.marginal (the mixture formula, K = 1)
    return marginal.MixtureMarginal(
        paths.OTPath(SIGMA_MIN), marginal.GaussianMixture(MU[None], S)
    ).velocity


def points(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=F64)
    t, r = torch.rand(n, generator=g, dtype=F64), torch.rand(n, generator=g, dtype=F64)
    r = torch.where((r - t).abs() < 0.05, (t + 0.5) % 1.0, r)
    return x, r, t


def test_velocity_is_fmlib_marginal_field(gauss):
    x, _, t = points()
    assert torch.allclose(gauss.velocity(x, t), field()(x, t), atol=1e-12)


@pytest.mark.parametrize(("a", "b"), [(0.0, 1.0), (0.3, 0.8), (0.9, 0.2)])
def test_flow_map_solves_the_ode(gauss, a, b):
    x, _, _ = points()
    solved = solvers.integrate(field(), x, a, b, steps=400, method="rk4").x
    assert (gauss.flow_map(x, a, b) - solved).abs().max() < 1e-9


def test_flow_map_of_the_marginal_moments(gauss):
    # X_{0->1} pushes N(0, I) to N(mu, (s^2 + sigma_min^2) I)
    x = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    y = gauss.flow_map(x, 0.0, 1.0)
    assert torch.allclose(y.mean(0), MU, atol=0.01)
    assert abs(y.std(0).mean().item() - math.sqrt(S**2 + SIGMA_MIN**2)) < 0.01


def test_meanflow_identity_holds_and_slips_break_it(gauss):
    x, r, t = points()
    v = gauss.velocity(x, t)
    u, rhs = flow_maps.meanflow_target(gauss.average_velocity, v, x, r, t)
    assert (u - rhs).abs().max() < 1e-12
    du_dt = (v - rhs) / (t - r)[:, None]
    assert (u - (v + (t - r)[:, None] * du_dt)).abs().max() > 0.1  # sign slip
    assert (u - (v - du_dt)).abs().max() > 0.1  # (t - r) forgotten


def test_average_velocity_limits_and_ode(gauss):
    x, r, t = points()
    assert torch.equal(gauss.average_velocity(x, t, t), gauss.velocity(x, t))
    near = gauss.average_velocity(x, t + 1e-7, t)
    assert (near - gauss.velocity(x, t)).abs().max() < 1e-5
    by_ode = flow_maps.average_velocity_by_ode(field(), x, r, t, steps=200)
    assert (by_ode - gauss.average_velocity(x, r, t)).abs().max() < 1e-9
    with pytest.raises(ValueError, match="r must differ"):
        flow_maps.average_velocity_by_ode(field(), x, t, t)


def test_semigroup(gauss):
    x, _, _ = points()
    for a, s, b in [(0.0, 0.4, 1.0), (0.2, 0.9, 0.5)]:
        two = gauss.flow_map(gauss.flow_map(x, a, s), s, b)
        assert (two - gauss.flow_map(x, a, b)).abs().max() < 1e-12


def test_euler_error_closed_form(gauss):
    x, _, _ = points()
    for a, b in [(0.0, 1.0), (0.0, 0.5), (0.4, 0.9)]:
        measured = gauss.flow_map(x, a, b) - (x + (b - a) * field()(x, a))
        assert (measured - gauss.euler_error(x, a, b)).abs().max() < 1e-12
    # from noise in one step: Euler lands on mu + sigma_min x0
    assert torch.allclose(x + field()(x, 0.0), MU + SIGMA_MIN * x, atol=1e-12)


def test_few_step_sample_with_the_exact_map_is_exact(gauss):
    x, _, _ = points()
    for steps in (1, 3):
        y = flow_maps.few_step_sample(gauss.average_velocity, x, steps)
        assert (y - gauss.flow_map(x, 0.0, 1.0)).abs().max() < 1e-12
    states = flow_maps.few_step_sample(gauss.average_velocity, x, 2, trajectory=True)
    assert states.shape == (3, *x.shape)
    assert (states[1] - gauss.flow_map(x, 0.0, 0.5)).abs().max() < 1e-12
    with pytest.raises(ValueError, match="steps must be"):
        flow_maps.few_step_sample(gauss.average_velocity, x, 0)


def test_sample_times():
    r, t = flow_maps.sample_times(20_000, 0.25, torch.Generator().manual_seed(0))
    assert bool((t <= r).all()) and bool((t >= 0).all()) and bool((r <= 1).all())
    assert abs((r == t).double().mean().item() - 0.25) < 0.02


def test_meanflow_loss_zero_at_the_exact_u_and_trains(gauss):
    x, _, t = points()
    r = torch.clamp(t + 0.3, max=1.0)
    v = gauss.velocity(x, t)
    assert flow_maps.meanflow_loss(gauss.average_velocity, x, v, r, t).item() < 1e-20
    model = flow_maps.AverageVelocityMLP(hidden=16, layers=2).double()
    loss = flow_maps.meanflow_loss(model, x, v, r, t)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_train_meanflow_runs_and_returns_losses():
    torch.manual_seed(0)
    model = flow_maps.AverageVelocityMLP(hidden=16, layers=2)
    teacher = marginal.MixtureMarginal(paths.OTPath(0.0), data.eight_gaussians_mixture())
    losses = flow_maps.train_meanflow(
        model,
        lambda x, t: teacher.velocity(x.double(), t.double()).float(),
        data.sample_eight_gaussians,
        5,
        torch.Generator().manual_seed(0),
        batch=32,
    )
    assert len(losses) == 5 and all(math.isfinite(v) for v in losses)


def test_shipped_checkpoints(tmp_path):
    for seed in flow_maps.FLOWMAP_SEEDS:
        path = flow_maps.flowmap_checkpoint(seed)
        assert path.stat().st_size < 200_000
        model, meta = flow_maps.load_model(path)
        assert meta["seed"] == seed and meta["steps"] > 0
    with pytest.raises(ValueError, match="seed must be"):
        flow_maps.flowmap_checkpoint(7)
    flow_maps.save_model(model, tmp_path / "m.pt", {"seed": 0})
    again, _ = flow_maps.load_model(tmp_path / "m.pt")
    x, r, t = torch.randn(5, 2), torch.ones(5), torch.zeros(5)
    assert torch.equal(model(x, r, t), again(x, r, t))


def test_gaussian_checks_arguments():
    with pytest.raises(ValueError, match="mu must"):
        flow_maps.GaussianOT(torch.zeros(2, 2), 0.5)
    with pytest.raises(ValueError, match="s must"):
        flow_maps.GaussianOT(MU, 0.0)
    with pytest.raises(ValueError, match="sigma_min"):
        flow_maps.GaussianOT(MU, 0.5, 1.5)


def test_figures_draw():
    n = 6
    exact = torch.randn(11, n, 2)
    steps = {k: torch.randn(k + 1, n, 2) for k in (1, 2)}
    fig = adaptation.draw_flowmap_trajectories(exact, steps, steps, data.eight_gaussians_means())
    assert len(fig.axes) == 2
    samples = {"a": {1: torch.randn(50, 2), 2: torch.randn(50, 2)}, "b": {2: torch.randn(50, 2)}}
    distances = {"a": {1: 0.1, 2: 0.2}, "b": {2: 0.3}}
    fig = adaptation.draw_flowmap_samples(samples, distances, data.eight_gaussians_means())
    assert sum(ax.get_visible() for ax in fig.axes) == 4
    matplotlib.pyplot.close("all")


# The lesson lines of notebook 11, section 1, against fmlib's copies (with a planted slip).
def _cell(startswith: str) -> str:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    found = [
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code" and startswith in "".join(c["source"])
    ]
    assert len(found) == 1, startswith
    return found[0]


def _defs(source: str, names: dict) -> dict:
    namespace = {"torch": torch, "math": math, **names}
    lines = source.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("def "))
    exec("\n".join(lines[start:]), namespace)
    return namespace


@pytest.mark.parametrize("plant", [False, True])
def test_lesson_meanflow_rhs_is_fmlibs(gauss, plant):
    source = _cell("def meanflow_rhs")
    if plant:
        source = source.replace("v - (t - r)", "v + (t - r)")
    ns = _defs(source, {"time": None, "repro": None})
    x, r, t = points()
    v = gauss.velocity(x, t)
    ours = ns["meanflow_rhs"](gauss.average_velocity, v, x, r, t)[1]
    theirs = flow_maps.meanflow_target(gauss.average_velocity, v, x, r, t)[1]
    assert torch.allclose(ours, theirs, atol=1e-12) != plant


@pytest.mark.parametrize("plant", [False, True])
def test_lesson_gauss_flow_map_is_fmlibs(gauss, plant):
    source = _cell("def gauss_flow_map")
    source = source.split("gauss_field =")[0]
    if plant:
        source = source.replace("t**2 * s_g**2", "t * s_g**2")
    lines = source.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("def "))
    ns = {"math": math, "torch": torch, "mu_g": MU, "s_g": S, "sigma_min_g": SIGMA_MIN}
    exec("\n".join(lines[start:]), ns)
    x, _, _ = points()
    same = torch.allclose(ns["gauss_flow_map"](x, 0.2, 0.7), gauss.flow_map(x, 0.2, 0.7))
    assert same != plant
