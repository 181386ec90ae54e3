"""Data-quality rates of a window against the reference: missing, out of range, unseen.

Each check turns a few counts a pane summary already holds into a
:class:`~driftline.detectors.result.TestResult` with ``kind="data_quality"``: the rate's change
from what the reference shows is the effect size that decides, and a test of "the reference's
rate still holds" gives the p-value that guards.
"""

from __future__ import annotations

import math
from typing import Literal

from scipy import stats

from driftline.detectors._binned import checked_n_reference
from driftline.detectors.result import TestResult
from driftline.errors import StatisticsError

__all__ = [
    "missing_rate_test",
    "out_of_range_test",
    "two_proportion_p_value",
    "unseen_category_test",
]


def two_proportion_p_value(
    successes_a: float,
    n_a: int,
    successes_b: float,
    n_b: int,
    *,
    alternative: Literal["two-sided", "greater"] = "two-sided",
) -> float:
    """P-value of the pooled two-proportion z-test that two rates are equal.

    ``alternative="greater"`` tests whether the rate of ``b`` exceeds that of ``a``. Where the
    pooled rate is 0 or 1 both samples agree exactly and the p-value is 1.

    >>> round(two_proportion_p_value(50, 1000, 80, 1000), 4)
    0.0065
    """
    if alternative not in ("two-sided", "greater"):
        raise StatisticsError(f"alternative must be 'two-sided' or 'greater', got {alternative!r}")
    pooled = (successes_a + successes_b) / (n_a + n_b)
    variance = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)
    if variance <= 0.0:
        return 1.0
    z = (successes_b / n_b - successes_a / n_a) / math.sqrt(variance)
    if alternative == "greater":
        return float(stats.norm.sf(z))
    return float(min(1.0, 2.0 * stats.norm.sf(abs(z))))


def _no_values(
    test: str, column: str, threshold: float, n_reference: int, n_current: int
) -> TestResult:
    return TestResult(
        test=test,
        column=column,
        statistic=math.nan,
        p_value=None,
        threshold=float(threshold),
        n_reference=n_reference,
        n_current=n_current,
        drifted=False,
        kind="data_quality",
    )


def missing_rate_test(
    n_missing: int,
    n_rows: int,
    reference_missing_rate: float,
    n_reference: int,
    *,
    threshold: float,
    column: str,
) -> TestResult:
    """How far a window's missing-value rate moved from the reference's.

    Parameters
    ----------
    n_missing
        Rows of the window where the column is missing.
    n_rows
        Rows of the window, missing or not.
    reference_missing_rate
        The profile's ``missing_rate``.
    n_reference
        Rows the reference rate was measured on, missing or not (the reference's ``n_rows``).
    threshold
        Absolute change of the rate at or above which the column is flagged.
    column
        Name reported in the result.

    Returns
    -------
    TestResult
        ``statistic`` is ``|window rate - reference rate|``: a column that stops being missing
        is as suspicious as one that starts (a default filled in upstream, say). ``p_value`` is
        the two-sided pooled two-proportion z-test. A window or reference without rows gives a
        NaN statistic and ``drifted=False``.

    Examples
    --------
    >>> r = missing_rate_test(120, 1000, 0.02, 50_000, threshold=0.05, column="age")
    >>> round(r.statistic, 3), r.drifted, r.p_value < 1e-10
    (0.1, True, True)
    """
    n_reference = checked_n_reference(n_reference)
    if n_rows == 0 or n_reference == 0:
        return _no_values("missing_rate", column, threshold, n_reference, n_rows)
    rate = n_missing / n_rows
    change = abs(rate - reference_missing_rate)
    p_value = two_proportion_p_value(
        reference_missing_rate * n_reference, n_reference, n_missing, n_rows
    )
    return TestResult(
        test="missing_rate",
        column=column,
        statistic=change,
        p_value=p_value,
        threshold=float(threshold),
        n_reference=n_reference,
        n_current=n_rows,
        drifted=bool(change >= threshold),
        kind="data_quality",
    )


