"""Inputs shared by the binned tests: reference probabilities, checked counts, empty windows.

Every test compares a reference distribution over frozen bins (a profile's probabilities) with
the counts a window collected over the same bins. A numeric profile with interior edges
``e0 < ... < e_last`` has ``len(edges) + 1`` bins; a categorical profile has one bin per listed
category, in the profile's order, plus a last bin for everything else (the reference's
``other`` share, and categories the reference never saw).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftline.detectors.result import ResultKind, TestResult
from driftline.detectors.values import FloatArray, IntArray
from driftline.errors import StatisticsError
from driftline.schemas.reference import CategoricalProfile, NumericProfile

PSEUDO_COUNT = 0.5
"""Pseudo-count added to every bin where a log or a division needs non-empty bins.

Half an observation per bin is the Krichevsky-Trofimov (Jeffreys prior) estimate of a
multinomial's probabilities: large enough that an empty bin yields a finite, modest log-ratio,
small enough to vanish against any window worth judging. Machine epsilon instead would turn one
empty bin into a log-ratio of about 36 and a PSI dominated by noise.
"""


def reference_probabilities(profile: NumericProfile | CategoricalProfile) -> FloatArray:
    """The reference's probability per bin, in the order the window's counts use.

    >>> from driftline.schemas.reference import CategoricalProfile
    >>> p = CategoricalProfile(categories={"a": 0.7, "b": 0.2}, other=0.1, count=10)
    >>> reference_probabilities(p).tolist()
    [0.7, 0.2, 0.1]
    """
    if isinstance(profile, NumericProfile):
        values = profile.probabilities
    else:
        values = [*profile.categories.values(), profile.other]
    return np.asarray(values, dtype=np.float64)


def checked_counts(counts: ArrayLike, n_bins: int) -> IntArray:
    """``counts`` as a one-dimensional int64 array of ``n_bins`` non-negative entries.

    A window's counts that do not line up with the reference's bins would compare the wrong bins
    silently, so a length mismatch is an error, not a warning.
    """
    array = np.asarray(counts)
    if array.ndim != 1 or array.shape[0] != n_bins:
        raise StatisticsError(
            f"counts must be a 1-d array of {n_bins} bin counts (one per reference bin), "
            f"got shape {array.shape}"
        )
    if array.dtype.kind not in "iu":
        rounded = np.rint(array)
        if not np.array_equal(rounded, array):
            raise StatisticsError("counts must be whole numbers")
        array = rounded
    result = array.astype(np.int64)
    if (result < 0).any():
        raise StatisticsError("counts must be non-negative")
    return result


def checked_n_reference(n_reference: int) -> int:
    """``n_reference`` if it is a possible number of reference values (0 or more)."""
    if n_reference < 0:
        raise StatisticsError(f"n_reference must be non-negative, got {n_reference}")
    return int(n_reference)


def effective_n(n_reference: int, n_current: int) -> float:
    """The two-sample effective size ``n*m/(n+m)``, i.e. ``1/(1/n + 1/m)``."""
    return n_reference * n_current / (n_reference + n_current)


def no_evidence(
    test: str,
    column: str,
    threshold: float,
    n_reference: int,
    n_current: int,
    kind: ResultKind,
) -> TestResult:
    """The result when one side has no values: no distribution, so no statistic and no verdict.

    The statistic is NaN (a distance of 0 would claim the window matches the reference),
    the p-value None, and ``drifted`` False.
    """
    return TestResult(
        test=test,
        column=column,
        statistic=math.nan,
        p_value=None,
        threshold=float(threshold),
        n_reference=n_reference,
        n_current=n_current,
        drifted=False,
        kind=kind,
    )


def decile_bins(values: ArrayLike, edges: ArrayLike, decile_edges: ArrayLike) -> FloatArray:
    """Merge per-fine-bin values (counts or probabilities) into the decile bins.

    Parameters
    ----------
    values
        One value per fine bin, ``len(edges) + 1`` entries.
    edges
        The fine interior edges.
    decile_edges
        The decile interior edges, each one of ``edges``. Empty: the fine bins are returned.

    Examples
    --------
    >>> decile_bins([1, 2, 3, 4, 5, 6], [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0]).tolist()
    [3.0, 7.0, 11.0]
    """
    v = np.asarray(values, dtype=np.float64)
    fine = np.asarray(edges, dtype=np.float64)
    coarse = np.asarray(decile_edges, dtype=np.float64)
    if coarse.size == 0:
        return v
    positions = np.searchsorted(fine, coarse)
    if (positions >= fine.size).any() or not np.array_equal(fine[positions], coarse):
        raise StatisticsError("decile_edges must be a subset of edges")
    # Fine bin i ends at edges[i]; a decile edge at edges[i] starts a new decile at bin i + 1.
    starts = np.concatenate(([0], positions + 1))
    return np.add.reduceat(v, starts).astype(np.float64)


def window_inputs(
    test: str,
    profile: NumericProfile | CategoricalProfile,
    counts: ArrayLike,
    n_reference: int,
    threshold: float,
    column: str,
    kind: ResultKind,
    *,
    deciles: bool = False,
) -> tuple[FloatArray, IntArray, int, int] | TestResult:
    """Checked inputs of a binned test: ``(reference probabilities, window counts,
    n_reference, n_current)``, or the :func:`no_evidence` result when either side is empty.

    Every test starts here, so they all validate and treat empty windows the same way.
    ``deciles`` merges a numeric profile's fine bins into its decile bins (PSI and
    Jensen-Shannon compare on deciles; categorical profiles keep their categories).
    """
    n_reference = checked_n_reference(n_reference)
    p = reference_probabilities(profile)
    c = checked_counts(counts, p.size)
    n_current = int(c.sum())
    if n_current == 0 or n_reference == 0:
        return no_evidence(test, column, threshold, n_reference, n_current, kind)
    if deciles and isinstance(profile, NumericProfile):
        p = decile_bins(p, profile.edges, profile.decile_edges)
        c = decile_bins(c, profile.edges, profile.decile_edges).astype(np.int64)
    return p, c, n_reference, n_current


def smoothed(counts: FloatArray, pseudo_count: float = PSEUDO_COUNT) -> FloatArray:
    """Probabilities from ``counts`` with ``pseudo_count`` added to every bin."""
    padded: FloatArray = counts + pseudo_count
    total = float(padded.sum())
    return padded / total


def informative(reference: FloatArray, counts: IntArray) -> NDArray[np.bool_]:
    """Bins that hold mass on at least one side.

    A bin empty in both the reference and the window carries no evidence; keeping it would add a
    pseudo-count term and a degree of freedom that the data never had.
    """
    return (reference > 0) | (counts > 0)
