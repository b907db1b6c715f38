"""FastSampler's graph path on the CPU, through fmlib.graphs.RerunGraphs.

RerunGraphs records by running the loop once and replays by running it again into the
recorded output tensor, so every line of the sampler around a CUDA graph runs here:
static buffers, padding, the bounded cache and its keys, re-recording when weights are
replaced, the fallback when a field cannot be recorded. Only CudaGraphs' few torch.cuda
calls are left to benchmarks/gpu_check.py.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from fmlib.graphs import CaptureError, RerunGraphs, graph_rows
from fmlib.models import MLP
from fmlib.repro import one_thread
from fmlib.sampling import FastSampler
from fmlib.solvers import integrate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread (a busy 2-core machine makes a parallel region wait)."""
    with one_thread():
        yield


@pytest.fixture
def mlp() -> MLP:
    torch.manual_seed(0)
    return MLP(hidden=16, layers=2, x_features=8).eval()


def gpu_check():
    """benchmarks/gpu_check.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def x0s(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def plain(model: nn.Module, x0: torch.Tensor, steps: int = 3) -> torch.Tensor:
    with torch.inference_mode():
        return integrate(model, x0, 0.0, 1.0, steps, "midpoint").x


def test_graph_rows_keep_four_leading_bits() -> None:
    sizes = (1, 7, 8, 9, 17, 57, 64, 65, 100, 1000, 10_000, 100_000)
    rows = [graph_rows(n, 1 << 20) for n in sizes]
    assert rows == [1, 7, 8, 9, 18, 60, 64, 72, 104, 1024, 10_240, 106_496]
    assert all(n <= r < n * 9 / 8 for n, r in zip(sizes, rows, strict=True))
    assert graph_rows(100, 64) == 64 and graph_rows(57, 58) == 58  # at most batch_size
    assert len({graph_rows(n, 1 << 20) for n in range(1025, 2049)}) == 8  # 8 per doubling


def test_graph_path_pads_chunks_and_equals_the_plain_loop(mlp: MLP) -> None:
    graphs = RerunGraphs()
    sampler = FastSampler(mlp, steps=3, batch_size=100, graphs=graphs)
    assert sampler.backend == "rerun"
    x0 = x0s(257)  # chunks of 100, 100 and 57 rows; the last padded to 60
    x1 = sampler(x0)
    expected = torch.cat([plain(mlp, chunk) for chunk in x0.split(100)])
    assert x1.shape == x0.shape
    torch.testing.assert_close(x1, expected, rtol=1e-6, atol=1e-6)  # BLAS blocking may differ
    assert sorted(sampler._graphs.keys()) == [(60, 2, torch.float32), (100, 2, torch.float32)]
    assert graphs.captures == 2
    x_in = sampler._graphs.get((60, 2, torch.float32))[0]
    assert torch.equal(x_in[:57], x0[200:]) and not x_in[57:].any()  # padding rows are 0
    sampler(x0[:3] + 1e6)  # another graph size (3 rows)
    sampler(x0[:60])  # fills the 60-row input completely
    sampler(x0[:58])  # ... then the last 2 rows must be zeros again, not the old rows
    assert not sampler._graphs.get((60, 2, torch.float32))[0][58:].any()


def test_cache_of_recordings_is_bounded(mlp: MLP) -> None:
    sizes = list(range(1, 300, 11))  # a sweep of 28 sizes, chunks of at most 256 rows
    chunks = [len(c) for n in sizes for c in torch.empty(n).split(256)]
    rows = {graph_rows(c, 256) for c in chunks}
    for max_graphs in (3, 100):
        graphs = RerunGraphs()
        sampler = FastSampler(mlp, steps=1, batch_size=256, graphs=graphs, max_graphs=max_graphs)
        for n in sizes:
            x0 = x0s(n, seed=n)
            torch.testing.assert_close(sampler(x0), plain(mlp, x0, 1), rtol=1e-6, atol=1e-6)
            assert len(sampler._graphs.keys()) <= max_graphs
        assert graphs.captures == len(rows)  # each graph size recorded once so far
        sampler(x0s(1))  # the first size again: recorded again only if it was dropped
        assert graphs.captures == len(rows) + (max_graphs < len(rows))
    assert {key[0] for key in sampler._graphs.keys()} == rows


def test_a_returned_tensor_does_not_change_after_the_next_call(mlp: MLP) -> None:
    sampler = FastSampler(mlp, steps=2, batch_size=64, graphs=RerunGraphs())
    first = sampler(x0s(64, seed=1))
    kept = first.clone()
    second = sampler(x0s(64, seed=2))  # the same recording, replayed on other input
    assert torch.equal(first, kept) and not torch.equal(first, second)


@pytest.mark.parametrize("first_inside", [True, False])
def test_calls_inside_and_outside_inference_mode(mlp: MLP, first_inside: bool) -> None:
    sampler = FastSampler(mlp, steps=2, batch_size=64, graphs=RerunGraphs())
    x0 = x0s(50)
    results = []
    for inside in (first_inside, not first_inside, first_inside):
        with torch.inference_mode(inside):
            results.append(sampler(x0))
        assert results[-1].is_inference() is inside  # like any op in that mode
    assert all(torch.equal(r, results[0]) for r in results)
    torch.testing.assert_close(results[0], plain(mlp, x0, 2), rtol=1e-6, atol=1e-6)
    (results[1] if first_inside else results[0]).sum()  # a normal tensor outside


def test_recording_draws_no_random_numbers(mlp: MLP) -> None:
    """The static input starts as the first chunk, not torch.randn: the caller's seeded
    global generator (torch.cuda's on a GPU) is left where it was."""
    sampler = FastSampler(mlp, steps=2, batch_size=64, graphs=RerunGraphs())
    x0 = x0s(40)
    state = torch.random.get_rng_state()
    sampler(x0)  # records a 64-row graph
    sampler(x0[:7])  # and an 8-row one
    assert torch.equal(torch.random.get_rng_state(), state)


def test_replaced_or_converted_weights_are_recorded_again(mlp: MLP) -> None:
    graphs = RerunGraphs()
    sampler = FastSampler(mlp, steps=2, batch_size=64, graphs=graphs)
    x0 = x0s(64)
    sampler(x0)
    with torch.no_grad():  # in place (an optimizer step): the recording reads it
        mlp.net[0].weight.mul_(0.5)
    torch.testing.assert_close(sampler(x0), plain(mlp, x0, 2), rtol=1e-6, atol=1e-6)
    mlp.load_state_dict(MLP(hidden=16, layers=2, x_features=8).state_dict())  # in place
    sampler(x0)
    assert graphs.captures == 1
    mlp.net[0].weight.data = mlp.net[0].weight.data.clone()  # new storage
    sampler(x0)
    assert graphs.captures == 2
    mlp.double().float()  # converted there and back: new storage again
    torch.testing.assert_close(sampler(x0), plain(mlp, x0, 2), rtol=1e-6, atol=1e-6)
    assert graphs.captures == 3


def test_model_moved_away_raises(mlp: MLP) -> None:
    sampler = FastSampler(mlp, steps=2, graphs=RerunGraphs())
    mlp.to("meta")
    with pytest.raises(ValueError, match="model must stay on the sampler's device cpu"):
        sampler(x0s(4))


class RefusingGraphs(RerunGraphs):
    """A backend that cannot record this field (as CudaGraphs refuses a field that
    synchronises with the host during its warm-up)."""

    def capture(self, fn):
        self.captures += 1
        raise CaptureError("the warm-up synchronises with the host: .item()")


def test_a_field_that_cannot_be_recorded_runs_the_plain_loop(mlp: MLP) -> None:
    graphs = RefusingGraphs()
    sampler = FastSampler(mlp, steps=3, batch_size=64, graphs=graphs)
    x0 = x0s(100)
    with pytest.warns(RuntimeWarning, match="cannot be recorded in a graph .* plain loop"):
        x1 = sampler(x0)
    assert sampler.backend == "eager"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning, then silence
        again = sampler(x0)
    assert graphs.captures == 1 and torch.equal(x1, again)
    assert torch.equal(x1, torch.cat([plain(mlp, c, 3) for c in x0.split(64)]))


def test_the_graph_path_has_no_host_synchronisation(mlp: MLP) -> None:
    """On the "meta" device tensors have shapes but no values: any operation that needs
    a value on the host (.item(), bool(), printing, a copy to the CPU) raises. The whole
    graph path (static buffers, padding, the step loop, the copy out) runs there."""
    model = mlp.to("meta")
    for method in ("euler", "midpoint", "rk4"):
        sampler = FastSampler(model, steps=3, method=method, batch_size=64, graphs=RerunGraphs())
        assert sampler.device.type == "meta"
        x1 = sampler(torch.empty(100, 2, device="meta"))
        assert x1.shape == (100, 2) and x1.device.type == "meta"

    class Syncing(nn.Module):  # the same run catches a field that syncs
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x, t):
            return self.inner(x, t) * float(t[0])

    sampler = FastSampler(Syncing(), steps=3, batch_size=64, graphs=RerunGraphs())
    with pytest.raises((RuntimeError, NotImplementedError)):
        sampler(torch.empty(100, 2, device="meta"))


