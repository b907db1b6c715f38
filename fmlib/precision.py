"""Reduced-precision arithmetic for sampling: TF32 matmuls and bf16 layers, scoped.

- TF32 keeps fp32's 8-bit exponent with a 10-bit mantissa (relative error ~1e-3 per
  product) on tensor cores; the state and every non-matmul op stay fp32.
- bf16 (8-bit mantissa, relative error ~4e-3) runs only the Linear layers: the input
  features (Fourier features of x, the time embedding) are computed in fp32 first,
  because a bf16 angle B x of size 10 is off by ~0.04 rad before cos and sin see it.

PyTorch (>= 2.9) keeps TF32 in two sets of flags that must agree: the legacy global
`torch.set_float32_matmul_precision` ("highest" / "high" / "medium"; the legacy
`torch.backends.cuda.matmul.allow_tf32 = True` sets it to "high"), and one
`fp32_precision` flag per backend and op ("ieee", "tf32", "bf16" or "none" = inherit from
the parent: generic.all -> cuda.all -> cuda.matmul). After a caller sets only the new
flag, the legacy getters raise "mix of the legacy and new APIs", and the inductor calls
them. `matmul_precision` therefore sets both consistently inside the block and puts back
every flag as it found it, raw values included ("none" stays "none").
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Iterator

import torch
from torch import nn

PRECISIONS = ("fp32", "tf32", "bf16")
LEGACY = {"fp32": "highest", "tf32": "high", "bf16": "highest"}  # bf16 leaves fp32 alone
_NEW_API = hasattr(torch._C, "_get_fp32_precision_getter")  # torch >= 2.9
_PARENTS = (("generic", "all"), ("cuda", "all"), ("mkldnn", "all"))
_OPS = tuple(itertools.product(("cuda", "mkldnn"), ("matmul", "conv", "rnn")))
_MATMULS = (("cuda", "matmul"), ("mkldnn", "matmul"))  # what the legacy setter writes


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def _get(backend: str, op: str) -> str:
    return torch._C._get_fp32_precision_getter(backend, op)


def _set(backend: str, op: str, value: str) -> None:
    torch._C._set_fp32_precision_setter(backend, op, value)


def _raw_flags() -> dict[tuple[str, str], str]:
    """Every per-backend fp32_precision flag as stored: a flag set to "none" reads as its
    parent's value, so the parents are set to "none" while the children are read."""
    raw = {("generic", "all"): _get("generic", "all")}
    _set("generic", "all", "none")
    raw |= {pair: _get(*pair) for pair in _PARENTS[1:]}
    for pair in _PARENTS[1:]:
        _set(*pair, "none")
    raw |= {pair: _get(*pair) for pair in _OPS}
    for pair in _PARENTS:
        _set(*pair, raw[pair])
    return raw


def _legacy_precision() -> str:
    """torch.get_float32_matmul_precision() without the "mix of APIs" error: it raises
    only when a matmul flag says TF32/bf16 and the legacy value does not, so it is read
    with both matmul flags at "ieee" (then put back)."""
    if not _NEW_API:
        return torch.get_float32_matmul_precision()
    saved = {pair: _raw_flags()[pair] for pair in _MATMULS}
    for pair in _MATMULS:
        _set(*pair, "ieee")
    try:
        return torch.get_float32_matmul_precision()
    finally:
        for pair, value in saved.items():
            _set(*pair, value)


def precision_flags() -> dict[str, str]:
    """The whole fp32-precision state: the legacy global and each raw per-backend flag."""
    flags = {"float32_matmul_precision": _legacy_precision()}
    if _NEW_API:
        flags |= {f"{b}.{op}": value for (b, op), value in _raw_flags().items()}
    return flags


def _restore(flags: dict[str, str]) -> None:
    """Put back a precision_flags() snapshot: the legacy setter first (it also writes the
    two matmul flags), then every raw flag."""
    torch.set_float32_matmul_precision(flags["float32_matmul_precision"])
    for name, value in flags.items():
        if name != "float32_matmul_precision":
            _set(*name.split("."), value)


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """Within the block, fp32 matmuls use TF32 where the hardware has it if precision is
    "tf32", full fp32 otherwise; every precision flag is restored on exit.

    Inside, the legacy and the new flags agree (set_float32_matmul_precision writes the
    legacy value and both matmul flags), so both APIs' getters work, whichever API the
    caller used before. On the CPU "tf32" only matters where oneDNN has reduced-precision
    fp32 matmuls.
    """
    _check_precision(precision)
    before = precision_flags()
    torch.set_float32_matmul_precision(LEGACY[precision])
    try:
        yield
    finally:
        _restore(before)


class _Bf16Linear(nn.Module):
    """y = W x + b under bf16 autocast (inputs and weights cast to bf16, fp32 accumulate).

    Wraps the caller's Linear (its parameters, not copies). The weight-cast cache is off:
    it must be inside CUDA-graph capture, where a cached cast would not be recorded.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, cache_enabled=False):
            return self.linear(x)


def bf16_linears(model: nn.Module) -> nn.Module:
    """A view of `model` whose nn.Linear layers run in bf16 and everything else in fp32.

    The view shares the model's parameters and buffers (in-place updates, .to(dtype) and
    load_state_dict are seen); it does not follow layers replaced after it was made.
    Its output is bf16 when the last layer is a Linear: cast it back to the state's dtype.
    """
    memo = {id(m): _Bf16Linear(m) for m in model.modules() if isinstance(m, nn.Linear)}
    memo |= {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return copy.deepcopy(model, memo)
