"""fmlib.checks: each check passes values inside its range and raises a ValueError naming
the argument and the range for values outside it."""

import math
import re

import numpy as np
import pytest

from fmlib import checks


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_check_int_accepts_integers_in_range(value):
    assert checks.check_int("steps", value) == int(value)
    assert type(checks.check_int("steps", value)) is int


@pytest.mark.parametrize("value", [0, -1, 1.0, 2.5, True, "3", None])
def test_check_int_names_argument_and_range(value):
    with pytest.raises(
        ValueError, match=re.escape(f"steps must be an integer >= 1, got {value!r}")
    ):
        checks.check_int("steps", value)


def test_check_int_bounds_are_inclusive():
    assert checks.check_int("n_points", 1, 1, 200) == 1
    assert checks.check_int("n_points", 200, 1, 200) == 200
    for bad in (0, 201):
        with pytest.raises(ValueError, match=re.escape("n_points must be an integer in [1, 200]")):
            checks.check_int("n_points", bad, 1, 200)
    assert checks.check_int("seed", 0, low=0) == 0
    with pytest.raises(ValueError, match=re.escape("seed must be an integer >= 0, got -1")):
        checks.check_int("seed", -1, low=0)


def test_check_even_int():
    assert checks.check_even_int("steps", 2) == 2
    for bad in (0, 3, 2.0, True):
        with pytest.raises(ValueError, match=re.escape("steps must be an even integer >= 2")):
            checks.check_even_int("steps", bad)


def test_check_range_closed_and_half_open():
    assert checks.check_range("t", 0, 0.0, 1.0) == 0.0
    assert checks.check_range("t", 1.0, 0.0, 1.0) == 1.0
    assert checks.check_range("sigma_min", 0.999, 0.0, 1.0, high_open=True) == 0.999
    with pytest.raises(ValueError, match=re.escape("sigma_min must be in [0, 1), got 1.0")):
        checks.check_range("sigma_min", 1.0, 0.0, 1.0, high_open=True)
    for bad in (-0.1, 1.5, math.nan, True, "0.5"):
        with pytest.raises(ValueError, match=re.escape(f"t must be in [0, 1], got {bad!r}")):
            checks.check_range("t", bad, 0.0, 1.0)


def test_check_positive():
    assert checks.check_positive("lim", 2) == 2.0
    for bad in (0, -1.0, math.inf, math.nan, False):
        with pytest.raises(
            ValueError, match=re.escape(f"lim must be a finite number > 0, got {bad!r}")
        ):
            checks.check_positive("lim", bad)


def test_field_alias_is_the_only_definition():
    """Every module that speaks of fields uses the one alias of fmlib.checks."""
    from fmlib import continuity, couplings, divergence, flows, guidance, losses, metrics

    for module in (continuity, couplings, divergence, flows, guidance, losses, metrics):
        assert module.Field is checks.Field, module.__name__
