"""fmlib.sampling: the fast sampler equals the plain loop, and both equal closed forms.

A linear field u(x, t) = A x makes every fixed-step method a closed form: one step
multiplies x by the method's stability polynomial R(hA) (Euler: I + hA; midpoint:
I + hA + (hA)^2/2; RK4: the degree-4 Taylor polynomial of exp(hA)), so K steps give
x_K = R(hA)^K x_0, and the exact flow is x_1 = exp(A) x_0.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fmlib import sampling
from fmlib.models import MLP
from fmlib.repro import one_thread
from fmlib.sampling import FastSampler, matmul_precision, nfe, sample, throughput, time_it
from fmlib.solvers import integrate

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(
    not CUDA, reason="no CUDA device: the CUDA-graph path cannot run (CPU fallback tested)"
)
A = torch.tensor([[-0.5, 1.0], [-1.0, -0.5]], dtype=torch.float64)  # a damped rotation
TAYLOR_ORDER = {"euler": 1, "midpoint": 2, "rk4": 4}


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread (a busy 2-core machine makes a parallel region wait)."""
    with one_thread():
        yield


class LinearField(nn.Module):
    """u(x, t) = A x (time-independent), as an nn.Linear without bias."""

    def __init__(self, a: torch.Tensor = A, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2, bias=False, dtype=dtype)
        with torch.no_grad():
            self.linear.weight.copy_(a)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.shape == x.shape[:1]  # solvers call fields with t: [N]
        return self.linear(x)


def stability_polynomial(method: str, h: float) -> torch.Tensor:
    """R(hA) = sum_{j <= order} (hA)^j / j!  (the one-step map of the method on u = A x)."""
    z, term, total = h * A, torch.eye(2, dtype=A.dtype), torch.eye(2, dtype=A.dtype)
    for j in range(1, TAYLOR_ORDER[method] + 1):
        term = term @ z / j
        total = total + term
    return total


@pytest.fixture(scope="module")
def mlp() -> MLP:
    torch.manual_seed(0)
    return MLP(hidden=32, layers=2).eval()


