"""Stage 1 against the real broker: events that cannot be applied or dead-lettered whole."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.detectors.profile import build_profile
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import (
    DLQ_HEADER_ORIGINAL_LENGTH,
    DLQ_HEADER_ORIGINAL_SHA256,
    DeadLetter,
    ModelVersionRegistered,
    utc_now,
)
from driftline.streams import delivery
from driftline.streams.ingest import Ingest
from driftline.streams.registry import ProfileRegistry, publish_profile
from driftline.topics import create_topics
from tests.streams.kafka_helpers import consume_all

T0 = 1_767_225_600_000


def set_up_regression(kafka: KafkaSettings, topics: TopicSettings) -> None:
    create_topics(kafka, topics)
    x = np.random.default_rng(0).normal(size=2000)
    profile = build_profile("r", "1", "regression", {"x": x}, prediction=2 * x, labels=2 * x)
    record = ModelVersionRegistered(
        model="r", model_version="1", registered_at=utc_now(), source="cli", reference=profile
    )
    publish_profile(kafka, topics, record)


def settings_for(kafka: KafkaSettings, topics: TopicSettings, state: Path) -> Settings:
    return Settings(
        kafka=kafka,
        topics=topics,
        monitor={
            "state_dir": state,
            "group_id": f"g-{state.name}",
            # Events larger than the default limits, so that what is too large is the dead
            # letter or the joined example, not the input (monitor.limits refuses that first).
            "limits": {"max_message_bytes": 4 << 20, "max_string_length": 1 << 20},
        },
        models={"r": {"task": "regression", "pane": "1m", "windows": [{"size": "10m"}]}},
    )


def produce(kafka: KafkaSettings, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = Producer({**confluent_config(kafka), "linger.ms": 5, "message.max.bytes": 4 << 20})
    for topic, key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def prediction(i: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{i}",
            "prediction_id": f"p{i}",
            "model": "r",
            "model_version": "1",
            "timestamp": T0 + i * 100,
            "features": {"x": 0.5},
            "prediction": 1.0,
        }
    )


def label(i: int, value: float) -> bytes:
    return orjson.dumps(
        {"event_id": f"t{i}", "prediction_id": f"p{i}", "timestamp": T0 + i * 100, "label": value}
    )


def run_until(ingest: Ingest, predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        ingest.run_once()
    assert predicate(), "ingest did not get there in time"


def test_a_label_whose_square_overflows_goes_to_the_dlq_and_the_stream_goes_on(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    # Before containment: ValueError (exact_sum takes finite values only) out of the loop,
    # and every restart died again on the same offsets.
    set_up_regression(kafka, topics)
    n = 400
    records = [(topics.predictions, f"p{i}".encode(), prediction(i)) for i in range(n)]
    records += [
        (topics.ground_truth, f"p{i}".encode(), label(i, 1e300 if i == 123 else 1.5))
        for i in range(n)
    ]
    produce(kafka, records)
    registry = ProfileRegistry(kafka, topics).start()
    registry.wait_for("r", "1")
    settings = settings_for(kafka, topics, tmp_path / "state")
    ingest = Ingest(settings, registry=registry, flush_interval=0.5).start()
    t = ingest.telemetry
    run_until(ingest, lambda: t.joined._value.get() + t.dead_letters._value.get() >= n)
    # Events after the bad one, in the same batch and later, are counted too.
    produce(
        kafka,
        [(topics.predictions, f"p{i}".encode(), prediction(i)) for i in range(n, n + 50)]
        + [(topics.ground_truth, f"p{i}".encode(), label(i, 2.0)) for i in range(n, n + 50)],
    )
    run_until(ingest, lambda: t.joined._value.get() >= n + 49)
    assert t.joined._value.get() == n + 49
    assert t.predictions._value.get() == n + 50
    assert t.dead_letters._value.get() == 1
    ingest.close()
    registry.close()
    (message,) = consume_all(kafka, topics.dlq, 1, timeout=30)
    letter = DeadLetter.from_kafka(message.key(), message.value(), message.headers())
    assert letter.kind == "processing_error"
    assert letter.source_topic == topics.ground_truth
    assert letter.key == b"p123"
    assert letter.value == label(123, 1e300)
    assert letter.reason.startswith("StatisticsError: regression labels must be at most")


def test_a_monitor_process_survives_the_overflowing_label(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    """The same through :meth:`Ingest.run`, the loop ``driftline monitor ingest`` runs."""
    set_up_regression(kafka, topics)
    produce(
        kafka,
        [
            (topics.predictions, b"p1", prediction(1)),
            (topics.ground_truth, b"p1", label(1, 1e300)),
            (topics.predictions, b"p2", prediction(2)),
            (topics.ground_truth, b"p2", label(2, 3.0)),
        ],
    )
    ingest = Ingest(settings_for(kafka, topics, tmp_path / "state"), flush_interval=0.2).start()
    stop = threading.Event()
    died: list[BaseException] = []

    def loop() -> None:
        try:
            ingest.run(stop)
        except BaseException as exc:
            died.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    t = ingest.telemetry
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not died and t.joined._value.get() < 1:
        time.sleep(0.05)  # polling the counter, bounded by the deadline
    stop.set()
    thread.join(30)
    assert died == []
    assert t.joined._value.get() == 1
    assert t.dead_letters._value.get() == 1


def big_invalid(i: int) -> bytes:
    """A prediction whose timestamp is 1 MiB of text: invalid, and too large for the DLQ."""
    return orjson.dumps(
        {
            "event_id": f"big{i}",
            "prediction_id": f"big{i}",
            "model": "r",
            "model_version": "1",
            "timestamp": "9" * (1 << 20),
            "features": {"x": 0.5},
            "prediction": 1.0,
        }
    )


def dlq_letters(kafka: KafkaSettings, topics: TopicSettings, n: int) -> list[DeadLetter]:
    messages = consume_all(kafka, topics.dlq, n, timeout=30)
    return [DeadLetter.from_kafka(m.key(), m.value(), m.headers()) for m in messages]


def check_truncated(letters: list[DeadLetter], messages: list[bytes]) -> None:
    assert sorted(letter.key for letter in letters) == [b"big0", b"big1", b"big2"]
    for letter in letters:
        original = messages[int((letter.key or b"")[3:])]
        assert letter.kind == "invalid_event"
        assert letter.original_length == len(original)
        assert letter.original_sha256 == hashlib.sha256(original).hexdigest()
        assert letter.value is not None
        assert 0 < len(letter.value) < 1_000_000
        assert original.startswith(letter.value)
        headers = dict(letter.kafka_headers())
        assert headers[DLQ_HEADER_ORIGINAL_LENGTH] == str(len(original)).encode()
        assert headers[DLQ_HEADER_ORIGINAL_SHA256] == letter.original_sha256.encode()


def test_dead_letters_too_large_to_produce_arrive_cut_with_their_length_and_hash(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    # Before: producing them raised MSG_SIZE_TOO_LARGE and ingest died.
    set_up_regression(kafka, topics)
    bigs = [big_invalid(i) for i in range(3)]
    produce(
        kafka,
        [(topics.predictions, f"big{i}".encode(), value) for i, value in enumerate(bigs)]
        + [(topics.predictions, b"p1", prediction(1))],
    )
    registry = ProfileRegistry(kafka, topics).start()
    registry.wait_for("r", "1")
    ingest = Ingest(settings_for(kafka, topics, tmp_path / "s"), registry=registry).start()
    t = ingest.telemetry
    run_until(ingest, lambda: t.dead_letters._value.get() >= 3 and t.predictions._value.get())
    ingest.close()
    registry.close()
    check_truncated(dlq_letters(kafka, topics, 3), bigs)


def committed(kafka: KafkaSettings, topics: TopicSettings, group: str) -> list[int]:
    consumer = Consumer({**confluent_config(kafka), "group.id": group})
    try:
        found = consumer.committed(
            [TopicPartition(topics.predictions, p) for p in range(4)], timeout=10
        )
    finally:
        consumer.close()
    return [tp.offset for tp in found]


def test_a_dead_letter_that_failed_is_not_skipped_after_the_restart(
    kafka: KafkaSettings,
    topics: TopicSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: the loop died on the refused dead letters, close() committed the offsets past
    # them (applied in memory, never written), and the restart took them for sent.
    set_up_regression(kafka, topics)
    bigs = [big_invalid(i) for i in range(3)]
    produce(kafka, [(topics.predictions, f"big{i}".encode(), v) for i, v in enumerate(bigs)])
    settings = settings_for(kafka, topics, tmp_path / "s")
    send = delivery.Delivery.send
    refused = []

    def refuse(self: delivery.Delivery, result):  # type: ignore[no-untyped-def]
        if result.dead_letters:
            refused.append(len(result.dead_letters))
            raise KafkaException("MSG_SIZE_TOO_LARGE (injected: the broker refused it)")
        send(self, result)

    monkeypatch.setattr(delivery.Delivery, "send", refuse)
    first = Ingest(settings, flush_interval=0.0).start()
    stop = threading.Event()
    timer = threading.Timer(60, stop.set)  # a deadline, should the failure never come
    timer.start()
    with pytest.raises(KafkaException, match="injected"):
        first.run(stop)  # dies as the process would, closing on the way out
    timer.cancel()
    assert refused
    assert max(committed(kafka, topics, f"g-{settings.monitor.state_dir.name}-ingest")) < 1
    monkeypatch.setattr(delivery.Delivery, "send", send)
    again = Ingest(settings, flush_interval=0.0).start()
    t = again.telemetry
    run_until(again, lambda: t.dead_letters._value.get() >= 3)
    again.close()
    check_truncated(dlq_letters(kafka, topics, 3), bigs)


def test_a_joined_example_too_large_to_produce_goes_to_the_dlq_cut(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    """A valid prediction just under the producer's limit, joined with its label, makes a
    joined example over it: dead-lettered (cut, kind ``output_too_large``), not a crash."""
    set_up_regression(kafka, topics)
    body = orjson.loads(prediction(1))
    body["features"]["blob"] = "b" * 999_900
    large = orjson.dumps(body)
    produce(
        kafka,
        [
            (topics.predictions, b"p1", large),
            (topics.ground_truth, b"p1", label(1, 1.0)),
            (topics.predictions, b"p2", prediction(2)),
            (topics.ground_truth, b"p2", label(2, 1.0)),
        ],
    )
    ingest = Ingest(settings_for(kafka, topics, tmp_path / "s")).start()
    t = ingest.telemetry
    run_until(ingest, lambda: t.joined._value.get() >= 2)
    ingest.close()
    (message,) = consume_all(kafka, topics.dlq, 1, timeout=30)
    letter = DeadLetter.from_kafka(message.key(), message.value(), message.headers())
    assert letter.kind == "output_too_large"
    assert letter.source_topic == topics.labeled
    assert letter.key == b"p1"
    assert letter.original_length is not None
    assert letter.original_length > 1_000_000
    assert letter.value is not None
    assert len(letter.value) < 1_000_000
    (labeled,) = consume_all(kafka, topics.labeled, 1, timeout=30)
    assert labeled.key() == b"p2"
