"""benchmarks/gpu_check.py on a machine without CUDA: it says so, exits 0, writes nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_gpu_check_without_cuda_exits_cleanly(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "RESULTS.md"
    assert gpu_check.main(["--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "no CUDA device here" in said and "Nothing written" in said
    assert not out.exists()
    assert len(gpu_check.CHECKS) == 10  # the checklist of the module docstring, 1-10