def test_compile_on_the_cpu_warns_once_and_runs_the_plain_network(mlp: MLP) -> None:
    with pytest.warns(RuntimeWarning, match="not using torch.compile .*CUDA only"):
        sampler = FastSampler(mlp, steps=2, compile=True)
    assert not sampler.compiled and sampler.compile_mode is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x1 = sampler(x0s(10))
    assert torch.equal(x1, plain(mlp, x0s(10), 2))


def test_max_graphs_must_be_positive(mlp: MLP) -> None:
    with pytest.raises(ValueError, match="max_graphs must be an integer >= 1, got 0"):
        FastSampler(mlp, max_graphs=0)


# -- the same on a GPU, with real CUDA graphs (skipped without one) ----------------------
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: benchmarks/gpu_check.py runs these"
)


@needs_cuda
def test_cuda_recording_keeps_the_rng_and_survives_inference_mode(mlp: MLP) -> None:
    model = mlp.to("cuda")
    sampler = FastSampler(model, steps=3, batch_size=256)
    assert sampler.backend == "cuda-graph"
    x0 = x0s(200).cuda()
    state = torch.cuda.get_rng_state()
    with torch.inference_mode():
        inside = sampler(x0)  # records inside inference mode
    outside = sampler(x0)  # replays outside it
    assert torch.equal(torch.cuda.get_rng_state(), state)
    assert torch.equal(inside, outside) and not outside.is_inference()
    torch.testing.assert_close(outside, plain(model, x0, 3), rtol=1e-4, atol=1e-5)


@needs_cuda
def test_cuda_field_that_syncs_runs_the_plain_loop_and_cuda_stays_usable(mlp: MLP) -> None:
    model = mlp.to("cuda")
    x0 = x0s(200).cuda()
    syncing = FastSampler(gpu_check().HostSyncing(model), steps=3, batch_size=256)
    with pytest.warns(RuntimeWarning, match="cannot be recorded in a graph"):
        x1 = syncing(x0)
    assert syncing.backend == "eager"
    recorded = FastSampler(model, steps=3, batch_size=256)(x0)  # a new recording works
    torch.testing.assert_close(x1, recorded, rtol=1e-4, atol=1e-5)
