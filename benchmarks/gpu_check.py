"""The first run on a GPU: one command that checks fmlib.sampling's CUDA path.

    python benchmarks/gpu_check.py            # a few minutes on one GPU; writes RESULTS.md

Each check prints PASS or FAIL with its numbers; a failure does not stop the others, and
the exit status is 1 if any failed. In order:
 1. environment: GPU, compute capability, memory, torch / CUDA versions, Triton;
 2. the sampling tests (pytest tests/test_sampling*.py: the CUDA-only tests run here);
 3. notebook 06 end to end (executed in memory: the file is not touched);
 4. recording with host syncs as errors (torch.cuda.set_sync_debug_mode("error")), replays
    with no sync at all, and a field that syncs: a warning, the plain loop, CUDA usable;
 5. the replayed graph equals the plain loop (fp32; Euler, midpoint, RK4);
 6. N = 1, batch_size + 1 and a sweep of sizes, with the memory after each;
 7. TF32 flags set through either API are restored; TF32 changes results only on GPUs
    that have it (compute capability >= 8.0);
 8. bf16 vs fp32 on the checkerboard checkpoint (per-sample gaps, energy distance);
 9. recording leaves torch.cuda's RNG alone; a first call inside inference mode;
10. torch.compile, recompiles logged (TORCH_LOGS=recompiles);
11. the sampling table of benchmarks/sampling.py: 10k and 100k samples, 2 repeats,
    compile mode "default" (max-autotune would spend minutes autotuning each shape).
The table goes into the sampling section of --out and this list into its own section.
Without CUDA it says so and exits 0, writing nothing. `--bf16-cpu N` runs check 8 alone
on the CPU with N samples (bf16 matmuls are emulated there: slow).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmlib import data, metrics, models, resources  # noqa: E402
from fmlib.precision import _restore, precision_flags  # noqa: E402
from fmlib.sampling import MAX_GRAPHS, FastSampler, matmul_precision  # noqa: E402
from fmlib.solvers import integrate  # noqa: E402

MARKERS = ("<!-- gpu_check:begin -->", "<!-- gpu_check:end -->")
CHECKPOINT = resources.path("checkerboard_model.pt")


class HostSyncing(nn.Module):
    """`inner` with a host synchronisation in its forward: a field a CUDA graph cannot record
    (also used by tests/test_sampling_graphs.py)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        u = self.inner(x, t)
        return u if u.abs().max().item() < 1e9 else u * 0  # .item(): a host sync


