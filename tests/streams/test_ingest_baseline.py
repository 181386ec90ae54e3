"""Stage 1 against the real broker: a model whose warm-up baseline is too large to publish.

Issue 15: a model whose events each carry hundreds of features with distinct string values
stays under ``monitor.limits``, but the warm-up baseline built from its first held events is
larger than any record Kafka takes. Producing it raised ``MSG_SIZE_TOO_LARGE`` out of the
ingest loop, and every restart built and published the same baseline again: a crash loop
from valid events. Now its held events go to the DLQ (kind ``output_too_large``) and the
stream goes on.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import DeadLetter
from driftline.schemas.reasons import OUTPUT_TOO_LARGE
from driftline.streams.ingest import Ingest
from driftline.streams.registry import ProfileRegistry
from driftline.testing.synthetic import START_MS, sea_events
from tests.streams.kafka_helpers import consume_all
from tests.streams.test_ingest import run_until, set_up_sea

SEA, WIDE, WARMUP, FEATURES = 2000, 250, 200, 800
ON_PARTITION_0 = 200
"""Wide events produced to partition 0, whose owner builds warm-up baselines: a full warm-up
there, the rest spread over the other partitions."""
LABELLED = range(0, WIDE, 25)
"""Wide predictions that get a label (which waits with its held prediction)."""


def wide_prediction(i: int) -> bytes:
    """A valid prediction of model ``wide`` with ``FEATURES`` distinct string values (about
    30 kB, under ``monitor.limits.max_message_bytes``)."""
    return orjson.dumps(
        {
            "event_id": f"we{i}",
            "prediction_id": f"w{i}",
            "model": "wide",
            "model_version": "1",
            "timestamp": START_MS + i * 100,
            "features": {f"f{j}": f"value-{i:04d}-{j:04d}-abcdefghij" for j in range(FEATURES)},
            "prediction": i % 2,
        }
    )


def wide_label(i: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"wt{i}",
            "prediction_id": f"w{i}",
            "timestamp": START_MS + i * 100,
            "label": 1,
        }
    )


def partition_of(i: int) -> int:
    return 0 if i < ON_PARTITION_0 else 1 + i % 3


def publish_mixed(kafka: KafkaSettings, topics: TopicSettings) -> None:
    """SEA's events and labels, with the wide model's events (and a few labels) among them."""
    producer = Producer({**confluent_config(kafka), "linger.ms": 5})
    every = SEA // WIDE
    for i, event in enumerate(sea_events(SEA, seed=7)):
        key = event.prediction["prediction_id"].encode()
        producer.produce(topics.predictions, key=key, value=orjson.dumps(event.prediction))
        producer.produce(topics.ground_truth, key=key, value=orjson.dumps(event.ground_truth))
        if i % every == 0 and (w := i // every) < WIDE:
            key, partition = f"w{w}".encode(), partition_of(w)
            producer.produce(
                topics.predictions, key=key, value=wide_prediction(w), partition=partition
            )
            if w in LABELLED:
                producer.produce(
                    topics.ground_truth, key=key, value=wide_label(w), partition=partition
                )
        producer.poll(0)
    assert producer.flush(60) == 0


@pytest.mark.parametrize(
    ("max_output_bytes", "why"),
    [
        (1_000_000, "is over monitor.max_output_bytes (1000000)"),
        # Above the producer's message.max.bytes (1 MB): produce() refuses it for its size.
        (100_000_000, "is refused by the producer"),
    ],
    ids=["over-max-output-bytes", "refused-by-producer"],
)
def test_a_warm_up_baseline_too_large_to_publish_dead_letters_its_held_events(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path, max_output_bytes: int, why: str
) -> None:
    """The loop goes on, SEA is counted in full, and every held event of the wide model is on
    the DLQ (kind output_too_large) exactly once, or still held: none is lost."""
    set_up_sea(kafka, topics)
    publish_mixed(kafka, topics)
    model = {"task": "binary", "pane": "1m", "windows": [{"size": "10m"}]}
    settings = Settings(
        kafka=kafka,
        topics=topics,
        monitor={
            "state_dir": tmp_path / "state",
            "group_id": f"g-{tmp_path.name}",
            "max_output_bytes": max_output_bytes,
        },
        # The default warm-up of an unconfigured model is 10,000 events; the same path with
        # fewer of these large ones.
        models={"sea": model, "wide": {**model, "warmup_events": WARMUP}},
    )
    registry = ProfileRegistry(kafka, topics).start()
    registry.wait_for("sea", "1")
    ingest = Ingest(settings, registry=registry, flush_interval=0.5).start()
    t = ingest.telemetry
    consumed = t.events_in
    run_until(
        ingest,
        threading.Event(),
        lambda: (
            consumed.labels(topic=topics.predictions)._value.get() >= SEA + WIDE
            and consumed.labels(topic=topics.ground_truth)._value.get() >= SEA + len(LABELLED)
            and t.predictions._value.get() >= SEA
            and t.dead_letters._value.get() >= ON_PARTITION_0
        ),
        timeout=120,
    )
    for _ in range(5):  # what was polled with the last ones is applied and settled too
        ingest.run_once()
    ingest._settle()
    still_held = sum(w.held().get(("wide", "1"), 0) for w in ingest._workers.values())
    n_letters = int(t.dead_letters._value.get())
    ingest.close()
    # A restart neither fails nor sends them again: the refused events left the store.
    ingest = Ingest(settings, registry=registry, flush_interval=0.5).start()
    run_until(ingest, threading.Event(), lambda: len(ingest.partitions) == 4, timeout=30)
    for _ in range(10):
        ingest.run_once()
    assert sum(w.held().get(("wide", "1"), 0) for w in ingest._workers.values()) == still_held
    assert ingest.telemetry.dead_letters._value.get() == 0
    ingest.close()
    registry.close()

    assert t.predictions._value.get() == SEA
    assert t.joined._value.get() == SEA
    letters = [
        DeadLetter.from_kafka(m.key(), m.value(), m.headers())
        for m in consume_all(kafka, topics.dlq, n_letters, timeout=60)
    ]
    assert len(letters) == n_letters
    assert {letter.kind for letter in letters} == {OUTPUT_TOO_LARGE}
    counts = Counter((letter.source_topic, letter.key) for letter in letters)
    assert max(counts.values()) == 1  # each exactly once
    predictions = {key for topic, key in counts if topic == topics.predictions}
    labels = {key for topic, key in counts if topic == topics.ground_truth}
    assert len(predictions) >= ON_PARTITION_0
    assert len(predictions) + still_held == WIDE  # nothing silently lost
    assert labels <= predictions
    assert {f"w{i}".encode() for i in LABELLED if i < ON_PARTITION_0} <= labels
    for letter in letters:
        assert letter.value == (
            wide_prediction if letter.source_topic == topics.predictions else wide_label
        )(int(letter.key[1:]))  # type: ignore[index]
        assert "model wide version 1: its warm-up baseline of " in letter.reason
        assert why in letter.reason
        assert "monitor.max_output_bytes" in letter.reason
        assert "driftline reference publish" in letter.reason
    published = [
        orjson.loads(m.value())["model"] for m in consume_all(kafka, topics.models, 1, timeout=10)
    ]
    assert published == ["sea"]  # no baseline for wide
