"""Flow matching on curved spaces: the unit sphere S^2 in R^3 and the flat torus T^2.

Riemannian flow matching (Chen & Lipman 2024; Lipman et al. 2024, the Flow Matching Guide,
section 5) keeps the recipe of the course with three changes:

- the conditional path is the geodesic x_t = exp_{x0}(t log_{x0}(x1)) (t = 0 noise, t = 1 data);
- its conditional velocity is the time derivative of that geodesic *at x_t*, a vector of the
  tangent plane T_{x_t}M, equal to log_{x_t}(x1) / (1 - t); not log_{x0}(x1), which lives in
  T_{x0}M (the two agree only on a flat space);
- a network's output is projected to the tangent plane, and a sampler steps along geodesics:
  x <- exp_x(h u(x, t)).

Points: the sphere's are unit vectors x: [N, 3]; the torus's are angles x: [N, 2] in
[-pi, pi)^2 (the square with opposite sides glued), its metric the Euclidean one of the angles.
Both classes have the same methods, so the course's loss and sampler take either.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from fmlib.checks import check_int

TAU = 2 * math.pi
Field = Callable[[Tensor, Tensor], Tensor]


def _col(t: Tensor | float, x: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.expand(x.shape[0])[:, None] if t.ndim == 0 else t[:, None]


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1, keepdim=True)


class Sphere:
    """S^2 = {x in R^3 : |x| = 1}, with the metric of R^3 restricted to its tangent planes."""

    name = "sphere"
    dim = 3  # ambient coordinates of a point
    features = 3  # network input width

    def project(self, x: Tensor, v: Tensor) -> Tensor:
        """P_x v = v - (x . v) x: the orthogonal projection of v in R^3 on T_x S^2."""
        return v - _dot(x, v) * x

    def dist(self, x: Tensor, y: Tensor) -> Tensor:
        """d(x, y) = angle between x and y = atan2(|x x y|, x . y), in [0, pi]: [N].

        atan2 keeps full precision near 0 and pi, where arccos(x . y) loses half the digits."""
        return torch.atan2(torch.linalg.cross(x, y).norm(dim=-1), (x * y).sum(-1))

    def exp(self, x: Tensor, v: Tensor) -> Tensor:
        """exp_x(v) = cos|v| x + sin|v| v / |v| for v in T_x S^2 (x + v at |v| = 0)."""
        n = v.norm(dim=-1, keepdim=True)
        return torch.cos(n) * x + torch.sinc(n / math.pi) * v  # sinc(n / pi) = sin(n) / n

    def log(self, x: Tensor, y: Tensor) -> Tensor:
        """log_x(y) = d(x, y) w / |w|, w = P_x y = y - (x . y) x: the tangent vector at x
        pointing to y along the shorter great circle, of length d(x, y) (0 when y = x;
        undefined for y = -x, where every direction is a shortest one)."""
        w = self.project(x, y)
        d = self.dist(x, y)[:, None]
        return d * w / w.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)

    def uniform(self, n: int, generator: torch.Generator | None = None, dtype=torch.float32):
        """x ~ U(S^2): z / |z| with z ~ N(0, I_3) (the Gaussian is rotation invariant)."""
        check_int("n", n)
        z = torch.randn(n, 3, generator=generator, dtype=dtype)
        return z / z.norm(dim=1, keepdim=True)

    def to_features(self, x: Tensor) -> Tensor:
        """The network's input: x itself."""
        return x

    def to_tangent(self, x: Tensor, out: Tensor) -> Tensor:
        """The network's output out in R^3, projected on T_x S^2."""
        return self.project(x, out)

    def volume(self) -> float:
        return 4 * math.pi


