"""Calibrated drift thresholds (issue 13 item 4): against an oracle computed here from the live
tests on resampled data, the size grid's interpolation error, reproducibility, old profiles,
the setting, and what they change in a judged window."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftline.config.models import DriftSettings, ModelConfig
from driftline.detectors.engine import ModelMonitor
from driftline.detectors.profile import build_profile, profile_from_events
from driftline.detectors.registry import run_test
from driftline.detectors.thresholds import (
    calibrate_column,
    calibrate_profile,
    interpolated,
    threshold_for,
)
from driftline.schemas.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from driftline.schemas.thresholds import CalibratedThresholds
from driftline.schemas.wire import WirePrediction

# A hand-picked numeric column: 20 fine bins, every other edge a decile edge.
EDGES = [float(k) for k in range(1, 20)]
NUMERIC = NumericProfile(
    edges=EDGES,
    probabilities=[0.05] * 20,
    decile_edges=EDGES[1::2],
    minimum=0.0,
    maximum=20.0,
    count=2_000,
)
CATEGORICAL = CategoricalProfile(categories={"a": 0.5, "b": 0.3, "c": 0.15}, other=0.05, count=800)


def _oracle(
    test: str, profile: NumericProfile | CategoricalProfile, size: int, draws: int, seed: int
) -> np.ndarray:
    """The live test (``run_test``) on ``draws`` pairs of a reference resampled at its own size
    and a window of ``size`` values, both drawn from the profile's shares."""
    rng = np.random.default_rng(seed)
    if isinstance(profile, NumericProfile):
        p = np.asarray(profile.probabilities)
    else:
        p = np.asarray([*profile.categories.values(), profile.other])
    n = profile.count
    values = np.empty(draws)
    for i in range(draws):
        shares = rng.multinomial(n, p) / n
        window = rng.multinomial(size, p)
        if isinstance(profile, NumericProfile):
            resampled: NumericProfile | CategoricalProfile = profile.model_copy(
                update={"probabilities": shares.tolist()}
            )
        else:
            resampled = profile.model_copy(
                update={
                    "categories": dict(zip(profile.categories, shares[:-1].tolist(), strict=True)),
                    "other": float(shares[-1]),
                }
            )
        values[i] = run_test(test, resampled, window, n, 1.0, "x").statistic
    return values


@pytest.mark.parametrize(
    ("test", "profile"),
    [
        ("psi", NUMERIC),
        ("ks", NUMERIC),
        ("jensen_shannon", NUMERIC),
        ("wasserstein", NUMERIC),
        ("chi2", CATEGORICAL),
        ("psi", CATEGORICAL),
    ],
)
def test_threshold_matches_the_empirical_quantile_of_the_live_test(
    test: str, profile: NumericProfile | CategoricalProfile
) -> None:
    size = 300
    rows = calibrate_column(
        profile, np.random.default_rng(1), sizes=(size,), levels=(0.05,), draws=4_000
    )
    threshold = rows[test][0][0]
    oracle = _oracle(test, profile, size, 6_000, seed=2)
    # The 95 % quantile of the live statistic under resampling, with room for two Monte Carlo
    # samples' noise: the calibrated threshold lies between its 93.5 % and 96.5 % quantiles.
    low, high = np.quantile(oracle, [0.935, 0.965])
    assert low <= threshold <= high, (test, low, threshold, high)


def test_interpolation_between_grid_sizes_is_within_five_percent() -> None:
    """Log-log interpolation between powers of two against thresholds computed directly at the
    geometric midpoints (many draws, so Monte Carlo noise stays well under the bound)."""
    grid = (256, 512, 4_096, 8_192, 65_536, 131_072)
    middles = (362, 5_793, 92_682)
    levels = (0.01,)
    for profile in (NUMERIC.model_copy(update={"count": 50_000}), CATEGORICAL):
        at_grid = calibrate_column(
            profile, np.random.default_rng(3), sizes=grid, levels=levels, draws=20_000
        )
        direct = calibrate_column(
            profile, np.random.default_rng(4), sizes=middles, levels=levels, draws=20_000
        )
        cached = CalibratedThresholds(sizes=list(grid), levels=list(levels), draws=20_000, seed=3)
        for test, rows in at_grid.items():
            for j, n in enumerate(middles):
                got = interpolated(cached, rows, n, 0.01)
                want = direct[test][0][j]
                assert abs(got / want - 1.0) <= 0.05, (profile.kind, test, n, got, want)


