"""How good is a trained flow? Likelihood (KL), two-sample distances, support fraction.

- `kl_to_target`: KL(q || p_theta) = E_q[log q(x) - log p_theta(x)], with log p_theta from
  the exact instantaneous change of variables (Chen et al. 2018) integrated by RK4;
  for the checkerboard log q = -H(q) on the support, so KL = E_q[-log p_theta] - H(q).
- `energy_distance` (Székely & Rizzo 2013), `sliced_wasserstein` (Rabin et al. 2011;
  Bonneel et al. 2015): sample-based, for targets without a density.
- `in_support_fraction`: share of samples on the checkerboard's squares; `quality`: both
  scores of one sample set (SW_2 with fixed projections, in-support fraction).
- `solver_error`: mean distance of a solve's samples to a reference solve of the same x0.
- `mean_se`: the mean of K values (training seeds) and its standard error.
- How straight is a flow? `straightness` / `straightness_terms` (Liu et al. 2023): the
  energy S = E int_0^1 |u_t(x_t) - (x_1 - x_0)|^2 dt spent beyond the straight line, with the
  kinetic energy K = E int_0^1 |u_t(x_t)|^2 dt from the same field values (`path_energy`);
  `chord_over_length`: a different, purely geometric measure of one polyline (no field):
  |x_K - x_0| / its length, 1 for a straight trajectory.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fmlib import data
from fmlib.checks import Field, check_even_int, check_int
from fmlib.divergence import batch_time
from fmlib.solvers import integrate, log_likelihood, standard_normal_log_prob

RULES = ("trapezoid", "simpson")


def model_log_prob(u: Field, x1: Tensor, steps: int = 100) -> Tensor:
    """log p_theta(x1) = log p_0(x_0) - int_0^1 div u_t(x_t) dt, [N] (Chen et al. 2018).

    fmlib.solvers.log_likelihood with the exact divergence and `steps` RK4 steps, from
    t = 1 back to t = 0, p_0 = N(0, I).
    """
    log_p1, _ = log_likelihood(
        u, x1, log_p0=standard_normal_log_prob, steps=steps, method="rk4", estimator="exact"
    )
    return log_p1.detach()


def kl_to_target(
    model: Field,
    name: str = "checkerboard",
    n: int = 4000,
    steps: int = 100,
    generator: torch.Generator | None = None,
) -> float:
    """KL(q || p_theta) ≈ (1/n) sum_i [log q(x_i) - log p_theta(x_i)], x_i ~ q held out.

    For the checkerboard log q(x_i) = -H(q) = -log(8 / 0.45^2), so this is exactly
    E_q[-log p_theta] - H(q). log p_theta by `model_log_prob` (exact divergence, RK4 with
    `steps` steps). Needs data.log_prob(name, .) (checkerboard, eight_gaussians).
    """
    check_int("n", n)
    check_int("steps", steps)
    x = data.sample(name, n, generator)
    log_q = data.log_prob(name, x)
    log_p = model_log_prob(model, x, steps)
    return (log_q - log_p).mean().item()


def kl_checkerboard(
    model: Field, n: int = 4000, steps: int = 100, generator: torch.Generator | None = None
) -> float:
    """KL(q || p_theta) for the checkerboard: `kl_to_target(model, "checkerboard", ...)`."""
    return kl_to_target(model, "checkerboard", n=n, steps=steps, generator=generator)


def _check_samples(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[0] < 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor of shape [N >= 2, d], got {shape}")


def energy_distance(x: Tensor, y: Tensor, unbiased: bool = True) -> float:
    """D^2(P, Q) = 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Székely & Rizzo 2013), >= 0.

    x: [n, d] ~ P, y: [m, d] ~ Q. The within-sample means skip the zero diagonal
    (U-statistics, unbiased: may be slightly negative) when `unbiased`, else average over
    all n^2 pairs (V-statistic: >= 0, exactly 0 when x = y).
    """
    _check_samples("x", x)
    _check_samples("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y must have d = {x.shape[1]} columns like x, got {y.shape[1]}")
    x, y = x.double(), y.double()
    n, m = x.shape[0], y.shape[0]
    xy = torch.cdist(x, y).mean()
    xx_sum, yy_sum = torch.cdist(x, x).sum(), torch.cdist(y, y).sum()
    if unbiased:
        xx, yy = xx_sum / (n * (n - 1)), yy_sum / (m * (m - 1))
    else:
        xx, yy = xx_sum / n**2, yy_sum / m**2
    return (2 * xy - xx - yy).item()


def chunked_energy_distances(x: Tensor, reference: Tensor, chunks: int) -> Tensor:
    """`energy_distance` of each of `chunks` equal row blocks of x [N, d] against the same block
    of `reference` [N, d]: [chunks] float64. Their mean estimates the distance at the block
    size, their spread its standard error (`mean_se`); the same reference blocks for every x
    pair the comparisons."""
    check_int("chunks", chunks, 2)
    if x.shape != reference.shape:
        raise ValueError(
            f"x and reference must have the same N and d, got {tuple(x.shape)} and "
            f"{tuple(reference.shape)}"
        )
    if x.shape[0] % chunks:
        raise ValueError(f"N = {x.shape[0]} rows must be divisible by chunks = {chunks}")
    blocks = zip(x.chunk(chunks), reference.chunk(chunks), strict=True)
    return torch.tensor([energy_distance(a, b) for a, b in blocks], dtype=torch.float64)


def sliced_wasserstein(
    x: Tensor, y: Tensor, n_projections: int = 128, generator: torch.Generator | None = None
) -> float:
    """SW_2(P, Q) = (E_theta W_2^2(theta^T P, theta^T Q))^(1/2), theta ~ U(S^{d-1}).

    Rabin et al. (2011). In 1D, W_2^2 between two n-point clouds is the mean squared
    difference of their sorted values; the expectation over directions is a Monte-Carlo
    mean over `n_projections` random unit vectors. x and y: [n, d], same n.
    """
    _check_samples("x", x)
    if not isinstance(y, Tensor) or y.shape != x.shape:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"y must have the shape of x {tuple(x.shape)}, got {shape}")
    check_int("n_projections", n_projections)
    theta = torch.randn(x.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    x_proj = (x.double() @ theta).sort(dim=0).values
    y_proj = (y.double() @ theta).sort(dim=0).values
    return ((x_proj - y_proj) ** 2).mean().sqrt().item()


def in_support_fraction(x: Tensor, name: str = "checkerboard") -> float:
    """(1/N) sum_i 1[x_i in supp q]: share of the samples on the checkerboard's squares."""
    if name != "checkerboard":
        raise ValueError(
            f"name must be 'checkerboard' (the only target with a support), got {name!r}"
        )
    return data.in_checkerboard(x).double().mean().item()


