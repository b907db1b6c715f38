"""nbval under other CPUs' arithmetic: the proof that stored outputs do not depend on it.

    python tools/portability.py [--list] [--jobs 2] [--only 07 12]

A lecturer's laptop computes with other kernels than the machine that stored the outputs.
torch honours ATEN_CPU_CAPABILITY (default, avx2, avx512) and MKL honours MKL_CBWR
(COMPATIBLE, AVX2), so one machine can compute what another would. Each setting below runs
nbval (`make nbval`) on the notebooks it names; the native kernels with 2 threads are
`make test`'s own nbval run. Every (setting, notebook) pair is one job, in its own process;
two (--jobs, JOBS) run at a time, longest first (tools/ci_times.py), so no setting waits for
another's last notebook.
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
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ci_times", REPO / "tools" / "ci_times.py")
ci_times = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ci_times)
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
    "finetune(",
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


def capability() -> str:
    import torch  # here, not at the top: tools/ci_times.py reads this file's lists cheaply

    return torch.backends.cpu.get_cpu_capability()


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
    if capability() == "AVX512":
        runs += [
            ("avx2/AVX2, 1 thread", {**avx2, "THREADS": "1"}, training),
            ("avx2/AVX2, 2 threads", {**avx2, "THREADS": "2"}, threaded_training),
        ]
    runs.append(("native, 1 thread", {"THREADS": "1"}, threaded))
    return [(name, env, nbs) for name, env, nbs in runs if nbs]


def jobs() -> list[tuple[str, dict[str, str], Path]]:
    """(setting, environment, notebook) for every run, longest first (tools/ci_times.py):
    the last jobs to start are the short ones, so neither worker idles long at the end."""
    todo = [(name, env, nb) for name, env, nbs in settings() for nb in nbs]
    return sorted(todo, key=lambda job: -ci_times.cost(job[2].stem, job[0]))


def start(name: str, env: dict[str, str], notebook: Path, log) -> subprocess.Popen:
    """`make nbval` on one notebook in one process (JOBS=0: no xdist worker of its own),
    its output to the file `log`."""
    threads = env.get("THREADS", "2")
    kernels = {k: v for k, v in env.items() if k != "THREADS"}
    nb = str(notebook.relative_to(REPO))
    # -o: never (re)install the venv from here, where two jobs run at once (`make test` and
    # `make portability` install first)
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "nbval"]
    command += [f"THREADS={threads}", "JOBS=0", f"NB={nb}"]
    return subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **kernels},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def run_all(todo, workers: int) -> dict[str, list[tuple[bool, float, int]]]:
    """Run the jobs `workers` at a time; {setting: [(passed, seconds, tests passed)]}."""
    results: dict[str, list[tuple[bool, float, int]]] = {name: [] for name, _, _ in todo}
    queue = list(todo)
    running: list[tuple[subprocess.Popen, str, Path, float, object]] = []
    while queue or running:
        while queue and len(running) < workers:
            name, env, nb = queue.pop(0)
            log = tempfile.TemporaryFile("w+")
            running.append((start(name, env, nb, log), name, nb, time.monotonic(), log))
        time.sleep(0.2)
        for job in [j for j in running if j[0].poll() is not None]:
            running.remove(job)
            process, name, nb, began, log = job
            seconds = time.monotonic() - began
            log.seek(0)
            output = log.read()
            log.close()
            summary = (output.strip().splitlines() or ["(no output)"])[-1].strip("= ")
            passed = re.search(r"(\d+) passed", summary)
            ok = process.returncode == 0
            if not ok:
                print(output[-6000:])
            print(f"   {name}: {nb.stem}: {summary} ({seconds:.0f} s)", flush=True)
            results[name].append((ok, seconds, int(passed.group(1)) if passed else 0))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the runs, run nothing")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", 2)))
    parser.add_argument(
        "--only", nargs="+", metavar="NN", help="only these notebooks (e.g. --only 07 12)"
    )
    args = parser.parse_args()
    if args.list:
        for name, _, notebooks in settings():
            print(f"{name}: " + ", ".join(p.name[:2] for p in notebooks))
        return 0
    start_all = time.monotonic()
    todo = [j for j in jobs() if not args.only or j[2].name[:2] in args.only]
    print(f"== {len(todo)} nbval runs (a notebook in one setting each), {args.jobs} at a time")
    results = run_all(todo, args.jobs)
    wall = time.monotonic() - start_all
    rows = [
        f"Native CPU kernels here: {capability()}. "
        f"{len(todo)} runs, {args.jobs} at a time: {wall:.0f} s wall.",
        "",
        "| setting | notebooks | result | seconds (sum over its notebooks) |",
        "|---|---|---|---|",
    ]
    ok = True
    for name, _, notebooks in settings():
        notebooks = [p for p in notebooks if not args.only or p.name[:2] in args.only]
        runs = results.get(name, [])
        if not runs:
            continue
        failed = sum(not r[0] for r in runs)
        ok &= not failed
        result = f"{sum(r[2] for r in runs)} passed"
        if failed:
            result += f", {failed} notebooks FAILED"
        stems = ", ".join(p.name[:2] for p in notebooks)
        rows.append(f"| {name} | {stems} | {result} | {sum(r[1] for r in runs):.0f} |")
    out = REPO / "artifacts" / "portability.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("# nbval under other CPU kernel settings\n\n" + "\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
