"""Sampling throughput: torchdiffeq vs fmlib's plain loop vs fmlib's fast sampler.

Model: the Flow Matching Guide's 4 x 512 SiLU MLP (fmlib.models.reference_mlp); the
trained checkpoint fmlib/resources/checkerboard_model.pt when it has that architecture, else a
random init (seed 0: throughput does not depend on the weights). Solver: midpoint, 100
steps (200 NFE), from x0 ~ N(0, I) at t = 0 to t = 1.

Rows:
- torchdiffeq: odeint(f, x0, [0, 1], method="midpoint", options={"step_size": 0.01});
- fmlib plain: fmlib.solvers.integrate(model, x0, steps=100, method="midpoint");
- fmlib fast <precision>: fmlib.sampling.FastSampler (CUDA graph on a GPU; on the CPU it
  is the plain loop under inference_mode);
- "+ compile" rows: the same with torch.compile, each on its own copy of the model (so
  every row has dynamo's full recompile budget: one compile per batch size). A row whose
  compile failed or hit the limit says "compile failed, plain network" (FastSampler warns
  and falls back; its `compiled` flag says what ran), never a silent eager run.
All without autograd. Timing: one untimed warm-up call per row (full size on a GPU:
allocation, graph capture, compilation; 256 rows on the CPU: thread pools, allocator),
then `--repeats` timed calls per row, interleaved across rows so that load from other
processes hits every row alike; each call is bracketed by torch.cuda.synchronize on a GPU
(kernels are asynchronous); the best (minimum) time is reported.
Quality: max |x1 - x1_ref| against fmlib plain fp32 from the same x0, and the energy
distance between the first 4,000 samples (or all, if fewer) and 4,000 fresh checkerboard
samples (meaningful only with the trained checkpoint).

Usage:
    .venv/bin/python benchmarks/sampling.py                   # CPU: 10k and 100k
    .venv/bin/python benchmarks/sampling.py --device cuda     # 10k, 100k, 1M; fp32/tf32/bf16
    .venv/bin/python benchmarks/gpu_check.py                  # first GPU run: checks + table
    .venv/bin/python benchmarks/sampling.py --sizes 1000 --repeats 1 --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchdiffeq
from torch import Tensor, nn

from fmlib import data, metrics, models, resources
from fmlib.sampling import COMPILE_MODES, PRECISIONS, FastSampler, synchronize
from fmlib.solvers import integrate

CHECKPOINT = "checkerboard_model.pt"  # shipped with fmlib: resources.path(CHECKPOINT)
BEGIN, END = "<!-- sampling:begin -->", "<!-- sampling:end -->"
N_QUALITY = 4000
CPU_NOTE = """

On the CPU the fast sampler *is* the plain loop (no kernel launches to save), so its rows
match "fmlib plain loop" up to timing noise, and both match torchdiffeq; "tf32" does not
exist on a CPU and bf16 autocast is emulated there (about 8x slower per evaluation on
this machine), so only fp32 is timed. The energy distance is meaningful only with trained
4x512 weights. No GPU was lent to the tasks that wrote this file, so there are no GPU
numbers yet. On the first CUDA machine run the checklist, which also writes this table:

    python benchmarks/gpu_check.py
"""


def reference_model(device: torch.device) -> tuple[nn.Module, str]:
    """The 4 x 512 MLP: trained weights if the checkpoint has that shape, else random."""
    try:
        model = models.load(resources.path(CHECKPOINT))
    except FileNotFoundError:
        model = None
    if model is not None and model.config["hidden"] == 512 and model.config["layers"] == 4:
        return model.to(device).eval(), "trained checkpoint"
    torch.manual_seed(0)
    return models.reference_mlp().to(device).eval(), "random init (seed 0)"


def torchdiffeq_sampler(model: nn.Module, steps: int) -> Callable[[Tensor], Tensor]:
    """x1 by torchdiffeq's fixed-grid midpoint rule with step size 1 / steps."""
    f = lambda t, x: model(x, t.expand(x.shape[0]))

    def solve(x0: Tensor) -> Tensor:
        grid = torch.tensor([0.0, 1.0], device=x0.device)
        with torch.no_grad():
            states = torchdiffeq.odeint(
                f, x0, grid, method="midpoint", options={"step_size": 1.0 / steps}
            )
        return states[-1]

    return solve


def plain_sampler(model: nn.Module, steps: int) -> Callable[[Tensor], Tensor]:
    """x1 by fmlib.solvers.integrate (the plain Python loop)."""
    return lambda x0: integrate(model, x0, 0.0, 1.0, steps, "midpoint").x


def make_rows(model, steps, device, precisions, compile, batch_size) -> dict[str, Callable]:
    """name -> sampler x0 -> x1, for every row of the table (compile: False or a mode)."""
    samplers = {
        "torchdiffeq odeint": torchdiffeq_sampler(model, steps),
        "fmlib plain loop": plain_sampler(model, steps),
    }
    for precision in precisions:
        fast = FastSampler(model, steps, "midpoint", batch_size, precision, False, device)
        samplers[f"fmlib fast {precision}"] = fast.sample
        if compile and device.type == "cuda":
            own = copy.deepcopy(model)  # its own dynamo cache entries and recompile budget
            fast = FastSampler(own, steps, "midpoint", batch_size, precision, compile, device)
            samplers[f"fmlib fast {precision} + compile"] = fast.sample
    return samplers