def quality(x1: Tensor, y: Tensor, seed: int = 0, n_projections: int = 64) -> dict[str, float]:
    """{"sw": SW_2(x1, y) over n_projections directions drawn from `seed` (the same
    directions for every call: comparable scores), "in_support": in_support_fraction(x1)}
    of samples x1 [n, 2] against data y [n, 2]."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "sw": sliced_wasserstein(x1, y, n_projections, generator),
        "in_support": in_support_fraction(x1),
    }


def solver_error(x1: Tensor, reference: Tensor) -> float:
    """(1/n) sum_i |x1_i - x1_i^ref|: the discretisation error of a solve, against a
    reference solve from the same x0 [n, d]."""
    return (x1 - reference).norm(dim=1).mean().item()


def mean_se(values: list[float] | Tensor) -> tuple[float, float]:
    """The mean of K values (a list or a [K] tensor) and its standard error s / sqrt(K)
    (K - 1 degrees of freedom)."""
    if len(values) < 2:
        raise ValueError(f"need at least 2 values for a standard error, got {len(values)}")
    v = torch.as_tensor(values, dtype=torch.float64)
    return v.mean().item(), (v.std() / math.sqrt(len(v))).item()


def quadrature_weights(steps: int, rule: str = "trapezoid", dtype=torch.float64) -> Tensor:
    """Weights of int_0^1 f(t) dt ~ sum_k w_k f(k / steps) on steps + 1 equispaced nodes.

    "trapezoid": (1/steps) [1/2, 1, ..., 1, 1/2], error O(steps^-2);
    "simpson" (steps even): (1/3 steps) [1, 4, 2, 4, ..., 2, 4, 1], exact for cubics,
    error O(steps^-4).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if rule == "simpson":
        check_even_int("steps", steps)
        w = torch.ones(steps + 1, dtype=dtype)
        w[1:-1:2], w[2:-1:2] = 4.0, 2.0
        return w / (3 * steps)
    check_int("steps", steps)
    w = torch.full((steps + 1,), 1.0 / steps, dtype=dtype)
    w[[0, -1]] /= 2
    return w


