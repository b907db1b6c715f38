"""Exact log-likelihood of a CNF: fmlib.solvers.log_likelihood against the plain approach.

Model: a 4 x 512 SiLU MLP on (x, t), random init (seed 0); 10k 2D points; 100 midpoint
steps from t = 1 to t = 0 for both.

- plain: the usual FFJORD-style augmented dynamics inside torchdiffeq.odeint
  (method="midpoint", step_size=0.01): at every evaluation, a per-dimension loop of
  torch.autograd.grad(..., create_graph=True) builds the divergence. Run under
  torch.no_grad() outside (as at evaluation time), so the graph of one evaluation is freed
  before the next; without it the graph of all 200 evaluations would be kept (tens of GB).
- fmlib: log_likelihood(..., method="midpoint"): each evaluation differentiates a detached
  copy of x, d backward passes without create_graph, nothing kept between steps.

It also prints the matmul floor: per midpoint step any exact method needs 12 products of an
[n, 512] block with a 512 x 512 weight (a forward pass at each stage: 2 x 3; the 2D trace
at the second stage: each of the 3 hidden weights acting on 2 tangent directions, whether
forward-mode, reverse-mode or meeting in the middle), so 12 x steps x (the best time of
one such product) bounds fmlib's time from below, and plain / floor bounds the speed-up.

Usage: .venv/bin/python benchmarks/likelihood.py [--n 10000] [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import torch
import torchdiffeq
from torch import Tensor, nn

from fmlib.solvers import log_likelihood, standard_normal_log_prob


class MLP(nn.Module):
    """u_theta(x, t) = MLP([x, t]): `depth` hidden layers of `width` with SiLU."""

    def __init__(self, d: int = 2, width: int = 512, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(d + 1, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        layers.append(nn.Linear(width, d))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


class PlainDynamics(nn.Module):
    """FFJORD-style d/dt (x, log p) = (u_t(x), -div u_t(x)), brute-force divergence."""

    def __init__(self, u: nn.Module) -> None:
        super().__init__()
        self.u = u

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x, _ = state
        with torch.set_grad_enabled(True):
            x.requires_grad_(True)
            dx = self.u(x, t.expand(x.shape[0]))
            div = torch.zeros_like(dx[:, 0])
            for i in range(x.shape[1]):
                div = div + torch.autograd.grad(dx[:, i].sum(), x, create_graph=True)[0][:, i]
        return dx, -div


def plain_log_likelihood(u: nn.Module, x1: Tensor, steps: int) -> Tensor:
    times = torch.tensor([1.0, 0.0])
    state = (x1.clone(), torch.zeros(x1.shape[0]))
    with torch.no_grad():
        xs, ls = torchdiffeq.odeint(
            PlainDynamics(u), state, times, method="midpoint", options={"step_size": 1 / steps}
        )
    return standard_normal_log_prob(xs[-1]) - ls[-1]


def product_seconds(n: int, width: int = 512, repeats: int = 20) -> float:
    """Best time of one [n, width] x [width, width] product, over the layouts torch offers."""
    x, w = torch.randn(n, width), torch.randn(width, width)
    products = (lambda: x @ w, lambda: x @ w.T, lambda: torch.nn.functional.linear(x, w))
    best = float("inf")
    for product in products:
        product()  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            product()
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of points")
    parser.add_argument("--steps", type=int, default=100, help="midpoint steps")
    args = parser.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(0)
    u = MLP()
    x1 = torch.randn(args.n, 2)

    start = time.perf_counter()
    log_p_fmlib, _ = log_likelihood(u, x1, steps=args.steps, method="midpoint")
    t_fmlib = time.perf_counter() - start

    start = time.perf_counter()
    log_p_plain = plain_log_likelihood(u, x1, args.steps)
    t_plain = time.perf_counter() - start

    floor = 12 * args.steps * product_seconds(args.n)
    diff = (log_p_fmlib - log_p_plain).abs().max().item()
    print(f"n = {args.n}, {args.steps} midpoint steps, 4 x 512 SiLU MLP, 2 threads")
    print(f"plain (create_graph loop in torchdiffeq): {t_plain:8.2f} s")
    print(f"fmlib.solvers.log_likelihood            : {t_fmlib:8.2f} s")
    print(f"speed-up: {t_plain / t_fmlib:.2f}x; max |log p difference| = {diff:.2e}")
    print(
        f"matmul floor of any exact method (12 products per step): {floor:.2f} s, "
        f"so at most {t_plain / floor:.2f}x"
    )
    if diff >= 1e-4:
        raise SystemExit(f"log-likelihoods disagree: {diff:.2e} >= 1e-4")


if __name__ == "__main__":
    main()