class Torus:
    """The flat torus T^2 = R^2 / (2 pi Z)^2: angles x in [-pi, pi)^2, Euclidean metric.

    Straight lines are its geodesics; the shortest one from x to y takes the difference of the
    angles wrapped to [-pi, pi). The network sees the embedding (cos x1, sin x1, cos x2, sin x2)
    in R^4, and its output there is turned into a velocity of the angles (`to_tangent`)."""

    name = "torus"
    dim = 2
    features = 4

    @staticmethod
    def wrap(a: Tensor) -> Tensor:
        """a mod 2 pi, in [-pi, pi)."""
        return torch.remainder(a + math.pi, TAU) - math.pi

    def project(self, x: Tensor, v: Tensor) -> Tensor:
        """Every vector of R^2 is tangent to the flat torus: P_x v = v."""
        return v

    def dist(self, x: Tensor, y: Tensor) -> Tensor:
        """d(x, y) = |wrap(y - x)|: [N]."""
        return self.log(x, y).norm(dim=-1)

    def exp(self, x: Tensor, v: Tensor) -> Tensor:
        """exp_x(v) = wrap(x + v)."""
        return self.wrap(x + v)

    def log(self, x: Tensor, y: Tensor) -> Tensor:
        """log_x(y) = wrap(y - x): each angle goes the shorter way round."""
        return self.wrap(y - x)

    def uniform(self, n: int, generator: torch.Generator | None = None, dtype=torch.float32):
        """x ~ U([-pi, pi)^2), the uniform law of the torus."""
        check_int("n", n)
        return TAU * torch.rand(n, 2, generator=generator, dtype=dtype) - math.pi

    def to_features(self, x: Tensor) -> Tensor:
        """(cos x1, sin x1, cos x2, sin x2): continuous across the glued sides."""
        return torch.stack([x[:, 0].cos(), x[:, 0].sin(), x[:, 1].cos(), x[:, 1].sin()], dim=1)

    def to_tangent(self, x: Tensor, out: Tensor) -> Tensor:
        """Each circle's part (a, b) of out in R^4, projected on that circle's tangent
        (-sin x_i, cos x_i): the angle's velocity -a sin x_i + b cos x_i."""
        s, c = x.sin(), x.cos()
        return -out[:, 0::2] * s + out[:, 1::2] * c

    def volume(self) -> float:
        return TAU**2


MANIFOLDS = {"sphere": Sphere(), "torus": Torus()}


def geodesic(M: Sphere | Torus, x0: Tensor, x1: Tensor, t: Tensor | float) -> Tensor:
    """x_t = exp_{x0}(t log_{x0}(x1)): the conditional path (Chen & Lipman 2024, eq. 9 with
    kappa_t = 1 - t). x_0 = x0, x_1 = x1, at constant speed d(x0, x1)."""
    return M.exp(x0, _col(t, x0) * M.log(x0, x1))


def conditional_velocity(M: Sphere | Torus, x: Tensor, x1: Tensor, t: Tensor | float) -> Tensor:
    """u_t(x | x1) = log_x(x1) / (1 - t), in T_x M (Chen & Lipman 2024, eq. 10 with
    kappa_t = 1 - t): the time derivative of the geodesic through x at time t that reaches x1
    at t = 1. At x = x_t it is d/dt x_t. t must be < 1 (at t = 1, x = x1 and 0 / 0)."""
    t = _col(t, x)
    if bool((t >= 1).any()):
        raise ValueError("t must be < 1 (the conditional velocity is 0 / 0 at t = 1)")
    return M.log(x, x1) / (1 - t)


TARGETS = ("geodesic", "logmap(x0, x1)", "chord")


