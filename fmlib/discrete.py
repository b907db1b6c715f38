"""Discrete flow matching: continuous-time Markov chains on a finite state space.

A CTMC is described by its rates u_t(y, x) (the "probability velocity"): the rate of
jumping from x to y != x, with u_t(x, x) = -sum_{y != x} u_t(y, x), so every column of
the rate matrix U_t[y, x] sums to zero. It generates p_t when the Kolmogorov forward
equation (the discrete continuity equation) holds:

    d/dt p_t(y) = sum_x u_t(y, x) p_t(x),      i.e.  d/dt p_t = U_t p_t,

and its Euler step is the transition P(x_{t+h} = y | x_t = x) = delta_x(y) + h u_t(y, x).

The factorized mixture path (Gat et al. 2024; Lipman et al., Flow Matching Guide and
Code, 2024, sec. 7), per token, with kappa_0 = 0 and kappa_1 = 1:

    p_t(x | x1) = (1 - kappa_t) p(x) + kappa_t delta_{x1}(x),
    u_t(y, x | x1) = kappa_t' / (1 - kappa_t) (delta_{x1}(y) - delta_x(y)),
    u_t(y, x) = kappa_t' / (1 - kappa_t) (p_{1|t}(y | x) - delta_x(y))      (marginal),

with p_{1|t}(x1 | x) the posterior of the data token given the whole current state x.
The source p is a mask token (mask) or the uniform distribution on the D values.
Here the states have two tokens (the two coordinates of a D x D grid), so the full
state space has V^2 states (V = D + 1 with the mask, D without) and every distribution,
posterior and rate matrix can be written down exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fmlib import data
from fmlib.checks import check_int

SOURCES = ("mask", "uniform")
# Posterior of both tokens for a batch of states x: [N, 2] long -> [N, 2, D] probabilities.
Posterior = Callable[[Tensor, float], Tensor]


# --- CTMCs: rates, forward equation, Euler step -------------------------------------------


def check_rate_matrix(u: Tensor, atol: float = 1e-9) -> None:
    """ValueError unless u[y, x] >= 0 off the diagonal and every column sums to zero."""
    if u.ndim != 2 or u.shape[0] != u.shape[1]:
        raise ValueError(f"u must be a square matrix [S, S], got shape {tuple(u.shape)}")
    off = u - torch.diag(torch.diag(u))
    if float(off.min()) < -atol:
        raise ValueError(f"u must have rates >= 0 off the diagonal, got {float(off.min()):.3g}")
    column = float(u.sum(0).abs().max())
    if column > atol:
        raise ValueError(
            f"u's columns must sum to 0 (mass is conserved), got max |sum| {column:.3g}"
        )


def forward_residual(dp_dt: Tensor, u: Tensor, p: Tensor) -> Tensor:
    """R(y) = d/dt p_t(y) - sum_x u_t(y, x) p_t(x): zero iff u_t generates p_t at this t."""
    return dp_dt - u @ p


def euler_kernel(u: Tensor, h: float) -> Tensor:
    """P[y, x] = delta_x(y) + h u_t(y, x), the CTMC Euler step from x (columns) to y.

    A probability only while h |u_t(x, x)| <= 1; `jump_probability` clamps for the
    mixture path."""
    return torch.eye(u.shape[0], dtype=u.dtype) + h * u


# --- the mixture path ------------------------------------------------------------------------


@dataclass(frozen=True)
class MixturePath:
    """p_t(x | x1) = (1 - kappa_t) p(x) + kappa_t delta_{x1}(x) per token, kappa_t = t^power.

    `n_values` = D data values 0..D-1; with source "mask" a token can also be the mask,
    value D (so the vocabulary has V = D + 1 entries), and p = delta_mask; with source
    "uniform", p = 1/D on the data values and V = D.
    """

    n_values: int
    source: str = "mask"
    power: float = 1.0

    def __post_init__(self) -> None:
        check_int("n_values", self.n_values, 2)
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if not self.power > 0:
            raise ValueError(f"power must be > 0, got {self.power!r}")

    @property
    def vocab(self) -> int:
        return self.n_values + (self.source == "mask")

    @property
    def mask(self) -> int | None:
        return self.n_values if self.source == "mask" else None

    def kappa(self, t: float | Tensor) -> float | Tensor:
        """kappa_t = t^power: 0 at t = 0 (all source), 1 at t = 1 (all data)."""
        return t**self.power

    def d_kappa(self, t: float) -> float:
        """kappa_t' = power t^(power - 1) (inf at t = 0 when power < 1)."""
        if t == 0:
            return {True: 0.0, False: float("inf")}[self.power > 1] if self.power != 1 else 1.0
        return self.power * t ** (self.power - 1)

    def rate_scale(self, t: float) -> float:
        """lambda_t = kappa_t' / (1 - kappa_t), the rate at which a token jumps (t < 1).

        inf at t = 0 when power < 1 (kappa_t' is)."""
        if not 0 <= t < 1:
            raise ValueError(f"t must be in [0, 1) (the rates blow up at t = 1), got {t}")
        return float(self.d_kappa(t)) / (1 - float(self.kappa(t)))

    def source_probs(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """p(x) over the vocabulary: [V]."""
        p = torch.zeros(self.vocab, dtype=dtype)
        if self.mask is None:
            p[:] = 1 / self.n_values
        else:
            p[self.mask] = 1.0
        return p

    def conditional_probs(self, t: float, dtype: torch.dtype = torch.float64) -> Tensor:
        """L[x, x1] = p_t(x | x1) for every token value x (rows) and data value x1: [V, D]."""
        k = self.kappa(t)
        delta = torch.eye(self.vocab, self.n_values, dtype=dtype)
        return (1 - k) * self.source_probs(dtype)[:, None] + k * delta

    def conditional_rates(self, x: Tensor, x1: Tensor, t: float) -> Tensor:
        """u_t(y, x | x1) = lambda_t (delta_{x1}(y) - delta_x(y)) for all y: x, x1 [N] -> [N, V]."""
        eye = torch.eye(self.vocab, dtype=torch.float64)
        return self.rate_scale(t) * (eye[x1] - eye[x])

    def marginal_rates(self, x: Tensor, posterior: Tensor, t: float) -> Tensor:
        """u_t(y, x) = lambda_t (p_{1|t}(y | x) - delta_x(y)) per token.

        x: [N, n] tokens, posterior: [N, n, D] -> [N, n, V] (no rate to the mask)."""
        post = torch.zeros(*posterior.shape[:-1], self.vocab, dtype=posterior.dtype)
        post[..., : self.n_values] = posterior
        return self.rate_scale(t) * (post - torch.eye(self.vocab, dtype=posterior.dtype)[x])

    def sample_source(
        self, n: int, tokens: int, generator: torch.Generator | None = None
    ) -> Tensor:
        if self.mask is not None:
            return torch.full((n, tokens), self.mask, dtype=torch.long)
        return torch.randint(0, self.n_values, (n, tokens), generator=generator)

    def sample_conditional(
        self, x1: Tensor, t: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """x_t: each token is x1 with probability kappa_t, else a fresh source draw. t: [N]."""
        x0 = self.sample_source(*x1.shape, generator=generator)
        keep = (
            torch.rand(x1.shape, generator=generator, dtype=torch.float64) < self.kappa(t)[:, None]
        )
        return torch.where(keep, x1, x0)


# --- two tokens: every distribution exactly --------------------------------------------------


def joint_marginal(path: MixturePath, q: Tensor, t: float) -> Tensor:
    """p_t(x) = sum_{x1} q(x1) p_t(x^1 | x1^1) p_t(x^2 | x1^2) = L q L^T: q [D, D] -> [V, V]."""
    L = path.conditional_probs(t, q.dtype)
    return L @ q @ L.T


def posterior(path: MixturePath, q: Tensor, t: float) -> Tensor:
    """p_{1|t}(x1^i | x) for both tokens i of every state x = (c, d): [V, V, 2, D].

    Bayes: p(x1 | x) = q(x1) L[c, x1^1] L[d, x1^2] / p_t(x); summing out the other token,
    token 1's weight is L[c, a] (q L^T)[a, d] and token 2's is L[d, b] (L q)[c, b].

    With the mask source a token that is set (not the mask) is its data value: its
    posterior is delta_{x^i}, in every state. On states the path never visits (p_t(x) = 0,
    where Bayes is 0/0) we keep that: a set token keeps its value (its rates are 0, so the
    Euler sampler never changes a set token), and a masked token gets the prior marginal
    q^i. The Euler sampler does reach such states: from (mask, mask) both tokens may be set
    in one step, each from its marginal, off the support of q."""
    L = path.conditional_probs(t, q.dtype)
    w1 = L[:, None, :] * (q @ L.T).T[None, :, :]  # [c, d, a]
    w2 = L[None, :, :] * (L @ q)[:, None, :]  # [c, d, b]
    z = joint_marginal(path, q, t)[..., None]
    safe = torch.where(z > 0, z, torch.ones_like(z))
    post = torch.stack([w1 / safe, w2 / safe], dim=2)  # [c, d, token, value]
    prior = torch.stack([q.sum(1), q.sum(0)])
    post = torch.where(z[..., None] > 0, post, prior.expand_as(post))
    if path.mask is not None:  # a set token is its data value: delta_{x^i}, exactly
        is_set = torch.arange(path.vocab) < path.n_values  # [V]: False for the mask
        delta = torch.eye(path.vocab, path.n_values, dtype=q.dtype)  # [value, D]
        post[:, :, 0] = torch.where(is_set[:, None, None], delta[:, None, :], post[:, :, 0])
        post[:, :, 1] = torch.where(is_set[None, :, None], delta[None, :, :], post[:, :, 1])
    return post


def joint_rate_matrix(path: MixturePath, post: Tensor, t: float) -> Tensor:
    """U_t[y, x] on the V^2 states (index c V + d), one token jumping at a time.

    post: [V, V, 2, D] posterior for every state. u_t(y, x) = u^1(y^1, x) if only token 1
    differs, u^2(y^2, x) if only token 2 differs, 0 if both differ; the diagonal is the sum
    of the two tokens' diagonals, so columns sum to zero."""
    V = path.vocab
    states = torch.cartesian_prod(torch.arange(V), torch.arange(V))  # [V^2, 2], x = (c, d)
    rates = path.marginal_rates(states, post.reshape(V * V, 2, -1), t)  # [x, i, value]
    u1 = rates[:, 0, :].T.reshape(V, 1, V, V)  # [a, -, c, d]: y = (a, d) from x = (c, d)
    u2 = rates[:, 1, :].T.reshape(1, V, V, V)  # [-, b, c, d]: y = (c, b)
    eye = torch.eye(V, dtype=rates.dtype)
    U = u1 * eye[None, :, None, :] + u2 * eye[:, None, :, None]  # [a, b, c, d]
    return U.reshape(V * V, V * V)


# --- the CTMC Euler sampler ---------------------------------------------------------------------


def jump_probability(path: MixturePath, t: float, h: float) -> float:
    """h lambda_t clamped to [0, 1]: the Euler probability that a token leaves its value."""
    return min(1.0, h * path.rate_scale(t))


def euler_step_probs(path: MixturePath, x: Tensor, post: Tensor, t: float, h: float) -> Tensor:
    """P(x_{t+h}^i = y | x_t) = delta_{x^i}(y) + h u_t^i(y, x), per token: [N, n, V].

    With the mixture path's rates u = lambda_t (p_{1|t} - delta) this is
    (1 - j) delta_{x^i} + j p_{1|t}(. | x) with j = h lambda_t: a token jumps with
    probability j, to a draw of the posterior. j is clamped to 1 where h lambda_t > 1."""
    j = jump_probability(path, t, h)
    padded = torch.zeros(*post.shape[:-1], path.vocab, dtype=post.dtype)
    padded[..., : path.n_values] = post
    return (1 - j) * torch.eye(path.vocab, dtype=post.dtype)[x] + j * padded


def time_grid(steps: int) -> Tensor:
    check_int("steps", steps)
    return torch.linspace(0, 1, steps + 1, dtype=torch.float64)


def euler_sample(
    path: MixturePath,
    posterior_fn: Posterior,
    n: int,
    steps: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Samples x_1 [n, 2] of the CTMC Euler sampler from x_0 ~ p, `steps` uniform steps."""
    times = time_grid(steps)
    x = path.sample_source(n, 2, generator=generator)
    for t, t_next in zip(times[:-1].tolist(), times[1:].tolist(), strict=True):
        probs = euler_step_probs(path, x, posterior_fn(x, t), t, t_next - t)
        x = torch.multinomial(probs.reshape(-1, path.vocab), 1, generator=generator).reshape(n, 2)
    return x


def euler_distribution(path: MixturePath, posterior_fn: Posterior, steps: int) -> Tensor:
    """The exact distribution [V, V] of euler_sample's output (no sampling noise).

    One step maps p_k to p_{k+1}(a, b) = sum_x p_k(x) P^1(a | x) P^2(b | x): the two
    tokens jump independently given the current state, so the kernel factorizes."""
    V = path.vocab
    states = torch.cartesian_prod(torch.arange(V), torch.arange(V))
    p = torch.outer(path.source_probs(), path.source_probs()).reshape(-1)
    times = time_grid(steps)
    for t, t_next in zip(times[:-1].tolist(), times[1:].tolist(), strict=True):
        P = euler_step_probs(path, states, posterior_fn(states, t), t, t_next - t)  # [x, i, y]
        p = torch.einsum("x,xa,xb->ab", p, P[:, 0], P[:, 1]).reshape(-1)
    return p.reshape(V, V)


def exact_posterior_fn(path: MixturePath, q: Tensor) -> Posterior:
    """posterior(path, q, t) looked up at the states x: the Bayes-optimal model."""

    def fn(x: Tensor, t: float) -> Tensor:
        return posterior(path, q, t)[x[:, 0], x[:, 1]]

    return fn


# --- the target and the distances -----------------------------------------------------------


def checkerboard_grid(n_values: int) -> Tensor:
    """q [D, D]: the checkerboard on a D x D grid of cells over its box [-2/0.45, 2/0.45]^2.

    A cell has mass proportional to whether its centre lies on the support
    (fmlib.data.in_checkerboard); token 1 is the column (x), token 2 the row (y)."""
    if not isinstance(n_values, int) or n_values < 4 or n_values % 4:
        raise ValueError(f"n_values must be a multiple of 4 (cells per square), got {n_values!r}")
    centres = (torch.arange(n_values, dtype=torch.float64) + 0.5) / n_values * 4 - 2
    xy = torch.cartesian_prod(centres, centres) * data.CHECKER_SCALE
    q = data.in_checkerboard(xy).to(torch.float64).reshape(n_values, n_values)
    return q / q.sum()


def total_variation(p: Tensor, q: Tensor) -> float:
    """TV(p, q) = (1/2) sum_x |p(x) - q(x)| (p and q on the same states)."""
    return 0.5 * float((p - q).abs().sum())


def kl_divergence(q: Tensor, p: Tensor) -> float:
    """KL(q || p) = sum_x q(x) log(q(x) / p(x)) over q's support; inf if p = 0 there."""
    on = q > 0
    return float((q[on] * (q[on].log() - p[on].log())).sum())


def embed(path: MixturePath, q: Tensor) -> Tensor:
    """q [D, D] as a distribution on all V^2 states (zero where a token is the mask)."""
    full = torch.zeros(path.vocab, path.vocab, dtype=q.dtype)
    full[: path.n_values, : path.n_values] = q
    return full


def on_grid(path: MixturePath, p: Tensor) -> Tensor:
    """The [D, D] data block of a [V, V] distribution (drops states with a mask)."""
    return p[: path.n_values, : path.n_values]


# --- a posterior model -------------------------------------------------------------------------


class PosteriorMLP(nn.Module):
    """p^theta_{1|t}(x1^i | x) for two tokens: one-hot tokens and kappa_t -> logits [N, 2, D].

    It reads kappa_t rather than t: the posterior depends on t only through kappa_t, so one
    model serves every schedule."""

    def __init__(self, path: MixturePath, hidden: int = 128) -> None:
        super().__init__()
        self.path = path
        self.net = nn.Sequential(
            nn.Linear(2 * path.vocab + 1, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 2 * path.n_values),
        )

    def forward(self, x: Tensor, kappa: Tensor) -> Tensor:
        one_hot = nn.functional.one_hot(x, self.path.vocab).reshape(len(x), -1)
        h = torch.cat([one_hot.to(kappa.dtype), kappa[:, None]], dim=1)
        return self.net(h).reshape(len(x), 2, self.path.n_values)

    def posterior_fn(self) -> Posterior:
        """The model as a Posterior for the samplers (float64 probabilities, no grad)."""

        def fn(x: Tensor, t: float) -> Tensor:
            kappa = torch.full((len(x),), float(self.path.kappa(t)))
            with torch.no_grad():
                return self(x, kappa).softmax(-1).double()

        return fn
