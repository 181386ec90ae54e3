"""Exact sums of float64 values, as integers, and their bytes.

Sums of real numbers in the summaries (scores, errors, label delays) are kept *exactly*, as
Python integers in units of ``2**-1126`` (every finite float64 is a whole multiple of that
unit), so merging is associative and commutative bit for bit, and the merge of a split equals
the fold of the whole, not just approximately. :func:`exact_value` rounds such a sum back to
the nearest float64; :func:`int_to_bytes` / :func:`int_from_bytes` carry it in an encoding.
"""

from __future__ import annotations

import math

import numpy as np

from driftline.detectors.values import FloatArray
from driftline.errors import StatisticsError

__all__ = [
    "UNIT",
    "exact_square_sum",
    "exact_sum",
    "exact_value",
    "int_from_bytes",
    "int_to_bytes",
]

# 2**-1126 is the weight of the last mantissa bit of the smallest subnormal float64 once
# np.frexp has normalised it to a 53-bit integer mantissa, so every finite float64 is a whole
# number of these units and sums of them are exact Python integers.
_UNIT_EXPONENT = 1126
UNIT = 1 << _UNIT_EXPONENT
"""The unit of an exact sum, as an integer: a sum ``s`` is worth ``s / UNIT``."""
_HALF_BITS = 26
_LOW_MASK = (1 << _HALF_BITS) - 1
# Per-bin float64 sums of 27-bit halves stay exact below 2**26 values; larger arrays are chunked.
_EXACT_CHUNK = 1 << 25
_VELTKAMP = 134_217_729.0  # 2**27 + 1


def exact_sum(values: FloatArray) -> int:
    """The exact sum of finite float64 values, in units of ``2**-1126``.

    Vectorised: the mantissas are split into halves and summed per binary exponent with two
    ``np.bincount`` calls; only the few distinct exponents are combined in Python.

    >>> exact_value(exact_sum(np.array([0.1] * 10))) == math.fsum([0.1] * 10)
    True
    """
    if values.size > _EXACT_CHUNK:
        return sum(
            exact_sum(values[i : i + _EXACT_CHUNK]) for i in range(0, values.size, _EXACT_CHUNK)
        )
    if values.size == 0:
        return 0
    if not np.isfinite(values).all():
        raise StatisticsError("exact_sum takes finite values only (got inf or NaN)")
    mantissa, exponent = np.frexp(values)
    whole = (mantissa * 2.0**53).astype(np.int64)
    shift = exponent.astype(np.int64) + (_UNIT_EXPONENT - 53)
    high = np.bincount(shift, weights=(whole >> _HALF_BITS).astype(np.float64))
    low = np.bincount(shift, weights=(whole & _LOW_MASK).astype(np.float64))
    total = 0
    for s in np.flatnonzero((high != 0) | (low != 0)).tolist():
        total += ((int(high[s]) << _HALF_BITS) + int(low[s])) << s
    return total


def exact_value(total: int) -> float:
    """The float64 nearest to an exact sum from :func:`exact_sum` (correctly rounded).

    >>> exact_value(exact_sum(np.array([1e100, 1.0, -1e100])))
    1.0
    """
    try:
        return total / UNIT
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def exact_square_sum(values: FloatArray) -> int:
    """The exact sum of the squares of float64 values, in units of ``2**-1126``.

    Each value is split into two 26-bit halves (Veltkamp), whose products are exact, so even
    the sum of squares of a constant column minus its squared sum is exactly zero. Values must
    be below about ``1e299`` in magnitude.

    >>> 0.1 * 0.1 + 0.2 * 0.2
    0.05000000000000001
    >>> exact_value(exact_square_sum(np.array([0.1, 0.2])))
    0.05
    """
    scaled = values * _VELTKAMP
    high = scaled - (scaled - values)
    low = values - high
    return exact_sum(high * high) + 2 * exact_sum(high * low) + exact_sum(low * low)


def int_to_bytes(value: int) -> bytes:
    """An exact sum (any integer) as little-endian two's-complement bytes, as short as it goes.

    >>> int_from_bytes(int_to_bytes(-(2**1200))) == -(2**1200)
    True
    """
    return value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)


def int_from_bytes(data: bytes) -> int:
    """The integer :func:`int_to_bytes` encoded."""
    return int.from_bytes(data, "little", signed=True)
