"""Ablation of the CPU recipe on the checkerboard: add its ingredients one at a time, and
leave each one out of the full recipe.

    .venv/bin/python benchmarks/ablation_checkerboard.py --steps 6000 --seeds 0 1 2
    .venv/bin/python benchmarks/ablation_checkerboard.py --steps 6000 --rows 5 6  # some rows
    .venv/bin/python benchmarks/ablation_checkerboard.py --table --steps 6000  # markdown

Each row trains a fresh MLP for the same number of steps with `fmlib.training.train` (the
loop that notebook 05 writes out) and adds ONE ingredient to the row above it, in the order
notebook 05 introduces them; the row after the recipe changes the law of t of the full
recipe. Then each leave-one-out row takes ONE ingredient out of the full recipe, and the last
row trains the recipe for 1/8 of the steps (as many examples as the batch-256 row
"+ EMA 0.999", the recipe without its batch of 2048, sees in all the steps).
The notebook compares rows by the mean KL over the training seeds and its standard error.
KL(q || p_theta) = E_q[-log p_theta] - H(q) on 4000 held-out samples (their own seed),
with the exact log-likelihood (RK4, 20 steps, as in the notebook), and the standard error
of that mean. One thread per run, so a run gives the same bits whatever the thread settings.
Results go to fmlib/resources/ablation_checkerboard.json (shipped with fmlib, read by
notebook 05 through fmlib.resources); rows already
there (same name, seed and steps) are skipped unless --force.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import tempfile
import time
from pathlib import Path

import torch

from fmlib import data, metrics, resources
from fmlib.models import MLP
from fmlib.paths import OTPath
from fmlib.solvers import integrate
from fmlib.training import train

OUT = resources.DIRECTORY / "ablation_checkerboard.json"
LOCK = Path(tempfile.gettempdir()) / "fmlib_ablation_checkerboard.lock"
EVAL_N, EVAL_STEPS, EVAL_SEED = 4000, 20, 10_000

# Plain loop of notebook 05's section 1: raw t, no features, Adam at a constant 2e-3,
# batch 256, no EMA, t ~ U[0, 1].
PLAIN = {
    "time_embedding": "raw",
    "x_features": 0,
    "lr": 2e-3,
    "schedule": "constant",
    "warmup": 0.0,
    "ema_decay": 0.0,
    "batch_size": 256,
    "time_sampling": "uniform",
}
# (row name, what it changes): each row = the row above + this change.
STEPS_OF_RECIPE = [
    ("plain loop", {}),
    ("+ time embedding", {"time_embedding": "sinusoidal"}),
    ("+ Fourier features of x", {"x_features": 64}),
    ("+ AdamW 2e-2, warm-up, cosine", {"lr": 2e-2, "schedule": "cosine", "warmup": 0.02}),
    ("+ EMA 0.999", {"ema_decay": 0.999}),
    ("+ batch 2048 (the recipe)", {"batch_size": 2048}),
    ("recipe, logit-normal t", {"time_sampling": "logit_normal"}),
]
# Leave-one-out: the full recipe with ONE ingredient taken back to the plain loop's choice.
# (The recipe without its batch of 2048 is the row "+ EMA 0.999" above.) The last row is
# example-matched to that one: batch 2048 for 1/8 of the steps sees the same number of
# examples (6000 x 256 = 750 x 2048), so it asks "few clean steps or many noisy ones?"
# at equal examples seen rather than at equal steps.
LEAVE_ONE_OUT = [
    ("recipe - time embedding", {"time_embedding": "raw"}),
    ("recipe - Fourier features", {"x_features": 0}),
    ("recipe - AdamW schedule", {"lr": 2e-3, "schedule": "constant", "warmup": 0.0}),
    ("recipe - EMA", {"ema_decay": 0.0}),
    ("recipe, 1/8 of the steps", {"steps_fraction": 0.125}),
]
ROW_NAMES = [name for name, _ in STEPS_OF_RECIPE + LEAVE_ONE_OUT]


def configs() -> list[tuple[str, dict]]:
    """The cumulative configurations, then the leave-one-out ones, in the table's order."""
    rows, config = [], dict(PLAIN)
    for name, change in STEPS_OF_RECIPE:
        if name.startswith("recipe,"):  # a variant of the recipe, not a new ingredient
            rows.append((name, {**config, **change}))
        else:
            config = {**config, **change}
            rows.append((name, dict(config)))
    rows += [(name, {**config, **change}) for name, change in LEAVE_ONE_OUT]
    return rows


