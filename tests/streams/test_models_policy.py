"""The models policy against the real broker: with ``allow: listed`` a model that is not
configured is dead-lettered with its reason, gets no warm-up baseline and no metric series,
while the configured ones are counted (and baselined when they have no profile)."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
from confluent_kafka import Producer
from prometheus_client import generate_latest

from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import DeadLetter
from driftline.schemas.reasons import UNKNOWN_MODEL
from driftline.streams.ingest import Ingest
from driftline.streams.registry import ProfileRegistry
from driftline.testing.synthetic import sea_events
from tests.streams.kafka_helpers import consume_all
from tests.streams.test_ingest import run_until, set_up_sea

SEA, FRESH, STRANGERS = 3000, 400, 400


def publish_models(kafka: KafkaSettings, topics: TopicSettings) -> None:
    """``sea`` (profile registered), ``fresh`` (configured, no profile) and predictions of
    four unconfigured models, each prediction with its label."""
    producer = Producer({**confluent_config(kafka), "linger.ms": 5})
    streams = [
        sea_events(SEA, seed=7),
        sea_events(FRESH, seed=8, model="fresh"),
        *(sea_events(STRANGERS // 4, seed=20 + i, model=f"stranger-{i}") for i in range(4)),
    ]
    for stream in streams:
        for event in stream:
            key = event.prediction["prediction_id"].encode()
            producer.produce(topics.predictions, key=key, value=orjson.dumps(event.prediction))
            producer.produce(topics.ground_truth, key=key, value=orjson.dumps(event.ground_truth))
    assert producer.flush(30) == 0


def test_with_allow_listed_an_unlisted_model_is_dead_lettered_and_never_baselined(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    set_up_sea(kafka, topics)
    publish_models(kafka, topics)
    model = {"task": "binary", "pane": "1m", "windows": [{"size": "10m"}]}
    settings = Settings(
        kafka=kafka,
        topics=topics,
        monitor={"state_dir": tmp_path / "state", "group_id": f"g-{tmp_path.name}"},
        models={"sea": model, "fresh": {**model, "warmup_events": 50}},
        models_policy={"allow": "listed"},
    )
    registry = ProfileRegistry(kafka, topics).start()
    registry.wait_for("sea", "1")
    ingest = Ingest(settings, registry=registry, flush_interval=0.5, expire_interval=0.0).start()
    t = ingest.telemetry
    run_until(
        ingest,
        threading.Event(),
        lambda: (
            t.predictions._value.get() >= SEA + FRESH and t.dead_letters._value.get() >= STRANGERS
        ),
    )
    ingest._emit(force=True)
    text = generate_latest(t.registry).decode()
    ingest.close()
    registry.close()

    assert t.predictions._value.get() == SEA + FRESH
    assert t.dead_letters._value.get() == STRANGERS
    assert t.registry.get_sample_value("driftline_ingest_unknown_models") == 0
    assert "stranger" not in text
    letters = [
        DeadLetter.from_kafka(m.key(), m.value(), m.headers())
        for m in consume_all(kafka, topics.dlq, STRANGERS)
    ]
    assert len(letters) == STRANGERS
    assert {letter.kind for letter in letters} == {UNKNOWN_MODEL}
    assert all("models_policy.allow" in letter.reason for letter in letters)
    refused = {orjson.loads(letter.value or b"")["model"] for letter in letters}
    assert refused == {f"stranger-{i}" for i in range(4)}
    published = [
        orjson.loads(m.value())["model"] for m in consume_all(kafka, topics.models, 2, timeout=20)
    ]
    assert sorted(published) == ["fresh", "sea"]  # fresh's warm-up baseline; none for strangers
