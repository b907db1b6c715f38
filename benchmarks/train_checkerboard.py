"""Train the CPU recipe on the checkerboard for a wall-clock budget, then measure its KL.

    .venv/bin/python benchmarks/train_checkerboard.py --seconds 60 \
        --save fmlib/resources/checkerboard_model.pt
    # notebook 06's checkpoints, one per sigma_min, a fixed step budget (deterministic):
    .venv/bin/python benchmarks/train_checkerboard.py --steps 6000 --sigma-min 0.1 \
        --save fmlib/resources/checkerboard_sigma_min_0.10.pt
    # notebook 06's seed replicates (3 seeds per sigma_min, a shorter budget; no evaluation):
    .venv/bin/python benchmarks/train_checkerboard.py --steps 1000 --sigma-min 0.1 --seed 1 \
        --threads 1 --no-eval --save fmlib/resources/checkerboard_sigma_min_0.10_1000steps_seed1.pt

KL = E_q[-log p_theta(x)] - H(q) on held-out samples, with log p_theta from the exact
divergence and RK4 (fmlib.metrics.kl_checkerboard); it is also evaluated
on `--check-n` samples with `--eval-steps` and twice as many RK4 steps, to show that the
integration error is negligible.
"""

from __future__ import annotations

import argparse
import time

import torch

from fmlib import data, metrics, models
from fmlib.repro import seed_everything
from fmlib.training import Recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training wall-clock budget")
    parser.add_argument("--steps", type=int, default=None, help="fixed step budget instead")
    parser.add_argument("--save", default=None, help="where to write the trained (EMA) model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sigma-min", type=float, default=0.0, help="the OT path's sigma_min, in [0, 1)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-n", type=int, default=4000, help="held-out samples for the KL")
    parser.add_argument("--check-n", type=int, default=1000, help="samples for the RK4 check")
    parser.add_argument("--eval-steps", type=int, default=100, help="RK4 steps for the KL")
    parser.add_argument(
        "--no-eval", action="store_true", help="train and save only (no KL, no sample check)"
    )
    args = parser.parse_args()

    generator = seed_everything(args.seed, threads=args.threads)
    if not 0.0 <= args.sigma_min < 1.0:
        parser.error(f"--sigma-min must be in [0, 1), got {args.sigma_min}")
    recipe = Recipe(sigma_min=args.sigma_min)
    sample_x1 = lambda n, g: data.sample("checkerboard", n, g)
    seconds = None if args.steps else args.seconds
    result = recipe.fit(sample_x1, seconds=seconds, steps=args.steps, generator=generator)
    print(f"recipe: {recipe}")
    print(
        f"trained {result.steps} steps in {result.seconds:.1f} s "
        f"({1000 * result.seconds_per_step:.1f} ms/step, {torch.get_num_threads()} threads); "
        f"last-100 mean loss {sum(result.losses[-100:]) / len(result.losses[-100:]):.3f}"
    )
    if args.save:
        models.save(result.model, args.save)
        print(f"saved the EMA model to {args.save}")
    if args.no_eval:
        return

    model = result.model.eval()
    start = time.perf_counter()
    eval_gen = torch.Generator().manual_seed(10_000 + args.seed)  # held out: its own seed
    kl = metrics.kl_checkerboard(model, n=args.eval_n, steps=args.eval_steps, generator=eval_gen)
    print(
        f"KL(q || p_theta) = {kl:.4f} nats  [n={args.eval_n} held-out samples, RK4 "
        f"{args.eval_steps} steps, exact divergence, {time.perf_counter() - start:.0f} s]"
    )
    for steps in (args.eval_steps, 2 * args.eval_steps):  # is the integration converged?
        check_gen = torch.Generator().manual_seed(30_000 + args.seed)
        kl = metrics.kl_checkerboard(model, n=args.check_n, steps=steps, generator=check_gen)
        print(f"  convergence check: n={args.check_n}, RK4 {steps} steps: KL = {kl:.4f}")
    x = model_samples(model, 5000)
    print(f"in-support fraction of 5000 samples: {metrics.in_support_fraction(x):.3f}")


@torch.no_grad()
def model_samples(model: torch.nn.Module, n: int) -> torch.Tensor:
    """x1 = psi_1(x0), x0 ~ N(0, I), by fmlib.solvers.integrate (RK4, 100 steps)."""
    from fmlib.solvers import integrate

    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(20_000))
    return integrate(model, x0, 0.0, 1.0, steps=100, method="rk4").x


if __name__ == "__main__":
    main()
