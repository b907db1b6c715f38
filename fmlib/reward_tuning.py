"""Reward fine-tuning of a flow: the tilted target and reward-weighted conditional flow matching.

Fine-tuning a base model p_base towards a reward r(x) with a KL leash of strength lambda,

    p* = argmax_p  E_p[r] - lambda KL(p || p_base)  =  p_base(x) e^{r(x) / lambda} / Z,
    Z = E_{p_base}[e^{r / lambda}],

(the Gibbs variational principle; the optimum's value is lambda log Z). For a Gaussian mixture
p_base = sum_k w_k N(m_k, s_k^2 I) and the quadratic reward r(x) = -|x - c|^2 / 2, the tilt
e^{r / lambda} is an unnormalised Gaussian of precision beta = 1 / lambda centred at c, so p* is
again a Gaussian mixture (`tilted_mixture`): component k becomes

    s'_k^2 = s_k^2 / (1 + beta s_k^2),   m'_k = (m_k + beta s_k^2 c) / (1 + beta s_k^2),
    w'_k = w_k z_k / Z,   Z = sum_k w_k z_k,
    z_k = (1 + beta s_k^2)^{-d/2} exp(-beta |m_k - c|^2 / (2 (1 + beta s_k^2))).

Reward-weighted CFM (the method of notebook 11, section 2): draw a pool x1^i ~ p_base once from
the frozen base model, weight each by w_i = e^{r(x1^i) / lambda} / sum_j e^{r(x1^j) / lambda}, and
minimise the CFM loss weighted by w_i, starting from the base weights. Since
E_{p_base}[e^{r / lambda} f] / Z = E_{p*}[f], the weighted loss is the CFM loss of the data p*
(times a constant): its minimiser is the flow of p*. The "online" variant that redraws the pool
from the current model at each round and weights it again tilts the tilt: after k rounds its
target is p_base e^{k r / lambda} (`tilted_mixture` with lam / k), the reward collapse.

The comparison with the exact p* is the total variation between cell masses on a grid
(`cell_masses`, exact for a mixture of isotropic Gaussians; `histogram_tv` for samples).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fmlib import resources
from fmlib.checks import check_int, check_positive
from fmlib.marginal import GaussianMixture
from fmlib.models import MLP
from fmlib.solvers import integrate
from fmlib.training import sample_time, train_steps

REWARD_CENTRE = (1.5, 1.5)  # c of r(x) = -|x - c|^2 / 2
REWARD_LAMBDA = 2.0  # the KL weight lambda of the notebook
BASE_STEPS = 3000  # benchmarks/train_reward.py: the base flow's CFM steps
FINETUNE_STEPS = 400  # reward-weighted CFM steps (each round of the online variant too)
POOL = 20_000  # base samples drawn once for the weighted loss
SAMPLER_STEPS = 8  # midpoint steps (16 network evaluations) for every sample of a model
SEEDS = (0, 1, 2)
MODEL = dict(hidden=64, layers=3, time_features=16, max_frequency=30.0)
EDGES = torch.linspace(-4.0, 4.0, 21, dtype=torch.float64)  # 20 x 20 cells of 0.4, + outside


def base_mixture() -> GaussianMixture:
    """p_base's target: four equal Gaussians N(m_k, 0.5^2 I), m_k = (+-2, 0), (0, +-2). float64."""
    means = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
    return GaussianMixture(means, 0.5)


def reward(x: Tensor, centre: Tensor | tuple = REWARD_CENTRE) -> Tensor:
    """r(x) = -|x - c|^2 / 2. x: [N, d] -> [N]."""
    c = torch.as_tensor(centre, dtype=x.dtype, device=x.device)
    return -0.5 * ((x - c) ** 2).sum(dim=1)


