"""Couplings pi(x0, x1) for flow matching: independent, minibatch OT, entropic OT, reflow.

Any coupling pi with marginals p (source) and q (target) gives a valid CFM objective
(Tong et al. 2024, eq. (9); Pooladian et al. 2023; Liu et al. 2023):

    L(theta) = E_{t ~ U[0,1], (x0, x1) ~ pi} || u_theta(x_t, t) - (x1 - (1 - sigma_min) x0) ||^2,
    x_t = (1 - (1 - sigma_min) t) x0 + t x1,

and, for sigma_min = 0, the learned flow still carries p to q. (For sigma_min > 0 it carries p
to the law of x1 + sigma_min x0 under pi, which is q * N(0, sigma_min^2 I) only when x0 and x1
are independent.) The coupling changes which conditional paths are averaged, hence how
straight the marginal flow is:

- independent: pi = p x q (draw x0 and x1 separately);
- minibatch OT: draw b points of each, pair them by the exact OT plan of the batch for the
  squared Euclidean cost (a permutation for equal uniform batches; solved by scipy's
  `linear_sum_assignment`, the same plan as POT's `ot.emd`);
- entropic OT: the Sinkhorn plan with regularisation epsilon (POT's `ot.sinkhorn`), each x0
  paired with one x1 drawn from its row of the plan;
- reflow (rectified flow, Liu et al. 2023): x1 = the endpoint of a trained flow started
  at x0, a deterministic coupling.

`fit` trains a model on pairs from any `SamplePairs` by the CFM loss of fmlib.training.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from fmlib import resources
from fmlib.checks import Field, check_int, check_range
from fmlib.losses import l_cfm
from fmlib.models import MLP
from fmlib.solvers import integrate
from fmlib.training import train_steps

Sampler = Callable[[int, torch.Generator | None], Tensor]
SamplePairs = Callable[[int, torch.Generator | None], tuple[Tensor, Tensor]]


def _check_pair(x0: Tensor, x1: Tensor) -> None:
    for name, x in (("x0", x0), ("x1", x1)):
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[0] < 1:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a tensor of shape [N >= 1, d], got {shape}")
    if x0.shape != x1.shape:
        raise ValueError(f"x1 must have the shape of x0 {tuple(x0.shape)}, got {tuple(x1.shape)}")


def squared_distances(x0: Tensor, x1: Tensor) -> Tensor:
    """C_ij = |x0_i - x1_j|^2, [n, m] in float64 (the quadratic transport cost)."""
    x0, x1 = x0.double(), x1.double()
    return ((x0[:, None, :] - x1[None, :, :]) ** 2).sum(-1)


def ot_permutation(x0: Tensor, x1: Tensor) -> Tensor:
    """sigma = argmin_sigma (1/n) sum_i |x0_i - x1_sigma(i)|^2 over permutations, [n] int64.

    For two uniform n-point clouds the exact OT plan is a permutation matrix P_ij =
    1[j = sigma(i)] / n (Birkhoff: the assignment polytope's vertices are permutations), so
    the linear program of `ot.emd` reduces to the assignment problem (Hungarian algorithm,
    scipy's `linear_sum_assignment`).
    """
    _check_pair(x0, x1)
    rows, cols = linear_sum_assignment(squared_distances(x0, x1).cpu().numpy())
    sigma = np.empty_like(cols)
    sigma[rows] = cols
    return torch.from_numpy(sigma).to(x0.device)


def minibatch_ot_pairs(x0: Tensor, x1: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """(x0, x1[sigma]) with sigma the exact OT permutation within each block of batch_size rows.

    Minibatch OT (Fatras et al. 2020; Tong et al. 2024): the N rows are cut into blocks of
    `batch_size` (N must be a multiple of it), each block of x1 reordered by `ot_permutation`.
    batch_size = 1 is the independent coupling; batch_size = N the OT plan of the whole sample.
    """
    _check_pair(x0, x1)
    check_int("batch_size", batch_size)
    n = x0.shape[0]
    if n % batch_size:
        raise ValueError(f"batch_size must divide the number of points {n}, got {batch_size}")
    blocks = [
        b1[ot_permutation(b0, b1)]
        for b0, b1 in zip(x0.split(batch_size), x1.split(batch_size), strict=True)
    ]
    return x0, torch.cat(blocks)


def sinkhorn_plan(x0: Tensor, x1: Tensor, epsilon: float) -> Tensor:
    """P = argmin_{P in U(a, b)} <P, C> - epsilon H(P), C_ij = |x0_i - x1_j|^2, [n, n] float64.

    The entropic OT plan (Cuturi 2013) of two uniform n-point clouds by POT's `ot.sinkhorn`
    (log-domain iterations, so a small epsilon does not underflow). epsilon -> 0 gives the
    exact OT plan, epsilon -> inf the independent plan P_ij = 1 / n^2.
    """
    _check_pair(x0, x1)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
    n = x0.shape[0]
    uniform = np.full(n, 1.0 / n)
    cost = squared_distances(x0, x1).cpu().numpy()
    plan = ot.sinkhorn(uniform, uniform, cost, epsilon, method="sinkhorn_log", numItermax=5000)
    return torch.from_numpy(plan)


def sinkhorn_pairs(
    x0: Tensor, x1: Tensor, epsilon: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """(x0_i, x1_j) with j ~ P_ij / sum_j P_ij, P = `sinkhorn_plan(x0, x1, epsilon)`.

    Each x0 keeps its place; x1 is drawn with replacement, so its marginal is q only on
    average (not exactly, as with minibatch OT's permutations).
    """
    plan = sinkhorn_plan(x0, x1, epsilon)
    rows = plan / plan.sum(dim=1, keepdim=True)
    j = torch.multinomial(rows, 1, generator=generator).squeeze(1)
    return x0, x1[j.to(x1.device)]


def w2_squared(x0: Tensor, x1: Tensor) -> float:
    """W_2^2 between the empirical measures of x0 and x1: min_P sum_ij P_ij |x0_i - x1_j|^2.

    The exact linear program (network simplex, POT's `ot.emd2`), uniform weights. Between two
    finite samples it overestimates W_2^2(p, q) on average (the sample's own OT plan fits the
    sampling noise); the bias shrinks as the samples grow.
    """
    _check_pair(x0, x1)
    n = x0.shape[0]
    uniform = np.full(n, 1.0 / n)
    return float(
        ot.emd2(uniform, uniform, squared_distances(x0, x1).cpu().numpy(), numItermax=10**7)
    )


def coupled_sampler(
    source: Sampler,
    target: Sampler,
    coupling: str = "independent",
    ot_batch: int = 1,
    epsilon: float = 1.0,
) -> SamplePairs:
    """A sampler of pairs (x0, x1) ~ pi: `sample_pairs(n, generator) -> ([n, d], [n, d])`.

    coupling: "independent" (x0 ~ p, x1 ~ q separately), "minibatch OT" (`minibatch_ot_pairs`
    with blocks of ot_batch rows) or "sinkhorn" (`sinkhorn_pairs` with epsilon).
    """
    if coupling not in ("independent", "minibatch OT", "sinkhorn"):
        raise ValueError(
            f"coupling must be one of independent, minibatch OT, sinkhorn; got {coupling!r}"
        )
    check_int("ot_batch", ot_batch)

    def sample_pairs(n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        x0, x1 = source(n, generator), target(n, generator)
        if coupling == "minibatch OT":
            return minibatch_ot_pairs(x0, x1, ot_batch)
        if coupling == "sinkhorn":
            return sinkhorn_pairs(x0, x1, epsilon, generator)
        return x0, x1

    return sample_pairs


@torch.no_grad()
def reflow_pairs(
    u: Field, x0: Tensor, steps: int = 32, method: str = "rk4"
) -> tuple[Tensor, Tensor]:
    """(x0, psi_1(x0)): the rectified coupling of Liu et al. (2023), x1 = the flow's endpoint.

    psi_1 by `fmlib.solvers.integrate` (`steps` steps of `method`). The pairs' x1 follow the
    model's p_1, not q: reflow straightens the flow at the price of the model's own error.
    """
    check_int("steps", steps)
    return x0, integrate(u, x0, steps=steps, method=method).x


def pair_sampler(x0: Tensor, x1: Tensor) -> SamplePairs:
    """Draw n stored pairs (x0_i, x1_i) with replacement: training on a fixed coupling."""
    _check_pair(x0, x1)

    def sample_pairs(n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        i = torch.randint(0, x0.shape[0], (n,), generator=generator)
        return x0[i], x1[i]

    return sample_pairs


def fit(
    model: nn.Module,
    sample_pairs: SamplePairs,
    path,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-2,
    warmup: float = 0.02,
    ema_decay: float = 0.99,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> nn.Module:
    """CFM training on pairs from a coupling; returns the EMA model (eval mode).

    Per step: (x0, x1) = sample_pairs(batch_size), t ~ U[0, 1], one Adam step on
    `fmlib.losses.l_cfm` (x_t = path.psi_t(x0, x1, t), target path.target(x0, x1, t)),
    learning rate `fmlib.training.learning_rate` (warmup, cosine decay to 0 over `steps`),
    EMA of the weights: the loop of `fmlib.training.train_steps`. Deterministic given
    `generator` and the initial weights. The loss history is kept in `model.losses`.
    """
    check_int("steps", steps)
    check_int("batch_size", batch_size)
    check_range("ema_decay", ema_decay, 0.0, 1.0, high_open=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def batch_loss() -> Tensor:  # the coupling's pairs, then t ~ U[0, 1]
        x0, x1 = sample_pairs(batch_size, generator)
        t = torch.rand(batch_size, generator=generator)
        return l_cfm(model, x0, x1, t, path)

    ema, losses = train_steps(
        model, batch_loss, optimizer, steps, lr, warmup, ema_decay, "CFM training", progress
    )
    ema.losses = losses
    return ema


def count_crossings(x0: Tensor, x1: Tensor) -> int:
    """Number of pairs {i, k} whose segments [x0_i, x1_i] and [x0_k, x1_k] cross (2D).

    Two segments cross when each separates the other's endpoints: the orientations
    o(a, b, c) = sign((b - a) x (c - a)) satisfy o(a, b, c) != o(a, b, d) and
    o(c, d, a) != o(c, d, b) for the segments [a, b] and [c, d] (general position).
    """
    _check_pair(x0, x1)
    if x0.shape[1] != 2:
        raise ValueError(f"x0 must have d = 2 columns (segments in the plane), got {x0.shape[1]}")
    a, b = x0.double(), x1.double()

    def orient(p: Tensor, q: Tensor, r: Tensor) -> Tensor:  # sign of (q - p) x (r - p)
        u, v = q - p, r - p
        return torch.sign(u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0])

    ai, bi, ak, bk = a[:, None], b[:, None], a[None, :], b[None, :]
    cross = (orient(ai, bi, ak) != orient(ai, bi, bk)) & (orient(ak, bk, ai) != orient(ak, bk, bi))
    return int(cross.triu(diagonal=1).sum())


def load_seed_replicate(seed: int) -> dict:
    """Notebook 08's models of training seed `seed`: fmlib/resources/couplings_seed<seed>.pt.

    Made by benchmarks/train_seed_replicates.py with the notebook's recipe (only the seed
    differs). Returns {"config": the MLP's arguments, "steps": training steps, "models":
    {name: MLP in eval mode}, "final_loss": {name: mean CFM loss of the last 100 steps}}.
    """
    saved = torch.load(resources.path(f"couplings_seed{seed}.pt"), weights_only=True)
    models = {name: MLP(**saved["config"]) for name in saved["state_dicts"]}
    for name, state in saved["state_dicts"].items():
        models[name].load_state_dict(state)
        models[name].eval()
    return {
        "config": saved["config"],
        "steps": saved["steps"],
        "models": models,
        "final_loss": saved["final_loss"],
    }
