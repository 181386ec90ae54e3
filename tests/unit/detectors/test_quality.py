"""Data-quality rates: missing, out of range and unseen categories against the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from driftline.detectors.quality import (
    missing_rate_test,
    out_of_range_test,
    two_proportion_p_value,
    unseen_category_test,
)
from driftline.detectors.result import TestResult


def test_two_sided_two_proportion_p_value_equals_the_uncorrected_2x2_chi_square() -> None:
    """z^2 is Pearson's chi-square of the 2x2 table, so the two-sided p-values agree."""
    table = np.array([[50, 950], [80, 920]])
    oracle = stats.chi2_contingency(table, correction=False).pvalue
    assert two_proportion_p_value(50, 1000, 80, 1000) == pytest.approx(oracle, rel=1e-9)


def test_one_sided_p_value_is_half_the_two_sided_one_for_an_increase() -> None:
    """alternative='greater' puts the whole tail on the side of an increase."""
    two_sided = two_proportion_p_value(50, 1000, 80, 1000)
    assert two_proportion_p_value(50, 1000, 80, 1000, alternative="greater") == pytest.approx(
        two_sided / 2
    )
    assert two_proportion_p_value(80, 1000, 50, 1000, alternative="greater") > 0.99


def test_equal_extreme_rates_have_p_value_one() -> None:
    """Pooled rate 0 (or 1): both samples agree exactly."""
    assert two_proportion_p_value(0, 100, 0, 50) == 1.0
    assert two_proportion_p_value(100, 100, 50, 50) == 1.0


def test_missing_rate_flags_an_absolute_change_either_way() -> None:
    """|0.12 - 0.02| = 0.10 flags at 0.05; so does a drop from 0.12 to 0.02."""
    up = missing_rate_test(120, 1000, 0.02, 50_000, threshold=0.05, column="age")
    down = missing_rate_test(20, 1000, 0.12, 50_000, threshold=0.05, column="age")
    assert up.statistic == pytest.approx(0.10)
    assert down.statistic == pytest.approx(0.10)
    assert up.drifted
    assert down.drifted
    assert up.kind == "data_quality"
    assert up.test == "missing_rate"
    assert (up.n_reference, up.n_current) == (50_000, 1000)


def test_missing_rate_p_value_is_the_two_proportion_test_against_the_reference() -> None:
    """The reference's rate times its rows are its missing count."""
    result = missing_rate_test(30, 1000, 0.025, 40_000, threshold=0.05, column="age")
    table = np.array([[1000, 39_000], [30, 970]])
    assert result.p_value == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9
    )
    assert not result.drifted


def test_out_of_range_p_value_is_the_binomial_tail_at_rate_two_over_n_plus_one() -> None:
    """P(X >= k) for X ~ Binomial(m, 2/(n+1))."""
    result = out_of_range_test(7, 2000, 999, threshold=0.01, column="amount")
    assert result.statistic == pytest.approx(7 / 2000)
    assert result.p_value == pytest.approx(stats.binom.sf(6, 2000, 2 / 1000))
    assert not result.drifted
    assert result.test == "out_of_range_rate"


def test_out_of_range_chance_under_no_drift_is_two_over_n_plus_one() -> None:
    """Simulated: a new value leaves the range of 99 reference values about 2 % of the time."""
    rng = np.random.default_rng(11)
    reference = rng.normal(size=(4000, 99))
    new = rng.normal(size=4000)
    outside = (new < reference.min(axis=1)) | (new > reference.max(axis=1))
    assert outside.mean() == pytest.approx(2 / 100, abs=0.006)


def test_out_of_range_flags_a_window_far_outside_the_reference() -> None:
    """Three percent outside a range that should hold all but 0.02 %: drifted, tiny p."""
    result = out_of_range_test(30, 1000, 10_000, threshold=0.01, column="amount")
    assert result.drifted
    assert result.p_value is not None
    assert result.p_value < 1e-10


def test_unseen_category_rate_counts_only_the_excess_over_the_reference_other_share() -> None:
    """10 % other against a reference with 8 % other is an excess of 0.02."""
    result = unseen_category_test(100, 1000, 0.08, 20_000, threshold=0.05, column="country")
    assert result.statistic == pytest.approx(0.02)
    assert not result.drifted
    assert result.test == "unseen_category_rate"


def test_fewer_unseen_categories_than_the_reference_never_flag() -> None:
    """A drop of the other share is negative and one-sided p is large."""
    result = unseen_category_test(10, 1000, 0.08, 20_000, threshold=0.01, column="country")
    assert result.statistic < 0
    assert not result.drifted
    assert result.p_value is not None
    assert result.p_value > 0.99


def test_new_categories_in_a_fully_listed_column_flag() -> None:
    """Reference other share 0, window 7 % unseen: drifted with a tiny p-value."""
    result = unseen_category_test(70, 1000, 0.0, 20_000, threshold=0.05, column="country")
    assert result.drifted
    assert result.p_value is not None
    assert result.p_value < 1e-10


@pytest.mark.parametrize(
    "result",
    [
        missing_rate_test(0, 0, 0.1, 100, threshold=0.05, column="x"),
        out_of_range_test(0, 0, 100, threshold=0.05, column="x"),
        unseen_category_test(0, 0, 0.1, 100, threshold=0.05, column="x"),
        missing_rate_test(5, 10, 0.1, 0, threshold=0.05, column="x"),
    ],
    ids=["missing", "out_of_range", "unseen", "no_reference"],
)
def test_quality_checks_without_values_have_no_statistic_and_no_verdict(
    result: TestResult,
) -> None:
    """An empty window or reference: NaN statistic, no p-value, not drifted."""
    assert math.isnan(result.statistic)
    assert result.p_value is None
    assert not result.drifted
    assert result.kind == "data_quality"
