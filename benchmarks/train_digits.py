"""Train notebook 14's digit flows (sklearn's 8 x 8 digits, 64 dimensions) and its ablation.

    .venv/bin/python benchmarks/train_digits.py models              # about 3 min of CPU
    .venv/bin/python benchmarks/train_digits.py ablation            # about 6 min of CPU
    .venv/bin/python benchmarks/train_digits.py likelihood          # about 1 min of CPU

`models` writes, for training seeds 0, 1, 2, fmlib/resources/digits_unconditional_seed<S>.pt
(fmlib.models.MLP trained by fmlib.training.train) and digits_conditional_seed<S>.pt (the
label-dropout fmlib.guidance.ConditionalMLP trained by guidance.train_conditional), each the
EMA weights as a float16 state dict with its config, its training arguments and its loss
curve (every LOSS_EVERY-th step). The notebook loads them (models.load_digits /
guidance.load_digits) and asserts that the stored recipe equals its own; tests/test_digits.py
asserts that it equals the constants below.

`ablation` (after `models`) writes fmlib/resources/digits_ablation.json: what had to change
from notebook 05's 2D recipe, each row trained for ABLATION_STEPS steps with seeds 0, 1, 2,
measured by the Frechet distance (fmlib.metrics.frechet_distance on the first 16 principal
components of the training digits) between 1437 samples (RK4, 32 steps) and the held-out
digits (at their pixel centres), and by its
CPU seconds per step (one thread). Every run uses one thread and a fixed number of steps,
so the files do not depend on the wall clock. It ends with the shipped models scored the
same way (`shipped` redoes only that entry; `--rows NAME` redoes or adds only that row).

`likelihood` (after `models`) writes fmlib/resources/digits_bits.json: for each seed's
unconditional model, the bits per dimension (fmlib.metrics.bits_per_dim) of each of the
first LIKELIHOOD_DIGITS held-out digits, dequantised once with
torch.Generator().manual_seed(LIKELIHOOD_NOISE_SEED), from the exact instantaneous change
of variables (fmlib.solvers.log_likelihood, RK4) at each of LIKELIHOOD_STEPS, so that the
notebook can read its convergence in steps. `--seeds` / `--steps` add entries to an existing
file; the shipped one adds seed 0 at 16 steps (`likelihood --seeds 0 --steps 16`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from fmlib import data, guidance, repro, resources
from fmlib.metrics import frechet_distance, principal_components
from fmlib.models import MLP
from fmlib.paths import OTPath
from fmlib.solvers import integrate
from fmlib.training import train

SEEDS = (0, 1, 2)
# the 64-dimensional recipe (notebook 14, section 2, asserts these equal its own)
MODEL = dict(
    dim=64, hidden=256, layers=3, time_embedding="sinusoidal", time_features=32,
    max_frequency=100.0, x_features=0,
)  # fmt: skip
TRAIN = dict(batch_size=256, lr=2e-3, warmup=0.02, ema_decay=0.999)
STEPS = 4000
SIGMA_MIN = 0.0
CONDITIONAL_MODEL = dict(
    n_classes=10, dim=64, hidden=256, layers=3, time_features=32, max_frequency=100.0,
    label_features=16,
)  # fmt: skip
P_DROP = 0.2
LOSS_EVERY = 20
ABLATION_STEPS = 1000
PCA_COMPONENTS = 16
LIKELIHOOD_STEPS = (4, 8)
LIKELIHOOD_NOISE_SEED = 0
LIKELIHOOD_DIGITS = 180  # the first 180 held-out digits (a random half: the split shuffles)
# rows: (name, MLP arguments, train arguments, sigma_min); each changes one thing from the last
RECIPE_2D = dict(hidden=128, layers=3, time_embedding="sinusoidal", x_features=64, x_scale=2.0)
ABLATION = [
    ("05's 2D recipe", RECIPE_2D, dict(batch_size=2048, lr=2e-2), 0.0),
    (
        "no Fourier features of x, batch 256",
        dict(RECIPE_2D, x_features=0),
        dict(batch_size=256, lr=2e-2),
        0.0,
    ),
    ("lr 2e-3", dict(RECIPE_2D, x_features=0), dict(batch_size=256, lr=2e-3), 0.0),
    ("width 256 (the 64D recipe)", dict(RECIPE_2D, x_features=0, hidden=256), TRAIN, 0.0),
    (
        "width 256 at lr 2e-2",
        dict(RECIPE_2D, x_features=0, hidden=256),
        dict(batch_size=256, lr=2e-2),
        0.0,
    ),
    (
        "raw t instead of sinusoidal",
        dict(RECIPE_2D, x_features=0, hidden=256, time_embedding="raw"),
        TRAIN,
        0.0,
    ),
    ("sigma_min 0.1", dict(RECIPE_2D, x_features=0, hidden=256), TRAIN, 0.1),
]


def digits_sampler(pixels: torch.Tensor, labels: torch.Tensor | None = None):
    """(n, generator) -> dequantised training digits drawn with replacement (and labels)."""

    def draw(n: int, generator: torch.Generator | None):
        i = torch.randint(len(pixels), (n,), generator=generator)
        x1 = data.dequantize(pixels[i], generator)
        return x1 if labels is None else (x1, labels[i])

    return draw


def half(model: torch.nn.Module) -> dict:
    return {
        k: v.detach().half() if v.is_floating_point() else v for k, v in model.state_dict().items()
    }


def train_unconditional(seed: int, split: dict) -> dict:
    generator = repro.seed_everything(seed, threads=1)
    model = MLP(**MODEL)  # initial weights from the seeded global generator
    result = train(
        model, digits_sampler(split["train"]), OTPath(SIGMA_MIN), steps=STEPS,
        generator=generator, progress=False, **TRAIN,
    )  # fmt: skip
    return {
        "seed": seed, "config": MODEL, "train": TRAIN, "steps": STEPS, "sigma_min": SIGMA_MIN,
        "losses": result.losses[::LOSS_EVERY], "loss_every": LOSS_EVERY,
        "state_dict": half(result.model),
    }  # fmt: skip


def train_conditional(seed: int, split: dict) -> dict:
    generator = repro.seed_everything(seed, threads=1)
    model = guidance.ConditionalMLP(**CONDITIONAL_MODEL)
    model, losses = guidance.train_conditional(
        model, digits_sampler(split["train"], split["train_labels"]), OTPath(SIGMA_MIN),
        steps=STEPS, p_drop=P_DROP, batch_size=TRAIN["batch_size"], lr=TRAIN["lr"],
        warmup=TRAIN["warmup"], ema_decay=TRAIN["ema_decay"], generator=generator,
        progress=False,
    )  # fmt: skip
    return {
        "seed": seed, "config": CONDITIONAL_MODEL, "train": TRAIN, "steps": STEPS,
        "sigma_min": SIGMA_MIN, "p_drop": P_DROP, "losses": losses[::LOSS_EVERY],
        "loss_every": LOSS_EVERY, "state_dict": half(model),
    }  # fmt: skip


def fd_of(model, split: dict, seed: int) -> float | None:
    """The ablation's score: FD between 1437 RK4-32 samples and the held-out pixel centres."""
    features = principal_components(data.pixel_centres(split["train"]), PCA_COMPONENTS)
    generator = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        x0 = torch.randn(len(split["train"]), 64, generator=generator)
        x1 = integrate(model, x0, steps=32, method="rk4").x
    if not torch.isfinite(x1).all():
        return None
    fd = frechet_distance(features(x1), features(data.pixel_centres(split["held_out"])))
    return fd if math.isfinite(fd) else None


