"""Fast fixed-step sampling x1 = psi_1(x0): the ODE loop with the Python taken out.

Sampling a flow model solves dx/dt = u_theta(x, t) from x0 ~ N(0, I) at t = 0 to t = 1
with a fixed-step method (Lipman et al. 2023; the Flow Matching Guide recommends the
midpoint rule). With steps K and a method of s stages the cost is NFE = s K evaluations
of the network, e.g. midpoint with K = 100 steps is 200 NFE.

On a GPU a small network (the Guide's 4 x 512 MLP) is too small to keep the device busy:
each of the ~10 kernels of one evaluation is launched from Python, and the launch cost
dominates at moderate batch sizes. `FastSampler` removes it:

1. it records the whole step loop  x_{k+1} = step(u, x_k, t_k, h)  for k = 0..K-1 once
   into a CUDA graph (static input buffer x0, static output buffer x1, the K times t_k
   as device tensors), then replays it with one call per chunk of the batch;
2. optionally it lowers the matmul precision to TF32 (scoped, restored afterwards) or
   runs the network under bf16 autocast (the state x stays fp32);
3. optionally it compiles the network with torch.compile (fuses the SiLU / bias work).

The maths of a step is not repeated here: it is `fmlib.solvers.STEPS[method]`, the same
function the plain loop `fmlib.solvers.integrate` uses. On the CPU there are no launches
to save and `FastSampler` simply runs `fmlib.solvers.integrate` (bit-identical results).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from fmlib.solvers import STEPS, integrate

FIXED_METHODS = tuple(STEPS)  # ("euler", "midpoint", "rk4"): dopri5 is adaptive
STAGES = {"euler": 1, "midpoint": 2, "rk4": 4}  # field evaluations per step
PRECISIONS = ("fp32", "tf32", "bf16")
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")
DEFAULT_BATCH_SIZE = 1 << 18  # 262,144 samples per graph replay


def nfe(method: str, steps: int) -> int:
    """Number of field evaluations of a fixed-step solve: NFE = stages(method) x steps."""
    _check_method(method)
    _check_steps(steps)
    return STAGES[method] * steps


def _check_method(method: str) -> None:
    if method not in STAGES:
        raise ValueError(f"method must be one of {', '.join(STAGES)} (fixed steps), got {method!r}")


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer in [1, inf), got {steps!r}")


def _check_args(steps: int, method: str, batch_size: int, precision: str, compile: bool | str):
    _check_steps(steps)
    _check_method(method)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer in [1, inf), got {batch_size!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not (isinstance(compile, bool) or compile in COMPILE_MODES):
        modes = ", ".join(COMPILE_MODES)
        raise ValueError(f"compile must be True, False or one of {modes}, got {compile!r}")


def _model_device(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """Within the block, fp32 CUDA matmuls use TF32 if precision == "tf32"; restored after.

    TF32 keeps fp32's 8-bit exponent with a 10-bit mantissa (relative error ~1e-3 per
    product) on tensor cores. Uses torch.set_float32_matmul_precision ("high" = TF32),
    which works whichever of the legacy (`allow_tf32`) or new (`fp32_precision`) flags
    the caller set; mixing those two raises in torch >= 2.9.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for precision == "bf16", else nothing. The weight-cast cache is off:
    it must be, inside CUDA graph capture (cached casts would not be recorded)."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


def _as_field(model: Callable[[Tensor, Tensor], Tensor], precision: str):
    """The field u(x, t); under bf16 its output is cast back to the dtype of x (fp32 state)."""
    if precision != "bf16":
        return model
    return lambda x, t: model(x, t).to(x.dtype)