@pytest.fixture(scope="module")
def x0() -> torch.Tensor:
    return torch.randn(257, 2, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_linear_field_matches_stability_polynomial(method: str, x0: torch.Tensor) -> None:
    steps = 7
    expected = (
        x0.double() @ torch.linalg.matrix_power(stability_polynomial(method, 1 / steps), steps).T
    )
    x1 = FastSampler(LinearField(), steps=steps, method=method).sample(x0.double())
    torch.testing.assert_close(x1, expected, rtol=1e-12, atol=1e-12)


def test_rk4_with_many_steps_reaches_the_exact_flow(x0: torch.Tensor) -> None:
    exact = x0.double() @ torch.linalg.matrix_exp(A).T
    x1 = sample(LinearField(), x0.double(), steps=50, method="rk4")
    torch.testing.assert_close(x1, exact, rtol=0, atol=1e-8)  # global error O(h^4) ~ 5e-9


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_cpu_fallback_is_bit_identical_to_integrate(method: str, mlp: MLP, x0) -> None:
    sampler = FastSampler(mlp, steps=5, method=method)
    assert sampler.backend == "eager" and sampler.device.type == "cpu"
    x1 = sampler.sample(x0)
    assert torch.equal(x1, integrate(mlp, x0, 0.0, 1.0, 5, method).x)
    assert torch.equal(sample(mlp, x0, steps=5, method=method, fast=False), x1)


def test_chunks_are_solved_independently(mlp: MLP, x0: torch.Tensor) -> None:
    x1 = FastSampler(mlp, steps=4, method="midpoint", batch_size=100).sample(x0)
    chunks = [integrate(mlp, c, steps=4, method="midpoint").x for c in x0.split(100)]
    assert x1.shape == x0.shape
    assert torch.equal(x1, torch.cat(chunks))
    torch.testing.assert_close(x1, integrate(mlp, x0, steps=4).x, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_keeps_fp32_state_and_is_close(x0: torch.Tensor) -> None:
    field = LinearField(dtype=torch.float32)
    steps = 10
    poly = torch.linalg.matrix_power(stability_polynomial("midpoint", 1 / steps), steps)
    expected = (x0.double() @ poly.T).float()
    x1 = FastSampler(field, steps=steps, precision="bf16").sample(x0)
    assert x1.dtype == torch.float32
    error = (x1 - expected).abs().max().item()
    assert 1e-5 < error < 5e-2  # bf16 matmuls: ~3 significant digits, not fp32 exact


def test_nfe_counts_match_integrate(mlp: MLP, x0: torch.Tensor) -> None:
    assert nfe("midpoint", 100) == 200
    for method in ("euler", "midpoint", "rk4"):
        counted = integrate(mlp, x0[:3], steps=3, method=method).nfe
        assert FastSampler(mlp, steps=3, method=method).nfe == counted == nfe(method, 3)


def test_dopri5_through_the_plain_loop(x0: torch.Tensor) -> None:
    exact = x0.double() @ torch.linalg.matrix_exp(A).T
    x1 = sample(LinearField(), x0.double(), method="dopri5", fast=False)
    torch.testing.assert_close(x1, exact, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be an integer >= 1, got 0"),
        ({"steps": 2.5}, "steps must be"),
        ({"method": "dopri5"}, "method must be one of euler, midpoint, rk4"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"precision": "fp16"}, "precision must be one of fp32, tf32, bf16, got 'fp16'"),
        ({"compile": "fastest"}, "compile must be True, False or one of"),
    ],
)
def test_bad_arguments_raise(mlp: MLP, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FastSampler(mlp, **kwargs)
    if "method" in kwargs or "steps" in kwargs:
        with pytest.raises(ValueError, match=message.split(" must")[0]):
            nfe(kwargs.get("method", "midpoint"), kwargs.get("steps", 10))


def test_bad_inputs_raise(mlp: MLP) -> None:
    sampler = FastSampler(mlp, steps=2)
    for bad in (torch.zeros(5), torch.zeros(0, 2), torch.zeros(3, 2, dtype=torch.long)):
        with pytest.raises(ValueError, match="x0 must be"):
            sampler.sample(bad)
    with pytest.raises(ValueError, match="precision must be one of"):
        with matmul_precision("fp64"):
            pass
    with pytest.raises(ValueError, match="repeats must be"):
        time_it(lambda: None, repeats=0)


@pytest.mark.skipif(CUDA, reason="checks the error raised when CUDA is absent")
def test_cuda_device_without_cuda_raises(mlp: MLP) -> None:
    with pytest.raises(ValueError, match="device must be available"):
        FastSampler(mlp, device="cuda")


def test_matmul_precision_is_scoped_and_restored() -> None:
    before = torch.get_float32_matmul_precision()
    with matmul_precision("tf32"):
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == before
    with pytest.raises(RuntimeError), matmul_precision("tf32"):
        raise RuntimeError("boom")
    assert torch.get_float32_matmul_precision() == before


class FakeClock:
    """perf_counter for sampling.time_it: each call of `work` takes the next duration."""

    def __init__(self) -> None:
        self.now, self.durations = 0.0, iter([0.3, 0.1, 0.2, 0.5, 0.4])

    def perf_counter(self) -> float:
        return self.now

    def work(self, *_) -> None:
        self.now += next(self.durations)


def test_time_it_and_throughput_use_the_median_of_the_timed_calls(monkeypatch) -> None:
    # A fake clock, not sleeps: a wall-clock bound would fail on a busy machine.
    clock = FakeClock()
    monkeypatch.setattr(sampling.time, "perf_counter", clock.perf_counter)
    seconds = time_it(clock.work, repeats=3, warmup=2)  # timed: 0.2, 0.5, 0.4
    assert seconds == pytest.approx(0.4)
    clock = FakeClock()
    monkeypatch.setattr(sampling.time, "perf_counter", clock.perf_counter)
    rate = throughput(clock.work, torch.zeros(1000, 2), repeats=1, warmup=0)  # timed: 0.3
    assert rate == pytest.approx(1000 / 0.3)


# -- the CUDA-graph path (skipped without a GPU) -----------------------------------------
@needs_cuda
@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_cuda_graph_matches_the_plain_loop(method: str, mlp: MLP, x0: torch.Tensor) -> None:
    model, x0c = mlp.to("cuda"), x0.to("cuda")
    sampler = FastSampler(model, steps=20, method=method, batch_size=100)
    assert sampler.backend == "cuda-graph"
    with matmul_precision("fp32"):
        reference = integrate(model, x0c, steps=20, method=method).x
    first, second = sampler.sample(x0c), sampler.sample(x0c)  # capture, then replay
    assert torch.equal(first, second)
    torch.testing.assert_close(first, reference, rtol=1e-5, atol=1e-5)
    mlp.to("cpu")


@needs_cuda
@pytest.mark.parametrize(("precision", "tol"), [("tf32", 2e-2), ("bf16", 1e-1)])
def test_cuda_low_precision_is_close(precision: str, tol: float, mlp: MLP, x0) -> None:
    before = torch.get_float32_matmul_precision()
    reference = integrate(mlp, x0, steps=10).x
    x1 = FastSampler(mlp, steps=10, precision=precision, device="cuda").sample(x0)
    assert x1.dtype == torch.float32 and x1.device.type == "cuda"
    assert (x1.cpu() - reference).abs().max().item() < tol
    assert torch.get_float32_matmul_precision() == before
    assert next(mlp.parameters()).device.type == "cpu"  # the caller's model is not moved


@needs_cuda
def test_cuda_linear_field_graph_is_the_closed_form(x0: torch.Tensor) -> None:
    steps = 8
    poly = torch.linalg.matrix_power(stability_polynomial("rk4", 1 / steps), steps)
    x1 = FastSampler(LinearField(), steps, "rk4", batch_size=64, device="cuda").sample(x0.double())
    torch.testing.assert_close(x1.cpu(), x0.double() @ poly.T, rtol=1e-12, atol=1e-12)
    assert not math.isnan(x1.sum().item())
