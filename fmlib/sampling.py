"""Fast fixed-step sampling x1 = psi_1(x0): the ODE loop with the Python taken out.

Sampling a flow model solves dx/dt = u_theta(x, t) from x0 ~ N(0, I) at t = 0 to t = 1
with a fixed-step method (Lipman et al. 2023; the Flow Matching Guide recommends the
midpoint rule). With steps K and a method of s stages the cost is NFE = s K evaluations
of the network, e.g. midpoint with K = 100 steps is 200 NFE.

On a GPU a small network (the Guide's 4 x 512 MLP) is too small to keep the device busy:
each of the ~10 kernels of one evaluation is launched from Python, and the launch cost
dominates at moderate batch sizes. `FastSampler` removes it:

1. it records the whole step loop  x_{k+1} = step(u, x_k, t_k, h)  for k = 0..K-1 once
   into a CUDA graph (`fmlib.graphs`: static input x0, static output x1, the K times t_k
   as device tensors), then replays it with one call per chunk of the batch;
2. optionally it lowers the matmul precision to TF32 or runs the Linear layers in bf16
   (`fmlib.precision`; scoped, every flag restored; the state x stays fp32);
3. optionally it compiles the network with torch.compile (fuses the SiLU / bias work),
   and says so with one warning when it cannot and runs the plain network instead.

The maths of a step is not repeated here: it is `fmlib.solvers.STEPS[method]`, the same
function the plain loop `fmlib.solvers.integrate` uses. On the CPU there are no launches
to save and `FastSampler` simply runs `fmlib.solvers.integrate` (bit-identical results),
unless a graph backend is passed (tests pass `fmlib.graphs.RerunGraphs`, which runs
every line of the graph path on the CPU).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from fmlib.checks import check_int
from fmlib.graphs import (
    CaptureError,
    CudaGraphs,
    GraphCache,
    Recording,
    compile_network,
    compile_support,
    graph_rows,
    loud_compile,
    warn_once,
    weights_signature,
)
from fmlib.precision import PRECISIONS, bf16_linears, matmul_precision
from fmlib.solvers import STEPS, integrate

FIXED_METHODS = tuple(STEPS)  # ("euler", "midpoint", "rk4"): dopri5 is adaptive
STAGES = {"euler": 1, "midpoint": 2, "rk4": 4}  # field evaluations per step
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")
DEFAULT_BATCH_SIZE = 1 << 18  # 262,144 samples per graph replay
MAX_GRAPHS = 4  # recordings kept per sampler (least recently used dropped)


def nfe(method: str, steps: int) -> int:
    """Number of field evaluations of a fixed-step solve: NFE = stages(method) x steps."""
    _check_method(method)
    _check_steps(steps)
    return STAGES[method] * steps


def _check_method(method: str) -> None:
    if method not in STAGES:
        raise ValueError(f"method must be one of {', '.join(STAGES)} (fixed steps), got {method!r}")


def _check_steps(steps: int) -> None:
    check_int("steps", steps)


def _check_args(steps: int, method: str, batch_size: int, precision: str, compile: bool | str):
    _check_steps(steps)
    _check_method(method)
    check_int("batch_size", batch_size)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not (isinstance(compile, bool) or compile in COMPILE_MODES):
        modes = ", ".join(COMPILE_MODES)
        raise ValueError(f"compile must be True, False or one of {modes}, got {compile!r}")


def _model_device(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


class FastSampler:
    """x1 = psi_1(x0) by `steps` fixed steps of `method`, as fast as the device allows.

    x_{k+1} = step(u_theta, x_k, t_k, h),  t_k = k h,  h = 1 / steps,  k = 0..steps-1,

    with step = fmlib.solvers.STEPS[method] (Euler, midpoint or RK4). With a graph backend
    (CUDA: always) the batch is cut into chunks of `batch_size` rows; a chunk of n rows is
    zero-padded to graph_rows(n) rows (n rounded up to its 4 leading bits, at most
    batch_size: samples are independent, so padding rows never affect the others) and
    replayed from the loop recorded for that size; the `max_graphs` most recently used
    recordings are kept. On the CPU it is `fmlib.solvers.integrate` itself.

    The model is shared, not copied, when it already lives on `device`: a graph reads
    the parameters it recorded, so in-place updates (an optimizer step, load_state_dict)
    are seen, and a replaced or converted parameter (new storage or dtype) makes the
    sampler record again. When the model lives elsewhere the sampler samples with its
    own copy, moved to `device`: later changes to the caller's model are not seen.

    Arguments:
        model: the velocity field u_theta(x [N, d], t [N]) -> [N, d] (an nn.Module).
        steps: number of steps K >= 1 (NFE = stages x K).
        method: "euler", "midpoint" or "rk4" (dopri5 is adaptive: use integrate).
        batch_size: rows per graph replay (memory ~ batch_size x width x a few floats).
        precision: "fp32", "tf32" (fp32 matmuls in TF32) or "bf16" (the Linear layers in
            bf16; input features, time embedding and the state x in fp32).
        compile: False, True (= "max-autotune-no-cudagraphs") or a torch.compile mode.
            Used on CUDA with Triton (and capability >= 8.0 for bf16); otherwise, or if
            the first compiled run fails or hits the recompile limit, one warning and the
            plain network. `compiled` says what ran.
        device: where to sample; default the model's device.
        graphs: the graph backend (default fmlib.graphs.CudaGraphs on CUDA, none on the
            CPU); tests pass fmlib.graphs.RerunGraphs().
        max_graphs: recordings kept (each holds its own memory pool), >= 1.
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
        *,
        graphs: object | None = None,
        max_graphs: int = MAX_GRAPHS,
    ) -> None:
        _check_args(steps, method, batch_size, precision, compile)
        check_int("max_graphs", max_graphs)
        self.device = torch.device(device) if device is not None else _model_device(model)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device must be available, got {self.device} without CUDA")
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if _model_device(model) != self.device:
            model = copy.deepcopy(model).to(self.device)
        self.model, self.steps, self.method = model, steps, method
        self.batch_size, self.precision = batch_size, precision
        # bf16: a view of the model with bf16 Linear layers (same parameters)
        self._network = bf16_linears(model) if precision == "bf16" else model
        if graphs is None and self.device.type == "cuda":
            graphs = CudaGraphs(self.device)
        self.graphs = graphs
        self.backend = graphs.name if graphs is not None else "eager"
        self.compile_mode = None  # the torch.compile mode in use; None = plain network
        self._compiled_network = None  # built at the first recording
        if compile:
            self.compile_mode = "max-autotune-no-cudagraphs" if compile is True else compile
            reason = compile_support(self.device, precision)
            if reason is not None or self.backend == "eager":
                self._drop_compile(reason or "no graph backend: the plain loop runs eagerly")
        self._graphs = GraphCache(max_graphs)  # (rows, d, dtype) -> (x_in, Recording)
        self._weights = weights_signature(self.model)

    @property
    def nfe(self) -> int:
        """Field evaluations per sample: stages(method) x steps."""
        return nfe(self.method, self.steps)

    @property
    def compiled(self) -> bool:
        """Whether the network runs compiled (False after a fallback to the plain one)."""
        return self.compile_mode is not None

    def sample(self, x0: Tensor) -> Tensor:
        """x1 = psi_1(x0) for x0: [N, d] (any device) -> [N, d] on self.device."""
        if not isinstance(x0, Tensor) or x0.ndim != 2 or x0.shape[0] < 1:
            shape = tuple(x0.shape) if isinstance(x0, Tensor) else type(x0).__name__
            raise ValueError(f"x0 must be a tensor of shape [N, d] with N >= 1, got {shape}")
        if not x0.is_floating_point():
            raise ValueError(f"x0 must be a floating-point tensor, got {x0.dtype}")
        if _model_device(self.model) != self.device:
            raise ValueError(
                f"model must stay on the sampler's device {self.device}, "
                f"got {_model_device(self.model)} (make a new FastSampler)"
            )
        x0 = x0.to(self.device)
        chunks = [self._chunk(chunk) for chunk in x0.split(self.batch_size)]
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    __call__ = sample

    def _chunk(self, x0: Tensor) -> Tensor:
        return self._eager(x0) if self.backend == "eager" else self._replay(x0)

    @contextlib.contextmanager
    def _numerics(self) -> Iterator[None]:
        """No autograd; TF32 matmuls as asked (every precision flag restored on exit)."""
        with torch.inference_mode(), matmul_precision(self.precision):
            yield

    def _field(self, network: Callable[[Tensor, Tensor], Tensor]):
        """u(x, t); under bf16 the last Linear's bf16 output is cast back to x's dtype."""
        if self.precision != "bf16":
            return network
        return lambda x, t: network(x, t).to(x.dtype)

    # -- the CPU path: the plain loop of fmlib.solvers, unchanged ------------------------
    def _eager(self, x0: Tensor) -> Tensor:
        """fmlib.solvers.integrate(u, x0, 0, 1, steps, method).x on one chunk."""
        with self._numerics():
            return integrate(self._field(self._network), x0, 0.0, 1.0, self.steps, self.method).x

    # -- the graph path: one recording per (rows, d, dtype), replayed ---------------------
    def _loop(self, x: Tensor, times: Tensor) -> Tensor:
        """The K steps, t_k read from a device tensor (no host-to-device copy, so the loop
        can be recorded), with the step functions of fmlib.solvers.integrate."""
        step, h = STEPS[self.method], 1.0 / self.steps
        network = self._network
        if self.compiled:  # a fresh contiguous t: the same guards at every step
            network = lambda x, t: self._compiled_network(x, t.contiguous())
        u = self._field(network)
        for k in range(self.steps):
            x = step(u, x, times[k], h)
        return x

    def _replay(self, x0: Tensor) -> Tensor:
        """Copy x0 into the static input (zero-padded), replay, copy the rows out."""
        n, d = x0.shape
        if weights_signature(self.model) != self._weights:  # replaced or converted
            self._graphs.clear()
            self._weights = weights_signature(self.model)
        key = (graph_rows(n, self.batch_size), d, x0.dtype)
        entry = self._graphs.get(key) or self._record(key, x0)
        if entry is None:  # the field cannot be recorded: the plain loop
            return self._eager(x0)
        x_in, recording = entry
        # The static input is an inference tensor: written only inside inference mode,
        # so that calls inside and outside torch.inference_mode() both work.
        with torch.inference_mode():
            x_in[:n].copy_(x0)
            x_in[n:].zero_()
        recording.replay()
        return recording.output[:n].clone()  # the next replay overwrites the output

    def _record(self, key: tuple, x0: Tensor) -> tuple[Tensor, Recording] | None:
        """Record the loop for `key` from the static input, first holding this chunk (the
        warm-up draws no random numbers: the global RNG is the caller's)."""
        rows, d, dtype = key
        with torch.inference_mode():
            x_in = torch.zeros(rows, d, dtype=dtype, device=self.device)
            x_in[: len(x0)].copy_(x0)
            times = torch.linspace(0.0, 1.0, self.steps + 1, dtype=dtype, device=self.device)

        def run() -> Tensor:
            with self._numerics():
                return self._loop(x_in, times)

        if self.compiled:
            self._first_compiled_run(run, rows)
        try:
            recording = self.graphs.capture(run)
        except CaptureError as error:
            warn_once(
                self,
                f"FastSampler: the field cannot be recorded in a graph ({error}); "
                "sampling with the plain loop instead (same results, slower)",
            )
            self.backend = "eager"
            self._graphs.clear()
            return None
        self._graphs.put(key, (x_in, recording))
        return x_in, recording

    def _first_compiled_run(self, run: Callable[[], Tensor], rows: int) -> None:
        """Compile (or recompile) for this shape outside the recording, loudly; on any
        failure drop torch.compile for this sampler with one warning."""
        if self._compiled_network is None:
            self._compiled_network = compile_network(self._network, self.compile_mode)
        try:
            with loud_compile():
                run()
        except Exception as error:  # compile errors have many types (Triton, inductor, ...)
            what = (str(error).strip().splitlines() or [""])[0][:200]
            self._drop_compile(f"its run at {rows} rows failed: {type(error).__name__}: {what}")

    def _drop_compile(self, reason: str) -> None:
        warn_once(self, f"FastSampler: not using torch.compile ({reason}); plain network")
        self.compile_mode = None

    def clear(self) -> None:
        """Drop the recorded graphs and their memory pools."""
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
    check_int("repeats", repeats)
    check_int("warmup", warmup, 0)
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