class FastSampler:
    """x1 = psi_1(x0) by `steps` fixed steps of `method`, as fast as the device allows.

    x_{k+1} = step(u_theta, x_k, t_k, h),  t_k = k h,  h = 1 / steps,  k = 0..steps-1,

    with step = fmlib.solvers.STEPS[method] (Euler, midpoint or RK4). On CUDA the loop is
    captured once per chunk size in a CUDA graph and replayed; chunks of `batch_size`
    rows (the last one zero-padded: samples are independent, so padding rows never
    affect the others). On the CPU it is `fmlib.solvers.integrate` itself.

    Arguments:
        model: the velocity field u_theta(x [N, d], t [N]) -> [N, d] (an nn.Module).
        steps: number of steps K >= 1 (NFE = stages x K).
        method: "euler", "midpoint" or "rk4" (dopri5 is adaptive: use integrate).
        batch_size: rows per graph replay (memory ~ batch_size x width x a few floats).
        precision: "fp32", "tf32" (CUDA matmuls in TF32) or "bf16" (autocast, fp32 state).
        compile: False, True (= "max-autotune-no-cudagraphs") or a torch.compile mode;
            CUDA only (ignored on the CPU, where the inductor needs a C++ toolchain).
        device: where to sample; default the model's device. The model is copied there
            if it lives elsewhere (the caller's model is never moved).
    """

    def __init__(
        self,
        model: nn.Module,
        steps: int = 100,
        method: str = "midpoint",
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = "fp32",
        compile: bool | str = False,
        device: torch.device | str | None = None,
    ) -> None:
        _check_args(steps, method, batch_size, precision, compile)
        self.device = torch.device(device) if device is not None else _model_device(model)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device must be available, got {self.device} without CUDA")
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if _model_device(model) != self.device:
            model = copy.deepcopy(model).to(self.device)
        self.model, self.steps, self.method = model, steps, method
        self.batch_size, self.precision = batch_size, precision
        self.backend = "cuda-graph" if self.device.type == "cuda" else "eager"
        self.compile_mode = None
        if compile and self.backend == "cuda-graph":
            self.compile_mode = "max-autotune-no-cudagraphs" if compile is True else compile
        self._graphs: dict[tuple, tuple] = {}  # (size, d, dtype) -> (graph, x_in, x_out)
        self._net = None  # the (possibly compiled) network, built at the first capture

    @property
    def nfe(self) -> int:
        """Field evaluations per sample: stages(method) x steps."""
        return nfe(self.method, self.steps)

    def sample(self, x0: Tensor) -> Tensor:
        """x1 = psi_1(x0) for x0: [N, d] (any device) -> [N, d] on self.device."""
        if not isinstance(x0, Tensor) or x0.ndim != 2 or x0.shape[0] < 1:
            shape = tuple(x0.shape) if isinstance(x0, Tensor) else type(x0).__name__
            raise ValueError(f"x0 must be a tensor of shape [N, d] with N >= 1, got {shape}")
        if not x0.is_floating_point():
            raise ValueError(f"x0 must be a floating-point tensor, got {x0.dtype}")
        x0 = x0.to(self.device)
        size = min(self.batch_size, x0.shape[0])  # rows per chunk (and per graph)
        if self.backend == "eager":
            chunks = [self._eager(chunk) for chunk in x0.split(size)]
        else:
            chunks = [self._replay(chunk, size) for chunk in x0.split(size)]
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    __call__ = sample

    @contextlib.contextmanager
    def _numerics(self) -> Iterator[None]:
        """No autograd; bf16 autocast or TF32 matmuls as asked (restored on exit)."""
        autocast = _autocast(self.device, self.precision)
        with torch.inference_mode(), autocast, matmul_precision(self.precision):
            yield

    # -- the CPU path: the plain loop of fmlib.solvers, unchanged ------------------------
    def _eager(self, x0: Tensor) -> Tensor:
        """fmlib.solvers.integrate(u, x0, 0, 1, steps, method).x on one chunk."""
        with self._numerics():
            return integrate(
                _as_field(self.model, self.precision), x0, 0.0, 1.0, self.steps, self.method
            ).x

    # -- the CUDA path: one graph per (chunk size, d, dtype), replayed --------------------
    def _loop(self, x: Tensor, times: Tensor) -> Tensor:
        """The K steps, t_k read from a device tensor (no host-to-device copy, so the loop
        can be captured), with the step functions of fmlib.solvers.integrate."""
        step, h = STEPS[self.method], 1.0 / self.steps
        net = self._net
        if self.compile_mode is not None:  # fresh contiguous t: the same guards at every step
            net = lambda x, t: self._net(x, t.contiguous())
        u = _as_field(net, self.precision)
        for k in range(self.steps):
            x = step(u, x, times[k], h)
        return x

    def _capture(self, size: int, d: int, dtype: torch.dtype) -> tuple:
        """Warm up on a side stream, then record x_out = loop(x_in) into a CUDA graph."""
        if self._net is None:
            self._net = self.model
            if self.compile_mode is not None:
                self._net = torch.compile(self.model, mode=self.compile_mode, dynamic=False)
        times = torch.linspace(0.0, 1.0, self.steps + 1, dtype=dtype, device=self.device)
        x_in = torch.randn(size, d, dtype=dtype, device=self.device)
        stream = torch.cuda.Stream(device=self.device)  # one stream: warm-up and capture
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream), self._numerics():
            for _ in range(3 if self.compile_mode else 2):  # compile + autotune happen here
                self._loop(x_in, times)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream), self._numerics():
            x_out = self._loop(x_in, times)
        return graph, x_in, x_out

    def _replay(self, x0: Tensor, size: int) -> Tensor:
        """Copy x0 into the static input (zero-padded to `size` rows), replay, copy out."""
        n, d = x0.shape
        key = (size, d, x0.dtype)
        if key not in self._graphs:
            self._graphs[key] = self._capture(size, d, x0.dtype)
        graph, x_in, x_out = self._graphs[key]
        x_in[:n].copy_(x0)
        if n < size:
            x_in[n:].zero_()
        graph.replay()
        return x_out[:n].clone()

    def clear(self) -> None:
        """Drop the captured graphs and their memory pools."""
        self._graphs.clear()


