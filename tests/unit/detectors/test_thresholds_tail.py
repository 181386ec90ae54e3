"""Calibrated thresholds below the rates the draws resolve (issue 13 item 4): the exponential
tail fit by hand, against a brute-force calibration with 100 times the draws, its read-out beyond
the stored levels, and the per-model budget divided over a profile's columns."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from driftline.config.models import DriftSettings
from driftline.detectors.calibration import tail_threshold
from driftline.detectors.thresholds import (
    LEVELS,
    TAIL_POWER,
    calibrate_column,
    calibrate_profile,
    interpolated,
    per_test_rate,
    threshold_for,
)
from driftline.errors import CalibrationError
from driftline.schemas.reference import CategoricalProfile, NumericProfile
from driftline.schemas.thresholds import CalibratedThresholds
from tests.unit.detectors.test_thresholds import CATEGORICAL, NUMERIC, _profile


def test_tail_threshold_by_hand() -> None:
    # 99 draws 1..99, the tail above the 0.1 level: k = floor(0.1 * 100) = 10 excesses over
    # u = 89 (the 11th largest), mean excess (99 + ... + 90) / 10 - 89 = 5.5, exceeded with
    # probability 11 / 100; at 0.0011: 89 + 5.5 log(0.11 / 0.0011) = 89 + 5.5 log(100).
    null = np.arange(1.0, 100.0)
    want = 89.0 + 5.5 * math.log(100.0)
    assert tail_threshold(null, 0.0011, tail_rate=0.1) == pytest.approx(want, rel=1e-12)
    # With power 2 the same line is drawn through the squares, then the root taken.
    squares = np.sqrt(null)
    assert tail_threshold(squares, 0.0011, power=2.0, tail_rate=0.1) == pytest.approx(
        math.sqrt(want), rel=1e-12
    )
    with pytest.raises(CalibrationError, match="draws must be at least 1000"):
        tail_threshold(np.arange(500.0), 1e-5)


@pytest.mark.parametrize("df", [2, 9, 49])
def test_tail_threshold_against_the_exact_chi_square_quantile(df: int) -> None:
    """Scaled chi-square nulls (the asymptotic shape of PSI and the squared distances): the fit
    on 4,000 draws is never more than 3 % low at 1e-4 and 1e-6 (median of 20 fits), and the
    realised rate of the median fit is at most the target."""
    rng = np.random.default_rng(df)
    for rate in (1e-4, 1e-6):
        exact = stats.chi2.isf(rate, df)
        fits = [tail_threshold(rng.chisquare(df, 4_000) * 0.01, rate) / 0.01 for _ in range(20)]
        median = float(np.median(fits))
        assert 0.97 * exact <= median <= 1.10 * exact, (df, rate, median, exact)
        assert stats.chi2.sf(median, df) <= 1.5 * rate


def _column(
    profile: NumericProfile | CategoricalProfile,
    size: int,
    levels: tuple[float, ...],
    draws: int,
    seed: int,
) -> dict[str, list[float]]:
    """Each test's thresholds at ``levels`` for windows of ``size``."""
    rows = calibrate_column(
        profile, np.random.default_rng(seed), sizes=(size,), levels=levels, draws=draws
    )
    return {test: [row[0] for row in r] for test, r in rows.items()}


@pytest.mark.parametrize(
    "profile",
    [
        NUMERIC.model_copy(update={"count": 50_000}),
        CATEGORICAL.model_copy(update={"count": 20_000}),
    ],
)
def test_extrapolated_threshold_against_a_brute_force_calibration(
    profile: NumericProfile | CategoricalProfile,
) -> None:
    """Each test's threshold at 1e-4 from the stored 4,000 draws (tail fit) against the conformal
    quantile of 400,000 draws (resolved directly): the median of 7 seeds within 6 %, each
    within 25 % (the fit's Monte Carlo noise: about 1 / sqrt(40) on the tail's scale, up to 8 %
    standard deviation on the threshold with 3 degrees of freedom)."""
    size = 1_000
    brute = _column(profile, size, (1e-4,), 400_000, seed=99)
    fits = [_column(profile, size, (0.01, 1e-4), 4_000, seed=s) for s in range(7)]
    for test, (want,) in brute.items():
        ratios = [fit[test][1] / want for fit in fits]
        assert abs(float(np.median(ratios)) - 1.0) <= 0.06, (test, ratios)
        assert all(abs(r - 1.0) <= 0.25 for r in ratios), (test, ratios)


def test_reading_below_the_smallest_level_follows_the_fitted_tail() -> None:
    profile = NUMERIC.model_copy(update={"count": 50_000})
    sizes = (512, 1_024)
    stored = calibrate_column(profile, np.random.default_rng(5), sizes=sizes)
    direct = calibrate_column(profile, np.random.default_rng(5), sizes=sizes, levels=(1e-5, 1e-8))
    grid = CalibratedThresholds(sizes=list(sizes), levels=list(LEVELS), draws=4_000, seed=5)
    for test, rows in stored.items():
        power = TAIL_POWER[test]
        for j, n in enumerate(sizes):
            # 1e-5 lies between stored levels (log-log), 1e-8 beyond them (the tail's line).
            for i, rate in enumerate((1e-5, 1e-8)):
                got = interpolated(grid, rows, n, rate, power=power)
                assert got == pytest.approx(direct[test][i][j], rel=0.01), (test, n, rate)
        column = [row[0] for row in rows]
        assert column == sorted(column), test  # stricter rates, higher thresholds


def test_an_old_profile_with_two_levels_extrapolates_below_them() -> None:
    grid = CalibratedThresholds(sizes=[1_000], levels=[0.01, 0.001], draws=4_000, seed=0)
    rows = [[0.02], [0.03]]
    # PSI (power 1): 0.03 + (0.03 - 0.02) / log(10) * log(0.001 / 1e-5) = 0.05.
    assert interpolated(grid, rows, 1_000, 1e-5) == pytest.approx(0.05)
    assert interpolated(grid, rows, 1_000, 0.001) == pytest.approx(0.03)


def test_the_budget_is_per_model() -> None:
    profile = calibrate_profile(_profile(), draws=1_000)  # features x and c, and the prediction
    drift = DriftSettings(thresholds="calibrated", false_positive_rate=0.003)
    assert per_test_rate(profile, drift) == pytest.approx(0.001)
    assert profile.thresholds is not None
    rows = profile.thresholds.features["x"]["psi"]
    assert threshold_for(profile, drift, "psi", 2_000, "x") == pytest.approx(
        interpolated(profile.thresholds, rows, 2_000, 0.001)
    )
    # A profile without calibrated columns divides by nothing.
    assert per_test_rate(_profile(), drift) == 0.003


def test_the_budget_spans_the_segment_slices_too() -> None:
    """Judged per segment, each column is tested in the whole model and in every slice (each
    tracked value and "other"): the model's one budget is divided over all of them."""
    profile = calibrate_profile(_profile(), draws=1_000)  # 3 calibrated columns
    drift = DriftSettings(thresholds="calibrated", false_positive_rate=0.003)
    segmented = profile.model_copy(update={"segments": {"region": ["eu", "us"], "tier": ["a"]}})
    # 3 columns x (whole model + eu, us, other + a, other) = 3 x 6 tests.
    assert per_test_rate(segmented, drift) == pytest.approx(0.003 / 18)
    assert threshold_for(segmented, drift, "psi", 2_000, "x") > threshold_for(
        profile, drift, "psi", 2_000, "x"
    )
