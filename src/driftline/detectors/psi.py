r"""Population Stability Index, on the reference's deciles or a categorical's categories.

.. math:: \mathrm{PSI} = \sum_b (q_b - p_b) \ln \frac{q_b}{p_b}

with :math:`p` the reference's and :math:`q` the window's share of bin :math:`b`. It is the
symmetrised Kullback-Leibler divergence, so it is never negative and symmetric in the two
distributions.

Numeric columns are judged on deciles, the convention PSI thresholds (0.1 small, 0.2 large) were
made for. A profile's decile edges are a subset of its fine edges, so merging the fine counts
into deciles is exact: no value changes bin.

Empty bins would make the log-ratio infinite. Both sides are smoothed with
:data:`~driftline.detectors._binned.PSEUDO_COUNT` (half an observation) per bin: the reference's
shares are turned back into counts with ``n_reference``, so smoothing shrinks a large reference
less than a small window, as it should. Bins empty on both sides are dropped.

Under no drift, for two multinomial samples of sizes :math:`n` and :math:`m` over :math:`B`
informative bins, :math:`\mathrm{PSI} \cdot nm/(n+m)` is asymptotically :math:`\chi^2(B-1)`
(PSI is to first order :math:`\sum_b (q_b - p_b)^2 / p_b`, Pearson's statistic divided by the
effective size); this gives the p-value.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from driftline.detectors._binned import (
    PSEUDO_COUNT,
    decile_bins,
    effective_n,
    informative,
    smoothed,
    window_inputs,
)
from driftline.detectors.result import ResultKind, TestResult
from driftline.schemas.reference import CategoricalProfile, NumericProfile

__all__ = ["decile_bins", "psi", "psi_p_value", "psi_test"]


def psi(
    reference: ArrayLike,
    counts: ArrayLike,
    n_reference: int,
    *,
    pseudo_count: float = PSEUDO_COUNT,
) -> float:
    """PSI between reference shares and a window's counts over the same bins.

    Both sides are smoothed with ``pseudo_count`` per bin, the reference's shares first turned
    into counts with ``n_reference``; bins empty on both sides are dropped.

    >>> round(psi([0.5, 0.5], [30, 70], 100), 4)
    0.1659
    """
    p = np.asarray(reference, dtype=np.float64)
    c = np.asarray(counts, dtype=np.int64)
    keep = informative(p, c)
    ref = smoothed(p[keep] * n_reference, pseudo_count)
    cur = smoothed(c[keep].astype(np.float64), pseudo_count)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi_p_value(value: float, n_reference: int, n_current: int, n_bins: int) -> float:
    """P-value of a PSI over ``n_bins`` bins: ``PSI * nm/(n+m) ~ chi2(n_bins - 1)``.

    >>> round(psi_p_value(0.01, 10_000, 2_000, 10), 4)
    0.0542
    >>> round(psi_p_value(0.005, 10_000, 2_000, 10), 2)
    0.5
    """
    if n_bins < 2:
        return 1.0
    return float(stats.chi2.sf(value * effective_n(n_reference, n_current), n_bins - 1))


def psi_test(
    profile: NumericProfile | CategoricalProfile,
    counts: ArrayLike,
    n_reference: int,
    *,
    threshold: float,
    column: str,
    kind: ResultKind = "feature_drift",
) -> TestResult:
    """PSI of a window against the reference, on deciles (numeric) or categories.

    Parameters
    ----------
    profile
        The column's reference profile. Numeric: PSI on its decile bins (on the fine bins when it
        has no decile edges). Categorical: on its categories plus the ``other`` bin.
    counts
        The window's count per bin of the profile (fine bins for numeric columns; categories in
        the profile's order and a last other/unseen bin for categorical ones).
    n_reference
        Values the reference distribution was estimated from.
    threshold
        PSI at or above which the column counts as drifted (0.2 is the usual "large").
    column
        Name reported in the result.
    kind
        What the column is (a feature, the predictions, the labels).

    Returns
    -------
    TestResult
        ``statistic`` is the PSI, ``p_value`` the chi-square p-value above; ``drifted`` is
        ``PSI >= threshold``. The chi-square approximation wants a few expected values per bin
        (about 5 per decile, so windows of 50 or more); smaller windows are left to the decision
        policy's ``min_samples``. An empty window or reference gives a NaN statistic and
        ``drifted=False``.

    Examples
    --------
    >>> from driftline.schemas.reference import CategoricalProfile
    >>> profile = CategoricalProfile(categories={"a": 0.5, "b": 0.5}, count=100)
    >>> r = psi_test(profile, [30, 70, 0], 100, threshold=0.2, column="colour")
    >>> round(r.statistic, 4), r.drifted
    (0.1659, False)
    """
    inputs = window_inputs(
        "psi", profile, counts, n_reference, threshold, column, kind, deciles=True
    )
    if isinstance(inputs, TestResult):
        return inputs
    p, c, n_reference, n_current = inputs
    value = psi(p, c, n_reference)
    n_bins = int(informative(p, c).sum())
    return TestResult(
        test="psi",
        column=column,
        statistic=value,
        p_value=psi_p_value(value, n_reference, n_current, n_bins),
        threshold=float(threshold),
        n_reference=n_reference,
        n_current=n_current,
        drifted=bool(value >= threshold),
        kind=kind,
    )
