r"""Two-sample Kolmogorov-Smirnov distance on the reference's frozen bins.

Stage 1 never keeps raw values, only counts over the reference's quantile bins, so the statistic
is computed from the two binned CDFs. This module says exactly how far that can be from the KS
statistic on the raw samples.

The bound
---------
Let the interior edges be :math:`e_0 < \dots < e_{K-1}`, the bins
:math:`B_0 = (-\infty, e_0), B_j = [e_{j-1}, e_j), B_K = [e_{K-1}, +\infty)`, the reference's
mass in bin :math:`j` be :math:`p_j` and the window's :math:`q_j`. With :math:`F` and :math:`G`
the raw empirical CDFs of the reference and the window, and :math:`H = F - G`:

1. At every edge the binned data know :math:`H(e_j^-) = \sum_{i \le j} (p_i - q_i)` exactly
   (the bins are closed on the left, so :math:`F(e_j^-)` counts the values below
   :math:`e_j`). The binned statistic is :math:`D_b = \max_j |H(e_j^-)|`, and since the exact
   statistic :math:`D = \sup_x |H(x)|` also ranges over these left limits,
   :math:`D_b \le D`.
2. Inside bin :math:`j`, with left-end value :math:`h_j = H(a_j^-)` (:math:`h_0 = 0`), the
   reference has gained some :math:`u \in [0, p_j]` and the window some
   :math:`v \in [0, q_j]`, so :math:`H(x) = h_j + u - v \in [h_j - q_j,\ h_j + p_j]` and
   :math:`\sup_{x \in B_j} |H(x)| \le U_j = \max(h_j + p_j,\ q_j - h_j)`. Every point of that
   interval is reached by some raw samples with these bin counts (put the bin's reference values
   before or after its window values), so :math:`U_j` cannot be improved from binned data.
3. Hence :math:`D_b \le D \le \max_j U_j`, and the reported ``bound`` is
   :math:`\max_j U_j - D_b`: the exact statistic lies in :math:`[D_b, D_b + \text{bound}]`.
4. Since :math:`h_j + p_j = h_{j+1} + q_j` and :math:`q_j - h_j = p_j - h_{j+1}`, and both
   :math:`|h_j|` and :math:`|h_{j+1}|` are at most :math:`D_b` (with :math:`h_{K+1} = 0`), each
   :math:`U_j \le D_b + \min(p_j, q_j)`, so

   .. math:: 0 \le D - D_b \le \text{bound} \le \max_j \min(p_j, q_j)
             \le \max_j p_j,

   never looser than the largest reference bin mass (DESIGN §4), nor than the largest reference
   plus the largest window bin mass. With 100 quantile bins every reference bin holds about 0.01
   (more where tied values merge bins), and so does the bound.

Because :math:`D_b \le D`, a verdict ``D_b >= threshold`` errs towards "no drift" by at most
``bound``, and the p-value computed from :math:`D_b` is never smaller than the raw-sample one.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from driftline.detectors._binned import (
    effective_n,
    window_inputs,
)
from driftline.detectors.result import ResultKind, TestResult
from driftline.schemas.reference import NumericProfile

__all__ = ["binned_ks", "ks_p_value", "ks_test"]


def binned_ks(reference: ArrayLike, counts: ArrayLike) -> tuple[float, float]:
    """KS distance between two binned distributions, and the bound on its error.

    Parameters
    ----------
    reference
        Reference probability per bin (sums to 1).
    counts
        The window's count per bin, same bins; at least one value in total.

    Returns
    -------
    tuple of float
        ``(d, bound)``: the largest absolute difference of the two cumulative distributions at
        the bin edges, and how much larger the KS statistic of any raw samples with these bin
        masses can be (see the module docstring); the exact value lies in ``[d, d + bound]``.

    Examples
    --------
    >>> d, bound = binned_ks([0.25, 0.25, 0.25, 0.25], [10, 10, 40, 40])
    >>> round(d, 6), round(bound, 6)
    (0.3, 0.25)
    """
    p = np.asarray(reference, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    q = c / c.sum()
    h = np.cumsum(p - q)[:-1]  # H at the left limit of every edge
    d = float(np.abs(h).max()) if h.size else 0.0
    left = np.concatenate(([0.0], h))  # H at the left end of every bin
    reach = float(np.maximum(left + p, q - left).max())
    return d, max(reach - d, 0.0)


KSTWO_UP_TO = 1000
"""Largest effective size for which the p-value uses the finite-n distribution ``kstwo``."""


def ks_p_value(d: float, n_reference: int, n_current: int) -> float:
    """Asymptotic two-sided p-value of a two-sample KS distance ``d``.

    For ``n_e = n*m/(n+m)`` up to :data:`KSTWO_UP_TO` (rounded as
    ``scipy.stats.ks_2samp(method="asymp")`` does): the distribution of the one-sample
    statistic for ``n_e`` values, ``scipy.stats.kstwo``. Above it: Kolmogorov's limiting
    distribution with Stephens' correction, ``kstwobign.sf(d * (sqrt(n_e) + 0.12 +
    0.11 / sqrt(n_e)))``. ``kstwo`` grows costly with ``n_e`` where the limit does not, and the
    limit's distance to ``kstwo`` above that size is well inside what a significance *guard*
    needs (effect size decides; DESIGN §4).

    >>> round(ks_p_value(0.05, 10_000, 1_000), 4)
    0.0205
    >>> round(ks_p_value(0.02, 50_000, 10_000), 4)
    0.0025
    """
    n_e = max(1.0, float(np.round(effective_n(n_reference, n_current))))
    if n_e <= KSTWO_UP_TO:
        return float(np.clip(stats.kstwo.sf(d, n_e), 0.0, 1.0))
    root = math.sqrt(n_e)
    return float(np.clip(stats.kstwobign.sf(d * (root + 0.12 + 0.11 / root)), 0.0, 1.0))


def ks_test(
    profile: NumericProfile,
    counts: ArrayLike,
    n_reference: int,
    *,
    threshold: float,
    column: str,
    kind: ResultKind = "feature_drift",
) -> TestResult:
    """Binned two-sample KS test of a window against a numeric reference.

    Parameters
    ----------
    profile
        The column's reference profile; its bins are the window's bins.
    counts
        The window's count per bin, ``len(profile.edges) + 1`` entries.
    n_reference
        Values the reference distribution was estimated from.
    threshold
        The statistic at or above which the column counts as drifted.
    column
        Name reported in the result.
    kind
        What the column is (a feature, the predictions, the labels).

    Returns
    -------
    TestResult
        ``statistic`` is the binned KS distance ``D_b``, ``bound`` the largest amount by which
        the raw-sample statistic can exceed it, ``p_value`` the asymptotic p-value of ``D_b``.
        ``drifted`` is ``D_b >= threshold``; the test itself has no minimum window size (the
        decision policy's ``min_samples`` is that guard). An empty window or reference gives a
        NaN statistic and ``drifted=False``.

    Examples
    --------
    >>> from driftline.schemas.reference import NumericProfile
    >>> profile = NumericProfile(edges=[0.0, 1.0], probabilities=[0.3, 0.4, 0.3], count=1000)
    >>> r = ks_test(profile, [10, 40, 50], 1000, threshold=0.1, column="x")
    >>> round(r.statistic, 3), r.drifted, round(r.bound, 3)
    (0.2, True, 0.4)
    """
    inputs = window_inputs("ks", profile, counts, n_reference, threshold, column, kind)
    if isinstance(inputs, TestResult):
        return inputs
    p, c, n_reference, n_current = inputs
    d, bound = binned_ks(p, c)
    return TestResult(
        test="ks",
        column=column,
        statistic=d,
        p_value=ks_p_value(d, n_reference, n_current),
        threshold=float(threshold),
        n_reference=n_reference,
        n_current=n_current,
        drifted=bool(d >= threshold),
        kind=kind,
        bound=bound,
    )
