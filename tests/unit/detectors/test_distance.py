"""Jensen-Shannon, Wasserstein and chi-square against scipy, with their properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from driftline.detectors.distance import (
    bin_positions,
    chi2_test,
    cramers_v,
    jensen_shannon,
    jensen_shannon_p_value,
    jensen_shannon_test,
    reference_scale,
    wasserstein,
    wasserstein_test,
)
from driftline.detectors.profile import numeric_profile
from driftline.detectors.psi import decile_bins
from driftline.schemas.reference import CategoricalProfile, NumericProfile
from tests.unit.detectors.drift_helpers import counts_over, numeric_profile_from

count_lists = st.lists(st.integers(0, 300), min_size=2, max_size=20).filter(lambda c: sum(c) > 0)


def _same_length(data: st.DataObject, n: int) -> list[int]:
    return data.draw(
        st.lists(st.integers(0, 300), min_size=n, max_size=n).filter(lambda c: sum(c) > 0)
    )


def _categorical(counts: list[int] | np.ndarray) -> CategoricalProfile:
    c = np.asarray(counts, dtype=np.float64)
    shares = c / c.sum()
    return CategoricalProfile(
        categories={f"c{i}": float(v) for i, v in enumerate(shares[:-1])},
        other=float(shares[-1]),
        count=int(c.sum()),
    )


# --- Jensen-Shannon ------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(ref=count_lists, data=st.data())
def test_jensen_shannon_equals_scipy_base_2(ref: list[int], data: st.DataObject) -> None:
    """Same value as scipy.spatial.distance.jensenshannon(p, q, base=2)."""
    cur = _same_length(data, len(ref))
    r = np.asarray(ref, dtype=np.float64)
    c = np.asarray(cur, dtype=np.float64)
    expected = jensenshannon(r / r.sum(), c / c.sum(), base=2)
    assert jensen_shannon(r / r.sum(), cur) == pytest.approx(expected, abs=1e-7)


@settings(max_examples=100, deadline=None)
@given(ref=count_lists, data=st.data())
def test_jensen_shannon_lies_in_unit_interval_and_is_symmetric(
    ref: list[int], data: st.DataObject
) -> None:
    """0 <= JS <= 1, and swapping the distributions changes nothing."""
    cur = _same_length(data, len(ref))
    r, c = np.asarray(ref), np.asarray(cur)
    forward = jensen_shannon(r / r.sum(), c)
    assert 0.0 <= forward <= 1.0
    assert forward == pytest.approx(jensen_shannon(c / c.sum(), r), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(ref=count_lists)
def test_identical_distributions_give_zero_jensen_shannon_and_no_drift(ref: list[int]) -> None:
    """A window with the reference's exact shares: distance 0, p-value 1, not drifted."""
    result = jensen_shannon_test(
        _categorical(ref), np.asarray(ref) * 2, sum(ref), threshold=0.05, column="c"
    )
    assert result.statistic == pytest.approx(0.0, abs=1e-7)
    assert result.p_value == pytest.approx(1.0)
    assert not result.drifted


def test_disjoint_supports_are_at_distance_one() -> None:
    """No common bin: the largest distance, 1."""
    assert jensen_shannon([0.5, 0.5, 0.0, 0.0], [0, 0, 3, 9]) == pytest.approx(1.0)


def test_numeric_jensen_shannon_is_taken_on_the_deciles() -> None:
    """The numeric test compares decile shares, like PSI."""
    rng = np.random.default_rng(2)
    profile = numeric_profile_from(rng.normal(size=4000))
    counts = counts_over(profile.edges, rng.normal(0.3, 1.0, size=1000))
    result = jensen_shannon_test(profile, counts, 4000, threshold=0.1, column="x")
    p = decile_bins(profile.probabilities, profile.edges, profile.decile_edges)
    q = decile_bins(counts, profile.edges, profile.decile_edges)
    assert result.statistic == pytest.approx(jensenshannon(p, q / q.sum(), base=2), abs=1e-7)


def test_jensen_shannon_p_value_holds_its_false_alarm_rate_under_no_drift() -> None:
    """Two samples of one distribution: about 5 % of p-values fall below 0.05."""
    rng = np.random.default_rng(8)
    shares = rng.dirichlet(np.full(10, 5.0))
    below = 0
    draws = 400
    for _ in range(draws):
        ref = rng.multinomial(5000, shares)
        cur = rng.multinomial(2000, shares)
        p_value = jensen_shannon_p_value(jensen_shannon(ref / 5000, cur), 5000, 2000, 10)
        below += p_value < 0.05
    assert 0.02 <= below / draws <= 0.09


# --- Wasserstein ---------------------------------------------------------------------------


