"""Stage 1 against the real broker, fed events a hostile producer would send: each goes to the
DLQ with its reason, and every valid event around them is counted, none too late."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import orjson
from confluent_kafka import Producer

from driftline.config import KafkaSettings, TopicSettings
from driftline.detectors.summary import PaneSummary
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import DeadLetter
from driftline.streams.ingest import Ingest
from driftline.streams.registry import ProfileRegistry
from driftline.testing.synthetic import sea_events
from tests.streams.kafka_helpers import consume_all
from tests.streams.test_ingest import latest_partials, run_until, set_up_sea, settings_for


def test_far_future_unkeyed_and_oversized_events_are_dead_lettered_and_the_rest_counted(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    """Issue 15: a prediction dated 2900-01-01 made every later event of its partition too
    late; an unkeyed prediction was accepted; a 71,000-character model name was folded."""
    profile = set_up_sea(kafka, topics)
    events = list(sea_events(3000, seed=7))
    producer = Producer({**confluent_config(kafka), "linger.ms": 5})
    for i, event in enumerate(events):
        key = event.prediction["prediction_id"].encode()
        producer.produce(topics.predictions, key=key, value=orjson.dumps(event.prediction))
        producer.produce(topics.ground_truth, key=key, value=orjson.dumps(event.ground_truth))
        if i == 1000:  # in the middle of the stream: valid events follow on every partition
            for name, changes in (
                ("far", {"timestamp": "2900-01-01T00:00:00Z"}),
                ("long", {"model": "m" * 71_000}),
            ):
                hostile = {**event.prediction, "event_id": name, "prediction_id": name, **changes}
                producer.produce(topics.predictions, key=name.encode(), value=orjson.dumps(hostile))
            unkeyed = {**event.prediction, "event_id": "nokey", "prediction_id": "nokey"}
            producer.produce(topics.predictions, value=orjson.dumps(unkeyed))
            label = {**event.ground_truth, "event_id": "nokey-t", "prediction_id": "nokey"}
            producer.produce(topics.ground_truth, value=orjson.dumps(label))
    assert producer.flush(30) == 0

    settings = settings_for(kafka, topics, tmp_path / "state")
    registry = ProfileRegistry(kafka, topics).start()
    registry.wait_for("sea", "1")
    ingest = Ingest(settings, registry=registry, flush_interval=0.2, expire_interval=0.0).start()
    t = ingest.telemetry
    consumed = t.events_in
    run_until(
        ingest,
        threading.Event(),
        lambda: (
            consumed.labels(topic=topics.predictions)._value.get() >= 3003
            and consumed.labels(topic=topics.ground_truth)._value.get() >= 3001
        ),
    )
    ingest._settle()  # every dead letter acknowledged, its batch written
    ingest._emit(force=True)
    ingest.close()
    registry.close()

    letters = [
        DeadLetter.from_kafka(m.key(), m.value(), m.headers())
        for m in consume_all(kafka, topics.dlq, 4)
    ]
    assert Counter((d.kind, d.path) for d in letters) == {
        ("clock_skew", "$.timestamp"): 1,
        ("limit_exceeded", "$.model"): 1,
        ("missing_key", None): 2,
    }
    by_kind = {d.kind: d for d in letters}
    assert by_kind["clock_skew"].key == b"far"
    assert "monitor.limits.max_name_length" in by_kind["limit_exceeded"].reason
    assert t.too_late._value.get() == 0
    assert t.predictions._value.get() == 3000
    assert t.joined._value.get() == 3000
    kept = latest_partials(kafka, topics, 1)
    features = [p for p in kept.values() if p.kind == "features"]
    assert {(p.model, p.version) for p in features} == {("sea", "1")}
    assert sum(PaneSummary.from_bytes(p.summary, profile).n for p in features) == 3000
