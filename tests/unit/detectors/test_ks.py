"""Binned KS: against scipy's exact two-sample statistic on the raw samples, and its bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.detectors.ks import binned_ks, ks_p_value, ks_test
from driftline.schemas.reference import NumericProfile
from tests.unit.detectors.drift_helpers import counts_over, numeric_profile_from

bin_counts = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=12
).filter(lambda pairs: sum(a for a, _ in pairs) > 0 and sum(b for _, b in pairs) > 0)


@pytest.mark.parametrize(
    ("seed", "shift", "scale"),
    [(0, 0.0, 1.0), (1, 0.1, 1.0), (2, 0.5, 1.0), (3, 0.0, 1.5), (4, -1.0, 0.7)],
)
def test_exact_statistic_on_raw_samples_lies_within_the_stated_bound(
    seed: int, shift: float, scale: float
) -> None:
    """D_binned <= D_exact <= D_binned + bound, with bound <= max min(p, q) <= max p + max q."""
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=5000)
    current = rng.normal(shift, scale, size=2000)
    profile = numeric_profile_from(reference)
    counts = counts_over(profile.edges, current)

    d, bound = binned_ks(profile.probabilities, counts)
    exact = stats.ks_2samp(reference, current).statistic

    assert d <= exact + 1e-12
    assert exact <= d + bound + 1e-12
    p = np.asarray(profile.probabilities)
    q = counts / counts.sum()
    assert bound <= np.minimum(p, q).max() + 1e-12
    assert bound <= p.max() + q.max()


@settings(max_examples=60, deadline=None)
@given(pairs=bin_counts, data=st.data())
def test_bound_holds_for_any_arrangement_of_values_within_bins(
    pairs: list[tuple[int, int]], data: st.DataObject
) -> None:
    """Wherever the values sit inside their bins, the exact statistic stays within the bound."""
    ref_counts = np.array([a for a, _ in pairs])
    cur_counts = np.array([b for _, b in pairs])
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # bin j is [j, j + 1): edges 1..K-1, values placed at random inside their bin
    reference = np.repeat(np.arange(len(pairs)), ref_counts) + rng.random(ref_counts.sum())
    current = np.repeat(np.arange(len(pairs)), cur_counts) + rng.random(cur_counts.sum())

    d, bound = binned_ks(ref_counts / ref_counts.sum(), cur_counts)
    exact = stats.ks_2samp(reference, current).statistic

    assert d - 1e-12 <= exact <= d + bound + 1e-12


@settings(max_examples=60, deadline=None)
@given(pairs=bin_counts)
def test_bound_is_reached_by_some_raw_samples_so_it_cannot_be_tightened(
    pairs: list[tuple[int, int]],
) -> None:
    """Ordering one bin's values (reference first or window first) makes D = D_binned + bound."""
    ref_counts = np.array([a for a, _ in pairs], dtype=np.int64)
    cur_counts = np.array([b for _, b in pairs], dtype=np.int64)
    p = ref_counts / ref_counts.sum()
    q = cur_counts / cur_counts.sum()
    d, bound = binned_ks(p, cur_counts)

    left = np.concatenate(([0.0], np.cumsum(p - q)[:-1]))
    worst = int(np.argmax(np.maximum(left + p, q - left)))
    reference_first = left[worst] + p[worst] >= q[worst] - left[worst]
    ref_offset = np.full(len(pairs), 0.5)
    cur_offset = np.full(len(pairs), 0.5)  # ties elsewhere: H only changes at the bin's end
    ref_offset[worst], cur_offset[worst] = (0.25, 0.75) if reference_first else (0.75, 0.25)
    reference = np.repeat(np.arange(len(pairs)) + ref_offset, ref_counts)
    current = np.repeat(np.arange(len(pairs)) + cur_offset, cur_counts)

    exact = stats.ks_2samp(reference, current).statistic
    assert exact == pytest.approx(d + bound, abs=1e-12)