def _tilt_terms(q: GaussianMixture, centre, lam: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    check_positive("lam", lam)
    beta = 1.0 / lam
    c = torch.as_tensor(centre, dtype=q.means.dtype)
    s2 = q.stds**2
    shrink = 1.0 + beta * s2  # [K]
    log_z = -q.dim / 2 * torch.log(shrink) - beta * ((q.means - c) ** 2).sum(1) / (2 * shrink)
    means = (q.means + beta * s2[:, None] * c) / shrink[:, None]
    return means, (s2 / shrink).sqrt(), log_z, torch.log(q.weights)


def tilted_mixture(q: GaussianMixture, centre=REWARD_CENTRE, lam: float = REWARD_LAMBDA):
    """p* = q e^{r / lam} / Z for r(x) = -|x - c|^2 / 2, a GaussianMixture (module docstring)."""
    means, stds, log_z, log_w = _tilt_terms(q, centre, lam)
    return GaussianMixture(means, stds, torch.softmax(log_w + log_z, 0))


def log_normaliser(q: GaussianMixture, centre=REWARD_CENTRE, lam: float = REWARD_LAMBDA) -> float:
    """log Z = log sum_k w_k z_k = log E_q[e^{r / lam}] (module docstring)."""
    _, _, log_z, log_w = _tilt_terms(q, centre, lam)
    return float(torch.logsumexp(log_w + log_z, 0))


def tilt_weights(r: Tensor, lam: float) -> Tensor:
    """Self-normalised weights w_i = e^{r_i / lam} / sum_j e^{r_j / lam} (a softmax). r: [N]."""
    check_positive("lam", lam)
    return torch.softmax(r / lam, dim=0)


def weighted_cfm_loss(model: nn.Module, x0: Tensor, x1: Tensor, t: Tensor, w: Tensor) -> Tensor:
    """(1/B) sum_i w_i |u_theta(x_t^i, t^i) - (x1^i - x0^i)|^2, x_t = (1 - t) x0 + t x1.

    The CFM loss of the OT path (sigma_min = 0) with per-sample weights w: [B] >= 0, the
    importance weights e^{r / lambda} / Z (mean 1 under the base). An average, not divided by
    sum_i w_i: its expectation over minibatches is the pool's weighted loss, without the
    ratio's O(1/B) bias. All w_i = 1 gives fmlib.losses.l_cfm."""
    x_t = (1 - t[:, None]) * x0 + t[:, None] * x1
    return (w * ((model(x_t, t) - (x1 - x0)) ** 2).sum(dim=1)).mean()


def make_model() -> MLP:
    """The small MLP of the base flow and of its fine-tuned copies (`MODEL`)."""
    return MLP(dim=2, time_embedding="sinusoidal", **MODEL)


@torch.no_grad()
def sample(model: nn.Module, x0: Tensor, steps: int = SAMPLER_STEPS) -> Tensor:
    """x1 = the model's flow from x0 ~ N(0, I) at t = 1 (midpoint, `steps` steps). [N, 2]."""
    return integrate(model, x0, steps=steps, method="midpoint").x


def finetune(
    model: nn.Module,
    pool: Tensor,
    lam: float = REWARD_LAMBDA,
    steps: int = FINETUNE_STEPS,
    batch_size: int = 512,
    lr: float = 3e-3,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> tuple[nn.Module, list[float]]:
    """Reward-weighted CFM from `model`'s weights (a copy is trained) on a fixed pool x1 ~ p.

    Per step: B indices of the pool uniformly, x0 ~ N(0, I), t ~ U[0, 1], the weighted CFM loss
    with the pool's weights w_i = e^{r_i / lam} / Z_hat, Z_hat = (1/N) sum_j e^{r_j / lam}
    (= N softmax(r / lam)_i, mean 1). Its minimiser is the flow of p e^{r / lam} / Z.
    AdamW, warmup + cosine lr, EMA (fmlib.training.train_steps).
    Returns (EMA model in eval mode, losses)."""
    check_int("steps", steps)
    check_int("batch_size", batch_size)
    student = _copy(model)
    w_pool = (tilt_weights(reward(pool.double()), lam) * len(pool)).float()  # mean 1
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)

    def batch_loss() -> Tensor:
        i = torch.randint(0, len(pool), (batch_size,), generator=generator)
        x0 = torch.randn(batch_size, 2, generator=generator)
        t = sample_time(batch_size, generator)
        return weighted_cfm_loss(student, x0, pool[i].float(), t, w_pool[i])

    return train_steps(
        student, batch_loss, optimizer, steps, lr, 0.02, 0.99, "reward-weighted CFM", progress
    )


def _copy(model: nn.Module) -> MLP:
    student = make_model()
    student.load_state_dict(model.state_dict())
    return student.train().requires_grad_(True)


def online_round(
    model: nn.Module, lam: float = REWARD_LAMBDA, pool: int = POOL, generator=None
) -> nn.Module:
    """One round: a pool x1 ~ `model` (its own samples), then `finetune` from `model`'s weights.

    From the frozen base this IS reward-weighted CFM. Repeating it from the result (the
    "online" variant) tilts the tilt: after k rounds the target is p_base e^{k r / lam}
    (reward collapse)."""
    x1 = sample(model, torch.randn(pool, 2, generator=generator))
    return finetune(model, x1, lam, generator=generator)[0]


def cell_masses(q: GaussianMixture, edges: Tensor = EDGES) -> Tensor:
    """Exact probabilities of the grid's cells [len-1, len-1] for an isotropic 2D mixture:
    sum_k w_k (Phi((b - m_k1) / s_k) - Phi((a - m_k1) / s_k)) (the same in y), flattened,
    followed by the mass outside the grid (so the masses sum to 1). float64."""
    z = (edges[None, :] - q.means[:, :, None]) / q.stds[:, None, None]  # [K, 2, E]
    p = torch.diff(torch.special.ndtr(z), dim=2)  # [K, 2, E - 1]
    inside = torch.einsum("k,ki,kj->ij", q.weights, p[:, 0], p[:, 1]).flatten()
    return torch.cat([inside, (1 - inside.sum()).clamp_min(0)[None]])


def histogram(x: Tensor, edges: Tensor = EDGES) -> Tensor:
    """Fractions of the samples x: [N, 2] in the grid's cells (as `cell_masses`), float64."""
    n_cells = len(edges) - 1
    ij = torch.bucketize(x.double().contiguous(), edges, right=True) - 1  # [N, 2]
    inside = ((ij >= 0) & (ij < n_cells)).all(dim=1)
    flat = torch.where(inside, ij[:, 0] * n_cells + ij[:, 1], n_cells * n_cells)
    return torch.bincount(flat, minlength=n_cells * n_cells + 1).double() / len(x)


def histogram_tv(x: Tensor, masses: Tensor, chunks: int = 20, edges: Tensor = EDGES) -> Tensor:
    """TV = (1/2) sum_cells |hist - masses| of each of `chunks` equal chunks of x: [chunks].

    Their mean estimates the TV at the chunk's size n = N / chunks (an upward-biased
    estimate: exact samples of `masses` have TV > 0 at finite n, the floor), their spread its SE."""
    check_int("chunks", chunks, 2)
    return torch.stack([0.5 * (histogram(c, edges) - masses).abs().sum() for c in x.chunk(chunks)])


def train_base(seed: int, steps: int = BASE_STEPS, progress: bool = False) -> MLP:
    """The base flow of training seed `seed`: CFM on base_mixture(), OT path, AdamW, batch 512,
    lr 1e-2 (warmup + cosine), EMA 0.995. Deterministic given the seed (one thread)."""
    from fmlib.losses import l_cfm
    from fmlib.paths import OTPath

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = make_model()
    q, path = base_mixture(), OTPath(0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)

    def batch_loss() -> Tensor:
        x1 = q.sample(512, generator).float()
        x0 = torch.randn(512, 2, generator=generator)
        return l_cfm(model, x0, x1, sample_time(512, generator), path)

    ema, _ = train_steps(model, batch_loss, optimizer, steps, 1e-2, 0.02, 0.995, "base", progress)
    return ema


def checkpoint_name(kind: str, seed: int) -> str:
    """reward_<kind>_seed<seed>.pt, kind in base / tuned / online2 (benchmarks/train_reward.py)."""
    if kind not in ("base", "tuned", "online2"):
        raise ValueError(f"kind must be one of base, tuned, online2, got {kind!r}")
    return f"reward_{kind}_seed{seed}.pt"


def load(kind: str, seed: int) -> MLP:
    """A shipped model (float32 weights, eval mode): the base flow, its reward-weighted CFM
    fine-tuning ("tuned"), or the online variant after 2 rounds ("online2")."""
    saved = torch.load(resources.path(checkpoint_name(kind, seed)), weights_only=True)
    model = make_model()
    model.load_state_dict({k: v.float() for k, v in saved["state_dict"].items()})
    return model.eval()