def _profile(seed: int = 0, n: int = 5_000) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    return build_profile(
        "m",
        "1",
        "binary",
        {"x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], size=n)},
        prediction=rng.integers(0, 2, n).astype(str),
    )


def test_calibration_is_seeded_by_the_data() -> None:
    a = calibrate_profile(_profile(), draws=1_000)
    b = calibrate_profile(_profile(), draws=1_000)
    assert a.thresholds == b.thresholds
    assert a.thresholds is not None
    assert calibrate_profile(_profile(seed=1), draws=1_000).thresholds != a.thresholds
    # Thresholds fall as windows grow up to the reference's size (5,000; beyond it the
    # reference's own noise dominates and they level off); the stricter rate is never below
    # the looser one.
    psi = a.thresholds.features["x"]["psi"]
    assert psi[0][:6] == sorted(psi[0][:6], reverse=True)
    assert max(psi[0][8:]) <= 1.2 * min(psi[0][8:])
    assert all(strict >= loose for loose, strict in zip(psi[0], psi[1], strict=True))


def test_an_old_profile_reads_and_is_judged_with_the_fixed_floors() -> None:
    profile = _profile()
    old_json = profile.model_dump_json(exclude={"thresholds"})
    assert '"thresholds"' not in old_json
    old = ReferenceProfile.model_validate_json(old_json)
    assert old.thresholds is None
    calibrated = DriftSettings(thresholds="calibrated")
    assert threshold_for(old, calibrated, "psi", 10_000, "x") == 0.2
    assert threshold_for(old, calibrated, "chi2", 10_000, None) == 0.1
    # A calibrated profile under the default (fixed) settings is judged as before too.
    assert (
        threshold_for(calibrate_profile(old, draws=1_000), DriftSettings(), "psi", 10_000, "x")
        == 0.2
    )
    round_trip = ReferenceProfile.model_validate_json(
        calibrate_profile(old, draws=1_000).model_dump_json()
    )
    assert round_trip.thresholds is not None


def test_rate_between_the_stored_levels_is_interpolated() -> None:
    profile = calibrate_profile(_profile(), draws=1_000)
    at = {
        rate: threshold_for(
            profile,
            DriftSettings(thresholds="calibrated", false_positive_rate=rate),
            "psi",
            3_000,
            "x",
        )
        for rate in (0.01, 0.003, 0.001)
    }
    assert at[0.01] < at[0.003] < at[0.001]


def test_setting_spellings() -> None:
    assert DriftSettings(thresholds="calibrated").threshold_mode == "calibrated"
    fixed = DriftSettings(thresholds="fixed")
    assert fixed.threshold_mode == "fixed"
    assert fixed.thresholds["psi"] == 0.2
    assert DriftSettings(thresholds={"psi": 0.3}).thresholds == {"psi": 0.3}
    with pytest.raises(ValueError, match="'fixed', 'calibrated' or a floor per test"):
        DriftSettings(thresholds="sometimes")


def _window(monitor: ModelMonitor, rng: np.random.Generator, shift: float) -> bool:
    n = 20_000
    monitor.fold_columns(
        np.arange(0, 600_000, 600_000 // n)[:n],
        {"x": rng.normal(loc=shift, size=n), "c": rng.choice(["a", "b", "c"], size=n)},
        rng.integers(0, 2, n).astype(str),
    )
    report = monitor.evaluate(monitor.due(600_000)[0])
    return next(r for r in report.drift if r.column == "x").drifted


def test_a_quarter_sigma_shift_in_a_large_window_passes_the_fixed_floor_not_the_calibrated() -> (
    None
):
    profile = calibrate_profile(_profile(n=50_000), draws=1_000)
    fixed = ModelConfig(task="binary", pane="10m", windows=[{"size": "10m"}], allowed_lateness="0s")
    calibrated = fixed.model_copy(
        update={"drift": DriftSettings(thresholds="calibrated")}, deep=True
    )
    assert not _window(ModelMonitor(profile, fixed), np.random.default_rng(5), 0.25)
    assert _window(ModelMonitor(profile, calibrated), np.random.default_rng(5), 0.25)
    assert not _window(ModelMonitor(profile, calibrated), np.random.default_rng(6), 0.0)


def test_a_warm_up_baseline_is_calibrated_when_the_settings_ask() -> None:
    rng = np.random.default_rng(7)
    events = [
        WirePrediction(
            event_id=f"e{i}",
            prediction_id=f"p{i}",
            model="m",
            model_version="1",
            timestamp=1_767_225_600_000,
            features={"x": float(rng.normal())},
            prediction="1",
        )
        for i in range(500)
    ]
    calibrated = ModelConfig(task="binary", drift={"thresholds": "calibrated"})
    assert profile_from_events(events, "binary", ModelConfig(task="binary")).thresholds is None
    profile = profile_from_events(events, "binary", calibrated)
    assert profile.thresholds is not None
    assert "psi" in profile.thresholds.features["x"]
    assert math.isfinite(threshold_for(profile, calibrated.drift, "psi", 1_000, "x"))
