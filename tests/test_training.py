"""fmlib.training: the CFM loss by hand, the schedule, EMA, the loop and its budget."""

import math

import pytest
import torch

from fmlib import data
from fmlib.losses import l_cfm
from fmlib.models import MLP
from fmlib.paths import OTPath
from fmlib.training import (
    Recipe,
    ema_update,
    learning_rate,
    sample_time,
    train,
)


def _gaussians(n, generator):
    return data.sample("eight_gaussians", n, generator)


@pytest.mark.parametrize("sigma_min", [0.0, 0.1])
def test_l_cfm_equals_hand_computation(sigma_min):
    g = torch.Generator().manual_seed(0)
    x0, x1, t = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g), torch.rand(64)
    a = torch.tensor([[0.5, -1.0], [2.0, 0.3]])
    model = lambda x, t: x @ a.T + t[:, None] * torch.tensor([1.0, -2.0])
    x_t = (1 - (1 - sigma_min) * t[:, None]) * x0 + t[:, None] * x1
    target = x1 - (1 - sigma_min) * x0
    residual = model(x_t, t) - target
    expected = sum((residual[i] ** 2).sum() for i in range(64)) / 64
    torch.testing.assert_close(l_cfm(model, x0, x1, t, OTPath(sigma_min)), expected)


def test_l_cfm_vanishes_for_the_exact_field_of_a_point_mass():
    """q = delta_c: the marginal field u_t(x) = (c - x) / (1 - t) regresses the target exactly."""
    c = torch.tensor([[1.5, -0.5]])
    x0, t = torch.randn(32, 2), 0.98 * torch.rand(32)
    field = lambda x, t: (c - x) / (1 - t[:, None])
    loss = l_cfm(field, x0, c.expand(32, 2), t, OTPath(0.0))
    assert loss.item() < 1e-10


def test_learning_rate_warmup_then_cosine():
    assert learning_rate(1.0, 0.0, 0.1) == 0.0
    assert learning_rate(1.0, 0.05, 0.1) == pytest.approx(
        0.5 * 0.5 * (1 + math.cos(0.05 * math.pi))
    )
    assert learning_rate(2.0, 0.5, 0.1) == pytest.approx(1.0)
    assert learning_rate(1.0, 1.0, 0.1) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(1.0, 0.3, 0.0) == pytest.approx(0.5 * (1 + math.cos(0.3 * math.pi)))


def test_ema_update_closed_form():
    ema, model = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    before = [p.detach().clone() for p in ema.parameters()]
    ema_update(ema, model, 0.9)
    for p_ema, p_old, p in zip(ema.parameters(), before, model.parameters(), strict=True):
        torch.testing.assert_close(p_ema, 0.9 * p_old + 0.1 * p)


def test_sample_time_moments():
    g = torch.Generator().manual_seed(0)
    u = sample_time(20000, g, "uniform")
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.003
    s = sample_time(20000, g, "logit_normal")
    assert ((s > 0) & (s < 1)).all()
    assert abs((s < 0.5).float().mean().item() - 0.5) < 0.015  # median sigmoid(0) = 0.5
    assert s.var().item() < 1 / 12  # concentrated around the middle


def test_train_decreases_the_loss_and_keeps_an_ema():
    """The CFM loss on one fixed batch (same x0, x1, t) drops well below its initial value."""
    torch.manual_seed(0)
    model = MLP(hidden=32, layers=2, time_features=8)
    g = torch.Generator().manual_seed(0)
    x1 = _gaussians(2000, g)
    x0, t = torch.randn(2000, 2, generator=g), torch.rand(2000, generator=g)
    with torch.no_grad():
        before = l_cfm(model, x0, x1, t, OTPath()).item()
    result = train(
        model,
        _gaussians,
        OTPath(),
        steps=150,
        batch_size=256,
        lr=1e-2,
        generator=g,
        progress=False,
    )
    with torch.no_grad():
        after = l_cfm(result.model, x0, x1, t, OTPath()).item()
    assert result.steps == len(result.losses) == 150
    assert after < 0.85 * before  # 6.13 -> 4.63 here; the floor of L_CFM is ~4
    assert result.raw_model is model and result.model is not model
    assert not torch.equal(result.model.net[0].weight, model.net[0].weight)
    assert result.lrs[-1] < 1e-3 * result.lrs[len(result.lrs) // 2]


def test_train_is_deterministic_given_the_generator_and_steps():
    def run():
        torch.manual_seed(3)
        model = MLP(hidden=16, layers=1, time_features=4)
        g = torch.Generator().manual_seed(5)
        return train(
            model, _gaussians, OTPath(), steps=15, batch_size=64, generator=g, progress=False
        )

    a, b = run(), run()
    assert a.losses == b.losses
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_train_stops_on_a_wall_clock_budget():
    model = MLP(hidden=8, layers=1, time_features=4)
    result = train(model, _gaussians, OTPath(), seconds=0.3, batch_size=32, progress=False)
    assert result.steps >= 1
    assert 0.3 <= result.seconds < 5.0


def test_recipe_fit_uses_its_hyperparameters():
    recipe = Recipe(hidden=16, layers=1, time_features=4, batch_size=32, ema_decay=0.0)
    g = torch.Generator().manual_seed(0)
    result = recipe.fit(_gaussians, steps=3, generator=g, progress=False)
    assert result.model is result.raw_model
    assert result.model.config["hidden"] == 16 and result.steps == 3
    assert result.lrs[1] == pytest.approx(learning_rate(recipe.lr, 1 / 3, recipe.warmup))


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({}, "seconds and steps"),
        ({"steps": 0}, "steps"),
        ({"seconds": -1.0}, "seconds"),
        ({"steps": 1, "batch_size": 0}, "batch_size"),
        ({"steps": 1, "lr": 0.0}, "lr"),
        ({"steps": 1, "warmup": 1.0}, "warmup"),
        ({"steps": 1, "ema_decay": 1.0}, "ema_decay"),
        ({"steps": 1, "time_sampling": "beta"}, "time_sampling"),
        ({"steps": 1, "schedule": "linear"}, "schedule"),
    ],
)
def test_bad_arguments_raise(kwargs, arg):
    model = MLP(hidden=8, layers=1, time_features=4)
    with pytest.raises(ValueError, match=arg):
        train(model, _gaussians, OTPath(), progress=False, **kwargs)


def test_l_cfm_bad_shapes_raise():
    model = MLP(hidden=8, layers=1)
    with pytest.raises(ValueError, match="t must have shape"):
        l_cfm(model, torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(3), OTPath())
    with pytest.raises(ValueError, match="x0 and x1"):
        l_cfm(model, torch.zeros(4, 2), torch.zeros(5, 2), torch.zeros(4), OTPath())


def test_constant_schedule_keeps_the_learning_rate():
    """schedule="constant" (the ablation's plain loop): lr at every step, no warm-up/decay;
    the default stays the warm-up + cosine schedule."""
    g = torch.Generator().manual_seed(0)
    model = MLP(hidden=8, layers=1, time_features=4)
    flat = train(
        model,
        _gaussians,
        OTPath(),
        steps=5,
        batch_size=16,
        lr=3e-3,
        schedule="constant",
        generator=g,
        progress=False,
    )
    assert flat.lrs == [3e-3] * 5
    cosine = train(
        model, _gaussians, OTPath(), steps=5, batch_size=16, lr=3e-3, generator=g, progress=False
    )
    assert cosine.lrs == [learning_rate(3e-3, k / 5, 0.02) for k in range(5)]
