"""The shared type aliases and argument checks of fmlib, written once.

A *field* is any callable `u(x: [N, d], t: [N]) -> [N, d]` (a trained model has exactly
this signature); a *log-density* `log_p(x: [N, d], t: [N]) -> [N]`. Bad input raises
`ValueError` naming the argument, the allowed range and the value given
(`steps must be an integer >= 1, got 0`), never an `assert`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

from torch import Tensor

Field = Callable[[Tensor, Tensor], Tensor]
LogDensity = Callable[[Tensor, Tensor], Tensor]


def check_int(name: str, value: int, low: int = 1, high: int | None = None) -> int:
    """value if it is an integer (not a bool) in [low, high] (high=None: no upper bound).

    The message names the argument and the range: "steps must be an integer >= 1, got 0",
    "n_points must be an integer in [1, 200], got 500".
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return int(value)


def check_even_int(name: str, value: int, low: int = 2) -> int:
    """value if it is an even integer >= low (Simpson's rule needs an even number of steps)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or value % 2:
        raise ValueError(f"{name} must be an even integer >= {low}, got {value!r}")
    return int(value)


def check_range(
    name: str, value: float, low: float, high: float, *, high_open: bool = False
) -> float:
    """value if it is a real number in [low, high] (or [low, high) with high_open=True).

    The message names the argument and the range: "sigma_min must be in [0, 1), got 1.5".
    NaN is outside every range.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    inside = ok and low <= value and (value < high if high_open else value <= high)
    if not inside:
        allowed = f"[{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {allowed}, got {value!r}")
    return float(value)


def check_positive(name: str, value: float) -> float:
    """value if it is a finite real number > 0."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)
