"""Jacobians and divergences of a field u_t(x): exact, and Hutchinson's estimator.

A *field* is any callable ``u(x: [N, d], t: [N]) -> [N, d]`` (a trained model has exactly
this signature). Samples are independent: row n of ``u(x, t)`` depends only on row n of x,
so one backward pass with the cotangent e_i on every row gives the i-th row of all N
Jacobians at once. The divergence is the trace of the Jacobian,

    div u_t(x) = tr(∂u_t/∂x) = sum_i ∂u_t,i / ∂x_i,

the term that changes the log-density along a flow (Chen et al. 2018, the instantaneous
change of variables; Lipman et al. 2023, eq. 29).
"""

from __future__ import annotations

import torch
from torch import Tensor

from fmlib.checks import Field

PROBES = ("rademacher", "gaussian")


def batch_time(t: Tensor | float, x: Tensor) -> Tensor:
    """Broadcast t (Python float, 0-d, [1] or [N] tensor) to a [N] tensor like x."""
    n = x.shape[0]
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0 or t.shape == (1,):
        return t.reshape(()).expand(n)
    if t.shape != (n,):
        raise ValueError(f"t must be a scalar or have shape [{n}], got {list(t.shape)}")
    return t


def check_points(x: Tensor, name: str = "x") -> None:
    """Raise ValueError unless x is a tensor of shape [N, d] with d >= 1."""
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] < 1:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor of shape [N, d] with d >= 1, got {shape}")


def _leaf(x: Tensor, create_graph: bool) -> Tensor:
    """The variable to differentiate with respect to.

    Without create_graph we cut x from any upstream graph (nothing is kept). With
    create_graph we keep x's own graph when it has one, so the result stays differentiable.
    """
    if create_graph and x.requires_grad:
        return x
    return x.detach().requires_grad_(True)


def _evaluate(u: Field, x: Tensor, t: Tensor | float) -> Tensor:
    u_x = u(x, batch_time(t, x))
    if u_x.shape != x.shape:
        raise ValueError(f"u(x, t) must have the shape of x {list(x.shape)}, got {list(u_x.shape)}")
    return u_x


def value_and_divergence(
    u: Field, x: Tensor, t: Tensor | float, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """(u_t(x), div u_t(x)) with one forward pass and d backward passes.

    div u_t(x) = sum_i e_i^T (∂u_t/∂x) e_i: the backward pass with cotangent e_i on every
    row gives row i of each sample's Jacobian, of which we keep the diagonal entry.
    Without create_graph both results are detached and the graph is freed at once.
    """
    check_points(x)
    d = x.shape[1]
    with torch.enable_grad():
        x = _leaf(x, create_graph)
        u_x = _evaluate(u, x, t)
        div = torch.zeros_like(u_x[:, 0])
        for i in range(d):
            keep = create_graph or i < d - 1
            (row_i,) = torch.autograd.grad(
                u_x[:, i].sum(), x, retain_graph=keep, create_graph=create_graph
            )
            div = div + row_i[:, i]
    if not create_graph:
        return u_x.detach(), div.detach()
    return u_x, div


def divergence(u: Field, x: Tensor, t: Tensor | float, create_graph: bool = False) -> Tensor:
    """Exact divergence div u_t(x) = tr(∂u_t/∂x) = sum_i ∂u_t,i/∂x_i, shape [N].

    Cost: one forward and d backward passes (cheap for the course's d = 2).
    x: [N, d]; t: [N] or scalar. create_graph=True keeps the result differentiable.
    """
    return value_and_divergence(u, x, t, create_graph)[1]


def jacobian(u: Field, x: Tensor, t: Tensor | float, create_graph: bool = False) -> Tensor:
    """Per-sample Jacobian J[n, i, j] = ∂u_t,i(x_n) / ∂x_n,j, shape [N, d, d].

    Row i of every sample's Jacobian comes from one backward pass with cotangent e_i
    (the samples of a batch are independent). Works when x does not require grad.
    """
    check_points(x)
    d = x.shape[1]
    with torch.enable_grad():
        x_leaf = _leaf(x, create_graph)
        u_x = _evaluate(u, x_leaf, t)
        rows = [
            torch.autograd.grad(
                u_x[:, i].sum(),
                x_leaf,
                retain_graph=create_graph or i < d - 1,
                create_graph=create_graph,
            )[0]
            for i in range(d)
        ]
    J = torch.stack(rows, dim=1)
    return J if create_graph else J.detach()


def draw_probes(
    shape: tuple[int, ...],
    probe: str = "rademacher",
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Probe vectors eps with E[eps] = 0 and E[eps eps^T] = I: Rademacher (±1) or N(0, I)."""
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    gen_device = generator.device if generator is not None else "cpu"
    if probe == "rademacher":
        eps = torch.randint(0, 2, shape, generator=generator, device=gen_device) * 2 - 1
    else:
        eps = torch.randn(shape, generator=generator, device=gen_device)
    return eps.to(dtype=dtype, device=device)


def value_and_hutchinson(
    u: Field, x: Tensor, t: Tensor | float, eps: Tensor
) -> tuple[Tensor, Tensor]:
    """(u_t(x), mean_k eps_k^T (∂u_t/∂x) eps_k) for given probes eps: [K, N, d].

    One forward pass and K backward passes (vector-Jacobian products eps_k^T J).
    """
    check_points(x)
    if eps.dim() != 3 or eps.shape[1:] != x.shape:
        raise ValueError(
            f"eps must have shape [K, {x.shape[0]}, {x.shape[1]}], got {list(eps.shape)}"
        )
    k = eps.shape[0]
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        u_x = _evaluate(u, x, t)
        estimate = torch.zeros_like(u_x[:, 0])
        for j in range(k):
            (eps_J,) = torch.autograd.grad(u_x, x, grad_outputs=eps[j], retain_graph=j < k - 1)
            estimate = estimate + (eps_J * eps[j]).sum(dim=1)
    return u_x.detach(), (estimate / k).detach()


def hutchinson(
    u: Field,
    x: Tensor,
    t: Tensor | float,
    n_probes: int = 1,
    probe: str = "rademacher",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Hutchinson's unbiased trace estimate (Hutchinson 1989; used by FFJORD, 2019):

        div u_t(x) ≈ (1/K) sum_k eps_k^T (∂u_t/∂x) eps_k,  E[eps eps^T] = I,

    with K = n_probes probes per sample, Rademacher (±1 entries) or standard Gaussian.
    Cost: one forward and K backward passes, whatever d is. Shape [N].
    """
    if n_probes < 1:
        raise ValueError(f"n_probes must be in [1, inf), got {n_probes}")
    check_points(x)
    eps = draw_probes((n_probes, *x.shape), probe, generator, x.dtype, x.device)
    return value_and_hutchinson(u, x, t, eps)[1]