def row_label(name: str, fn: Callable) -> str:
    """The row's name, saying so when a compiled row actually ran the plain network."""
    sampler = getattr(fn, "__self__", None)
    if isinstance(sampler, FastSampler) and name.endswith("+ compile") and not sampler.compiled:
        return name.replace("+ compile", "+ compile failed, plain network")
    return name


def best_times(
    samplers: dict[str, Callable], x0: Tensor, repeats: int
) -> tuple[dict[str, float], dict[str, Tensor]]:
    """Warm up each sampler, then `repeats` interleaved synchronised timings.

    Returns the minimum time of each row and its samples x1 (from its last call, on CPU).
    """
    warm = x0 if x0.device.type == "cuda" else x0[:256]
    for fn in samplers.values():
        fn(warm)
    synchronize(x0.device)
    seconds: dict[str, list[float]] = {name: [] for name in samplers}
    samples: dict[str, Tensor] = {}
    for _ in range(repeats):
        for name, fn in samplers.items():
            synchronize(x0.device)
            start = time.perf_counter()
            x1 = fn(x0)
            synchronize(x0.device)
            seconds[name].append(time.perf_counter() - start)
            samples[name] = x1
    best = {name: min(values) for name, values in seconds.items()}
    return best, {name: x1.float().cpu() for name, x1 in samples.items()}


def quality(samples: dict[str, Tensor]) -> dict[str, tuple[float, float]]:
    """(max |x1 - x1 of fp32 plain|, energy distance of N_QUALITY samples to fresh data)."""
    target = data.sample("checkerboard", N_QUALITY, torch.Generator().manual_seed(1))
    reference = samples["fmlib plain loop"]
    return {
        name: (
            (x1 - reference).abs().max().item(),
            metrics.energy_distance(x1[:N_QUALITY], target),
        )
        for name, x1 in samples.items()
    }


def benchmark(sizes, steps, device, precisions, compile, repeats, batch_size) -> str:
    """Time every row at every batch size; return the markdown table and its preamble.
    compile: False, True or a torch.compile mode (CUDA rows only)."""
    model, weights = reference_model(device)
    samplers = make_rows(model, steps, device, precisions, compile, batch_size)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    mode = "max-autotune-no-cudagraphs" if compile is True else compile
    lines = [
        f"Device: {name} ({torch.get_num_threads()} threads), torch {torch.__version__}; "
        f"4x512 MLP, {weights}; midpoint, {steps} steps ({2 * steps} NFE); "
        f"best of {repeats} interleaved timings after a warm-up"
        + (f"; torch.compile mode {mode!r}." if compile and device.type == "cuda" else "."),
        "",
        "| batch | sampler | samples/s | speed-up vs torchdiffeq | max abs diff vs fp32 plain "
        "| energy distance to data |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for n in sizes:
        x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(0)).to(device)
        seconds, samples = best_times(samplers, x0, repeats)
        scores = quality(samples)
        base = seconds["torchdiffeq odeint"]
        for row, s in seconds.items():
            diff, energy = scores[row]
            label = row_label(row, samplers[row])
            lines.append(
                f"| {n:,} | {label} | {n / s:,.0f} | {base / s:.2f}x | {diff:.1e} | {energy:.4f} |"
            )
        print("\n".join(lines[-len(seconds) :]), flush=True)
    return "\n".join(lines)


def write_section(
    path: Path,
    table: str,
    command: str,
    title: str = "Sampling (benchmarks/sampling.py)",
    markers: tuple[str, str] = (BEGIN, END),
) -> None:
    """Replace (or append) a section of RESULTS.md, between its markers."""
    begin, end = markers
    section = f"{begin}\n## {title}\n\n`{command}`\n\n{table}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", help="batch sizes (default by device)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, help="fast-path rows")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows (GPU)")
    parser.add_argument("--compile-mode", choices=COMPILE_MODES, default=COMPILE_MODES[-1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1 << 20, help="rows per graph")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--out", type=Path, help="write the table into this RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    sizes = args.sizes or ([10_000, 100_000, 1_000_000] if gpu else [10_000, 100_000])
    # On the CPU "tf32" is fp32 and bf16 autocast is emulated (slow): fp32 by default.
    precisions = args.precisions or (list(PRECISIONS) if gpu else ["fp32"])
    compile = args.compile and args.compile_mode
    table = benchmark(sizes, args.steps, device, precisions, compile, args.repeats, args.batch_size)
    print(table)
    if args.out:
        command = " ".join(["python benchmarks/sampling.py", *sys.argv[1:]])
        write_section(args.out, table + ("" if gpu else CPU_NOTE), command)


if __name__ == "__main__":
    main()
