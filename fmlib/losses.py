"""The Flow Matching loss L_FM, the Conditional Flow Matching loss L_CFM, Bregman divergences.

    L_FM(theta)  = E_{t, X_t ~ p_t}            D(u_t(X_t),       u^theta_t(X_t))
    L_CFM(theta) = E_{t, X_1 ~ q, X_t ~ p_t(.|X_1)} D(u_t(X_t | X_1), u^theta_t(X_t))

(Lipman et al. 2023, eqs. 5 and 9; Lipman et al. 2024, Flow Matching Guide, Theorem 4).
For a Bregman divergence D_phi(a, b) = phi(a) - phi(b) - <grad phi(b), a - b> the two
losses differ by a constant independent of theta, so their gradients are equal; the squared
Euclidean distance is the Bregman divergence of phi(x) = ||x||^2.

Both losses here are Monte-Carlo estimates on the SAME draws (x0, x1, t) (common random
numbers): x0 ~ p = N(0, I), x1 ~ q, t ~ U[0, 1], x_t = psi_t(x0 | x1). Then x_t ~ p_t(.|x1)
and, marginally, x_t ~ p_t, so one batch serves both losses and their difference has a
small Monte-Carlo error. `D(a, b) -> [N]` always takes the target a first, the model's
prediction b second, row by row (a, b: [N, d]).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fmlib.checks import Field
from fmlib.marginal import marginal_velocity

Divergence = Callable[[Tensor, Tensor], Tensor]


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"a and b must both be [N, d], got {tuple(a.shape)} and {tuple(b.shape)}")


def squared_euclidean(a: Tensor, b: Tensor) -> Tensor:
    """D(a, b) = ||a - b||^2, row by row: the Bregman divergence of phi(x) = ||x||^2."""
    _check_pair(a, b)
    return ((a - b) ** 2).sum(dim=1)


def euclidean_norm(a: Tensor, b: Tensor) -> Tensor:
    """D(a, b) = ||a - b|| (not squared): a distance, but NOT a Bregman divergence.

    Its minimiser over b of E D(A, b) is the geometric median of A, not the mean, so the
    CFM / FM equivalence breaks (Lipman et al. 2024, Theorem 4: "iff Bregman").
    """
    _check_pair(a, b)
    return (a - b).norm(dim=1)


def phi_squared(x: Tensor) -> Tensor:
    """phi(x) = ||x||^2, row by row ([N, d] -> [N]); D_phi is the squared distance."""
    return (x**2).sum(dim=1)


def phi_exp(x: Tensor) -> Tensor:
    """phi(x) = sum_i exp(x_i), row by row: strictly convex, so D_phi is a Bregman divergence.

    D_phi(a, b) = sum_i [exp(a_i) - exp(b_i) - exp(b_i) (a_i - b_i)] >= 0, = 0 iff a = b.
    """
    return x.exp().sum(dim=1)


def bregman(phi: Callable[[Tensor], Tensor]) -> Divergence:
    """The Bregman divergence of a strictly convex phi: [N, d] -> [N] (Bregman 1967).

        D_phi(a, b) = phi(a) - phi(b) - <grad phi(b), a - b>

    grad phi(b) by autograd with create_graph=True, so that D_phi(a, u_theta) can itself be
    differentiated with respect to theta.
    """

    def divergence(a: Tensor, b: Tensor) -> Tensor:
        _check_pair(a, b)
        with torch.enable_grad():
            b_ = b if b.requires_grad else b.detach().requires_grad_(True)
            phi_b = phi(b_)
            (grad_b,) = torch.autograd.grad(phi_b.sum(), b_, create_graph=True)
        return phi(a) - phi_b - (grad_b * (a - b_)).sum(dim=1)

    return divergence


def _check_batch(x0: Tensor, x1: Tensor, t: Tensor) -> None:
    if x0.shape != x1.shape or x0.ndim != 2:
        raise ValueError(f"x0 and x1 must both be [N, d], got {tuple(x0.shape)}, {tuple(x1.shape)}")
    if t.shape != (len(x0),):
        raise ValueError(f"t must have shape [{len(x0)}], got {tuple(t.shape)}")
    if bool(((t < 0) | (t > 1)).any()):
        raise ValueError("t must be in [0, 1]")


def cfm_terms(
    model: Field, x0: Tensor, x1: Tensor, t: Tensor, path, D: Divergence = squared_euclidean
) -> Tensor:
    """Per-sample CFM terms D(u_t(x_t | x1), u^theta_t(x_t)), x_t = psi_t(x0 | x1): [N].

    The conditional target u_t(psi_t(x0 | x1) | x1) = d/dt psi_t(x0 | x1) = path.target
    (for the OT path x1 - (1 - sigma_min) x0; Lipman et al. 2023, eq. 23).
    """
    _check_batch(x0, x1, t)
    x_t = path.sample(x0, x1, t)
    return D(path.target(x0, x1, t), model(x_t, t))


def fm_terms(
    model: Field, x0: Tensor, x1: Tensor, t: Tensor, path, target, D: Divergence = squared_euclidean
) -> Tensor:
    """Per-sample FM terms D(u_t(x_t), u^theta_t(x_t)) with the exact marginal field: [N].

    u_t(x) = E[u_t(x | X1) | X_t = x] from fmlib.marginal.marginal_velocity (closed form for
    a Gaussian-mixture / point-set target q). x_t = psi_t(x0 | x1) with x1 ~ q is a sample
    of the marginal p_t, which is all L_FM needs.
    """
    _check_batch(x0, x1, t)
    x_t = path.sample(x0, x1, t)
    with torch.no_grad():
        u_marginal = marginal_velocity(path, target, x_t, t)
    return D(u_marginal, model(x_t, t))


def l_cfm(model: Field, x0: Tensor, x1: Tensor, t: Tensor, path, D: Divergence = squared_euclidean):
    """L_CFM(theta) ~ (1/N) sum_n D(u_t(x_t | x1), u^theta_t(x_t)) (Monte Carlo, scalar).

    With the default D this is the course's training loss (Lipman et al. 2023, eq. 14),
    (1/N) sum_n ||u^theta_t(x_t^n) - d/dt psi_t(x0^n | x1^n)||^2, x_t = psi_t(x0 | x1):
    the loss `fmlib.training.train`, `couplings.fit` and notebook 05's loop minimise.
    """
    return cfm_terms(model, x0, x1, t, path, D).mean()


def l_fm(
    model: Field, x0: Tensor, x1: Tensor, t: Tensor, path, target, D: Divergence = squared_euclidean
) -> Tensor:
    """L_FM(theta) ~ (1/N) sum_n D(u_t(x_t), u^theta_t(x_t)) (Monte Carlo, scalar)."""
    return fm_terms(model, x0, x1, t, path, target, D).mean()


def conditional_gap(
    x0: Tensor, x1: Tensor, t: Tensor, path, target, D: Divergence = squared_euclidean
) -> Tensor:
    """Per-sample D(u_t(x_t | x1), u_t(x_t)): its mean is the constant L_CFM - L_FM: [N].

    For a Bregman D, E_{X1 | x_t}[D(u(.|X1), v)] = D(u(x_t), v) + E[D(u(.|X1), u(x_t))]
    for every prediction v, because E[u_t(x_t | X1) | x_t] = u_t(x_t). So
    L_CFM = L_FM + E D(u_t(X_t | X_1), u_t(X_t)): the irreducible floor of L_CFM (for the
    squared distance, E ||u_t(X_t | X_1) - u_t(X_t)||^2, the conditional variance).
    """
    _check_batch(x0, x1, t)
    x_t = path.sample(x0, x1, t)
    with torch.no_grad():
        return D(path.target(x0, x1, t), marginal_velocity(path, target, x_t, t))


def flat_grad(loss: Tensor, params) -> Tensor:
    """d loss / d theta flattened into one vector (all parameters concatenated)."""
    params = list(params)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    flat = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]
    return torch.cat([g.reshape(-1) for g in flat])


def cosine_similarity(a: Tensor, b: Tensor) -> float:
    """<a, b> / (||a|| ||b||) for two flat vectors."""
    return float((a @ b) / (a.norm() * b.norm()))


def relative_error(a: Tensor, b: Tensor) -> float:
    """||a - b|| / ||b||."""
    return float((a - b).norm() / b.norm())