def out_of_range_test(
    n_out_of_range: int,
    n_values: int,
    n_reference: int,
    *,
    threshold: float,
    column: str,
) -> TestResult:
    """Share of a window's values outside the reference's ``[minimum, maximum]``.

    Parameters
    ----------
    n_out_of_range
        Non-missing values of the window below the reference minimum or above its maximum.
    n_values
        Non-missing values of the window.
    n_reference
        Non-missing values the reference range was taken from (the profile's ``count``).
    threshold
        Out-of-range share at or above which the column is flagged.
    column
        Name reported in the result.

    Returns
    -------
    TestResult
        ``statistic`` is the out-of-range share (the reference's own is 0 by construction).
        Under no drift a new value falls outside the range of ``n`` exchangeable reference values
        with probability ``2/(n+1)``, so ``p_value`` is the binomial tail
        ``P(X >= k), X ~ Binomial(m, 2/(n+1))``. A window or reference without values gives a NaN
        statistic
        and ``drifted=False``.

    Examples
    --------
    >>> r = out_of_range_test(30, 1000, 10_000, threshold=0.01, column="amount")
    >>> r.statistic, r.drifted, r.p_value < 1e-10
    (0.03, True, True)
    """
    n_reference = checked_n_reference(n_reference)
    if n_values == 0 or n_reference == 0:
        return _no_values("out_of_range_rate", column, threshold, n_reference, n_values)
    share = n_out_of_range / n_values
    chance = min(1.0, 2.0 / (n_reference + 1))
    p_value = float(stats.binom.sf(n_out_of_range - 1, n_values, chance))
    return TestResult(
        test="out_of_range_rate",
        column=column,
        statistic=share,
        p_value=min(1.0, p_value),
        threshold=float(threshold),
        n_reference=n_reference,
        n_current=n_values,
        drifted=bool(share >= threshold),
        kind="data_quality",
    )


def unseen_category_test(
    n_unseen: int,
    n_values: int,
    reference_other_rate: float,
    n_reference: int,
    *,
    threshold: float,
    column: str,
) -> TestResult:
    """How much more often a window holds categories outside the reference's list.

    Parameters
    ----------
    n_unseen
        Non-missing values of the window whose category the reference never held: in neither
        the profile's categories nor its tail (a column summary's ``unseen_total``; for a
        profile without a tail, the whole other slot).
    n_values
        Non-missing values of the window.
    reference_other_rate
        How often the reference itself falls outside its lists: the profile's
        ``expected_unseen_rate`` (its ``unseen_rate``, or ``other`` for an old profile).
    n_reference
        Non-missing values of the reference (the profile's ``count``).
    threshold
        Increase of the rate at or above which the column is flagged.
    column
        Name reported in the result.

    Returns
    -------
    TestResult
        ``statistic`` is ``window rate - reference rate``; a decrease is no quality
        problem, so it is negative and never flags. ``p_value`` is the one-sided pooled
        two-proportion z-test that the window's rate is higher. A window or reference without
        values gives a NaN statistic and ``drifted=False``.

    Examples
    --------
    >>> r = unseen_category_test(80, 1000, 0.01, 20_000, threshold=0.05, column="country")
    >>> round(r.statistic, 3), r.drifted, r.p_value < 1e-10
    (0.07, True, True)
    """
    n_reference = checked_n_reference(n_reference)
    if n_values == 0 or n_reference == 0:
        return _no_values("unseen_category_rate", column, threshold, n_reference, n_values)
    excess = n_unseen / n_values - reference_other_rate
    p_value = two_proportion_p_value(
        reference_other_rate * n_reference, n_reference, n_unseen, n_values, alternative="greater"
    )
    return TestResult(
        test="unseen_category_rate",
        column=column,
        statistic=excess,
        p_value=p_value,
        threshold=float(threshold),
        n_reference=n_reference,
        n_current=n_values,
        drifted=bool(excess >= threshold),
        kind="data_quality",
    )