@torch.no_grad()
def path_energy(
    u: Field, trajectory: Tensor, times, rule: str = "trapezoid"
) -> tuple[Tensor, Tensor]:
    """Per trajectory (K_i, S_i), both [N], along the flow's own trajectory [steps + 1, N, d]:

        K_i = int_0^1 |u_t(x_t)|^2 dt,     S_i = int_0^1 |u_t(x_t) - (x_1 - x_0)|^2 dt,

    the time integrals by `rule` on the nodes `times` (steps + 1 equispaced times of [0, 1],
    a tensor or floats). S (Liu et al. 2023) is 0 exactly when the trajectory is a straight
    line run at constant speed, which one Euler step integrates exactly; since
    int u_t(x_t) dt = x_1 - x_0, S_i = K_i - |x_1 - x_0|^2 up to the quadrature error.
    Their means are the flow's kinetic energy K and straightness S; their std / sqrt(N) the
    standard errors (and two flows from the same x_0 compare by paired differences).
    """
    if trajectory.ndim != 3 or trajectory.shape[0] < 2:
        raise ValueError(
            f"trajectory must have shape [steps + 1 >= 2, N, d], got {tuple(trajectory.shape)}"
        )
    if len(times) != len(trajectory):
        raise ValueError(f"times must have {len(trajectory)} nodes, got {len(times)}")
    weights = quadrature_weights(len(trajectory) - 1, rule)
    chord = trajectory[-1] - trajectory[0]
    u_t = [u(x, batch_time(t, x)) for x, t in zip(trajectory, times, strict=True)]
    speed2 = torch.stack([(v**2).sum(1) for v in u_t])  # [steps + 1, N]
    dev = torch.stack([((v - chord) ** 2).sum(1) for v in u_t])
    return weights.to(speed2) @ speed2, weights.to(dev) @ dev


def straightness_terms(u: Field, x0: Tensor, steps: int = 64) -> tuple[Tensor, Tensor]:
    """(S_i for each particle: [N], x_1: [N, d]) along the flow from x0 (`path_energy`).

    The trajectories by RK4 with `steps` steps; the time integral by the trapezoidal rule on
    their nodes. The mean is `straightness`'s S, the std / sqrt(N) its standard error; two
    flows started from the same x0 are compared by the std of the per-particle difference (a
    paired standard error).
    """
    check_int("steps", steps)
    with torch.no_grad():
        sol = integrate(u, x0, steps=steps, method="rk4", trajectory=True)
    return path_energy(u, sol.trajectory, sol.times, "trapezoid")[1], sol.x


def straightness(u: Field, x0: Tensor, steps: int = 64) -> tuple[float, Tensor]:
    """S = E int_0^1 |u_t(x_t) - (x_1 - x_0)|^2 dt along the flow (Liu et al. 2023), and x_1.

    S = 0 exactly when every trajectory is a straight line run at constant speed. Returns
    (S, x_1: [N, d]); S is the mean of `straightness_terms`.
    """
    terms, x1 = straightness_terms(u, x0, steps)
    return float(terms.mean()), x1


