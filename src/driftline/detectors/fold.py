"""Counting numeric features straight from events' feature dicts into their bins.

Stage 1's hottest loop. The optional C extension ``driftline.detectors._fold`` reads each value
out of the events' feature dicts and counts it in its bin in one pass, without building columns;
without a C compiler at install time :func:`fold_numeric` runs the same count on NumPy (one
column per feature, one ``np.searchsorted`` and one ``np.bincount``), with the same result.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Any

import numpy as np

from driftline.detectors.values import FloatArray, IntArray, to_numeric

_compiled_fold_numeric: Callable[..., list[tuple[int, int]] | None] | None
try:
    from driftline.detectors._fold import fold_numeric as _compiled_fold_numeric
except ImportError:  # built without a C compiler: fold_numeric runs on NumPy
    _compiled_fold_numeric = None

__all__ = ["fold_numeric"]


def fold_numeric(
    dicts: list[dict[str, Any]],
    names: tuple[str, ...],
    edges: tuple[FloatArray, ...],
    counts: tuple[IntArray, ...],
) -> list[tuple[int, int]]:
    """Count the values of numeric features straight from the events' feature dicts.

    For each ``names[i]``, the value of each dict lands in ``counts[i][k]`` (added in place),
    ``k`` the number of ``edges[i]`` at or below it, as ``np.searchsorted(side="right")``
    places it; a missing value (None, absent, NaN) or one that is no number (a string, a
    boolean) is not counted. Returns (missing, of which type errors) per name. The compiled
    kernel does this in one pass without building columns; it declines what it does not know
    (NumPy scalars, containers), and NumPy then does it the general way.

    >>> counts = (np.zeros(3, dtype=np.int64),)
    >>> fold_numeric([{"x": 0.5}, {"x": 2}, {"x": None}, {"x": "a"}, {}], ("x",),
    ...              (np.array([1.0, 2.0]),), counts)
    [(3, 1)]
    >>> counts[0].tolist()
    [1, 0, 1]
    """
    if _compiled_fold_numeric is not None:
        tallies = _compiled_fold_numeric(dicts, names, edges, counts)
        if tallies is not None:
            return tallies
    return _fold_numeric_numpy(dicts, names, edges, counts)


def _fold_numeric_numpy(
    dicts: list[dict[str, Any]],
    names: tuple[str, ...],
    edges: tuple[FloatArray, ...],
    counts: tuple[IntArray, ...],
) -> list[tuple[int, int]]:
    """:func:`fold_numeric` on NumPy (the reference the compiled kernel is tested against)."""
    tallies = []
    for name, bin_edges, bin_counts in zip(names, edges, counts, strict=True):
        values, errors = to_numeric(list(map(dict.get, dicts, repeat(name))))
        missing = int(np.count_nonzero(np.isnan(values)))
        binned = np.bincount(
            np.searchsorted(bin_edges, values, side="right"), minlength=bin_counts.shape[0]
        )
        binned[-1] -= missing  # NaN sorts after everything
        bin_counts += binned
        tallies.append((missing, errors))
    return tallies
