"""Record a computation once, replay it many times: CUDA graphs, and a CPU stand-in.

A CUDA graph records the kernels a function launches and relaunches them all with one
call (PyTorch notes, "CUDA Graphs"). What that demands of the function:
- static memory: the replay reads the input tensor the capture read and overwrites the
  output tensor the capture allocated, so callers copy inputs in and results out;
- no host synchronisation (.item(), bool(tensor), printing, a device-to-host copy): it
  is illegal during capture. The warm-up runs with such syncs turned into errors, so a
  field that syncs is refused with `CaptureError` before capture begins, and the CUDA
  context stays usable;
- fixed parameters: the graph reads the parameter storage it saw; if a parameter is
  replaced (new storage) or changes dtype, the graph must be captured again
  (`weights_signature` tells when).

A backend is any object with `capture(fn) -> Recording`: `CudaGraphs` on a GPU;
`RerunGraphs`, the CPU stand-in (capture runs fn once, replay runs it again into the
same output tensor), lets every line of the sampler around the graph run in tests.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn


class CaptureError(RuntimeError):
    """The function cannot be recorded into a graph (e.g. it synchronises with the host)."""


@dataclass
class Recording:
    """A recorded function: replay() recomputes it from its static input into `output`."""

    output: Tensor
    replay: Callable[[], None]


class CudaGraphs:
    """CUDA graphs: warm up on a side stream (syncs are errors), then record one call."""

    name = "cuda-graph"

    def __init__(self, device: torch.device, warmup: int = 2) -> None:
        self.device, self.warmup = device, warmup

    def capture(self, fn: Callable[[], Tensor]) -> Recording:
        stream = torch.cuda.Stream(device=self.device)  # one stream: warm-up and capture
        stream.wait_stream(torch.cuda.current_stream(self.device))
        try:
            with torch.cuda.stream(stream), _syncs_are_errors():
                for _ in range(self.warmup):  # allocator, cuBLAS handles, autotuning
                    fn()
        except RuntimeError as error:  # only a sync is a capture problem; others are bugs
            if "synchroniz" not in str(error):
                raise
            raise CaptureError(f"the field synchronises with the host: {error}") from error
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=stream):
                output = fn()
        except RuntimeError as error:
            raise CaptureError(f"capture failed: {error}") from error
        return Recording(output, graph.replay)


@contextlib.contextmanager
def _syncs_are_errors() -> Iterator[None]:
    """torch.cuda.set_sync_debug_mode("error") within the block, then the old mode."""
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(old)


class RerunGraphs:
    """The CPU stand-in: capture runs fn once; replay runs it again and copies the result
    into the captured output (as a CUDA graph overwrites its static output).

    `captures` counts the captures (tests use it to see when the sampler re-records)."""

    name = "rerun"

    def __init__(self) -> None:
        self.captures = 0

    def capture(self, fn: Callable[[], Tensor]) -> Recording:
        self.captures += 1
        output = fn()

        def replay() -> None:
            with torch.inference_mode():  # the output was made in inference mode
                output.copy_(fn())

        return Recording(output, replay)


def graph_rows(n: int, batch_size: int) -> int:
    """Rows of the graph that serves a chunk of n rows: n rounded up to its 4 leading
    bits (8, 9, ..., 15 times a power of two), at most batch_size. Padding wastes under
    1/8 of the work, and a sweep over n meets at most 8 graph sizes per doubling of n
    (GraphCache keeps only the few most recent)."""
    unit = 1 << max(n.bit_length() - 4, 0)
    return min(batch_size, -(-n // unit) * unit)


class GraphCache:
    """At most `max_graphs` recordings, the least recently used dropped first (its memory
    pool is freed with it)."""

    def __init__(self, max_graphs: int) -> None:
        self.max_graphs = max_graphs
        self._items: OrderedDict[tuple, object] = OrderedDict()

    def get(self, key: tuple) -> object | None:
        if key in self._items:
            self._items.move_to_end(key)
        return self._items.get(key)

    def put(self, key: tuple, value: object) -> None:
        self._items[key] = value
        while len(self._items) > self.max_graphs:
            self._items.popitem(last=False)

    def keys(self) -> list[tuple]:
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()


def weights_signature(model: nn.Module) -> tuple:
    """(storage address, dtype, device) of every parameter and buffer: changes when one is
    replaced or converted (a graph would still read the old storage), not when it is
    updated in place (a graph reads the new values)."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    return tuple((t.data_ptr(), t.dtype, t.device) for t in tensors)


# -- torch.compile: when it can run, and making its failures loud ------------------------
def compile_support(device: torch.device, precision: str) -> str | None:
    """Why torch.compile cannot be used here, or None when it can."""
    if device.type != "cuda":
        return f"torch.compile is used on CUDA only (device {device})"
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python build"
    from torch.utils._triton import has_triton

    if not has_triton():
        return "torch.compile on CUDA needs Triton, which is not installed"
    capability = torch.cuda.get_device_capability(device)
    if capability < (7, 0):
        return f"Triton needs a GPU of compute capability >= 7.0, got {capability}"
    if precision == "bf16" and capability < (8, 0):
        return f"bf16 kernels need compute capability >= 8.0, got {capability}"
    return None


def compile_network(model: nn.Module, mode: str) -> nn.Module:
    """torch.compile with static shapes: one compiled graph per chunk size."""
    return torch.compile(model, mode=mode, dynamic=False)


@contextlib.contextmanager
def loud_compile() -> Iterator[None]:
    """Within the block, torch.compile raises instead of silently running eagerly: on a
    compile error (suppress_errors) and when it hits its recompile limit."""
    import torch._dynamo

    with torch._dynamo.config.patch(suppress_errors=False, fail_on_recompile_limit_hit=True):
        yield


def warn_once(owner: object, message: str) -> None:
    """warnings.warn(message) the first time `owner` says it (one warning per cause)."""
    said = owner.__dict__.setdefault("_warned", set())
    if message not in said:
        said.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