def _profile_with_range() -> NumericProfile:
    return NumericProfile(
        edges=[1.0, 2.0, 4.0, 7.0],
        probabilities=[0.1, 0.3, 0.3, 0.2, 0.1],
        minimum=-1.0,
        maximum=11.0,
        count=1000,
    )


def test_bin_positions_are_midpoints_with_outer_bins_on_their_edge() -> None:
    """e0, (e0+e1)/2, ..., e_last: the reference's extreme values do not place the tails."""
    assert bin_positions(_profile_with_range()).tolist() == [1.0, 1.5, 3.0, 5.5, 7.0]


def test_heavy_tailed_stationary_windows_stay_below_the_wasserstein_floor() -> None:
    """A lognormal(0, 1.5) feature: 200 stationary windows of 10,000, none reaches 0.1."""
    rng = np.random.default_rng(1)
    profile = numeric_profile(rng.lognormal(0, 1.5, 50_000))
    edges = np.asarray(profile.edges)
    for _ in range(200):
        counts = np.bincount(
            np.searchsorted(edges, rng.lognormal(0, 1.5, 10_000), side="right"),
            minlength=edges.size + 1,
        )
        assert not wasserstein_test(profile, counts, 50_000, threshold=0.1, column="x").drifted


def test_bin_positions_fall_back_to_the_edges_without_min_and_max() -> None:
    """Unknown range: the open outer bins sit on their single edge."""
    profile = NumericProfile(edges=[1.0, 3.0], probabilities=[0.2, 0.5, 0.3], count=10)
    assert bin_positions(profile).tolist() == [1.0, 2.0, 3.0]


@settings(max_examples=100, deadline=None)
@given(counts=st.lists(st.integers(0, 200), min_size=5, max_size=5).filter(lambda c: sum(c) > 0))
def test_wasserstein_equals_scipy_on_the_bin_positions(counts: list[int]) -> None:
    """scipy.stats.wasserstein_distance(x, x, p, q) / IQR, with x the bin midpoints."""
    profile = _profile_with_range()
    x = bin_positions(profile)
    expected = stats.wasserstein_distance(x, x, profile.probabilities, counts)
    result = wasserstein_test(profile, counts, 1000, threshold=0.1, column="x")
    assert wasserstein(x, profile.probabilities, counts) == pytest.approx(expected, abs=1e-12)
    assert result.statistic == pytest.approx(expected / reference_scale(profile), abs=1e-12)
    assert result.p_value is None


def test_reference_scale_is_the_iqr_of_the_binned_cdf() -> None:
    """CDF knots (-1,0) (1,.1) (2,.4) (4,.7) (7,.9) (11,1): Q(.25)=1.5, Q(.75)=4.75."""
    assert reference_scale(_profile_with_range()) == pytest.approx(3.25)


def test_reference_scale_is_close_to_the_raw_iqr_with_fine_bins() -> None:
    """With 100 quantile bins the binned IQR is the sample IQR to within a bin."""
    rng = np.random.default_rng(3)
    sample = rng.normal(size=10_000)
    iqr = np.subtract(*np.quantile(sample, [0.75, 0.25]))
    assert reference_scale(numeric_profile_from(sample)) == pytest.approx(iqr, rel=0.02)


def test_reference_scale_of_a_constant_column_is_one() -> None:
    """No spread at all: the distance stays in the column's unit."""
    profile = NumericProfile(edges=[], probabilities=[1.0], minimum=3.0, maximum=3.0, count=9)
    assert reference_scale(profile) == 1.0


def test_binned_wasserstein_tracks_the_exact_one_on_raw_samples() -> None:
    """On 100 quantile bins the binned distance is within a few percent of the raw one."""
    rng = np.random.default_rng(4)
    reference = rng.normal(size=20_000)
    current = rng.normal(0.5, 1.0, size=5000)
    profile = numeric_profile_from(reference)
    result = wasserstein_test(
        profile, counts_over(profile.edges, current), 20_000, threshold=0.1, column="x"
    )
    exact = stats.wasserstein_distance(reference, current) / reference_scale(profile)
    assert result.statistic == pytest.approx(exact, rel=0.05)


@settings(max_examples=100, deadline=None)
@given(counts=st.lists(st.integers(0, 200), min_size=5, max_size=5).filter(lambda c: sum(c) > 0))
def test_wasserstein_between_unnormalised_distributions_is_symmetric(counts: list[int]) -> None:
    """The Wasserstein distance does not depend on which distribution is the reference."""
    x = [0.0, 1.5, 3.0, 5.5, 9.0]
    p = np.array([0.1, 0.3, 0.3, 0.2, 0.1])
    c = np.asarray(counts)
    assert wasserstein(x, p, c) == pytest.approx(wasserstein(x, c / c.sum(), p * 10), abs=1e-12)