def cfm_terms(
    M: Sphere | Torus, model: Field, x0: Tensor, x1: Tensor, t: Tensor, target: str = "geodesic"
) -> Tensor:
    """|u^theta_t(x_t) - u_t(x_t | x1)|^2 per sample, [N], the norm of R^3 (sphere) or R^2.

    target = "geodesic": x_t on the geodesic, u_t(x_t | x1) = log_{x_t}(x1) / (1 - t), the loss
        of Riemannian flow matching (Chen & Lipman 2024, eq. 11).
    Two mistakes, for measuring their cost:
    "logmap(x0, x1)": x_t on the geodesic but the target log_{x0}(x1), a vector of T_{x0}M used
        at x_t (the same as the right one on the flat torus, wrong on the sphere);
    "chord": x_t = ((1 - t) x0 + t x1) / |(1 - t) x0 + t x1| (Euclidean interpolation, then
        normalisation) with the Euclidean velocity x1 - x0 as target (sphere only).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    tc = _col(t, x0)
    if target == "chord":
        if not isinstance(M, Sphere):
            raise ValueError("target 'chord' is defined on the sphere only")
        y = (1 - tc) * x0 + tc * x1
        x_t, u = y / y.norm(dim=1, keepdim=True), x1 - x0
    else:
        x_t = geodesic(M, x0, x1, t)
        u = conditional_velocity(M, x_t, x1, t) if target == "geodesic" else M.log(x0, x1)
    return ((model(x_t, t) - u) ** 2).sum(1)


def euler_step(M: Sphere | Torus, u: Field, x: Tensor, t: float, h: float) -> Tensor:
    """The geodesic Euler step x <- exp_x(h P_x u(x, t)): stays on M (to round-off)."""
    return M.exp(x, h * M.project(x, u(x, torch.full((len(x),), t, dtype=x.dtype))))


def sample(M: Sphere | Torus, u: Field, x0: Tensor, steps: int) -> Tensor:
    """`steps` geodesic Euler steps from t = 0 to 1; returns the trajectory [steps + 1, N, d]."""
    check_int("steps", steps)
    xs, h = [x0], 1.0 / steps
    with torch.no_grad():
        for k in range(steps):
            xs.append(euler_step(M, u, xs[-1], k * h, h))
    return torch.stack(xs)


class TangentField(nn.Module):
    """u^theta_t(x) = to_tangent(x, net(features(x), t)): a network's output made tangent.

    `net` is a `fmlib.models.MLP` of width M.features (3 on the sphere, 4 on the torus)."""

    def __init__(self, M: Sphere | Torus, net: nn.Module) -> None:
        super().__init__()
        self.M, self.net = M, net

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        return self.M.to_tangent(x, self.net(self.M.to_features(x), t))


# --------------------------------------------------------------------------- training
NET = dict(hidden=64, layers=3, time_features=16, max_frequency=30.0, x_features=32, x_scale=2.0)
STEPS, BATCH, LR = 1000, 512, 1e-2  # notebook 13's recipe (about 6 s of one CPU core)


def new_model(M: Sphere | Torus, seed: int) -> TangentField:
    """A fresh TangentField over `fmlib.models.MLP(dim=M.features, **NET)`, weights from seed."""
    from fmlib.models import MLP

    torch.manual_seed(seed)
    return TangentField(M, MLP(dim=M.features, **NET))


def fit(
    M: Sphere | Torus,
    sample_x1: Callable[[int, torch.Generator], Tensor],
    target: str = "geodesic",
    seed: int = 0,
    steps: int = STEPS,
    progress: bool = True,
) -> tuple[nn.Module, list[float]]:
    """Notebook 13's training: `steps` Adam steps on the mean of `cfm_terms` over batches of
    BATCH pairs x0 ~ U(M), x1 ~ q, t ~ U[0, 1), learning rate LR with warm-up and cosine decay,
    EMA weights (fmlib.training.train_steps). Deterministic given the seed (initial weights
    and every draw). Returns (EMA model in eval mode, losses)."""
    from fmlib.training import train_steps

    generator = torch.Generator().manual_seed(seed)
    model = new_model(M, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def batch_loss() -> Tensor:
        x1 = sample_x1(BATCH, generator)
        x0 = M.uniform(BATCH, generator)
        t = torch.rand(BATCH, generator=generator)
        return cfm_terms(M, model, x0, x1, t, target).mean()

    return train_steps(
        model, batch_loss, optimizer, steps, LR, desc=f"{M.name}, {target}", progress=progress
    )


def load_seed_replicate(seed: int) -> dict[str, nn.Module]:
    """The models of training seed `seed` (1 or 2) written by
    benchmarks/train_seed_replicates.py manifolds: {"sphere <target>": ..., "torus geodesic":
    ...}, in eval mode. Raises ValueError if the stored recipe (NET, STEPS) is not this one."""
    from fmlib import resources

    payload = torch.load(resources.DIRECTORY / f"manifolds_seed{seed}.pt", weights_only=True)
    if payload["config"] != NET or payload["steps"] != STEPS:
        raise ValueError(
            f"manifolds_seed{seed}.pt was trained with {payload['config']}, {payload['steps']} "
            f"steps; rerun benchmarks/train_seed_replicates.py manifolds"
        )
    models = {}
    for key, state in payload["state_dicts"].items():
        model = new_model(MANIFOLDS[key.split()[0]], seed)
        model.load_state_dict(state)
        models[key] = model.eval().requires_grad_(False)
    return models


# --------------------------------------------------------------------------- targets
def vmf_sample(
    mu: Tensor, kappa: float, n: int, generator: torch.Generator | None = None
) -> Tensor:
    """x ~ vMF(mu, kappa) on S^2 (|mu| = 1, kappa > 0): x = w mu + sqrt(1 - w^2) e, e a uniform
    unit vector of T_mu S^2 and w = 1 + log(u + (1 - u) e^{-2 kappa}) / kappa, u ~ U(0, 1)
    (the inverse CDF of w, whose density on [-1, 1] is proportional to e^{kappa w}; Wood 1994)."""
    check_int("n", n)
    if not kappa > 0:
        raise ValueError(f"kappa must be > 0, got {kappa!r}")
    u = torch.rand(n, 1, generator=generator, dtype=mu.dtype)
    w = 1 + torch.log(u + (1 - u) * math.exp(-2 * kappa)) / kappa
    e = Sphere().project(mu[None], torch.randn(n, 3, generator=generator, dtype=mu.dtype))
    e = e / e.norm(dim=1, keepdim=True)
    return w * mu[None] + (1 - w**2).clamp_min(0).sqrt() * e


def vmf_log_prob(x: Tensor, mu: Tensor, kappa: float) -> Tensor:
    """log vMF(x; mu, kappa) = log(kappa / (4 pi sinh kappa)) + kappa mu . x, written as
    log(kappa / (2 pi (1 - e^{-2 kappa}))) + kappa (mu . x - 1) (no overflow): [N]."""
    c = math.log(kappa / (TAU * (1 - math.exp(-2 * kappa))))
    return c + kappa * ((x * mu).sum(-1) - 1)


def vmf_mixture_sample(
    mus: Tensor, kappa: float, n: int, generator: torch.Generator | None = None
) -> Tensor:
    """n points of the equal-weight mixture of vMF(mu_k, kappa), mus: [K, 3]."""
    k = torch.randint(0, len(mus), (n,), generator=generator)
    x = torch.cat([vmf_sample(m, kappa, n, generator) for m in mus])  # [K n, 3]
    return x[k * n + torch.arange(n)]


def vmf_mixture_log_prob(x: Tensor, mus: Tensor, kappa: float) -> Tensor:
    """log (1/K) sum_k vMF(x; mu_k, kappa): [N]."""
    logs = torch.stack([vmf_log_prob(x, m, kappa) for m in mus], dim=1)
    return torch.logsumexp(logs, dim=1) - math.log(len(mus))


VMF_MEANS = torch.tensor(  # north pole; equator at longitudes 0 and 90 deg; (-45, -135) deg
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-0.5, -0.5, -(0.5**0.5)]]
)
VMF_KAPPA = 20.0  # concentration: about 13 degrees of spread around each mean


def sphere_target(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Notebook 13's data on S^2: the equal mixture of vMF(mu_k, 20), mu_k = VMF_MEANS."""
    return vmf_mixture_sample(VMF_MEANS, VMF_KAPPA, n, generator)


