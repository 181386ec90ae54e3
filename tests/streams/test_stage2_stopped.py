"""A stage-2 worker on the real broker resolves the alert of a version whose traffic stopped,
once, also across a restart that re-judges the summaries topic."""

from __future__ import annotations

from pathlib import Path

from driftline.config import Settings
from driftline.schemas.outputs import DriftAlert
from driftline.streams.partials import PanePartial, Watermark, encode
from tests.streams.kafka_helpers import consume_all
from tests.streams.test_stage2 import (  # noqa: F401  (fixtures, found by name)
    Worker,
    produce,
    stage2_settings,
    workers,
)
from tests.unit.streams.stage2_helpers import (
    MINUTE,
    make_profile,
    pane_summary,
    partial,
    watermark,
)

V1, V2 = make_profile("1"), make_profile("2")


def test_the_alert_of_a_version_replaced_by_another_resolves_once_across_a_restart(
    stage2_settings: Settings,  # noqa: F811
    workers: list[Worker],  # noqa: F811
    tmp_path: Path,
) -> None:
    """v1 drifts and fires, v2 takes the traffic: alerts carry v1's firing and its resolution
    for traffic stopped; a restarted worker re-judges everything and sends neither again."""
    kafka, topics = stage2_settings.kafka, stage2_settings.topics
    messages: list[PanePartial | Watermark] = [
        partial(pane_summary(p * MINUTE, 200, shift=2.0, seed=p, profile=V1), p * MINUTE, s, 1)
        for p in range(5)
        for s in (0, 1)
    ]
    messages += [
        partial(pane_summary(p * MINUTE, 200, seed=p, profile=V2), p * MINUTE, s, 1, version="2")
        for p in range(5, 11)
        for s in (0, 1)
    ]
    # 11m = v1's last window end (5m) + lateness (1m) + the longest window (5m).
    messages += [watermark(0, 11 * MINUTE), watermark(1, 11 * MINUTE)]
    first = Worker(tmp_path, stage2_settings, "first", profiles=(V1, V2))
    workers.append(first)
    produce(kafka, topics.summaries, [encode(m) for m in messages])
    published = consume_all(kafka, topics.alerts, 2, 45.0)
    alerts = [DriftAlert.model_validate_json(r.value()) for r in published]
    assert [(a.model_version, a.status) for a in alerts] == [
        ("1", "firing"),
        ("1", "resolved"),
    ], first.log_tail()
    assert [r.kind for r in alerts[1].reasons] == ["traffic_stopped"]
    # Both windows' metrics out means the first worker is done judging.
    assert len(consume_all(kafka, topics.metrics, 2, 45.0)) == 2, first.log_tail()
    assert first.stop() == 0, first.log_tail()

    second = Worker(tmp_path, stage2_settings, "second", profiles=(V1, V2))
    workers.append(second)
    # The windows re-judged: their metric points are published again (InfluxDB overwrites).
    assert len(consume_all(kafka, topics.metrics, 4, 60.0)) == 4, second.log_tail()
    again = consume_all(kafka, topics.alerts, 3, 10.0)
    assert [r.value() for r in again] == [r.value() for r in published], second.log_tail()
    assert second.stop() == 0, second.log_tail()
    assert "Traceback" not in first.log_path.read_text() + second.log_path.read_text()
