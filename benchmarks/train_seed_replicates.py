"""Train the extra training seeds of notebooks 08 and 09 (the notebooks train seed 0 live).

A comparison of trained models rests on >= 3 training seeds. Training all of them live would
not fit a notebook's two-minute budget, so each notebook trains seed 0 itself and loads seeds 1
and 2 from fmlib/resources/, written by this script with the notebook's own recipe (same
network, same steps, same loop; only the seed differs: initial weights and every random draw):

    .venv/bin/python benchmarks/train_seed_replicates.py couplings --seeds 1 2
    .venv/bin/python benchmarks/train_seed_replicates.py guidance --seeds 1 2
    .venv/bin/python benchmarks/train_seed_replicates.py manifolds --seeds 1 2

`couplings` (notebook 08, about 20 s of CPU per seed) writes
fmlib/resources/couplings_seed<S>.pt: the sigma_min = 0 models that the notebook compares
(independent, minibatch OT with b = 4, 8, 64, reflow of that seed's independent flow, and
eight Gaussians -> moons, independent and OT b = 64), each with the mean training loss of its
last 100 steps. `guidance` (notebook 09, about 12 s of CPU per seed) writes
fmlib/resources/guidance_seed<S>.pt: the label-dropout ConditionalMLP (EMA weights) and its
mean loss over the first and last 200 steps. Both use one thread and a fixed number of steps,
so the files do not depend on the wall clock. The notebooks load them with
`couplings.load_seed_replicate` / `guidance.load_seed_replicate` and check that the stored
recipe (config, steps) equals theirs. `manifolds` (notebook 13, about 25 s of CPU per seed) writes
fmlib/resources/manifolds_seed<S>.pt: the sphere's models trained with the three targets of
`fmlib.manifolds.TARGETS` and the torus model (`manifolds.fit`, EMA weights), loaded with
`manifolds.load_seed_replicate`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from fmlib import couplings, data, guidance, manifolds, repro, resources
from fmlib.models import MLP
from fmlib.paths import OTPath
from fmlib.solvers import integrate

# notebook 08, section 4 (the notebook asserts that these equal its own)
COUPLING_MODEL = dict(
    hidden=64, layers=3, time_features=16, max_frequency=30.0, x_features=32, x_scale=1.0
)
COUPLING_STEPS = 1000
REFLOW_POOL, REFLOW_RK4_STEPS = 8192, 16
# notebook 09, section 2
GUIDANCE_STEPS, GUIDANCE_P_DROP = 4000, 0.2


def source(n: int, g: torch.Generator) -> torch.Tensor:  # p = N(0, I)
    return torch.randn(n, 2, generator=g)


def eight_gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    return data.sample("eight_gaussians", n, g)


def moons(n: int, g: torch.Generator) -> torch.Tensor:
    return data.sample("moons", n, g)


def train_couplings(seed: int) -> dict:
    generator = repro.seed_everything(seed, threads=1)

    def train_on(sample_pairs):
        field = MLP(**COUPLING_MODEL)  # initial weights from the seeded global generator
        return couplings.fit(
            field,
            sample_pairs,
            OTPath(0.0),
            steps=COUPLING_STEPS,
            generator=generator,
            progress=False,
        )

    models = {"independent": train_on(couplings.coupled_sampler(source, eight_gaussians))}
    for b in (4, 8, 64):
        models[f"OT b={b}"] = train_on(
            couplings.coupled_sampler(source, eight_gaussians, "minibatch OT", ot_batch=b)
        )
    x0_pool = source(REFLOW_POOL, generator)
    with torch.no_grad():
        x1_pool = integrate(models["independent"], x0_pool, steps=REFLOW_RK4_STEPS, method="rk4").x
    models["reflow"] = train_on(couplings.pair_sampler(x0_pool, x1_pool))
    models["moons independent"] = train_on(couplings.coupled_sampler(eight_gaussians, moons))
    models["moons OT b=64"] = train_on(
        couplings.coupled_sampler(eight_gaussians, moons, "minibatch OT", ot_batch=64)
    )
    return {
        "seed": seed,
        "config": COUPLING_MODEL,
        "steps": COUPLING_STEPS,
        "state_dicts": {k: m.state_dict() for k, m in models.items()},
        "final_loss": {k: sum(m.losses[-100:]) / 100 for k, m in models.items()},
    }


def train_guidance(seed: int) -> dict:
    generator = repro.seed_everything(seed, threads=1)
    model = guidance.ConditionalMLP(n_classes=3)  # initial weights from the seeded generator
    model, losses = guidance.train_conditional(
        model,
        guidance.labelled_mixture(dtype=torch.float32),
        OTPath(sigma_min=0.0),
        steps=GUIDANCE_STEPS,
        p_drop=GUIDANCE_P_DROP,
        generator=generator,
        progress=False,
    )
    return {
        "seed": seed,
        "steps": GUIDANCE_STEPS,
        "p_drop": GUIDANCE_P_DROP,
        "state_dict": model.state_dict(),
        "loss_first_200": sum(losses[:200]) / 200,
        "loss_last_200": sum(losses[-200:]) / 200,
    }


def train_manifolds(seed: int) -> dict:
    repro.seed_everything(seed, threads=1)  # manifolds.fit seeds its weights and draws itself
    S, T = manifolds.Sphere(), manifolds.Torus()
    models, losses = {}, {}
    for target in manifolds.TARGETS:
        key = f"sphere {target}"
        models[key], losses[key] = manifolds.fit(
            S, manifolds.sphere_target, target, seed=seed, progress=False
        )
    key = "torus geodesic"
    models[key], losses[key] = manifolds.fit(
        T, manifolds.torus_checkerboard, seed=seed, progress=False
    )
    return {
        "seed": seed,
        "config": manifolds.NET,
        "steps": manifolds.STEPS,
        "state_dicts": {k: m.state_dict() for k, m in models.items()},
        "final_loss": {k: sum(v[-100:]) / 100 for k, v in losses.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", choices=("couplings", "guidance", "manifolds"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--out", default=str(resources.DIRECTORY), help="folder for <notebook>_seed<S>.pt"
    )
    args = parser.parse_args()
    train = {
        "couplings": train_couplings,
        "guidance": train_guidance,
        "manifolds": train_manifolds,
    }[args.notebook]
    for seed in args.seeds:
        start = time.process_time()
        payload = train(seed)
        path = Path(args.out) / f"{args.notebook}_seed{seed}.pt"
        torch.save(payload, path)
        print(f"{path}: seed {seed}, {time.process_time() - start:.0f} s of CPU")


if __name__ == "__main__":
    main()
