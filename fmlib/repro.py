"""Reproducibility: one call seeds every generator and fixes the numerics.

Every notebook starts with `generator = seed_everything(0)`: the same seed then gives
the same numbers on every machine (to printed precision), whatever its core count.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from fmlib.checks import check_int


def default_threads() -> int:
    """The thread count a run asked for: $OMP_NUM_THREADS (the Makefile's THREADS), else 2."""
    value = os.environ.get("OMP_NUM_THREADS", "2")
    return int(value) if value.isdigit() and int(value) >= 1 else 2


def seed_everything(seed: int = 0, threads: int | None = -1, deterministic: bool = True):
    """Seed python, numpy and torch (CPU and CUDA); fix the thread count; deterministic mode.

    `threads=-1` (the default) takes the count from `default_threads()`, so `make nbval
    THREADS=1` really runs on one thread; None leaves torch's setting alone.

    Returns a CPU `torch.Generator` seeded with `seed`: pass it to every sampler so that
    data and initial weights are made on the CPU, identically everywhere, then moved.
    """
    check_int("seed", seed, 0)
    if threads == -1:
        threads = default_threads()
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be None, -1 or an integer >= 1, got {threads!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if threads is not None:
        torch.set_num_threads(threads)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls on the GPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


@contextmanager
def one_thread() -> Iterator[None]:
    """Tensor maths on one thread inside the block (the previous count is restored).

    A panel's tensors are small (at most a few 10^4 entries): a second thread saves little,
    and on a 2-core machine that is busy with other work a parallel region can wait
    milliseconds for its second thread, several times per redraw."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def get_device(prefer_gpu: bool = False) -> torch.device:
    """The CPU by default; the GPU only when asked for (`prefer_gpu=True`) and present."""
    if not isinstance(prefer_gpu, bool):
        raise ValueError(f"prefer_gpu must be True or False, got {prefer_gpu!r}")
    if prefer_gpu and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def environment_report() -> dict[str, str]:
    """Versions and devices, for the start of a notebook (its output varies by machine)."""
    import ipywidgets
    import matplotlib

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "ipywidgets": ipywidgets.__version__,
        "torch threads": str(torch.get_num_threads()),
        "gpu": gpu,
    }
