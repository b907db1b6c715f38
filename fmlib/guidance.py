"""Conditional flow matching with a label, and classifier-free guidance (notebook 09).

A labelled target: x1 ~ q(x1 | y), y ~ pi. One network u_theta(x, t, y) learns both the
conditional field u_t(x | y) and, with the label replaced by a null token with
probability p_drop during training (label dropout), the unconditional field u_t(x) =
u_theta(x, t, null) (Ho & Salimans 2022, for diffusion; Zheng et al. 2023 and Lipman et al.
2024, section 6, for flow matching). Classifier-free guidance (CFG) samples with

    u~_t(x | y) = (1 - w) u_t(x | null) + w u_t(x | y),

w = 1 the conditional field, w = 0 the unconditional one, w > 1 guided. Ho & Salimans
write (1 + w') u(x | y) - w' u(x), i.e. w' = w - 1 (their w' = 0 is our w = 1).

For a Gaussian mixture whose labels are its components, q(x | y) = N(m_y, s_y^2 I), both
fields are exact (fmlib.marginal.marginal_velocity on the whole mixture and on component y
alone), and so is the guided field. CFG is *not* sampling the tilted density
p(x | y)^w p(x)^(1 - w) / Z except at w = 0 and w = 1 (notebook 09 measures the gap).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from fmlib import resources
from fmlib.checks import Field, check_even_int, check_int, check_range
from fmlib.marginal import GaussianMixture, marginal_velocity, posterior
from fmlib.models import MLP, load_digits_checkpoint
from fmlib.paths import GaussianPath, OTPath
from fmlib.training import sample_time, train_steps


def labelled_mixture(
    n_classes: int = 3, radius: float = 1.0, std: float = 0.6, dtype=torch.float64
) -> GaussianMixture:
    """q = (1/K) sum_y N(m_y, std^2 I), m_y = radius (cos a_y, sin a_y), a_y = pi/2 + 2 pi y / K.

    Class y is component y. With radius 1 and std 0.6 the classes overlap: a sample of
    class y lies where another class is more likely about one time in seven.
    """
    check_int("n_classes", n_classes, 2)
    if not 0 < radius < math.inf:
        raise ValueError(f"radius must be in (0, inf), got {radius}")
    if not 0 < std < math.inf:
        raise ValueError(f"std must be in (0, inf), got {std}")
    angles = math.pi / 2 + 2 * math.pi * torch.arange(n_classes, dtype=dtype) / n_classes
    return GaussianMixture(radius * torch.stack([angles.cos(), angles.sin()], dim=1), std)


def _check_class(q: GaussianMixture, y: int) -> None:
    check_int("y", y, 0, q.n_components - 1)


def class_mixture(q: GaussianMixture, y: int) -> GaussianMixture:
    """q(x | y): component y of q alone, N(m_y, s_y^2 I)."""
    _check_class(q, y)
    return GaussianMixture(q.means[y : y + 1], q.stds[y : y + 1])


def sample_labelled(
    q: GaussianMixture, n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """(x1, y): y ~ Categorical(weights), x1 = m_y + s_y z, z ~ N(0, I). -> [n, d], [n]."""
    check_int("n", n)
    y = torch.multinomial(q.weights, n, replacement=True, generator=generator)
    z = torch.randn(n, q.dim, generator=generator, dtype=q.means.dtype)
    return q.means[y] + q.stds[y, None] * z, y


def drop_labels(
    y: Tensor, p_drop: float, null: int, generator: torch.Generator | None = None
) -> Tensor:
    """Label dropout: each y_i becomes the null label with probability p_drop."""
    check_range("p_drop", p_drop, 0.0, 1.0)
    dropped = torch.rand(y.shape, generator=generator) < p_drop
    return torch.where(dropped, torch.full_like(y, null), y)


class ConditionalMLP(MLP):
    """u_theta(x, t, y) = MLP([x, gamma(t), e_y]), SiLU; e_y a learned label embedding.

    fmlib.models.MLP (sinusoidal gamma(t), no Fourier features of x) with the label
    embedding as its extra input (`condition_features`). Labels 0..n_classes - 1 are the
    classes, `null = n_classes` is "no label" (the unconditional field).
    """

    def __init__(
        self,
        n_classes: int,
        dim: int = 2,
        hidden: int = 96,
        layers: int = 3,
        time_features: int = 16,
        max_frequency: float = 5.0,
        label_features: int = 16,
    ) -> None:
        check_int("n_classes", n_classes)
        check_int("label_features", label_features)
        check_even_int("time_features", time_features)
        # the embedding is drawn before the layers (the initial weights of every seed as
        # before), and attached once the Module exists
        label = nn.Embedding(n_classes + 1, label_features)
        super().__init__(
            dim=dim,
            hidden=hidden,
            layers=layers,
            time_embedding="sinusoidal",
            time_features=time_features,
            max_frequency=max_frequency,
            condition_features=label_features,
        )
        del self.x_frequencies  # no Fourier features of x: the state dict of before
        self.label = label
        self._modules["net"] = self._modules.pop("net")  # parameters in the old order: label, net
        self.n_classes, self.null = n_classes, n_classes

    def forward(self, x: Tensor, t: Tensor | float, y: Tensor) -> Tensor:
        """x: [N, dim], t: [N] or scalar, y: [N] integer labels in [0, null] -> [N, dim]."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape [N, {self.dim}], got {tuple(x.shape)}")
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        y = torch.as_tensor(y, device=x.device)
        if y.ndim == 0:
            y = y.expand(x.shape[0])
        if y.shape != x.shape[:1] or y.is_floating_point():
            raise ValueError(f"y must be integer labels of shape [N] = [{x.shape[0]}]")
        if bool(((y < 0) | (y > self.null)).any()):
            raise ValueError(f"y must be in [0, {self.null}] ({self.null} = null), got {y}")
        features = [x, self.embed_time(t).to(x), self.label(y).to(x)]
        return self.net(torch.cat(features, dim=1))


