"""PSI: a hand-computed case, exact decile merging, smoothing, p-value and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.detectors.psi import decile_bins, psi, psi_p_value, psi_test
from driftline.schemas.reference import CategoricalProfile, NumericProfile
from tests.unit.detectors.drift_helpers import counts_over, numeric_profile_from

HAND_PROFILE = NumericProfile(
    edges=[1.0, 2.0, 3.0, 4.0, 5.0],
    probabilities=[0.1, 0.2, 0.2, 0.1, 0.3, 0.1],
    decile_edges=[2.0, 4.0],
    count=1000,
)

count_lists = st.lists(st.integers(0, 300), min_size=2, max_size=20).filter(lambda c: sum(c) > 0)


def test_psi_matches_a_hand_computed_case() -> None:
    """PSI on deciles, smoothing and p-value worked out by hand.

    Fine bins (-inf,1) [1,2) [2,3) [3,4) [4,5) [5,inf); deciles (-inf,2) [2,4) [4,inf).
    Reference shares 0.1 0.2 | 0.2 0.1 | 0.3 0.1 -> 0.3 0.3 0.4, n = 1000 -> 300 300 400.
    Window counts    10 40   | 30 20   | 50 50   -> 50 50 100, m = 200.
    Half a count per bin: reference (300.5 300.5 400.5) / 1001.5 = 0.300050 0.300050 0.399900,
    window (50.5 50.5 100.5) / 201.5 = 0.250620 0.250620 0.498759.
    Terms (q - p) ln(q / p): 0.0088978, 0.0088978, 0.0218389; PSI = 0.0396345.
    nm/(n+m) = 166.667, so 6.60574 against chi2(2): p = 0.0367774.
    """
    result = psi_test(HAND_PROFILE, [10, 40, 30, 20, 50, 50], 1000, threshold=0.1, column="amount")
    assert result.statistic == pytest.approx(0.0396345, abs=1e-7)
    assert result.p_value == pytest.approx(0.0367774, abs=1e-7)
    assert not result.drifted
    assert (result.n_reference, result.n_current) == (1000, 200)


def test_decile_merge_equals_binning_the_raw_values_on_the_decile_edges() -> None:
    """Merging fine counts into deciles loses nothing: same counts as binning on deciles."""
    rng = np.random.default_rng(1)
    profile = numeric_profile_from(rng.gamma(2.0, size=5000))
    current = rng.gamma(2.2, size=3000)
    merged = decile_bins(counts_over(profile.edges, current), profile.edges, profile.decile_edges)
    direct = counts_over(profile.decile_edges, current)
    np.testing.assert_array_equal(merged, direct)
    assert len(profile.decile_edges) == 9


def test_profile_without_decile_edges_is_judged_on_its_fine_bins() -> None:
    """No decile edges: PSI over the fine bins as they are."""
    profile = NumericProfile(edges=[0.0, 1.0], probabilities=[0.2, 0.5, 0.3], count=500)
    result = psi_test(profile, [30, 40, 30], 500, threshold=0.1, column="x")
    assert result.statistic == pytest.approx(psi([0.2, 0.5, 0.3], [30, 40, 30], 500))


def test_decile_edges_outside_the_fine_edges_are_rejected() -> None:
    """Merging needs the decile edges among the fine edges."""
    with pytest.raises(ValueError, match="subset"):
        decile_bins([1, 2, 3], [1.0, 2.0], [1.5])


def test_empty_bins_get_half_a_count_not_machine_epsilon() -> None:
    """An empty window bin yields a modest finite term: ln((0.5/100.5)/(50.5/101)) by hand."""
    value = psi([0.5, 0.5], [0, 100], 100)
    ref = np.array([50.5, 50.5]) / 101.0
    cur = np.array([0.5, 100.5]) / 101.0
    assert value == pytest.approx(float(np.sum((cur - ref) * np.log(cur / ref))))
    assert 2.0 < value < 3.0  # epsilon smoothing would give about 17


def test_bins_empty_on_both_sides_are_dropped() -> None:
    """A bin with no reference mass and no window values changes neither PSI nor its p-value."""
    profile_with_empty = CategoricalProfile(categories={"a": 0.6, "b": 0.4}, other=0.0, count=500)
    result = psi_test(profile_with_empty, [70, 30, 0], 500, threshold=0.1, column="c")
    assert result.statistic == pytest.approx(psi([0.6, 0.4], [70, 30], 500))
    assert result.p_value == pytest.approx(psi_p_value(result.statistic, 500, 100, 2))


def test_categorical_psi_uses_categories_and_the_other_bin() -> None:
    """Categories in the profile's order, then the other/unseen count."""
    profile = CategoricalProfile(categories={"a": 0.5, "b": 0.3}, other=0.2, count=1000)
    result = psi_test(profile, [200, 300, 500], 1000, threshold=0.2, column="colour")
    assert result.statistic == pytest.approx(psi([0.5, 0.3, 0.2], [200, 300, 500], 1000))
    assert result.drifted


