"""Checks for the exercises: compare an answer with the expected value, say why, keep a record.

Each check prints a verdict a student can act on (never a traceback) and returns it. A wrong
answer that equals what a typical mistake produces gets that mistake's message. When the
environment variable FMLIB_GRADE_LOG names a file (the grader, `python -m fmlib.grade`, sets it),
every verdict is also appended to it as one JSON line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch

CORRECT, WRONG, NOT_ATTEMPTED = "correct", "wrong", "not attempted"
GRADE_LOG = "FMLIB_GRADE_LOG"


def _as_array(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=float)


def _record(name: str, verdict: str, message: str) -> bool:
    symbol = {CORRECT: "✅", WRONG: "❌", NOT_ATTEMPTED: "⏳"}[verdict]
    print(f"{symbol} {name}: {message}")
    log = os.environ.get(GRADE_LOG)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"exercise": name, "verdict": verdict, "message": message}) + "\n")
    return verdict == CORRECT


def _distance(answer, expected) -> float | None:
    """max |answer - expected|, or None when the shapes cannot be compared."""
    try:
        a, e = _as_array(answer), _as_array(expected)
    except (TypeError, ValueError):
        return None
    if a.shape != e.shape and a.size != 1 and e.size != 1:
        return None
    err = float(np.max(np.abs(a - e))) if a.size else 0.0
    return err if np.isfinite(err) else float("inf")


def check(
    name: str,
    answer,
    expected,
    tol: float = 1e-6,
    *,
    mistakes: Mapping[str, object] | None = None,
) -> bool:
    """Verdict on a numerical answer: correct when max |answer - expected| <= tol.

    `answer=None` is an exercise not attempted yet. `mistakes` maps a message naming a typical
    mistake to the value that mistake produces; an answer within tol of it gets the message.
    """
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if answer is None:
        return _record(name, NOT_ATTEMPTED, "not attempted yet: fill in the cell above and run it.")
    err = _distance(answer, expected)
    if err is None:
        shape = np.shape(_as_array(expected))
        return _record(name, WRONG, f"expected a number or an array of shape {shape}.")
    if err <= tol:
        return _record(name, CORRECT, f"correct (within {tol:.1g}).")
    for message, wrong_value in (mistakes or {}).items():
        d = _distance(answer, wrong_value)
        if d is not None and d <= tol:
            return _record(name, WRONG, f"not quite: {message}")
    return _record(name, WRONG, f"off by {err:.3g} (tolerance {tol:.1g}); try again.")


def check_choice(
    name: str,
    answer: str | None,
    expected: str,
    options: Sequence[str],
    *,
    mistakes: Mapping[str, str] | None = None,
) -> bool:
    """Verdict on a prediction: one of `options`, compared with the measured `expected`.

    `mistakes` maps a wrong option to a message explaining the misconception behind it.
    """
    if expected not in options:
        raise ValueError(f"expected must be one of {list(options)}, got {expected!r}")
    if answer is None:
        return _record(name, NOT_ATTEMPTED, "not attempted yet: write your prediction and run.")
    if answer not in options:
        choices = ", ".join(repr(o) for o in options)
        return _record(name, WRONG, f"answer with one of {choices}; got {answer!r}.")
    if answer == expected:
        return _record(name, CORRECT, f"correct: {expected}.")
    reason = (mistakes or {}).get(answer, f"the measurement says {expected!r}.")
    return _record(name, WRONG, f"not quite: {reason}")
