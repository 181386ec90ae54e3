"""The report's topic source against a real broker: the metrics outbox, alerts and models
topics read back whole, kept within the range, bad records counted, no broker named."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer

from driftline.config import KafkaSettings, TopicSettings
from driftline.errors import KafkaError
from driftline.kafka_auth import confluent_config
from driftline.report.source import read_topics
from driftline.schemas.outputs import DriftAlert
from driftline.sinks.outbox import encode_messages
from driftline.sinks.points import MetricPoint
from driftline.testing.service import sea_reference
from driftline.topics import create_topics

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=10)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _points(i: int) -> list[MetricPoint]:
    tags = (("model", "m"), ("version", "1"), ("window", "10m"))
    return [
        MetricPoint(
            "feature_drift",
            (("feature", f"x {k}"), *tags, ("test", "psi")),
            (("statistic", 0.1 * i + k), ("threshold", 0.2), ("drifted", i > 1)),
            _ms(T0 + i * STEP),
        )
        for k in range(3)
    ] + [MetricPoint("label_coverage", tags, (("coverage", 0.5),), _ms(T0 + i * STEP))]


def _produce(kafka: KafkaSettings, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = Producer(confluent_config(kafka))
    for topic, key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def test_read_topics_reads_points_alerts_and_versions_within_the_range(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    create_topics(kafka, topics)
    alerts = [
        DriftAlert.create(
            "m", "1", T0 + (i - 1) * STEP, T0 + i * STEP, severity="warning", reasons=[]
        )
        for i in range(4)
    ]
    registered = sea_reference("m", "2", rows=500).model_copy(update={"registered_at": T0 + STEP})
    old = sea_reference("m", "1", rows=500).model_copy(update={"registered_at": T0 - 9 * STEP})
    records = [
        # small messages, so a window's points travel in several, as a wide model's do
        *((topics.metrics, b"m", v) for i in range(4) for v in encode_messages(_points(i), 120)),
        (topics.metrics, b"m", b"not line protocol"),
        *((topics.alerts, b"m", a.to_json()) for a in alerts),
        (topics.models, registered.key(), registered.to_json()),
        (topics.models, old.key(), old.to_json()),
    ]
    _produce(kafka, records)

    data = read_topics(kafka, topics, since=T0 + STEP, until=T0 + 2 * STEP, timeout=60)
    expected = [p for i in (1, 2) for p in _points(i)]
    assert sorted(data.points, key=repr) == sorted(expected, key=repr)
    assert [a.alert_id for a in data.alerts] == [alerts[1].alert_id, alerts[2].alert_id]
    assert [(v.version, v.source) for v in data.versions] == [("2", "cli")]
    assert data.notes == (f"1 record of topic {topics.metrics!r} did not decode",)

    everything = read_topics(kafka, topics, timeout=60)
    assert len(everything.points) == 16
    assert [v.version for v in everything.versions] == ["1", "2"]


def test_a_missing_alerts_topic_is_said_and_the_report_goes_on(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    create_topics(kafka, topics)
    _produce(kafka, [(topics.metrics, b"m", v) for v in encode_messages(_points(0), 10_000)])
    renamed = topics.model_copy(update={"alerts": topics.alerts + ".absent"})
    data = read_topics(kafka, renamed, timeout=60)
    assert len(data.points) == 4
    assert any(renamed.alerts in note and note.startswith("not shown") for note in data.notes)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_broker_is_one_clear_error_naming_the_topic() -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    with pytest.raises(KafkaError, match=r"cannot read topic 'driftline\.metrics'"):
        read_topics(kafka, TopicSettings(), timeout=5)
