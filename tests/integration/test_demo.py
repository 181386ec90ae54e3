"""The whole service end to end: SDK -> ingest -> stage 2 -> writer -> InfluxDB API, Kafka.

A stream with a known data shift (x3, which the model ignores) at a third and a known
accuracy drop (a concept change) at two thirds: the expected alerts, retrain requests and
points appear, and none on the stationary part.
"""

from __future__ import annotations

from pathlib import Path

from driftline.demo import WINDOW_MS, run_demo


def test_shift_and_accuracy_drop_reach_influxdb_alerts_and_retrain(tmp_path: Path) -> None:
    result = run_demo(events=60_000, timeout=180, say=lambda _: None, workdir=tmp_path)
    windows = result.windows
    assert len(windows) == 9  # 100 minutes of events, ten-minute windows, one minute late
    for end, row in windows.items():
        start = end - WINDOW_MS
        assert row["events"] == 6000
        if end <= result.shift_ms:
            assert row["firing"] == 0, f"false alarm in the stationary window ending {end}"
            assert row["retrain"] == 0
            assert row["psi x3"] < 0.05
        if start >= result.shift_ms:
            assert row["psi x3"] > 1.0
        assert row["psi x1"] < 0.05  # x1 never moves
        if start >= result.change_ms:
            assert row["accuracy"] < 0.9
        elif end <= result.change_ms:
            assert row["accuracy"] > 0.93
    firing = sorted(a.window_end for a in result.alerts if a.status == "firing")
    assert firing, "no alert"
    assert all(a.window_start.timestamp() * 1000 >= result.shift_ms for a in result.alerts)
    assert len({a.alert_id for a in result.alerts}) == len(result.alerts)
    assert result.retrain, "no retrain request"
    first = min(result.retrain, key=lambda r: r.window_end)
    assert {r.feature for r in first.reasons} == {"x3"}
    assert len(result.retrain) == 1  # the one-hour cool-down holds back a second request
    after_change = [
        a for a in result.alerts if a.window_start.timestamp() * 1000 >= result.change_ms
    ]
    assert after_change, "no alert after the concept change"
    assert all(
        any(r.kind == "performance" and r.statistic == "accuracy" for r in a.reasons)
        for a in after_change
    )
    assert result.points > 0
