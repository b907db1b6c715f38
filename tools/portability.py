"""nbval under other CPUs' arithmetic: the proof that stored outputs do not depend on it.

    python tools/portability.py [--list]

A lecturer's laptop computes with other kernels than the machine that stored the outputs.
torch honours ATEN_CPU_CAPABILITY (default, avx2, avx512) and MKL honours MKL_CBWR
(COMPATIBLE, AVX2), so one machine can compute what another would. Each setting below runs
nbval (`make nbval`) on the notebooks it names; the native kernels with 2 threads are
`make test`'s own nbval run.
- Kernels other than native: default/COMPATIBLE (any x86 CPU) on every notebook with one
  thread, and on the notebooks that train and follow THREADS with two; avx2/AVX2 (an AVX2
  laptop or server) likewise on the notebooks that train, where this CPU has AVX-512.
- One thread on the native kernels, for every notebook that follows THREADS.
Notebooks that pin one thread in their setup cell (`seed_everything(0, threads=1)`) run
their torch maths on one thread whatever THREADS says, so they run once per kernel setting.
A table of results goes to artifacts/portability.md; the exit status is 1 if any run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# Code that trains a network: these notebooks' numbers are the most sensitive to arithmetic.
TRAINING_CALLS = (
    ".backward()",
    "train(",
    "train_cfm(",
    "train_steps(",
    "train_conditional(",
    "couplings.fit(",
    "fit_reflow(",
)
PINNED = "threads=1)"


def code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def trains(path: Path) -> bool:
    return any(call in code(path) for call in TRAINING_CALLS)


def follows_threads(path: Path) -> bool:
    """False for a notebook whose setup cell pins one thread (seed_everything(0, threads=1))."""
    return PINNED not in code(path)


def settings() -> list[tuple[str, dict[str, str], list[Path]]]:
    """(name, environment, notebooks) for each run."""
    training = [p for p in NOTEBOOKS if trains(p)]
    threaded_training = [p for p in training if follows_threads(p)]
    threaded = [p for p in NOTEBOOKS if follows_threads(p)]
    default = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
    avx2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
    runs = [
        ("default/COMPATIBLE, 1 thread", {**default, "THREADS": "1"}, NOTEBOOKS),
        ("default/COMPATIBLE, 2 threads", {**default, "THREADS": "2"}, threaded_training),
    ]
    if torch.backends.cpu.get_cpu_capability() == "AVX512":
        runs += [
            ("avx2/AVX2, 1 thread", {**avx2, "THREADS": "1"}, training),
            ("avx2/AVX2, 2 threads", {**avx2, "THREADS": "2"}, threaded_training),
        ]
    runs.append(("native, 1 thread", {"THREADS": "1"}, threaded))
    return [(name, env, nbs) for name, env, nbs in runs if nbs]


def run(name: str, env: dict[str, str], notebooks: list[Path]) -> tuple[bool, float, str]:
    threads = env.get("THREADS", "2")
    kernels = {k: v for k, v in env.items() if k != "THREADS"}
    names = " ".join(str(p.relative_to(REPO)) for p in notebooks)
    command = ["make", "--no-print-directory", "nbval", f"THREADS={threads}", f"NB={names}"]
    print(f"== {name}: {len(notebooks)} notebooks", flush=True)
    start = time.monotonic()
    result = subprocess.run(
        command, cwd=REPO, env={**os.environ, **kernels}, capture_output=True, text=True
    )
    seconds = time.monotonic() - start
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1].strip("= ")
    if result.returncode != 0:
        print(result.stdout[-6000:], result.stderr[-2000:], sep="\n")
    print(f"   {summary} ({seconds:.0f} s)", flush=True)
    return result.returncode == 0, seconds, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the runs, run nothing")
    args = parser.parse_args()
    capability = torch.backends.cpu.get_cpu_capability()
    rows = [
        f"Native CPU kernels here: {capability}.",
        "",
        "| setting | notebooks | result | seconds |",
        "|---|---|---|---|",
    ]
    ok = True
    for name, env, notebooks in settings():
        stems = ", ".join(p.name[:2] for p in notebooks)
        if args.list:
            print(f"{name}: {stems}")
            continue
        passed, seconds, summary = run(name, env, notebooks)
        ok &= passed
        rows.append(f"| {name} | {stems} | {summary} | {seconds:.0f} |")
    if not args.list:
        out = REPO / "artifacts" / "portability.md"
        out.parent.mkdir(exist_ok=True)
        out.write_text("# nbval under other CPU kernel settings\n\n" + "\n".join(rows) + "\n")
        print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
