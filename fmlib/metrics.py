"""How good is a trained flow? Likelihood (KL), two-sample distances, support fraction.

- `kl_to_target`: KL(q || p_theta) = E_q[log q(x) - log p_theta(x)], with log p_theta from
  the exact instantaneous change of variables (Chen et al. 2018) integrated by RK4;
  for the checkerboard log q = -H(q) on the support, so KL = E_q[-log p_theta] - H(q).
- `energy_distance` (Székely & Rizzo 2013), `sliced_wasserstein` (Rabin et al. 2011;
  Bonneel et al. 2015): sample-based, for targets without a density.
- `in_support_fraction`: share of samples on the checkerboard's squares.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fmlib import data
from fmlib.solvers import log_likelihood, standard_normal_log_prob

Field = Callable[[Tensor, Tensor], Tensor]


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
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
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
    if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections < 1:
        raise ValueError(f"n_projections must be an integer >= 1, got {n_projections!r}")
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