def test_statistic_and_p_value_equal_scipy_when_every_bin_holds_a_single_value() -> None:
    """On integer data with an edge at every integer, binning loses nothing: D and p are exact."""
    rng = np.random.default_rng(5)
    reference = rng.poisson(4.0, size=3000).astype(np.float64)
    current = rng.poisson(4.6, size=800).astype(np.float64)
    edges = np.arange(1.0, max(reference.max(), current.max()) + 1)
    probabilities = counts_over(edges, reference) / reference.size
    profile = NumericProfile(
        edges=edges.tolist(), probabilities=probabilities.tolist(), count=reference.size
    )

    result = ks_test(
        profile, counts_over(edges, current), reference.size, threshold=0.1, column="x"
    )
    oracle = stats.ks_2samp(reference, current, method="asymp")

    assert result.statistic == pytest.approx(oracle.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(oracle.pvalue, rel=1e-9)


def test_p_value_is_the_asymptotic_one_of_the_binned_statistic_and_never_below_the_exact_one() -> (
    None
):
    """p ~ kstwo.sf(D_b, round(nm/(n+m))) (within the limit's error above KSTWO_UP_TO), and
    since D_b <= D it is at least scipy's p."""
    rng = np.random.default_rng(6)
    reference = rng.normal(size=4000)
    current = rng.normal(0.08, 1.0, size=1500)
    profile = numeric_profile_from(reference)
    result = ks_test(profile, counts_over(profile.edges, current), 4000, threshold=0.1, column="x")

    n_e = round(4000 * 1500 / 5500)
    assert result.p_value == pytest.approx(stats.kstwo.sf(result.statistic, n_e), abs=5e-3)
    oracle = stats.ks_2samp(reference, current, method="asymp")
    assert result.p_value is not None
    assert result.p_value >= oracle.pvalue


@pytest.mark.parametrize("n_e", [1_001, 2_000, 8_333, 40_000])
def test_large_samples_use_the_corrected_limit_within_its_stated_error(n_e: int) -> None:
    """Above KSTWO_UP_TO the p-value is Kolmogorov's limit; it stays within 5e-3 of kstwo."""
    n = 2 * n_e  # n*m/(n+m) = n_e for n = m = 2 n_e
    for d in np.linspace(0.001, 0.1, 60):
        assert abs(ks_p_value(float(d), n, n) - stats.kstwo.sf(d, n_e)) < 5e-3


def test_ks_p_value_rounds_the_effective_size_like_scipy() -> None:
    """ks_p_value(d, n, m) is scipy's asymptotic two-sided p-value for those sizes."""
    assert ks_p_value(0.05, 1000, 700) == pytest.approx(
        stats.kstwo.sf(0.05, np.round(1000 * 700 / 1700)), rel=1e-12
    )
    assert ks_p_value(0.5, 1, 1) == pytest.approx(stats.kstwo.sf(0.5, 1))


@settings(max_examples=80, deadline=None)
@given(counts=st.lists(st.integers(0, 500), min_size=2, max_size=30).filter(lambda c: sum(c) > 0))
def test_identical_distributions_give_zero_distance_and_no_drift(counts: list[int]) -> None:
    """A window with exactly the reference's shares has D = 0, p = 1 and is not drifted."""
    c = np.asarray(counts)
    profile = NumericProfile(
        edges=list(range(len(counts) - 1)),
        probabilities=(c / c.sum()).tolist(),
        count=int(c.sum()),
    )
    result = ks_test(profile, c * 3, int(c.sum()), threshold=0.05, column="x")
    assert result.statistic == pytest.approx(0.0, abs=1e-12)
    assert result.p_value == pytest.approx(1.0)
    assert not result.drifted


@settings(max_examples=80, deadline=None)
@given(pairs=bin_counts)
def test_distance_and_bound_are_symmetric_in_the_two_distributions(
    pairs: list[tuple[int, int]],
) -> None:
    """Swapping reference and window leaves D and its bound unchanged."""
    a = np.array([x for x, _ in pairs])
    b = np.array([y for _, y in pairs])
    d_ab, bound_ab = binned_ks(a / a.sum(), b)
    d_ba, bound_ba = binned_ks(b / b.sum(), a)
    assert d_ab == pytest.approx(d_ba, abs=1e-12)
    assert bound_ab == pytest.approx(bound_ba, abs=1e-12)


def test_verdict_is_statistic_at_or_above_threshold() -> None:
    """drifted is D >= threshold, inclusive."""
    profile = NumericProfile(edges=[0.0], probabilities=[0.5, 0.5], count=100)
    d = ks_test(profile, [70, 30], 100, threshold=0.1, column="x").statistic
    assert d == pytest.approx(0.2)
    assert ks_test(profile, [70, 30], 100, threshold=d, column="x").drifted
    assert not ks_test(profile, [70, 30], 100, threshold=np.nextafter(d, 1), column="x").drifted


def test_empty_window_has_no_statistic_and_no_verdict() -> None:
    """Zero counts give a NaN statistic, no p-value and drifted False."""
    profile = NumericProfile(edges=[0.0], probabilities=[0.5, 0.5], count=100)
    result = ks_test(profile, [0, 0], 100, threshold=0.1, column="x")
    assert math.isnan(result.statistic)
    assert result.p_value is None
    assert not result.drifted
    assert result.n_current == 0


def test_counts_that_do_not_match_the_bins_are_rejected() -> None:
    """A window's counts must have one entry per reference bin."""
    profile = NumericProfile(edges=[0.0], probabilities=[0.5, 0.5], count=100)
    with pytest.raises(ValueError, match="2 bin counts"):
        ks_test(profile, [1, 2, 3], 100, threshold=0.1, column="x")
    with pytest.raises(ValueError, match="non-negative"):
        ks_test(profile, [5, -1], 100, threshold=0.1, column="x")