def shipped_row(split: dict) -> dict:
    """The shipped unconditional models (STEPS steps) scored like the ablation's rows."""
    from fmlib.models import load_digits

    repro.seed_everything(0, threads=1)
    fds = [fd_of(load_digits(seed)[0], split, seed) for seed in SEEDS]
    print(f"shipped ({STEPS} steps): FD {fds}", flush=True)
    return {"name": f"the 64D recipe, {STEPS} steps (shipped)", "model": MODEL, "train": TRAIN,
            "sigma_min": SIGMA_MIN, "steps": STEPS, "frechet": fds}  # fmt: skip


def ablation(split: dict, only: list[str] | None = None) -> dict:
    features = principal_components(data.pixel_centres(split["train"]), PCA_COMPONENTS)
    held_out = features(data.pixel_centres(split["held_out"]))
    rows = []
    for name, config, kwargs, sigma_min in ABLATION:
        if only and name not in only:
            continue
        fds, seconds = [], []
        for seed in SEEDS:
            generator = repro.seed_everything(seed, threads=1)
            model = MLP(dim=64, **config)
            start = time.process_time()
            result = train(
                model, digits_sampler(split["train"]), OTPath(sigma_min), steps=ABLATION_STEPS,
                generator=generator, progress=False, **{**TRAIN, **kwargs},
            )  # fmt: skip
            seconds.append((time.process_time() - start) / ABLATION_STEPS)
            with torch.no_grad():
                x0 = torch.randn(len(split["train"]), 64, generator=generator)
                x1 = integrate(result.model, x0, steps=32, method="rk4").x
            fd = frechet_distance(features(x1), held_out) if torch.isfinite(x1).all() else None
            fds.append(None if fd is None or not math.isfinite(fd) else fd)
            print(f"{name}, seed {seed}: FD {fds[-1]}, {seconds[-1] * 1e3:.1f} ms/step", flush=True)
        rows.append(
            {
                "name": name, "model": config, "train": {**TRAIN, **kwargs},
                "sigma_min": sigma_min, "frechet": fds, "seconds_per_step": seconds,
            }
        )  # fmt: skip
    return {
        "steps": ABLATION_STEPS, "seeds": list(SEEDS), "pca_components": PCA_COMPONENTS,
        "samples": len(split["train"]), "solver": "rk4, 32 steps", "rows": rows,
        "command": "python benchmarks/train_digits.py ablation",
        "shipped": shipped_row(split),
    }  # fmt: skip