def conditional_cfm_loss(
    model: ConditionalMLP, x0: Tensor, x1: Tensor, y: Tensor, t: Tensor, path: GaussianPath
) -> Tensor:
    """(1/N) sum_i || u_theta(x_t^i, t^i, y^i) - d/dt psi_t(x0^i | x1^i) ||^2.

    The CFM loss of fmlib.losses.l_cfm with the label as a third input; y holds the
    (already dropped-out) labels. x0, x1: [N, d]; y, t: [N].
    """
    x_t = path.psi_t(x0, x1, t)
    return ((model(x_t, t, y) - path.target(x0, x1, t)) ** 2).sum(dim=1).mean()


def train_conditional(
    model: ConditionalMLP,
    q: GaussianMixture | Callable[[int, torch.Generator | None], tuple[Tensor, Tensor]],
    path: GaussianPath,
    steps: int,
    p_drop: float = 0.2,
    batch_size: int = 512,
    lr: float = 1e-2,
    warmup: float = 0.02,
    ema_decay: float = 0.995,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> tuple[ConditionalMLP, list[float]]:
    """AdamW on conditional_cfm_loss with label dropout: per step (x1, y) ~ q, y dropped
    to null with probability p_drop, x0 ~ N(0, I), t ~ U[0, 1]. Warmup + cosine learning
    rate and an EMA of the weights: the loop of fmlib.training.train_steps. Deterministic
    given the generator and the initial weights. Returns (EMA model in eval mode, losses).
    q: a GaussianMixture (labels = components, `sample_labelled`) or any labelled sampler
    `q(n, generator) -> (x1 [n, d], y [n])` (notebook 14's digits)."""
    check_int("steps", steps)
    draw = q if callable(q) else lambda n, g: sample_labelled(q, n, g)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)

    def batch_loss() -> Tensor:  # (x1, y) ~ q, labels dropped, x0 ~ N(0, I), t ~ U[0, 1]
        x1, y = draw(batch_size, generator)
        x1 = x1.to(torch.get_default_dtype())
        y = drop_labels(y, p_drop, model.null, generator)
        x0 = torch.randn(x1.shape, generator=generator)
        t = sample_time(batch_size, generator)
        return conditional_cfm_loss(model, x0, x1, y, t, path)

    return train_steps(
        model, batch_loss, optimizer, steps, lr, warmup, ema_decay, "conditional CFM", progress
    )


def _guidance_weight(w: float | Tensor, x: Tensor) -> Tensor:
    """w as a column [N, 1] (one weight per row) or a 0-d tensor."""
    w = torch.as_tensor(w, dtype=x.dtype, device=x.device)
    return w[:, None] if w.ndim == 1 else w


def cfg_field(model: ConditionalMLP, y: int, w: float | Tensor) -> Field:
    """u~(x, t) = (1 - w) u_theta(x, t, null) + w u_theta(x, t, y), one batched call.

    w: a float, or a tensor [N] (one guidance weight per particle: all w in one solve).
    """
    check_int("y", y, 0, model.n_classes - 1)

    def u(x: Tensor, t: Tensor) -> Tensor:
        n = x.shape[0]
        t = torch.as_tensor(t, dtype=x.dtype).expand(n)
        labels = torch.cat([torch.full((n,), model.null), torch.full((n,), y)])
        out = model(torch.cat([x, x]), torch.cat([t, t]), labels)
        u_null, u_y = out[:n], out[n:]
        w_ = _guidance_weight(w, x)
        return (1 - w_) * u_null + w_ * u_y

    return u


def exact_guided_field(
    q: GaussianMixture, y: int, w: float | Tensor, path: GaussianPath | None = None
) -> Field:
    """The exact u~_t(x | y) = (1 - w) u_t(x) + w u_t(x | y) for labels = components of q.

    u_t(x) = marginal_velocity(path, q, x, t), u_t(x | y) = the same for q(x | y) alone
    (fmlib.marginal, closed form). path defaults to OTPath(0). w: float or tensor [N].
    """
    path = OTPath() if path is None else path
    q_y = class_mixture(q, y)

    def u(x: Tensor, t: Tensor) -> Tensor:
        w_ = _guidance_weight(w, x)
        return (1 - w_) * marginal_velocity(path, q, x, t) + w_ * marginal_velocity(path, q_y, x, t)

    return u


