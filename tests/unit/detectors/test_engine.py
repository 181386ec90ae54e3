"""The window engine: panes into windows, restatements, and what a report holds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.config import ModelConfig
from driftline.detectors.engine import ModelMonitor, Window
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.schemas.reference import ReferenceProfile

MINUTE = 60_000


def reference(seed: int = 0, n: int = 20_000) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    score = 1 / (1 + np.exp(-x))
    return build_profile(
        "m",
        "1",
        "binary",
        {"x": x, "city": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])},
        prediction=(score > 0.5).astype(int),
        scores={"0": 1 - score, "1": score},
        labels=(rng.random(n) < score).astype(int),
    )


def config(**changes: Any) -> ModelConfig:
    base: dict[str, Any] = {
        "task": "binary",
        "pane": "1m",
        "windows": [{"size": "10m"}],
        "allowed_lateness": "1m",
        "drift": {"min_samples": 200, "persistence_k": 1, "persistence_n": 1},
        "performance": {"min_labels": 100},
    }
    return ModelConfig(**{**base, **changes})


def traffic(
    monitor: ModelMonitor, start_ms: int, n: int, *, shift: float = 0.0, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n events spread over [start, start + 10 minutes); returns times, x, predictions."""
    rng = np.random.default_rng(seed)
    times = start_ms + np.sort(rng.integers(0, 10 * MINUTE, n))
    x = rng.normal(loc=shift, size=n)
    score = 1 / (1 + np.exp(-x))
    prediction = (score > 0.5).astype(int)
    monitor.fold_columns(
        times,
        {"x": x, "city": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])},
        prediction,
        {"0": 1 - score, "1": score},
    )
    return times, x, prediction


def test_tumbling_windows_are_due_only_after_their_end_plus_lateness() -> None:
    monitor = ModelMonitor(reference(), config())
    traffic(monitor, 0, 2000)
    assert monitor.due(10 * MINUTE) == []  # end reached, lateness not yet
    assert monitor.due(11 * MINUTE) == [Window(10 * MINUTE, 0, "10m")]


