"""Stage 2's telemetry: what the core did becomes counters, what it holds becomes gauges,
and its health follows the timer's ticks."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from driftline.detectors.engine import Window
from driftline.streams.stage2.state import Activity, ClosedWindow, Holding
from driftline.telemetry.stage2 import Stage2Telemetry


def closed(end_ms: int, *, restated: bool = False, due_ms: int = 0, **counts: Any) -> ClosedWindow:
    return ClosedWindow(
        model="m",
        version="1",
        window=Window(end_ms, end_ms - 300_000, "5m"),
        restated=restated,
        due_ms=due_ms,
        points=counts.get("points", 10),
        alerts=counts.get("alerts", 0),
        retrain=counts.get("retrain", False),
    )


def merge_value(telemetry: Stage2Telemetry, name: str, **labels: str) -> float | None:
    return telemetry.registry.get_sample_value(f"driftline_merge_{name}", labels)


def test_finalised_and_restated_windows_count_apart_and_only_a_close_has_a_latency() -> None:
    telemetry = Stage2Telemetry()
    activity = Activity(
        partials=Counter({("features", "added"): 3, ("performance", "stale"): 1}),
        dropped=2,
        windows=[
            closed(300_000, due_ms=10_000, points=12, alerts=2, retrain=True),
            closed(600_000, due_ms=10_000, points=8),
            closed(300_000, restated=True, due_ms=11_000, points=12, alerts=1),
        ],
    )
    telemetry.record(activity, published_at=10.25)

    assert merge_value(telemetry, "windows_finalised_total", model="m") == 2
    assert merge_value(telemetry, "windows_restated_total", model="m") == 1
    assert merge_value(telemetry, "close_to_publish_seconds_count") == 2
    assert merge_value(telemetry, "close_to_publish_seconds_sum") == pytest.approx(0.5)
    assert merge_value(telemetry, "close_to_publish_seconds_bucket", le="0.25") == 2
    assert merge_value(telemetry, "metric_points_total", model="m") == 32
    assert merge_value(telemetry, "alerts_total", model="m") == 3
    assert merge_value(telemetry, "retrain_requests_total", model="m") == 1
    assert merge_value(telemetry, "partials_total", kind="features", outcome="added") == 3
    assert merge_value(telemetry, "partials_total", kind="performance", outcome="stale") == 1
    assert merge_value(telemetry, "partials_dropped_total") == 2


def test_model_gauges_follow_what_is_held_and_vanish_with_the_model() -> None:
    telemetry = Stage2Telemetry()
    telemetry.hold(
        {
            "a": Holding(panes=3, partials=7, watermark_ms=360_000),
            "b": Holding(panes=1, partials=1, watermark_ms=None),
        }
    )
    assert merge_value(telemetry, "panes_held", model="a") == 3
    assert merge_value(telemetry, "partials_held", model="a") == 7
    assert merge_value(telemetry, "watermark_seconds", model="a") == 360
    assert merge_value(telemetry, "watermark_seconds", model="b") is None  # none known yet
    telemetry.hold({"b": Holding(panes=2, partials=2, watermark_ms=60_000)})
    assert merge_value(telemetry, "panes_held", model="a") is None
    assert merge_value(telemetry, "watermark_seconds", model="a") is None
    assert merge_value(telemetry, "panes_held", model="b") == 2
    assert telemetry.health()[1]["models"] == 1


def test_stage2_is_unhealthy_before_its_first_tick_and_after_stall_after_without_one() -> None:
    now = [1000.0]
    telemetry = Stage2Telemetry(stall_after=5.0, clock=lambda: now[0])
    ok, detail = telemetry.health()
    assert (ok, detail["seconds_since_tick"]) == (False, None)
    assert "not running" in detail["problem"]
    telemetry.ticked()
    now[0] += 4.9
    assert telemetry.health() == (True, {"part": "merge", "seconds_since_tick": 4.9, "models": 0})
    now[0] += 0.1
    ok, detail = telemetry.health()
    assert ok is False
    assert detail["problem"].startswith("no timer tick for 5 s (limit 5 s)")
    assert merge_value(telemetry, "last_tick_seconds") == 1000.0


def test_stall_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stall_after"):
        Stage2Telemetry(stall_after=0)


def test_alerts_resolved_because_traffic_stopped_count_as_alerts_of_their_model() -> None:
    telemetry = Stage2Telemetry()
    telemetry.record(
        Activity(windows=[closed(300_000, alerts=1)], stopped=Counter({"m": 2})), published_at=1
    )
    assert merge_value(telemetry, "alerts_total", model="m") == 3
