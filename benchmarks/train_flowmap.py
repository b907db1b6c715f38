"""Train the average-velocity (MeanFlow) models shipped for notebook 11, section 1.

One model per training seed in fmlib.flow_maps.FLOWMAP_SEEDS: u_theta(x, r, t) of
fmlib.flow_maps.AverageVelocityMLP, distilled with the MeanFlow loss from the exact marginal
field of the eight Gaussians (fmlib.marginal.MixtureMarginal, OT path, sigma_min = 0).
Writes fmlib/resources/flowmap_eight_gaussians_seed{seed}.pt (float32, ~150 kB each).

    .venv/bin/python benchmarks/train_flowmap.py [--steps 12000] [--seeds 0 1 2]

On one CPU thread each seed took 6 to 15 minutes on our shared, loaded machine (the script
prints the time; the checkpoint records it).
"""

from __future__ import annotations

import argparse
import time

from fmlib import data, flow_maps, marginal, paths, repro

STEPS, BATCH, LR, EQUAL_FRACTION = 12000, 512, 1e-3, 0.25


def teacher_velocity():
    teacher = marginal.MixtureMarginal(paths.OTPath(0.0), data.eight_gaussians_mixture())
    return lambda x, t: teacher.velocity(x.double(), t.double()).float()


def train_one(seed: int, steps: int) -> tuple[flow_maps.AverageVelocityMLP, dict]:
    generator = repro.seed_everything(seed, threads=1)
    model = flow_maps.AverageVelocityMLP()
    start = time.perf_counter()
    losses = flow_maps.train_meanflow(
        model,
        teacher_velocity(),
        data.sample_eight_gaussians,
        steps,
        generator,
        batch=BATCH,
        lr=LR,
        equal_fraction=EQUAL_FRACTION,
    )
    seconds = time.perf_counter() - start
    tail = sum(losses[-200:]) / 200
    meta = {
        "seed": seed,
        "steps": steps,
        "batch": BATCH,
        "lr": LR,
        "seconds": seconds,
        "equal_fraction": EQUAL_FRACTION,
        "final_loss": tail,
    }
    return model.eval(), meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(flow_maps.FLOWMAP_SEEDS))
    args = parser.parse_args()
    for seed in args.seeds:
        model, meta = train_one(seed, args.steps)
        path = flow_maps.flowmap_checkpoint(seed)
        flow_maps.save_model(model, path, meta)
        print(
            f"seed {seed}: {args.steps} steps in {meta['seconds']:.0f} s, "
            f"final loss {meta['final_loss']:.4f} -> {path.name}",
            flush=True,
        )


if __name__ == "__main__":
    main()
