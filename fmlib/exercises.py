"""Checks for the "Try it" exercises: compare an answer with the expected value, say why."""

from __future__ import annotations

import numpy as np
import torch


def _as_array(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=float)


def check(name: str, answer, expected, tol: float = 1e-6) -> bool:
    """Print a verdict on `answer` vs `expected` (max abs difference <= tol) and return it.

    Never raises on a wrong answer: a student should read a hint, not a traceback.
    `answer=None` (an exercise not attempted yet) gets a reminder.
    """
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if answer is None:
        print(f"⏳ {name}: no answer yet — fill in the cell above and run it again.")
        return False
    a, e = _as_array(answer), _as_array(expected)
    if a.shape != e.shape and a.size != 1 and e.size != 1:
        print(f"❌ {name}: shape {a.shape} but expected shape {e.shape}.")
        return False
    err = float(np.max(np.abs(a - e))) if a.size else 0.0
    if not np.isfinite(err) or err > tol:
        print(f"❌ {name}: off by {err:.3g} (tolerance {tol:.1g}); try again.")
        return False
    print(f"✅ {name}: correct (within {tol:.1g}).")
    return True