def sample(
    model: nn.Module,
    x0: Tensor,
    steps: int = 100,
    method: str = "midpoint",
    device: torch.device | str | None = None,
    fast: bool = True,
    precision: str = "fp32",
    batch_size: int = DEFAULT_BATCH_SIZE,
    compile: bool | str = False,
) -> Tensor:
    """x1 = psi_1(x0): FastSampler(...).sample(x0) if fast, else the plain loop
    fmlib.solvers.integrate(model, x0, 0, 1, steps, method).x (also "dopri5") on `device`."""
    if fast:
        sampler = FastSampler(model, steps, method, batch_size, precision, compile, device)
        return sampler.sample(x0)
    device = torch.device(device) if device is not None else _model_device(model)
    if _model_device(model) != device:
        model = copy.deepcopy(model).to(device)
    with torch.inference_mode():
        return integrate(model, x0.to(device), 0.0, 1.0, steps, method).x


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously); no-op on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_it(
    fn: Callable[[], object],
    device: torch.device | str = "cpu",
    repeats: int = 3,
    warmup: int = 1,
) -> float:
    """Median wall time of fn() in seconds: `warmup` untimed calls (allocation, graph
    capture, compilation), then `repeats` timed calls, each bracketed by synchronize so
    that asynchronous GPU work is counted (and not the previous call's)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer in [1, inf), got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer in [0, inf), got {warmup!r}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def throughput(
    fn: Callable[[Tensor], object],
    x0: Tensor,
    repeats: int = 3,
    warmup: int = 1,
) -> float:
    """Samples per second of fn(x0): N / median time (see time_it)."""
    seconds = time_it(lambda: fn(x0), x0.device, repeats, warmup)
    return x0.shape[0] / max(seconds, math.ulp(1.0))