def likelihood(split: dict, seeds, steps_list, previous: dict | None = None) -> dict:
    from fmlib.metrics import bits_per_dim
    from fmlib.models import load_digits
    from fmlib.solvers import log_likelihood

    repro.seed_everything(0, threads=1)
    x = data.dequantize(split["held_out"], torch.Generator().manual_seed(LIKELIHOOD_NOISE_SEED))
    x = x[:LIKELIHOOD_DIGITS]
    bits = dict(previous["bits_per_dim"]) if previous else {}
    for seed in seeds:
        model, _ = load_digits(seed)
        for steps in steps_list:
            log_p, _ = log_likelihood(model, x, steps=steps, method="rk4")
            b = bits_per_dim(log_p, data.DIGITS_DIM, data.DIGITS_BIN)
            bits[f"seed{seed}_rk4_{steps}"] = [round(v, 6) for v in b.tolist()]
            print(f"seed {seed}, RK4 {steps} steps: {b.mean():.4f} bits/dim", flush=True)
    return {
        "noise_seed": LIKELIHOOD_NOISE_SEED,
        "digits": LIKELIHOOD_DIGITS,
        "method": "rk4", "bits_per_dim": bits,
        "command": "python benchmarks/train_digits.py likelihood",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("models", "ablation", "shipped", "likelihood"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", default=str(resources.DIRECTORY))
    parser.add_argument("--steps", type=int, nargs="+", default=list(LIKELIHOOD_STEPS))
    parser.add_argument("--rows", nargs="+", help="ablation: only these rows, into the file")
    args = parser.parse_args()
    split = data.digits_split()
    if args.what == "likelihood":
        out = Path(args.out, "digits_bits.json")  # seeds already there are kept
        previous = json.loads(out.read_text()) if out.exists() else None
        payload = likelihood(split, args.seeds, args.steps, previous)
        out.write_text(json.dumps(payload) + "\n")
        return
    if args.what == "shipped":  # (re)score the shipped models into an existing ablation file
        out = Path(args.out, "digits_ablation.json")
        payload = {**json.loads(out.read_text()), "shipped": shipped_row(split)}
        out.write_text(json.dumps(payload, indent=1) + "\n")
        return
    if args.what == "ablation" and args.rows:  # (re)compute these rows of an existing file
        out = Path(args.out, "digits_ablation.json")
        payload = json.loads(out.read_text())
        new = {row["name"]: row for row in ablation(split, args.rows)["rows"]}
        old = {row["name"]: row for row in payload["rows"]}
        payload["rows"] = [new.get(n) or old[n] for n, *_ in ABLATION if n in new or n in old]
        out.write_text(json.dumps(payload, indent=1) + "\n")
        return
    if args.what == "ablation":
        payload = ablation(split)
        Path(args.out, "digits_ablation.json").write_text(json.dumps(payload, indent=1) + "\n")
        return
    for seed in args.seeds:
        for kind, fn in (
            ("unconditional", train_unconditional),
            ("conditional", train_conditional),
        ):
            start = time.process_time()
            payload = fn(seed, split)
            path = Path(args.out) / f"digits_{kind}_seed{seed}.pt"
            torch.save(payload, path)
            print(f"{path}: {time.process_time() - start:.0f} s of CPU", flush=True)


if __name__ == "__main__":
    main()