def test_p_value_is_chi_square_of_psi_times_effective_size() -> None:
    """p = chi2.sf(PSI * nm/(n+m), B - 1)."""
    assert psi_p_value(0.02, 10_000, 2_000, 10) == pytest.approx(
        stats.chi2.sf(0.02 * 10_000 * 2_000 / 12_000, 9)
    )
    assert psi_p_value(0.5, 100, 100, 1) == 1.0


def test_p_value_holds_its_false_alarm_rate_under_no_drift() -> None:
    """Two samples of one distribution: about 5 % of p-values fall below 0.05."""
    rng = np.random.default_rng(7)
    shares = rng.dirichlet(np.full(10, 5.0))
    edges = np.arange(1.0, 10.0)
    below = 0
    draws = 400
    for _ in range(draws):
        ref = rng.multinomial(5000, shares)
        profile = NumericProfile(
            edges=edges.tolist(), probabilities=(ref / 5000).tolist(), count=5000
        )
        result = psi_test(profile, rng.multinomial(2000, shares), 5000, threshold=1, column="x")
        assert result.p_value is not None
        below += result.p_value < 0.05
    assert 0.02 <= below / draws <= 0.09


@settings(max_examples=100, deadline=None)
@given(ref=count_lists, data=st.data())
def test_psi_is_never_negative(ref: list[int], data: st.DataObject) -> None:
    """PSI >= 0 for any two histograms over the same bins."""
    cur = data.draw(
        st.lists(st.integers(0, 300), min_size=len(ref), max_size=len(ref)).filter(
            lambda c: sum(c) > 0
        )
    )
    r = np.asarray(ref)
    assert psi(r / r.sum(), cur, int(r.sum())) >= 0.0


@settings(max_examples=100, deadline=None)
@given(ref=count_lists, data=st.data())
def test_psi_is_symmetric_in_the_two_histograms(ref: list[int], data: st.DataObject) -> None:
    """Swapping reference and window gives the same PSI."""
    cur = data.draw(
        st.lists(st.integers(0, 300), min_size=len(ref), max_size=len(ref)).filter(
            lambda c: sum(c) > 0
        )
    )
    r, c = np.asarray(ref), np.asarray(cur)
    forward = psi(r / r.sum(), c, int(r.sum()))
    backward = psi(c / c.sum(), r, int(c.sum()))
    assert forward == pytest.approx(backward, rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(ref=count_lists)
def test_identical_histograms_give_zero_psi_and_no_drift(ref: list[int]) -> None:
    """The reference's own counts as the window: PSI 0, p-value 1, not drifted."""
    r = np.asarray(ref)
    profile = CategoricalProfile(
        categories={f"c{i}": v / r.sum() for i, v in enumerate(ref[:-1])},
        other=ref[-1] / r.sum(),
        count=int(r.sum()),
    )
    result = psi_test(profile, r, int(r.sum()), threshold=0.1, column="c")
    assert result.statistic == pytest.approx(0.0, abs=1e-12)
    assert result.p_value == pytest.approx(1.0)
    assert not result.drifted


def test_empty_window_has_no_statistic_and_no_verdict() -> None:
    """Zero counts give a NaN statistic, no p-value and drifted False."""
    result = psi_test(HAND_PROFILE, [0] * 6, 1000, threshold=0.1, column="x")
    assert math.isnan(result.statistic)
    assert result.p_value is None
    assert not result.drifted
