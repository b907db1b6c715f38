"""FastSampler with torch.compile: a failed or exhausted compile is loud, never silent.

Runs on the CPU with RerunGraphs and dynamo's "eager" backend (graph capture without
code generation: seconds, no C++ toolchain), patched in for fmlib.graphs.compile_network;
compile_support is patched to say yes (on a real CPU it says "CUDA only").
Importing dynamo takes several seconds, hence a file of its own.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from fmlib import graphs
from fmlib.models import MLP
from fmlib.repro import one_thread
from fmlib.sampling import FastSampler
from fmlib.solvers import integrate

dynamo = pytest.importorskip("torch._dynamo")


@pytest.fixture(autouse=True)
def _one_thread_and_fresh_dynamo():
    with one_thread():
        dynamo.reset()
        yield
        dynamo.reset()


@pytest.fixture
def eager_compile(monkeypatch):
    """compile_support says yes; compile_network traces with dynamo, runs eagerly."""
    monkeypatch.setattr("fmlib.sampling.compile_support", lambda device, precision: None)
    compiled = lambda model, mode: torch.compile(model, backend="eager", dynamic=False)
    monkeypatch.setattr("fmlib.sampling.compile_network", compiled)


@pytest.fixture
def mlp() -> MLP:
    torch.manual_seed(0)
    return MLP(hidden=16, layers=2).eval()


def plain(model, x0, steps):
    with torch.inference_mode():
        return integrate(model, x0, 0.0, 1.0, steps, "midpoint").x


def test_compiled_run_equals_the_plain_loop(mlp: MLP, eager_compile) -> None:
    sampler = FastSampler(mlp, steps=2, batch_size=64, compile=True, graphs=graphs.RerunGraphs())
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x1 = sampler(x0)
    assert sampler.compiled and sampler.compile_mode == "max-autotune-no-cudagraphs"
    torch.testing.assert_close(x1, plain(mlp, x0, 2), rtol=1e-6, atol=1e-6)


def test_recompile_limit_is_loud_then_plain_network(mlp: MLP, eager_compile, monkeypatch) -> None:
    """Past its recompile limit dynamo silently runs the plain network; the sampler turns
    that into one warning and says compiled = False (the benchmark labels rows by it)."""
    monkeypatch.setattr(dynamo.config, "recompile_limit", 1)
    sampler = FastSampler(mlp, steps=2, batch_size=64, compile=True, graphs=graphs.RerunGraphs())
    sampler(torch.randn(64, 2))  # compiles for 64 rows
    assert sampler.compiled
    x0 = torch.randn(3, 2)  # 3 rows: a recompile, over the limit of 1
    with pytest.warns(RuntimeWarning, match="not using torch.compile .*3 rows.*RecompileLimit"):
        x1 = sampler(x0)
    assert not sampler.compiled
    torch.testing.assert_close(x1, plain(mlp, x0, 2), rtol=1e-6, atol=1e-6)


def test_a_failing_compiler_warns_once_and_runs_the_plain_network(mlp: MLP, monkeypatch) -> None:
    monkeypatch.setattr("fmlib.sampling.compile_support", lambda device, precision: None)

    def broken(model, mode):
        def run(x, t):
            raise RuntimeError("Triton: no kernel image is available for this GPU")

        return run

    monkeypatch.setattr("fmlib.sampling.compile_network", broken)
    sampler = FastSampler(mlp, steps=2, batch_size=64, compile=True, graphs=graphs.RerunGraphs())
    x0 = torch.randn(10, 2)
    with pytest.warns(RuntimeWarning, match="not using torch.compile .*no kernel image"):
        x1 = sampler(x0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler(torch.randn(100, 2))  # a new size: recorded with the plain network, silently
    assert not sampler.compiled
    torch.testing.assert_close(x1, plain(mlp, x0, 2), rtol=1e-6, atol=1e-6)


def test_compile_support_reads_the_gpu(monkeypatch) -> None:
    """The CUDA branch of compile_support, with the GPU's answers patched in."""
    cuda = torch.device("cuda", 0)
    capability = {"value": (7, 5)}  # a T4 (Colab)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d: capability["value"])
    monkeypatch.setattr("torch.utils._triton.has_triton", lambda: True)
    assert graphs.compile_support(cuda, "fp32") is None
    assert "bf16 kernels need compute capability >= 8.0" in graphs.compile_support(cuda, "bf16")
    capability["value"] = (6, 1)  # a P100: too old for Triton
    assert "compute capability >= 7.0, got (6, 1)" in graphs.compile_support(cuda, "fp32")
    monkeypatch.setattr("torch.utils._triton.has_triton", lambda: False)
    assert "needs Triton" in graphs.compile_support(cuda, "fp32")
    assert "CUDA only" in graphs.compile_support(torch.device("cpu"), "fp32")
