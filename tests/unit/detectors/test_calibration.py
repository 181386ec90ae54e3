"""Calibrated thresholds: empirical nulls from the reference resampled at the window size."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from driftline.detectors.calibration import (
    CalibrationError,
    calibrate_threshold,
    ks_statistic,
    null_distribution,
    psi_statistic,
    threshold_from_null,
)

REF = np.random.default_rng(0).dirichlet(np.full(20, 2.0))


def max_abs_diff(ref_probs: NDArray[np.float64], counts: NDArray[np.int64]) -> float:
    """Largest absolute difference of bin frequencies, one window at a time."""
    return float(np.max(np.abs(counts / counts.sum() - ref_probs)))


def inline_psi(ref: NDArray[np.float64], counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """PSI with half a count per bin on both sides, vectorised over rows."""
    n = counts.sum(axis=-1, keepdims=True)
    bins = counts.shape[-1]
    cur = (counts + 0.5) / (n + 0.5 * bins)
    base = (ref * n + 0.5) / (n + 0.5 * bins)
    out: NDArray[np.float64] = np.sum((cur - base) * np.log(cur / base), axis=-1)
    return out


def tolerance(alpha: float, fresh: int, draws: int) -> float:
    """Four standard deviations of the observed rate: fresh-draw noise plus calibration noise."""
    return 4 * math.sqrt(alpha * (1 - alpha) * (1 / fresh + 1 / draws))


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1])
def test_false_alarm_rate_at_calibrated_threshold_is_close_to_target(alpha: float) -> None:
    m, draws, fresh = 300, 4000, 20_000
    calibrated = calibrate_threshold(
        REF, m, max_abs_diff, np.random.default_rng(1), false_alarm_rate=alpha, draws=draws
    )
    counts = np.random.default_rng(2).multinomial(m, REF, size=fresh)
    stats = np.max(np.abs(counts / m - REF), axis=1)
    rate = float(np.mean(stats >= calibrated.threshold))
    assert abs(rate - alpha) <= tolerance(alpha, fresh, draws)
    assert calibrated.draws == draws
    assert calibrated.quantile == pytest.approx(1 - alpha)


def test_reference_noise_option_keeps_the_rate_when_the_reference_is_small() -> None:
    m, n_ref, draws, fresh, alpha = 2000, 1000, 4000, 20_000, 0.05
    with_noise = calibrate_threshold(
        REF,
        m,
        inline_psi,
        np.random.default_rng(3),
        draws=draws,
        n_reference=n_ref,
        vectorized=True,
    )
    without = calibrate_threshold(
        REF, m, inline_psi, np.random.default_rng(3), draws=draws, vectorized=True
    )
    # Null windows compared with a reference that is itself a sample of n_ref rows.
    rng = np.random.default_rng(4)
    ref_hat = rng.multinomial(n_ref, REF, size=fresh) / n_ref
    stats = inline_psi(ref_hat, rng.multinomial(m, REF, size=fresh))
    assert abs(np.mean(stats >= with_noise.threshold) - alpha) <= tolerance(alpha, fresh, draws)
    # Ignoring the reference's own noise sets the bar too low: far more false alarms.
    assert np.mean(stats >= without.threshold) > 3 * alpha


def test_same_seed_gives_the_same_null_and_threshold() -> None:
    def calibrate(seed: int) -> tuple[NDArray[np.float64], float]:
        null = null_distribution(REF, 500, max_abs_diff, np.random.default_rng(seed), draws=300)
        threshold = calibrate_threshold(
            REF, 500, max_abs_diff, np.random.default_rng(seed), draws=300
        ).threshold
        return null, threshold

    (null_a, t_a), (null_b, t_b), (null_c, _) = calibrate(9), calibrate(9), calibrate(10)
    np.testing.assert_array_equal(null_a, null_b)
    assert t_a == t_b
    assert not np.array_equal(null_a, null_c)


@pytest.mark.parametrize("n_reference", [None, 5000])
def test_vectorized_fast_path_equals_per_draw_application(n_reference: int | None) -> None:
    def per_draw(ref: NDArray[np.float64], counts: NDArray[np.int64]) -> float:
        return float(psi_statistic(ref, counts))

    fast = null_distribution(
        REF,
        800,
        psi_statistic,
        np.random.default_rng(5),
        draws=500,
        n_reference=n_reference,
        vectorized=True,
    )
    slow = null_distribution(
        REF, 800, per_draw, np.random.default_rng(5), draws=500, n_reference=n_reference
    )
    np.testing.assert_allclose(fast, slow, rtol=1e-12)


def test_calibrate_threshold_is_null_distribution_then_threshold_from_null() -> None:
    null = null_distribution(
        REF, 400, ks_statistic, np.random.default_rng(6), draws=999, vectorized=True
    )
    direct = calibrate_threshold(
        REF,
        400,
        ks_statistic,
        np.random.default_rng(6),
        draws=999,
        vectorized=True,
        false_alarm_rate=0.02,
    )
    assert direct == threshold_from_null(null, 0.02)


def test_threshold_from_null_uses_the_conformal_rank_on_a_hand_case() -> None:
    # 99 draws at 5 %: 100 * 0.05 = 5 exceedances allowed among 100 exchangeable values,
    # so the threshold lies just above the 95th smallest draw: 4 of 99 draws reach it.
    calibrated = threshold_from_null(np.arange(99.0, 0.0, -1.0), 0.05)
    assert calibrated.threshold == np.nextafter(95.0, np.inf)
    assert int(np.sum(np.arange(1.0, 100.0) >= calibrated.threshold)) == 4


def test_threshold_from_null_keeps_ties_below_the_threshold() -> None:
    null = np.array([0.0] * 90 + [1.0] * 10)
    assert threshold_from_null(null, 0.2).threshold == np.nextafter(0.0, np.inf)
    assert threshold_from_null(np.full(50, 0.3), 0.1).threshold > 0.3


def test_calibrated_threshold_shrinks_as_the_window_grows() -> None:
    small, large = (
        calibrate_threshold(
            REF, m, psi_statistic, np.random.default_rng(8), draws=1000, vectorized=True
        ).threshold
        for m in (200, 20_000)
    )
    assert large < small / 10


def test_psi_statistic_matches_its_formula_and_is_zero_on_the_reference() -> None:
    ref = np.array([0.5, 0.3, 0.2])
    counts = np.array([30, 30, 40])
    cur = (counts + 0.5) / 101.5
    base = (ref * 100 + 0.5) / 101.5
    expected = float(np.sum((cur - base) * np.log(cur / base)))
    assert float(psi_statistic(ref, counts)) == pytest.approx(expected, rel=1e-12)
    assert float(psi_statistic(ref, np.array([50, 30, 20]))) == pytest.approx(0.0, abs=1e-15)


def test_psi_statistic_scales_the_reference_by_n_reference_and_drops_empty_bins() -> None:
    ref = np.array([0.5, 0.0, 0.3, 0.2])
    counts = np.array([[30, 0, 30, 40], [30, 5, 30, 35]])
    n_ref = 1000

    def by_hand(row: NDArray[np.int64]) -> float:
        keep = (ref > 0) | (row > 0)
        base = ref[keep] * n_ref + 0.5
        cur = row[keep] + 0.5
        base, cur = base / base.sum(), cur / cur.sum()
        return float(np.sum((cur - base) * np.log(cur / base)))

    np.testing.assert_allclose(
        psi_statistic(ref, counts, n_reference=n_ref), [by_hand(row) for row in counts]
    )


def test_ks_statistic_is_the_largest_gap_between_cumulative_frequencies() -> None:
    ref = np.array([0.25, 0.25, 0.25, 0.25])
    counts = np.array([[10, 0, 0, 10], [0, 0, 0, 4]])
    # cumulative: [.5, .5, .5, 1] vs [.25, .5, .75, 1] -> .25; [0, 0, 0, 1] -> .75
    np.testing.assert_allclose(ks_statistic(ref, counts), [0.25, 0.75])


def test_too_few_draws_for_the_false_alarm_rate_are_rejected() -> None:
    with pytest.raises(CalibrationError, match="draws must be at least 99"):
        threshold_from_null(np.arange(50.0), 0.01)


@pytest.mark.parametrize(
    ("probs", "window_size", "match"),
    [
        ([0.5, 0.4], 100, "sum to 1"),
        ([0.5, -0.5, 1.0], 100, "non-negative"),
        ([[0.5, 0.5]], 100, "1-D"),
        ([0.5, 0.5], 0, "window_size"),
    ],
)
def test_bad_inputs_are_rejected_by_name(probs: list[float], window_size: int, match: str) -> None:
    with pytest.raises(CalibrationError, match=match):
        null_distribution(probs, window_size, max_abs_diff, np.random.default_rng(0), draws=10)


def test_vectorized_statistic_of_wrong_shape_is_rejected() -> None:
    with pytest.raises(CalibrationError, match="shape"):
        null_distribution(
            REF,
            100,
            lambda ref, counts: counts.sum(axis=1)[:5].astype(float),
            np.random.default_rng(0),
            draws=10,
            vectorized=True,
        )
