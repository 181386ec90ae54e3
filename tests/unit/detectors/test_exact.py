"""Exact sums of float64 values against rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.exact import exact_square_sum, exact_sum, exact_value

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, max_size=30))
def test_exact_sum_equals_the_rational_sum_and_rounds_correctly(values: list[float]) -> None:
    total = exact_sum(np.array(values, dtype=np.float64))
    rational = sum((Fraction(v) for v in values), Fraction(0))
    assert Fraction(total, 2**1126) == rational
    if abs(rational) < Fraction(2**1023):
        assert exact_value(total) == float(rational)  # correctly rounded, like math.fsum
        try:
            reference = math.fsum(values)
        except OverflowError:  # fsum's partial sums overflow where ours (integers) cannot
            return
        assert exact_value(total) == reference


def test_exact_sum_is_exact_for_subnormals() -> None:
    tiny = np.array([5e-324, 5e-324, -1.5e-323, 2.2250738585072014e-308])
    assert Fraction(exact_sum(tiny), 2**1126) == sum(map(Fraction, tiny.tolist()))


def test_exact_sum_rejects_non_finite_values() -> None:
    with pytest.raises(ValueError, match="finite"):
        exact_sum(np.array([1.0, math.inf]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e100, 1e100), max_size=20))
def test_exact_square_sum_equals_the_rational_sum_of_squares(values: list[float]) -> None:
    total = exact_square_sum(np.array(values, dtype=np.float64))
    expected = sum((Fraction(v) ** 2 for v in values), Fraction(0))
    if all(v == 0 or abs(v) > 1e-140 for v in values):  # products below that underflow
        assert Fraction(total, 2**1126) == expected