def test_hopping_windows_cover_every_pane_the_right_number_of_times() -> None:
    monitor = ModelMonitor(reference(), config(windows=[{"size": "10m", "hop": "5m"}]))
    traffic(monitor, 0, 3000)
    windows = monitor.due(60 * MINUTE)
    assert [(w.start_ms // MINUTE, w.end_ms // MINUTE) for w in windows] == [
        (-5, 5),
        (0, 10),
        (5, 15),
    ]
    reports = [monitor.evaluate(w) for w in windows]
    # Each event lies in exactly two hopping windows.
    assert sum(r.n_events for r in reports) == 2 * 3000
    assert {r.window.label for r in reports} == {"10m/5m"}


def test_a_shift_is_flagged_on_its_feature_and_not_on_others() -> None:
    monitor = ModelMonitor(reference(), config())
    traffic(monitor, 0, 5000)
    traffic(monitor, 10 * MINUTE, 5000, shift=1.0, seed=2)
    calm, shifted = (monitor.evaluate(w) for w in monitor.due(30 * MINUTE))
    assert not calm.decision.drift_found
    assert "x" in shifted.decision.drifted_features
    assert "city" not in shifted.decision.drifted_features


def test_late_labels_restate_the_window_of_their_predictions() -> None:
    monitor = ModelMonitor(reference(), config())
    times, _, prediction = traffic(monitor, 0, 4000)
    [window] = monitor.due(20 * MINUTE)
    first = monitor.evaluate(window)
    assert first.n_labels == 0
    assert first.performance == {}
    assert monitor.due(20 * MINUTE) == []  # judged, nothing changed
    # Labels arrive an hour later: all wrong, so accuracy must be 0 when restated.
    monitor.fold_labels(times, 1 - prediction, prediction, label_delay_ms=np.full(4000, 3.6e6))
    assert monitor.due(80 * MINUTE) == [window]
    restated = monitor.evaluate(window)
    assert restated.n_labels == 4000
    assert restated.performance["accuracy"] == 0.0
    assert restated.label_coverage == 1.0
    assert restated.mean_label_delay_ms == pytest.approx(3.6e6, rel=0.5)
    assert restated.decision.performance_breach


def test_set_pane_replaces_instead_of_adding() -> None:
    profile = reference()
    monitor = ModelMonitor(profile, config())
    traffic(monitor, 0, 1000)
    pane = PaneSummary(profile)
    for start in range(0, 10 * MINUTE, MINUTE):
        monitor.set_pane(start, pane)  # an empty partial replaces what was folded
    [window] = monitor.due(20 * MINUTE)
    assert monitor.evaluate(window).n_events == 0
    perf = PerformanceSummary.from_profile(profile).fold([1, 0], [1, 1])
    monitor.set_pane(0, performance=perf)
    monitor.set_pane(0, performance=perf)  # twice: still 2 labels, not 4
    assert monitor.evaluate(window).n_labels == 2


def test_old_panes_are_pruned_after_the_label_horizon() -> None:
    monitor = ModelMonitor(reference(), config())
    traffic(monitor, 0, 1000)
    assert monitor.n_panes == 10
    horizon = 7 * 24 * 60 * MINUTE
    assert monitor.prune(horizon) == 0
    assert monitor.prune(horizon + 20 * MINUTE) == 9  # the last pane still ends too late
    assert monitor.prune(horizon + 21 * MINUTE) == 1
    assert monitor.n_panes == 0


def test_report_carries_quality_estimate_and_label_drift() -> None:
    monitor = ModelMonitor(reference(), config())
    times, x, prediction = traffic(monitor, 0, 3000)
    score = 1 / (1 + np.exp(-x))
    monitor.fold_labels(times, prediction, prediction, {"0": 1 - score, "1": score})
    [window] = monitor.due(20 * MINUTE)
    report = monitor.evaluate(window)
    checks = {(r.column, r.test) for r in report.quality}
    assert checks == {
        ("x", "missing_rate"),
        ("x", "out_of_range_rate"),
        ("city", "missing_rate"),
        ("city", "unseen_category_rate"),
    }
    assert 0.5 < report.estimate["expected_accuracy"] <= 1.0
    assert any(r.kind == "label_drift" for r in report.drift)
    assert report.performance["accuracy"] == 1.0
    assert 0.0 <= report.performance["expected_calibration_error"] <= 1.0


def _due_by_scan(monitor: ModelMonitor, watermark_ms: int) -> list[Window]:
    """``due`` by its definition: every window of a held pane, closed, not judged as it is."""
    state = monitor._state
    closed_before = watermark_ms - monitor.lateness_ms
    candidates = {
        window
        for pane_start in state.panes
        for series in monitor._series
        for window in series.windows_of(pane_start)
        if window.end_ms <= closed_before
    }
    return sorted(w for w in candidates if state.judged.get(w) != monitor._revision(w))


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["pane", "judge", "watermark"]), st.integers(0, 40)),
        min_size=1,
        max_size=40,
    )
)
def test_due_follows_the_changed_panes_as_a_scan_of_every_pane_would(
    steps: list[tuple[str, int]],
) -> None:
    """The incremental ``due`` (windows whose panes changed) equals a scan of every held pane,
    for tumbling and hopping series, whatever the order of changes, judgments and watermarks."""
    profile = reference(n=2000)
    monitor = ModelMonitor(profile, config(windows=[{"size": "5m"}, {"size": "10m", "hop": "2m"}]))
    perf = PerformanceSummary.from_profile(profile).fold([1], [1])
    watermark = 0
    for action, value in steps:
        if action == "pane":
            monitor.set_pane(value * MINUTE, performance=perf)
        elif action == "watermark":
            watermark = max(watermark, value * MINUTE)
        else:
            for window in monitor.due(watermark)[: value % 3 + 1]:
                monitor.evaluate(window)
        assert monitor.due(watermark) == _due_by_scan(monitor, watermark)


def test_pruning_a_straddling_windows_old_panes_does_not_judge_it_again() -> None:
    """A judged window whose oldest panes are pruned is not restated with part of its data;
    it is due again only when one of its held panes changes."""
    monitor = ModelMonitor(reference(), config())
    traffic(monitor, 0, 1000)
    horizon = 7 * 24 * 60 * MINUTE
    for window in monitor.due(horizon):
        monitor.evaluate(window)
    assert monitor.prune(horizon + 15 * MINUTE) == 4  # panes 0-3 of the window [0, 10m)
    assert monitor.due(horizon + 15 * MINUTE) == []
    perf = PerformanceSummary.from_profile(monitor.profile).fold([1], [1])
    monitor.set_pane(5 * MINUTE, performance=perf)
    assert monitor.due(horizon + 15 * MINUTE) == [Window(10 * MINUTE, 0, "10m")]