def torus_checkerboard(n: int, generator: torch.Generator | None = None) -> Tensor:
    """The course's 4 x 4 checkerboard (fmlib.data) scaled onto [-pi, pi)^2. Colours alternate
    across the glued sides too (4 is even): a checkerboard on the torus."""
    from fmlib.data import CHECKER_SCALE, sample_checkerboard

    return Torus.wrap(sample_checkerboard(n, generator) * (math.pi / (2 * CHECKER_SCALE)))


def in_torus_checkerboard(x: Tensor) -> Tensor:
    """Indicator of the dark squares: floor(2 x1 / pi) + floor(2 x2 / pi) even."""
    cells = torch.floor(2 * Torus.wrap(x) / math.pi)
    return (cells.sum(1) % 2) == 0


# --------------------------------------------------------------------------- the torus's density
def wrapped_normal_log_prob(
    x: Tensor, mean: Tensor, std: Tensor | float, images: int = 3
) -> Tensor:
    """log sum_{k in Z^2, |k_i| <= images} N(x + 2 pi k; mean, std^2 I): the density on T^2 of
    wrap(mean + std z), z ~ N(0, I), a lattice sum of Gaussians. x: [N, 2]; mean: [N, 2] or
    [2]; std: [N] or a scalar. The images left out lie more than (2 images + 1) pi - |mean|
    away from x in [-pi, pi)^2 (over 20 for images = 3 and |mean| <= 1: a relative weight
    below e^-50 when std <= 2)."""
    check_int("images", images, 0)
    r = torch.arange(-images, images + 1, dtype=x.dtype)
    shifts = TAU * torch.cartesian_prod(r, r)  # [L, 2], L = (2 images + 1)^2
    mean = torch.as_tensor(mean, dtype=x.dtype).expand_as(x)
    std = torch.as_tensor(std, dtype=x.dtype).expand(x.shape[0])[:, None]  # [N, 1]
    z = (x[:, None, :] + shifts[None] - mean[:, None, :]) / std[:, None, :]  # [N, L, 2]
    log_n = -0.5 * (z**2).sum(-1) - torch.log(TAU * std**2)  # [N, L]
    return torch.logsumexp(log_n, dim=1)
