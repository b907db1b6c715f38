"""fmlib.couplings against independent computations: brute-force permutations, POT's linear
program, explicit segment intersection, closed forms."""

from __future__ import annotations

import itertools

import numpy as np
import ot
import pytest
import torch

from fmlib import couplings
from fmlib.models import MLP
from fmlib.paths import OTPath


def _points(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g), 2 * torch.rand(n, 2, generator=g) + 1


def test_ot_permutation_is_the_best_of_all_permutations():
    x0, x1 = _points(6)
    cost = couplings.squared_distances(x0, x1)
    brute = min(
        itertools.permutations(range(6)), key=lambda p: sum(cost[i, j] for i, j in enumerate(p))
    )
    assert couplings.ot_permutation(x0, x1).tolist() == list(brute)


def test_ot_permutation_matches_pots_linear_program():
    x0, x1 = _points(40, seed=1)
    a = np.full(40, 1 / 40)
    plan = ot.emd(a, a, couplings.squared_distances(x0, x1).numpy())
    assert couplings.ot_permutation(x0, x1).tolist() == plan.argmax(axis=1).tolist()
    assert couplings.w2_squared(x0, x1) == pytest.approx(
        float(((x1[couplings.ot_permutation(x0, x1)] - x0) ** 2).sum(1).mean()), rel=1e-6
    )


def test_squared_distances():
    x0, x1 = _points(5)
    expected = torch.cdist(x0.double(), x1.double()) ** 2
    assert torch.allclose(couplings.squared_distances(x0, x1), expected, atol=1e-12)


def test_minibatch_pairs_are_blockwise_permutations_and_batch_one_is_independent():
    x0, x1 = _points(64, seed=2)
    same0, paired = couplings.minibatch_ot_pairs(x0, x1, 16)
    assert same0 is x0
    for block, original in zip(paired.split(16), x1.split(16), strict=True):
        assert sorted(map(tuple, block.tolist())) == sorted(map(tuple, original.tolist()))
    assert torch.equal(couplings.minibatch_ot_pairs(x0, x1, 1)[1], x1)
    cost = [
        float(((couplings.minibatch_ot_pairs(x0, x1, b)[1] - x0) ** 2).sum(1).mean())
        for b in (1, 4, 16, 64)
    ]
    assert cost == sorted(cost, reverse=True) and cost[-1] < cost[0]
    with pytest.raises(ValueError, match="batch_size must divide"):
        couplings.minibatch_ot_pairs(x0, x1, 10)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        couplings.minibatch_ot_pairs(x0, x1, 0)
    with pytest.raises(ValueError, match="x1 must have the shape"):
        couplings.minibatch_ot_pairs(x0, x1[:3], 1)


def test_sinkhorn_plan_limits_and_marginals():
    x0, x1 = _points(32, seed=3)
    cost = couplings.squared_distances(x0, x1)
    exact = couplings.w2_squared(x0, x1)
    plans = {eps: couplings.sinkhorn_plan(x0, x1, eps) for eps in (0.05, 1.0, 1000.0)}
    for plan in plans.values():
        assert torch.allclose(
            plan.sum(0), torch.full((32,), 1 / 32, dtype=torch.float64), atol=1e-6
        )
        assert torch.allclose(
            plan.sum(1), torch.full((32,), 1 / 32, dtype=torch.float64), atol=1e-6
        )
    values = [float((p * cost).sum()) for p in plans.values()]
    assert exact <= values[0] < values[1] < values[2]
    assert values[0] - exact < 0.05 * exact  # small epsilon: close to the exact plan
    assert values[2] == pytest.approx(float(cost.mean()), rel=0.01)  # large: independent
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        couplings.sinkhorn_plan(x0, x1, 0.0)
    g = torch.Generator().manual_seed(0)
    a, b = couplings.sinkhorn_pairs(x0, x1, 0.05, g)
    assert a is x0 and all(any(torch.equal(r, s) for s in x1) for r in b)


def _crossings_by_solving(x0: torch.Tensor, x1: torch.Tensor) -> int:
    """Intersect segments by solving x0_i + s d_i = x0_k + r d_k for (s, r) in [0, 1]^2."""
    count = 0
    for i, k in itertools.combinations(range(len(x0)), 2):
        d_i, d_k = (x1[i] - x0[i]).double(), (x1[k] - x0[k]).double()
        m = torch.stack([d_i, -d_k], dim=1)
        if abs(torch.linalg.det(m)) < 1e-12:
            continue
        s, r = torch.linalg.solve(m, (x0[k] - x0[i]).double())
        count += bool(0 <= s <= 1 and 0 <= r <= 1)
    return count


def test_count_crossings_matches_solving_for_the_intersection():
    x0, x1 = _points(30, seed=4)
    x1 = x1[torch.randperm(30, generator=torch.Generator().manual_seed(0))] - 2
    assert couplings.count_crossings(x0, x1) == _crossings_by_solving(x0, x1) > 0
    cross = torch.tensor([[0.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert couplings.count_crossings(*cross) == 1  # the two diagonals of the unit square
    with pytest.raises(ValueError, match="d = 2"):
        couplings.count_crossings(torch.zeros(3, 3), torch.zeros(3, 3))


def test_coupled_sampler_and_fit_are_deterministic_and_learn():
    def source(n, g):
        return torch.randn(n, 2, generator=g)

    def target(n, g):
        return torch.randn(n, 2, generator=g) * 0.1 + torch.tensor([2.0, 0.0])

    sampler = couplings.coupled_sampler(source, target, "minibatch OT", ot_batch=8)
    a0, a1 = sampler(32, torch.Generator().manual_seed(0))
    b0, b1 = sampler(32, torch.Generator().manual_seed(0))
    assert torch.equal(a0, b0) and torch.equal(a1, b1)
    with pytest.raises(ValueError, match="coupling must be one of"):
        couplings.coupled_sampler(source, target, "greedy")

    def trained(seed):
        torch.manual_seed(seed)
        model = MLP(hidden=16, layers=2, time_features=8, max_frequency=10.0)
        g = torch.Generator().manual_seed(1)
        return couplings.fit(
            model, sampler, OTPath(0.0), steps=150, batch_size=64, generator=g, progress=False
        )

    m1, m2 = trained(0), trained(0)
    assert m1.losses == m2.losses and m1.losses[-1] < m1.losses[0] / 4
    x0 = torch.randn(5, 2)
    with torch.no_grad():
        assert torch.allclose(m1(x0, torch.zeros(5)), m2(x0, torch.zeros(5)))


def test_reflow_and_pair_sampler():
    x0 = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    _, x1 = couplings.reflow_pairs(lambda x, t: -x, x0, steps=64)  # dx/dt = -x: x1 = x0 / e
    assert torch.allclose(x1, x0 * np.exp(-1.0), atol=1e-6)
    draw = couplings.pair_sampler(x0, x1)
    a, b = draw(7, torch.Generator().manual_seed(0))
    assert torch.allclose(b, a * np.exp(-1.0), atol=1e-6)  # pairs stay together
