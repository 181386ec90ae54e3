r"""Distances between a window and the reference: Jensen-Shannon, Wasserstein-1, chi-square.

All three work on the reference's frozen bins and the window's counts over them.

- **Jensen-Shannon distance** (base 2, in [0, 1]): the square root of the Jensen-Shannon
  divergence, finite with empty bins, so no smoothing. Numeric columns are compared on their
  deciles, like PSI: the divergence of a window of :math:`m` values from its own distribution
  over :math:`B` bins is about :math:`(B-1)/(8m \ln 2)` bits, so on 100 fine bins a 500-value
  window would sit near a distance of 0.19 with no drift at all, on deciles near 0.06.
  Under no drift :math:`8 \ln 2 \cdot \mathrm{JS}^2 \cdot nm/(n+m)` is asymptotically
  :math:`\chi^2(B-1)` (the divergence is to first order
  :math:`\sum_b (q_b - p_b)^2 / (8 \bar p_b)` nats), which gives the p-value.
- **Wasserstein-1** between the two binned distributions, each bin's mass placed at the bin's
  midpoint (the open outer bins end at the profile's minimum and maximum), divided by the
  reference's interquartile range so that it reads in "IQRs moved" whatever the column's unit.
  It is the area between the two CDFs, so it grows with how far mass moved, not just how much.
- **Chi-square** goodness of fit of a categorical window against the reference frequencies, with
  Cramér's V as the effect size.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from driftline.detectors._binned import (
    PSEUDO_COUNT,
    effective_n,
    informative,
    reference_probabilities,
    smoothed,
    window_inputs,
)
from driftline.detectors.result import ResultKind, TestResult
from driftline.detectors.values import FloatArray
from driftline.schemas.reference import CategoricalProfile, NumericProfile

__all__ = [
    "bin_positions",
    "chi2_test",
    "cramers_v",
    "jensen_shannon",
    "jensen_shannon_p_value",
    "jensen_shannon_test",
    "reference_scale",
    "wasserstein",
    "wasserstein_test",
]


# --- Jensen-Shannon ------------------------------------------------------------------------


def jensen_shannon(reference: ArrayLike, counts: ArrayLike) -> float:
    """Jensen-Shannon distance (base 2) between reference shares and a window's counts.

    Symmetric, 0 for identical distributions and 1 for distributions with disjoint support.

    >>> jensen_shannon([0.5, 0.5, 0.0], [0, 0, 10])
    1.0
    >>> round(jensen_shannon([0.5, 0.5], [30, 70]), 4)
    0.1741
    """
    p = np.asarray(reference, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    p = p / p.sum()
    q = c / c.sum()
    mid = (p + q) / 2.0
    divergence = 0.5 * (_kl_bits(p, mid) + _kl_bits(q, mid))
    return math.sqrt(min(max(divergence, 0.0), 1.0))


def _kl_bits(a: FloatArray, b: FloatArray) -> float:
    mask = a > 0
    return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))


def jensen_shannon_p_value(distance: float, n_reference: int, n_current: int, n_bins: int) -> float:
    """P-value of a JS distance over ``n_bins`` bins: ``8 ln2 JS^2 nm/(n+m) ~ chi2(n_bins-1)``.

    >>> round(jensen_shannon_p_value(0.02, 10_000, 2_000, 10), 3)
    0.93
    """
    if n_bins < 2:
        return 1.0
    statistic = 8.0 * math.log(2.0) * distance**2 * effective_n(n_reference, n_current)
    return float(stats.chi2.sf(statistic, n_bins - 1))


def jensen_shannon_test(
    profile: NumericProfile | CategoricalProfile,
    counts: ArrayLike,
    n_reference: int,
    *,
    threshold: float,
    column: str,
    kind: ResultKind = "feature_drift",
) -> TestResult:
    """Jensen-Shannon distance of a window from the reference.

    Parameters
    ----------
    profile
        The column's reference profile. Numeric: compared on its decile bins (the fine bins when
        it has none). Categorical: on its categories plus the ``other`` bin.
    counts
        The window's count per bin of the profile (fine bins for numeric columns).
    n_reference
        Values the reference distribution was estimated from.
    threshold
        Distance at or above which the column counts as drifted.
    column
        Name reported in the result.
    kind
        What the column is (a feature, the predictions, the labels).

    Returns
    -------
    TestResult
        ``statistic`` is the distance in [0, 1], ``p_value`` the chi-square p-value in the module
        docstring; ``drifted`` is ``distance >= threshold``. Like PSI the p-value wants about 5
        expected values per bin; smaller windows are left to the decision policy's
        ``min_samples``. An empty window or reference gives a NaN statistic and ``drifted=False``.

    Examples
    --------
    >>> from driftline.schemas.reference import CategoricalProfile
    >>> profile = CategoricalProfile(categories={"a": 0.5, "b": 0.5}, count=100)
    >>> r = jensen_shannon_test(profile, [30, 70, 0], 100, threshold=0.1, column="colour")
    >>> round(r.statistic, 4), r.drifted
    (0.1741, True)
    """
    inputs = window_inputs(
        "jensen_shannon", profile, counts, n_reference, threshold, column, kind, deciles=True
    )
    if isinstance(inputs, TestResult):
        return inputs
    p, c, n_reference, n_current = inputs
    distance = jensen_shannon(p, c)
    n_bins = int(informative(p, c).sum())
    return TestResult(
        test="jensen_shannon",
        column=column,
        statistic=distance,
        p_value=jensen_shannon_p_value(distance, n_reference, n_current, n_bins),
        threshold=float(threshold),
        n_reference=n_reference,
        n_current=n_current,
        drifted=bool(distance >= threshold),
        kind=kind,
    )


# --- Wasserstein ---------------------------------------------------------------------------


def bin_positions(profile: NumericProfile) -> FloatArray:
    """Where each bin's mass is placed: its midpoint; the open outer bins on their one edge.

    The outer bins ``(-inf, e0)`` and ``[e_last, +inf)`` sit on ``e0`` and ``e_last``, not
    halfway to the reference's minimum and maximum: those are single extreme values, and on a
    heavy-tailed feature the halfway point put the outer bin's mass far beyond the edge, so
    ordinary sampling noise in that bin read as drift in stationary windows (drift benchmark).
    On the edge, the tails' contribution to W1 is a lower bound, and the statistic stays
    robust.

    >>> from driftline.schemas.reference import NumericProfile
    >>> profile = NumericProfile(
    ...     edges=[1.0, 2.0, 4.0], probabilities=[0.1, 0.4, 0.4, 0.1],
    ...     minimum=0.0, maximum=10.0, count=10,
    ... )
    >>> bin_positions(profile).tolist()
    [1.0, 1.5, 3.0, 4.0]
    """
    edges = np.asarray(profile.edges, dtype=np.float64)
    if edges.size == 0:
        centre = [profile.minimum, profile.maximum]
        known = [v for v in centre if v is not None]
        return np.asarray([sum(known) / len(known) if known else 0.0], dtype=np.float64)
    middles = (edges[:-1] + edges[1:]) / 2.0
    return np.concatenate(([edges[0]], middles, [edges[-1]]))


def reference_scale(profile: NumericProfile) -> float:
    """The reference's interquartile range, the unit of the normalised Wasserstein distance.

    Read off the reference's binned CDF, linear within each bin (the outer bins closed by the
    profile's minimum and maximum). Where the IQR is 0 (half the reference in one tiny bin) the
    binned standard deviation stands in; where that is 0 too (a constant column) the scale is 1
    and the distance is in the column's own unit.

    >>> from driftline.schemas.reference import NumericProfile
    >>> profile = NumericProfile(
    ...     edges=[1.0, 2.0, 3.0], probabilities=[0.25, 0.25, 0.25, 0.25],
    ...     minimum=0.0, maximum=4.0, count=100,
    ... )
    >>> reference_scale(profile)
    2.0
    """
    p = reference_probabilities(profile)
    edges = np.asarray(profile.edges, dtype=np.float64)
    if edges.size:
        lo = edges[0] if profile.minimum is None else min(profile.minimum, edges[0])
        hi = edges[-1] if profile.maximum is None else max(profile.maximum, edges[-1])
        knots = np.concatenate(([lo], edges, [hi]))
        cdf = np.concatenate(([0.0], np.cumsum(p)))
        cdf[-1] = 1.0
        q1, q3 = np.interp([0.25, 0.75], cdf, knots)
        if q3 > q1:
            return float(q3 - q1)
    positions = bin_positions(profile)
    mean = float(np.dot(p, positions))
    std = math.sqrt(float(np.dot(p, (positions - mean) ** 2)))
    return std if std > 0 else 1.0


def wasserstein(positions: ArrayLike, reference: ArrayLike, counts: ArrayLike) -> float:
    """Wasserstein-1 distance between two distributions on the same sorted positions.

    The area between the two CDFs: ``sum_j |P_j - Q_j| * (x_{j+1} - x_j)`` with ``P_j`` and
    ``Q_j`` the cumulative shares up to position ``j``.

    >>> wasserstein([0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [0, 0, 5])
    2.0
    """
    x = np.asarray(positions, dtype=np.float64)
    p = np.asarray(reference, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    cdf_gap = np.abs(np.cumsum(p / p.sum() - c / c.sum()))[:-1]
    return float(np.dot(cdf_gap, np.diff(x)))


def wasserstein_test(
    profile: NumericProfile,
    counts: ArrayLike,
    n_reference: int,
    *,
    threshold: float,
    column: str,
    kind: ResultKind = "feature_drift",
) -> TestResult:
    """Wasserstein-1 distance of a window from the reference, in reference IQRs.

    Parameters
    ----------
    profile
        The column's reference profile; its bins are the window's bins.
    counts
        The window's count per bin, ``len(profile.edges) + 1`` entries.
    n_reference
        Values the reference distribution was estimated from (reported only).
    threshold
        Normalised distance at or above which the column counts as drifted.
    column
        Name reported in the result.
    kind
        What the column is (a feature, the predictions, the labels).

    Returns
    -------
    TestResult
        ``statistic`` is the distance between the binned distributions (masses at bin
        midpoints, see :func:`bin_positions`) divided by :func:`reference_scale`. Values beyond
        the reference's range count as if at the edge of the outer bin, so the distance
        understates moves far outside it; the data-quality out-of-range rate reports those.
        There is no p-value (None). An empty window or reference gives a NaN statistic and
        ``drifted=False``.

    Examples
    --------
    >>> from driftline.schemas.reference import NumericProfile
    >>> profile = NumericProfile(
    ...     edges=[1.0, 2.0, 3.0], probabilities=[0.25, 0.25, 0.25, 0.25],
    ...     minimum=0.0, maximum=4.0, count=100,
    ... )
    >>> r = wasserstein_test(profile, [0, 10, 10, 20], 100, threshold=0.1, column="x")
    >>> round(r.statistic, 4), r.drifted
    (0.25, True)
    """
    inputs = window_inputs("wasserstein", profile, counts, n_reference, threshold, column, kind)
    if isinstance(inputs, TestResult):
        return inputs
    p, c, n_reference, n_current = inputs
    distance = wasserstein(bin_positions(profile), p, c) / reference_scale(profile)
    return TestResult(
        test="wasserstein",
        column=column,
        statistic=distance,
        p_value=None,
        threshold=float(threshold),
        n_reference=n_reference,
        n_current=n_current,
        drifted=bool(distance >= threshold),
        kind=kind,
    )


# --- chi-square ----------------------------------------------------------------------------


def cramers_v(chi2: float, n_current: int, n_bins: int) -> float:
    """Cramér's V of a goodness-of-fit chi-square: ``sqrt(chi2 / (m * (B - 1)))``.

    Unlike V for a contingency table it is not capped at 1: a window concentrated on a category
    the reference gives share ``p`` reaches ``sqrt((1/p - 1) / (B - 1))``.

    >>> cramers_v(40.0, 1000, 5)
    0.1
    """
    if n_bins < 2 or n_current == 0:
        return 0.0
    return math.sqrt(chi2 / (n_current * (n_bins - 1)))


def chi2_test(
    profile: CategoricalProfile,
    counts: ArrayLike,
    n_reference: int,
    *,
    threshold: float,
    column: str,
    kind: ResultKind = "feature_drift",
) -> TestResult:
    """Chi-square test of a categorical window against the reference frequencies.

    Parameters
    ----------
    profile
        The column's reference profile.
    counts
        The window's count per category, in the profile's order, then the other/unseen count.
    n_reference
        Values the reference frequencies were estimated from.
    threshold
        Cramér's V at or above which the column counts as drifted (0.1 is Cohen's "small").
    column
        Name reported in the result.
    kind
        What the column is (a feature, the predictions, the labels).

    Returns
    -------
    TestResult
        The expected counts are the window size times the reference frequencies, smoothed with
        half an observation per category (so a category the reference never saw has a small,
        finite expectation); categories empty on both sides are dropped. Pearson's statistic
        over the ``B`` remaining categories gives ``statistic`` = Cramér's V
        (:func:`cramers_v`). The reference is itself a sample of ``n`` values, so the p-value
        compares ``chi2 * n/(n+m)`` with ``chi2(B-1)``: the two-sample null, which reduces to
        ``scipy.stats.chisquare`` as ``n`` grows. The approximation wants at least 5 expected
        values per category (Cochran's rule); smaller windows are left to the decision policy's
        ``min_samples``. An empty window or reference gives a NaN statistic and ``drifted=False``.

    Examples
    --------
    >>> from driftline.schemas.reference import CategoricalProfile
    >>> profile = CategoricalProfile(categories={"a": 0.5, "b": 0.5}, count=10_000)
    >>> r = chi2_test(profile, [600, 400, 0], 10_000, threshold=0.1, column="colour")
    >>> round(r.statistic, 3), r.drifted, r.p_value < 1e-6
    (0.2, True, True)
    """
    inputs = window_inputs("chi2", profile, counts, n_reference, threshold, column, kind)
    if isinstance(inputs, TestResult):
        return inputs
    p, c, n_reference, n_current = inputs
    keep = informative(p, c)
    observed = c[keep].astype(np.float64)
    expected = n_current * smoothed(p[keep] * n_reference, PSEUDO_COUNT)
    pearson = float(np.sum((observed - expected) ** 2 / expected))
    n_bins = int(keep.sum())
    v = cramers_v(pearson, n_current, n_bins)
    two_sample = pearson * n_reference / (n_reference + n_current)
    p_value = float(stats.chi2.sf(two_sample, n_bins - 1)) if n_bins > 1 else 1.0
    return TestResult(
        test="chi2",
        column=column,
        statistic=v,
        p_value=p_value,
        threshold=float(threshold),
        n_reference=n_reference,
        n_current=n_current,
        drifted=bool(v >= threshold),
        kind=kind,
    )
