"""Raw values as typed columns: category keys and codes, numbers, column kinds.

Events, datasets and replays hand over values of many Python and NumPy types; every statistic
downstream sees only two kinds of column: float64 with NaN for missing (numeric) and an object
array of category keys with None for missing (categorical). This module owns that conversion,
the category slots a categorical column is counted in, and the array type names the detectors
share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ColumnKind",
    "FloatArray",
    "IntArray",
    "ObjectArray",
    "category_codes",
    "category_index",
    "category_key",
    "infer_kind",
    "missing_mask",
    "readonly",
    "to_categorical",
    "to_numeric",
]

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]
ObjectArray: TypeAlias = NDArray[np.object_]
ColumnKind = Literal["numeric", "categorical"]

_NONE = type(None)
_PLAIN_NUMBERS = frozenset({int, float, _NONE})
_PLAIN_CATEGORIES = frozenset({str, _NONE})
_INTS = {int}
_MAX_EXACT_INT = 2.0**53


def readonly(array: NDArray[Any]) -> NDArray[Any]:
    """A read-only view of ``array``, so a reader cannot change a summary's counts.

    >>> readonly(np.zeros(2)).flags.writeable
    False
    """
    view = array.view()
    view.flags.writeable = False
    return view


def category_key(value: object) -> str | None:
    """The category a value counts as, or None when it is missing.

    Categories are strings on the wire and in the reference profile, so every value is keyed
    the same way wherever it comes from (a Kafka event, a CSV cell, a NumPy array): strings as
    they are, booleans in JSON spelling, integral numbers without a fraction (JSON does not
    distinguish ``1`` from ``1.0``), other numbers by their shortest repr, NaN as missing.

    >>> [category_key(v) for v in ("FR", True, 3, 3.0, 0.25, None, float("nan"))]
    ['FR', 'true', '3', '3', '0.25', None, None]
    """
    if value is None:
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        if number.is_integer() and abs(number) < _MAX_EXACT_INT:
            return str(int(number))
        return repr(number)
    return str(value)


_NONE_ARRAY = np.array(None, dtype=object)


def missing_mask(keys: ObjectArray) -> NDArray[np.bool_]:
    """Where an object column of category keys holds None.

    >>> missing_mask(np.array(["a", None], dtype=object)).tolist()
    [False, True]
    """
    mask: NDArray[np.bool_] = np.equal(keys, _NONE_ARRAY)
    return mask


def category_index(categories: Sequence[str], tail: Sequence[str] = ()) -> dict[str | None, int]:
    """Category to its slot: ``0..k-1`` in order, ``k`` for a ``tail`` name, ``k + 1`` for None
    (missing).

    Look-ups of anything else default to ``k`` too in :func:`category_codes`, which adds one
    for missing values, so ``k`` is the other/unseen slot and ``k + 1`` the missing one; with
    ``default=k + 2`` it tells the tail (``k``) from values in neither list (``k + 2``).
    """
    k = len(categories)
    index: dict[str | None, int] = dict.fromkeys(tail, k)
    index.update((name, i) for i, name in enumerate(categories))
    index[None] = k + 1
    return index


def category_codes(
    index: Mapping[str | None, int], values: ObjectArray, default: int | None = None
) -> IntArray:
    """Slot of each value: its category's, ``default`` if unlisted (``k`` unless given: the
    index of :func:`category_index` without a tail has ``k + 1`` entries), ``k + 1`` if missing.

    One C-level dict look-up per value (``map`` over ``dict.get``), no Python bytecode per
    value and no conversion of strings to a NumPy string array for ``searchsorted``.

    >>> category_codes(category_index(["FR", "DE"]), np.array(["DE", "IT", None], dtype=object))
    array([1, 2, 3])
    >>> index = category_index(["FR"], tail=["DE"])
    >>> category_codes(index, np.array(["DE", "IT", None, "FR"], dtype=object), default=3)
    array([1, 3, 2, 0])
    """
    k = len(index) - 1 if default is None else default
    return np.fromiter(map(index.get, values, repeat(k)), dtype=np.int64, count=values.shape[0])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _as_list_or_array(values: ArrayLike | Iterable[object]) -> list[Any] | NDArray[Any]:
    if isinstance(values, np.ndarray):
        return values.ravel() if values.ndim != 1 else values
    if isinstance(values, list):
        return values
    return list(values)  # type: ignore[arg-type]


def infer_kind(values: ArrayLike | Iterable[object]) -> ColumnKind:
    """Numbers are numeric; strings, booleans and anything else categorical.

    A column with no value at all (every entry missing) is categorical: every value that may
    turn up later can be counted as a category, while a string in a numeric column is an error.

    >>> infer_kind([1, 2.5, None]), infer_kind(["a", None]), infer_kind([True, False])
    ('numeric', 'categorical', 'categorical')
    """
    col = _as_list_or_array(values)
    if isinstance(col, np.ndarray) and col.dtype.kind in "fiu":
        return "numeric"
    if isinstance(col, np.ndarray) and col.dtype.kind != "O":
        return "categorical"
    present = [v for v in col if v is not None]
    if present and all(_is_number(v) for v in present):
        return "numeric"
    return "categorical"


def to_numeric(values: ArrayLike | Iterable[object]) -> tuple[FloatArray, int]:
    """A float64 column with NaN for missing values, and how many values were not numbers.

    None and NaN are missing; strings and booleans are type errors and become NaN too (they
    are counted, never coerced: ``"1.5"`` is not a number here).

    >>> x, errors = to_numeric([1, None, "1.5", 2.5])
    >>> x.tolist(), errors
    ([1.0, nan, nan, 2.5], 1)
    """
    col = _as_list_or_array(values)
    if isinstance(col, np.ndarray):
        if col.dtype.kind in "fiu":
            return np.asarray(col, dtype=np.float64), 0
        if col.dtype.kind != "O":
            return np.full(col.shape[0], np.nan), int(col.shape[0])
        col = col.tolist()
    if set(map(type, col)) <= _PLAIN_NUMBERS:
        return np.array(col, dtype=np.float64), 0
    clean = [v if _is_number(v) else None for v in col]
    errors = sum(1 for v in col if v is not None and not _is_number(v))
    return np.array(clean, dtype=np.float64), errors


def to_categorical(values: ArrayLike | Iterable[object]) -> ObjectArray:
    """An object column of category keys (see :func:`category_key`), None for missing.

    >>> to_categorical(["a", 1, None, False]).tolist()
    ['a', '1', None, 'false']
    """
    col = _as_list_or_array(values)
    if isinstance(col, np.ndarray):
        col = col.tolist()
    out = np.empty(len(col), dtype=object)
    types = set(map(type, col))
    if types <= _PLAIN_CATEGORIES:
        out[:] = col
    elif types == _INTS:  # class labels are mostly integers: str() is their key
        out[:] = list(map(str, col))
    else:
        out[:] = [category_key(v) for v in col]
    return out