def make_model(config: dict, seed: int) -> MLP:
    """The recipe's 3 x 128 MLP with this row's inputs; initial weights from `seed`."""
    torch.manual_seed(seed)
    return MLP(
        dim=2,
        hidden=128,
        layers=3,
        time_embedding=config["time_embedding"],
        time_features=32,
        max_frequency=100.0,
        x_features=config["x_features"],
        x_scale=2.0,
    )


def run(name: str, config: dict, seed: int, steps: int) -> dict:
    model = make_model(config, seed)
    generator = torch.Generator().manual_seed(seed)
    keys = ("batch_size", "lr", "warmup", "ema_decay", "time_sampling", "schedule")
    start = time.process_time()
    result = train(
        model,
        lambda n, g: data.sample("checkerboard", n, g),
        OTPath(0.0),
        steps=round(steps * config.get("steps_fraction", 1.0)),
        generator=generator,
        progress=False,
        **{k: config[k] for k in keys},
    )
    cpu = time.process_time() - start
    field = result.model.eval()
    x = data.sample("checkerboard", EVAL_N, torch.Generator().manual_seed(EVAL_SEED))
    log_p = metrics.model_log_prob(field, x, steps=EVAL_STEPS)
    nll = -log_p.double()
    kl = nll.mean().item() - data.checkerboard_entropy()
    se = nll.std().item() / math.sqrt(EVAL_N)
    with torch.no_grad():
        x0 = torch.randn(EVAL_N, 2, generator=torch.Generator().manual_seed(EVAL_SEED + 1))
        samples = integrate(field, x0, steps=50, method="midpoint").x
    return {
        "name": name,
        "seed": seed,
        "steps": steps,
        "config": config,
        "kl": kl,
        "se": se,
        "on_support": metrics.in_support_fraction(samples),
        "train_cpu_s": cpu,
    }


def load() -> list[dict]:
    return json.loads(OUT.read_text())["runs"] if OUT.exists() else []


def save(runs: list[dict]) -> None:
    order = {name: i for i, name in enumerate(ROW_NAMES)}
    runs = sorted(runs, key=lambda r: (r["steps"], order.get(r["name"], 99), r["seed"]))
    OUT.write_text(json.dumps({"runs": runs}, indent=1) + "\n")


def table(runs: list[dict], steps: int) -> str:
    """Markdown: one line per row name, KL mean ± SE over seeds, KL per seed, on-support."""
    lines = [
        "| configuration | seeds | KL(q ‖ p_θ), nats: mean ± SE over seeds | per seed |"
        " on the squares | CPU s / run |",
        "|---|---:|---|---|---:|---:|",
    ]
    for name in ROW_NAMES:
        rs = [r for r in runs if r["name"] == name and r["steps"] == steps]
        if not rs:
            continue
        kl = [r["kl"] for r in rs]
        mean = sum(kl) / len(kl)
        se = (
            math.sqrt(sum((k - mean) ** 2 for k in kl) / (len(kl) - 1) / len(kl))
            if len(kl) > 1
            else math.nan
        )
        per_seed = ", ".join(f"{k:.3f}" for k in kl)
        on = sum(r["on_support"] for r in rs) / len(rs)
        cpu = sum(r["train_cpu_s"] for r in rs) / len(rs)
        lines.append(
            f"| {name} | {len(rs)} | {mean:.3f} ± {se:.3f} | {per_seed} | {on:.1%} | {cpu:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rows", nargs="+", default=None, help="row indices (default: all)")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--table", action="store_true", help="only print the table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.table:
        print(table(load(), args.steps))
        return
    rows = configs()
    chosen = range(len(rows)) if args.rows is None else [int(i) for i in args.rows]
    for i in chosen:
        name, config = rows[i]
        for seed in args.seeds:
            runs = load()
            done = [
                r for r in runs if (r["name"], r["seed"], r["steps"]) == (name, seed, args.steps)
            ]
            if done and not args.force:
                continue
            r = run(name, config, seed, args.steps)
            kl, se, cpu = r["kl"], r["se"], r["train_cpu_s"]
            print(f"{name:32s} seed {seed}: KL {kl:.4f} ± {se:.4f}, on support", end=" ")
            print(f"{r['on_support']:.3f}, {cpu:.0f} CPU s", flush=True)
            with open(LOCK, "w") as lock:  # parallel runs share the results file
                fcntl.flock(lock, fcntl.LOCK_EX)
                key = (name, seed, args.steps)
                runs = [r0 for r0 in load() if (r0["name"], r0["seed"], r0["steps"]) != key]
                save([*runs, r])
    print(table(load(), args.steps))


if __name__ == "__main__":
    main()