# --- chi-square ----------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(ref=st.lists(st.integers(1, 300), min_size=2, max_size=12), data=st.data())
def test_chi2_equals_scipy_chisquare_against_the_smoothed_reference(
    ref: list[int], data: st.DataObject
) -> None:
    """Pearson's statistic is scipy's; V = sqrt(chi2/(m(B-1))); p = chi2.sf(chi2 n/(n+m), B-1)."""
    cur = np.asarray(_same_length(data, len(ref)))
    n = sum(ref)
    m = int(cur.sum())
    profile = _categorical(ref)
    shares = np.array([*profile.categories.values(), profile.other])
    expected = m * (shares * n + 0.5) / (n + 0.5 * len(ref))
    keep = (shares > 0) | (cur > 0)
    oracle = stats.chisquare(cur[keep], f_exp=expected[keep] * m / expected[keep].sum())
    b = int(keep.sum())

    result = chi2_test(profile, cur, n, threshold=0.1, column="c")

    assert result.statistic == pytest.approx(
        math.sqrt(oracle.statistic / (m * (b - 1))), rel=1e-9, abs=1e-12
    )
    assert result.p_value == pytest.approx(
        stats.chi2.sf(oracle.statistic * n / (n + m), b - 1), rel=1e-9, abs=1e-300
    )


def test_chi2_p_value_approaches_scipy_chisquare_for_a_huge_reference() -> None:
    """With a reference of 10^12 values the two-sample correction vanishes."""
    profile = CategoricalProfile(categories={"a": 0.5, "b": 0.3}, other=0.2, count=10**12)
    counts = np.array([520, 260, 220])
    oracle = stats.chisquare(counts, f_exp=np.array([0.5, 0.3, 0.2]) * 1000)
    result = chi2_test(profile, counts, 10**12, threshold=0.1, column="c")
    assert result.p_value == pytest.approx(oracle.pvalue, rel=1e-6)
    assert result.statistic == pytest.approx(math.sqrt(oracle.statistic / 2000), rel=1e-6)


def test_chi2_p_value_holds_its_false_alarm_rate_under_no_drift() -> None:
    """Two samples of one distribution: about 5 % of p-values fall below 0.05."""
    rng = np.random.default_rng(9)
    shares = rng.dirichlet(np.full(8, 5.0))
    below = 0
    draws = 400
    for _ in range(draws):
        profile = _categorical(rng.multinomial(3000, shares))
        result = chi2_test(profile, rng.multinomial(1500, shares), 3000, threshold=1, column="c")
        assert result.p_value is not None
        below += result.p_value < 0.05
    assert 0.02 <= below / draws <= 0.09


def test_unseen_categories_give_a_large_finite_effect() -> None:
    """The reference never saw 'other'; 10 % of the window is other: V far above 0.1."""
    profile = CategoricalProfile(categories={"a": 0.5, "b": 0.5}, other=0.0, count=10_000)
    result = chi2_test(profile, [450, 450, 100], 10_000, threshold=0.1, column="c")
    assert math.isfinite(result.statistic)
    assert result.statistic > 1.0
    assert result.drifted


def test_cramers_v_of_a_goodness_of_fit_statistic() -> None:
    """V = sqrt(chi2 / (m (B - 1))); 0 where undefined."""
    assert cramers_v(90.0, 1000, 4) == pytest.approx(math.sqrt(90 / 3000))
    assert cramers_v(5.0, 1000, 1) == 0.0
    assert cramers_v(5.0, 0, 3) == 0.0


@settings(max_examples=100, deadline=None)
@given(ref=st.lists(st.integers(30, 300), min_size=2, max_size=12))
def test_identical_distributions_give_near_zero_cramers_v_and_no_drift(ref: list[int]) -> None:
    """The reference's own counts as the window: V about 0, not drifted.

    Not exactly 0: the reference is smoothed with half a count per category, a shift of order
    ``1/n`` that vanishes for references of realistic size (here 30 or more per category).
    """
    result = chi2_test(_categorical(ref), ref, sum(ref), threshold=0.1, column="c")
    assert result.statistic < 0.02
    assert not result.drifted


def test_empty_window_has_no_statistic_for_any_distance() -> None:
    """Zero counts give NaN statistics, no p-values and no verdicts."""
    numeric = _profile_with_range()
    categorical = _categorical([3, 4, 5])
    results = [
        jensen_shannon_test(numeric, [0] * 5, 1000, threshold=0.1, column="x"),
        wasserstein_test(numeric, [0] * 5, 1000, threshold=0.1, column="x"),
        chi2_test(categorical, [0, 0, 0], 12, threshold=0.1, column="c"),
    ]
    for result in results:
        assert math.isnan(result.statistic)
        assert result.p_value is None
        assert not result.drifted