def load_benchmark():
    """benchmarks/sampling.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "sampling_benchmark", ROOT / "benchmarks" / "sampling.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randn(n: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """x0 ~ N(0, I) drawn on the CPU from its own generator (the same on every machine)."""
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)).to(device)


def plain(model: nn.Module, x0: torch.Tensor, steps: int, method: str = "midpoint"):
    with torch.inference_mode(), matmul_precision("fp32"):
        return integrate(model, x0, 0.0, 1.0, steps, method).x


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# -- the checks: each returns its numbers as one line, or raises ------------------------
def check_environment(device: torch.device, model: nn.Module) -> str:
    from torch.utils._triton import has_triton

    free, total = torch.cuda.mem_get_info(device)
    return (
        f"{torch.cuda.get_device_name(device)}, capability "
        f"{torch.cuda.get_device_capability(device)}, {total / 2**30:.1f} GiB "
        f"({free / 2**30:.1f} free); torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"Python {sys.version.split()[0]}, Triton {'yes' if has_triton() else 'no'}"
    )


def check_tests(device: torch.device, model: nn.Module) -> str:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rs",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_sampling*.py")),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    assert done.returncode == 0, f"{' '.join(command[3:])}: {last}\n{done.stdout[-3000:]}"
    return last


def check_notebook(device: torch.device, model: nn.Module) -> str:
    import nbclient
    import nbformat

    path = ROOT / "notebooks" / "06_sampling.ipynb"
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": path.parent}}
    )
    client.execute()
    return f"{path.name}: {len(notebook.cells)} cells ran without error"


def check_syncs(device: torch.device, model: nn.Module) -> str:
    sampler = FastSampler(model, steps=10, batch_size=4096, device=device)
    x0 = randn(4096, device)
    first = sampler(x0)  # records: the warm-up runs with syncs as errors
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        again = sampler(x0)  # replay: copy in, replay, copy out, no host sync
    finally:
        torch.cuda.set_sync_debug_mode(old)
    assert torch.equal(first, again)

    syncing = FastSampler(HostSyncing(model), steps=10, batch_size=4096, device=device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x1 = syncing(x0)
    messages = [str(w.message) for w in caught if "cannot be recorded" in str(w.message)]
    assert len(messages) == 1 and syncing.backend == "eager", messages
    assert gap(x1, plain(model, x0, 10)) < 1e-4
    fresh = FastSampler(model, steps=10, batch_size=4096, device=device)(x0)  # CUDA still fine
    assert torch.equal(fresh, first)
    return f"replay under sync debug 'error': ok; syncing field: {messages[0][:100]}..."


def check_replay(device: torch.device, model: nn.Module) -> str:
    gaps = {}
    for method in ("euler", "midpoint", "rk4"):
        x0 = randn(1000, device)
        x1 = FastSampler(model, steps=20, method=method, batch_size=4096, device=device)(x0)
        gaps[method] = gap(x1, plain(model, x0, 20, method))
    assert max(gaps.values()) < 1e-4, gaps
    return "max |graph - plain loop|: " + ", ".join(f"{m} {g:.1e}" for m, g in gaps.items())


def check_sizes(device: torch.device, model: nn.Module) -> str:
    batch = 65_536
    sampler = FastSampler(model, steps=10, batch_size=batch, device=device)
    rows = []
    for n in (1, 2, 1000, batch, batch + 1, 200_000, 3, 777, 5000, 40_000):
        x0 = randn(n, device, seed=n)
        x1 = sampler(x0)
        assert x1.shape == (n, 2) and gap(x1, plain(model, x0, 10)) < 1e-4, n
        assert len(sampler._graphs.keys()) <= MAX_GRAPHS
        rows.append(f"{n:,}: {torch.cuda.memory_reserved(device) / 2**20:,.0f} MiB")
    return "reserved after each N: " + "; ".join(rows)


def check_tf32(device: torch.device, model: nn.Module) -> str:
    x0 = randn(10_000, device)
    fp32 = FastSampler(model, steps=20, device=device)(x0)
    ways = {
        "legacy high": lambda: torch.set_float32_matmul_precision("high"),
        "new cuda.matmul tf32": lambda: setattr(
            torch.backends.cuda.matmul, "fp32_precision", "tf32"
        ),
        "new generic ieee": lambda: setattr(torch.backends, "fp32_precision", "ieee"),
    }
    start = precision_flags()
    gaps = []
    for name, set_flags in ways.items():
        set_flags()
        before = precision_flags()
        tf32 = FastSampler(model, steps=20, precision="tf32", device=device)(x0)
        assert precision_flags() == before, name
        gaps.append(gap(tf32, fp32))
        _restore(start)
    has_tf32 = torch.cuda.get_device_capability(device) >= (8, 0)
    assert (min(gaps) > 0) == has_tf32 and max(gaps) < 0.05, gaps
    effect = "on" if has_tf32 else "absent"
    return f"flags restored in {len(ways)} ways; max |tf32 - fp32| {max(gaps):.1e} (TF32 {effect})"


def check_bf16(device: torch.device, model: nn.Module, n: int = 100_000) -> str:
    x0 = randn(n, device)
    fp32 = FastSampler(model, steps=100, device=device)(x0).cpu()
    bf16 = FastSampler(model, steps=100, precision="bf16", device=device)(x0).cpu()
    gaps = (bf16 - fp32).abs().amax(dim=1)
    target = data.sample("checkerboard", 4000, torch.Generator().manual_seed(1))
    energy = [metrics.energy_distance(x[:4000], target) for x in (fp32, bf16)]
    assert gaps.median() < 0.02 and abs(energy[1] - energy[0]) < 0.01
    return (
        f"{n:,} samples, midpoint 100 steps: |bf16 - fp32| median {gaps.median():.4f}, "
        f"p99 {gaps.quantile(0.99):.4f}, max {gaps.max():.3f}; energy distance fp32 "
        f"{energy[0]:.4f}, bf16 {energy[1]:.4f}"
    )


def check_rng_and_inference_mode(device: torch.device, model: nn.Module) -> str:
    torch.cuda.manual_seed(0)
    state = torch.cuda.get_rng_state(device)
    sampler = FastSampler(model, steps=5, batch_size=2048, device=device)
    x0 = randn(1500, device)
    with torch.inference_mode():
        inside = sampler(x0)  # records inside inference mode
    outside = sampler(x0)  # replays outside it
    assert torch.equal(torch.cuda.get_rng_state(device), state)
    assert torch.equal(inside, outside) and not outside.is_inference()
    return "CUDA RNG state unchanged by recording; inference mode then normal mode: equal"


def check_compile(device: torch.device, model: nn.Module) -> str:
    torch._logging.set_logs(recompiles=True)
    try:
        own = copy.deepcopy(model)
        x0 = randn(4096, device)
        start = time.perf_counter()
        sampler = FastSampler(own, steps=20, batch_size=4096, compile=True, device=device)
        x1 = sampler(x0)
        first = time.perf_counter() - start
        sampler(x0[:1000])  # a second size: one recompile, logged
        eager = FastSampler(model, steps=20, batch_size=4096, device=device)(x0)
        lines = [f"compiled: {sampler.compiled} (first call {first:.0f} s)"]
        lines.append(f"max |compiled - eager graph| {gap(x1, eager):.1e}")
        assert sampler.compiled and gap(x1, eager) < 1e-3, lines
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            own = copy.deepcopy(model)
            bf16 = FastSampler(own, 20, precision="bf16", compile="default", device=device)
            bf16(x0)
        said = [str(w.message)[:80] for w in caught]
        lines.append(f"bf16 + compile: compiled {bf16.compiled}, warnings {said}")
        return "; ".join(lines)
    finally:
        torch._logging.set_logs()


CHECKS: list[tuple[str, Callable[[torch.device, nn.Module], str]]] = [
    ("environment", check_environment),
    ("sampling tests (CUDA tests included)", check_tests),
    ("notebook 06 end to end", check_notebook),
    ("host syncs: none in replay; a syncing field falls back", check_syncs),
    ("graph replay equals the plain loop", check_replay),
    ("N = 1, batch_size + 1, a sweep; memory", check_sizes),
    ("TF32 flags (both APIs) restored; TF32 effect", check_tf32),
    ("bf16 vs fp32 on the checkpoint", check_bf16),
    ("RNG untouched; inference mode then outside", check_rng_and_inference_mode),
    ("torch.compile (recompiles logged)", check_compile),
]


def run_checks(device: torch.device, model: nn.Module) -> list[str]:
    """Run every check; return its report lines ("- PASS name (s): numbers")."""
    lines = []
    for name, check in CHECKS:
        start = time.perf_counter()
        try:
            detail, status = check(device, model), "PASS"
        except Exception as error:  # report and go on: the list is a checklist
            detail, status = f"{type(error).__name__}: {error}", "FAIL"
            traceback.print_exc()
        line = f"- {status} {name} ({time.perf_counter() - start:.0f} s): {detail}"
        print(line, flush=True)
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-table", action="store_true", help="skip the sampling table")
    parser.add_argument("--bf16-cpu", type=int, metavar="N", help="only check 8 on the CPU")
    args = parser.parse_args(argv)
    if args.bf16_cpu:  # the one check that means something on a CPU
        torch.set_num_threads(2)
        print(check_bf16(torch.device("cpu"), models.load(CHECKPOINT), args.bf16_cpu))
        return 0
    if not torch.cuda.is_available():
        built = torch.version.cuda or "none (a CPU-only build)"
        print(
            f"gpu_check: no CUDA device here (torch {torch.__version__}, CUDA {built}): "
            "nothing to check; run this on a machine with an NVIDIA GPU. Nothing written."
        )
        return 0
    start = time.perf_counter()
    device = torch.device("cuda", torch.cuda.current_device())
    model = models.load(CHECKPOINT).to(device)
    lines = run_checks(device, model)
    command = "python benchmarks/gpu_check.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    benchmark = load_benchmark()
    if not args.no_table:
        begin = time.perf_counter()
        table = benchmark.benchmark(
            args.sizes, 100, device, ["fp32", "tf32", "bf16"], "default", args.repeats, 1 << 20
        )
        benchmark.write_section(args.out, table, command.strip())
        lines.append(f"- sampling table written ({time.perf_counter() - begin:.0f} s)")
    failed = sum(line.startswith("- FAIL") for line in lines)
    seconds = time.perf_counter() - start
    lines.append(f"\n{len(CHECKS) - failed} of {len(CHECKS)} checks passed in {seconds:.0f} s.")
    title = "First GPU run (benchmarks/gpu_check.py)"
    benchmark.write_section(args.out, "\n".join(lines), command.strip(), title, MARKERS)
    print(lines[-1])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