def tilted_log_prob(q: GaussianMixture, y: int, w: float, x: Tensor) -> Tensor:
    """log of the unnormalized tilted density p(x | y)^w p(x)^(1 - w): w log q(x | y) +
    (1 - w) log q(x). Equal to log q(x | y) + (w - 1) log P(y | x) + const. x: [N, d] -> [N]."""
    return w * class_mixture(q, y).log_prob(x) + (1 - w) * q.log_prob(x)


def classify(q: GaussianMixture, x: Tensor) -> Tensor:
    """The Bayes classifier of the data: argmax_k P(k | x1 = x) under q. x: [N, d] -> [N]."""
    return posterior(OTPath(), q, x, 1.0).argmax(dim=1)  # alpha_1 = 1, sigma_1 = 0: q itself


def accuracy(q: GaussianMixture, x: Tensor, y: int) -> tuple[float, float]:
    """(a, SE): a = fraction of the samples x that the Bayes classifier puts in class y.

    SE = sqrt(a~ (1 - a~) / (N + 4)), a~ = (N a + 2) / (N + 4) (Agresti & Coull 1998): the
    binomial standard error, which stays > 0 when a = 0 or 1 (then sqrt(a (1 - a) / N) = 0
    would claim an exact fraction from a finite sample).
    """
    _check_class(q, y)
    n = x.shape[0]
    a = float((classify(q, x) == y).double().mean())
    a_tilde = (n * a + 2) / (n + 4)
    return a, math.sqrt(a_tilde * (1 - a_tilde) / (n + 4))


def spread(x: Tensor) -> tuple[float, float]:
    """(r, SE): r = sqrt(E |x - mean|^2), the RMS distance to the samples' mean (diversity).

    SE by the delta method: SE(r) = SE(r^2) / (2 r), SE(r^2) = std(|x - mean|^2) / sqrt(N).
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must have shape [N >= 2, d], got {tuple(x.shape)}")
    sq = ((x - x.mean(dim=0)) ** 2).sum(dim=1).double()
    r = float(sq.mean().sqrt())
    return r, float(sq.std() / math.sqrt(x.shape[0]) / (2 * r))


def accuracy_terms(q: GaussianMixture, x: Tensor, y: int) -> Tensor:
    """1[class(x_i) = y], [N] float64: their mean is `accuracy`'s a. Two accuracies measured
    on samples from the same noise x0 (another w, another field) are compared by the mean and
    the standard error std / sqrt(N) of the per-sample difference of these terms (paired)."""
    _check_class(q, y)
    return (classify(q, x) == y).double()


def spread_terms(x: Tensor) -> Tensor:
    """r + (|x_i - mean|^2 - r^2) / (2 r), [N] float64, r = `spread(x)`: the linearized
    (delta-method) contribution of each sample to the spread. Their mean is r and their
    std / sqrt(N) is `spread`'s SE; for two spreads from the same noise x0, the per-sample
    difference gives the paired SE of their difference."""
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must have shape [N >= 2, d], got {tuple(x.shape)}")
    sq = ((x - x.mean(dim=0)) ** 2).sum(dim=1).double()
    r = sq.mean().sqrt()
    return r + (sq - r**2) / (2 * r)


def total_variation(log_p: Tensor, log_q: Tensor) -> float:
    """TV = (1/2) sum_cells |p_i - q_i| of two densities on the same grid, each normalized
    on the grid (softmax of the log values): the largest difference in probability that
    the two give to any set of cells, in [0, 1]."""
    if log_p.shape != log_q.shape:
        raise ValueError(
            f"log_p and log_q must have the same shape, got {log_p.shape}, {log_q.shape}"
        )
    p, q = torch.softmax(log_p.flatten(), 0), torch.softmax(log_q.flatten(), 0)
    return float(0.5 * (p - q).abs().sum())


def load_seed_replicate(seed: int) -> tuple[ConditionalMLP, dict]:
    """Notebook 09's network of training seed `seed`: fmlib/resources/guidance_seed<seed>.pt.

    Made by benchmarks/train_seed_replicates.py with the notebook's recipe (only the seed
    differs). Returns (the ConditionalMLP's EMA weights in eval mode, {"seed", "steps",
    "p_drop", "loss_first_200", "loss_last_200"}).
    """
    saved = torch.load(resources.path(f"guidance_seed{seed}.pt"), weights_only=True)
    state = saved.pop("state_dict")
    model = ConditionalMLP(n_classes=state["label.weight"].shape[0] - 1)  # + the null label
    model.load_state_dict(state)
    return model.eval(), saved


def load_digits(seed: int) -> tuple[ConditionalMLP, dict]:
    """Notebook 14's class-conditional digits flow of training seed `seed` (label dropout):
    fmlib/resources/digits_conditional_seed<seed>.pt, from benchmarks/train_digits.py.
    Returns (the ConditionalMLP's EMA weights as float32 in eval mode, {"seed", "config",
    "train", "steps", "sigma_min", "p_drop", "losses", "loss_every"})."""
    return load_digits_checkpoint("conditional", seed, ConditionalMLP)