def chord_over_length(trajectory: Tensor) -> Tensor:
    """Straightness of each trajectory [K+1, N, d] -> [N]: |x_K - x_0| / sum_k |x_{k+1} - x_k|.

    The chord over the length of the polygon through the solver's points: 1 for a straight
    line travelled in one direction, smaller the more the path bends (0 for a closed loop).
    A geometric measure of the drawn curve (no field, no speed): a straight line run at a
    changing speed has ratio 1 but S > 0.
    """
    if trajectory.ndim != 3 or trajectory.shape[0] < 2:
        raise ValueError(
            f"trajectory must have shape [K+1 >= 2, N, d], got {tuple(trajectory.shape)}"
        )
    length = trajectory.diff(dim=0).norm(dim=-1).sum(dim=0)
    chord = (trajectory[-1] - trajectory[0]).norm(dim=-1)
    return chord / length.clamp_min(torch.finfo(trajectory.dtype).tiny)


def frechet_distance(x: Tensor, y: Tensor) -> float:
    """FD = |m_x - m_y|^2 + tr(C_x + C_y - 2 (C_x^{1/2} C_y C_x^{1/2})^{1/2}), >= 0.

    The squared 2-Wasserstein distance between the Gaussians N(m_x, C_x) and N(m_y, C_y)
    fitted to the two samples (Dowson & Landau 1982); on the features of an Inception
    network it is the FID (Heusel et al. 2017). x: [n, k], y: [m, k] (features), float64
    inside; the covariances are the unbiased sample ones, so FD > 0 for two finite samples
    of the same law: compare with a floor computed on real data of the same sizes.
    """
    _check_samples("x", x)
    _check_samples("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y must have k = {x.shape[1]} columns like x, got {y.shape[1]}")
    x, y = x.double(), y.double()
    c_x, c_y = torch.cov(x.T).reshape(x.shape[1], -1), torch.cov(y.T).reshape(y.shape[1], -1)
    values, vectors = torch.linalg.eigh(c_x)
    root_x = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T  # C_x^{1/2}
    middle = torch.linalg.eigvalsh(root_x @ c_y @ root_x).clamp(min=0)  # symmetric PSD
    mean_term = ((x.mean(0) - y.mean(0)) ** 2).sum()
    return float(mean_term + c_x.trace() + c_y.trace() - 2 * middle.sqrt().sum())


def nearest_neighbour_distance(x: Tensor, reference: Tensor) -> Tensor:
    """d_i = min_j |x_i - r_j| (Euclidean), [N] float64: how far each x_i is from the set.

    For memorisation: generated samples that copy training points sit at distance ~0 from
    the training set, while fresh real digits (held out) sit at their typical distance.
    x: [N, d], reference: [M, d].
    """
    _check_samples("x", x)
    _check_samples("reference", reference)
    if x.shape[1] != reference.shape[1]:
        raise ValueError(f"reference must have d = {x.shape[1]} columns, got {reference.shape[1]}")
    return torch.cdist(x.double(), reference.double()).min(dim=1).values


def bits_per_dim(log_p: Tensor, dim: int, bin_width: float) -> Tensor:
    """b = -(log p(x) + d log(bin_width)) / (d log 2), [N]: code length per pixel, in bits.

    p is a density on dequantised data x in R^d (pixel k + u, u ~ U[0, 1), scaled so that one
    pixel value spans `bin_width`). Then P(k) = int_bin p >= exp(E_u log p(x)) bin_width^d
    (Jensen), so b averaged over u bounds -log2 P(k) / d from above (Theis et al. 2016).
    A uniform density over L levels gives b = log2 L. log_p: [N] in nats.
    """
    check_int("dim", dim)
    if not 0 < bin_width < math.inf:
        raise ValueError(f"bin_width must be in (0, inf), got {bin_width}")
    return -(log_p.double() + dim * math.log(bin_width)) / (dim * math.log(2))


def principal_components(reference: Tensor, k: int):
    """The fixed feature map f(x) = (x - m) V_k^T of the reference set's first k principal
    axes (m its mean, V_k the top-k right singular vectors of reference - m; Pearson 1901).
    reference: [M, d] -> f: [N, d] -> [N, k] float64. A map fitted once and then frozen, so
    that distances between feature clouds (`frechet_distance`) compare like with like."""
    _check_samples("reference", reference)
    check_int("k", k, 1, reference.shape[1])
    mean = reference.double().mean(0)
    axes = torch.linalg.svd(reference.double() - mean, full_matrices=False).Vh[:k]
    return lambda x: (x.double() - mean) @ axes.T
