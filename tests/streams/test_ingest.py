"""Stage 1 against the real broker: partials, dead letters, joins, restarts."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
from confluent_kafka import Producer

from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.summary import PaneSummary
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import DeadLetter
from driftline.schemas.reference import ReferenceProfile
from driftline.streams import partials as wire
from driftline.streams.ingest import Ingest
from driftline.streams.registry import ProfileRegistry, publish_profile
from driftline.testing.service import sea_reference
from driftline.testing.synthetic import sea_events
from driftline.topics import create_topics
from tests.streams.kafka_helpers import consume_all


def set_up_sea(kafka: KafkaSettings, topics: TopicSettings) -> ReferenceProfile:
    """Create the topics and register model ``sea`` version ``1``; returns its profile."""
    create_topics(kafka, topics)
    record = sea_reference(rows=5000, seed=99)
    publish_profile(kafka, topics, record)
    return record.reference


def settings_for(kafka: KafkaSettings, topics: TopicSettings, state: Path) -> Settings:
    return Settings(
        kafka=kafka,
        topics=topics,
        monitor={"state_dir": state, "group_id": f"g-{state.name}"},
        models={"sea": {"task": "binary", "pane": "1m", "windows": [{"size": "10m"}]}},
    )


def publish(kafka: KafkaSettings, topics: TopicSettings, n: int, *, bad: int = 0) -> None:
    producer = Producer({**confluent_config(kafka), "linger.ms": 5})
    for event in sea_events(n, seed=7):
        key = event.prediction["prediction_id"].encode()
        producer.produce(topics.predictions, key=key, value=orjson.dumps(event.prediction))
        producer.produce(topics.ground_truth, key=key, value=orjson.dumps(event.ground_truth))
    for i in range(bad):
        producer.produce(
            topics.predictions,
            key=f"bad{i}".encode(),
            value=b'{"model": 1}',
            headers=[("source", b"test")],
        )
    assert producer.flush(30) == 0


def latest_partials(kafka: KafkaSettings, topics: TopicSettings, expected: int) -> dict:
    """The newest partial per identity, as stage 2 would keep them."""
    kept: dict = {}
    for message in consume_all(kafka, topics.summaries, expected, timeout=30):
        item = wire.decode(message.value())
        if isinstance(item, wire.PanePartial):
            old = kept.get(item.identity)
            if old is None or item.covered >= old.covered:
                kept[item.identity] = item
    return kept


def run_until(ingest: Ingest, done: threading.Event, predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        ingest.run_once()
    assert predicate(), "ingest did not get there in time"


def test_ingest_folds_joins_and_dead_letters_everything_once(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    profile = set_up_sea(kafka, topics)
    publish(kafka, topics, 3000, bad=5)
    settings = settings_for(kafka, topics, tmp_path / "state")
    registry = ProfileRegistry(kafka, topics).start()
    registry.wait_for("sea", "1")
    ingest = Ingest(settings, registry=registry, flush_interval=0.5, expire_interval=0.0).start()
    t = ingest.telemetry
    run_until(
        ingest,
        threading.Event(),
        lambda: (
            t.predictions._value.get() + t.dead_letters._value.get() >= 3005
            and t.joined._value.get() >= 3000
        ),
    )
    ok, detail = ingest.health()
    assert ok
    assert detail["partitions"] == [0, 1, 2, 3]
    ingest._emit(force=True)  # commits synchronously
    sample = t.registry.get_sample_value
    assert sample("driftline_ingest_partitions") == 4
    assert sample("driftline_ingest_events_total", {"topic": topics.predictions}) == 3005
    assert sample("driftline_ingest_events_total", {"topic": topics.ground_truth}) == 3000
    assert sample("driftline_ingest_messages_out_total", {"topic": topics.labeled}) == 3000
    assert sample("driftline_ingest_messages_out_total", {"topic": topics.dlq}) == 5
    for partition in map(str, range(4)):
        for topic in (topics.predictions, topics.ground_truth):
            labels = {"topic": topic, "partition": partition}
            applied = sample("driftline_ingest_applied_offset", labels)
            assert applied is not None
            assert applied > 0
            assert sample("driftline_ingest_committed_offset", labels) == applied
        assert sample("driftline_ingest_store_keys", {"partition": partition}) > 0
        assert sample("driftline_ingest_store_bytes", {"partition": partition}) > 0
    ingest.close()
    registry.close()
    assert not ingest.health()[0]  # closed: no longer polling

    kept = latest_partials(kafka, topics, 1)
    features = [p for p in kept.values() if p.kind == "features"]
    performance = [p for p in kept.values() if p.kind == "performance"]
    assert sum(PaneSummary.from_bytes(p.summary, profile).n for p in features) == 3000
    assert sum(PerformanceSummary.from_bytes(p.summary).n for p in performance) == 3000
    assert {p.source_partition for p in features} == {0, 1, 2, 3}
    letters = consume_all(kafka, topics.dlq, 5)
    assert len(letters) == 5
    dead = DeadLetter.from_kafka(letters[0].key(), letters[0].value(), letters[0].headers())
    assert dead.source_topic == topics.predictions
    assert dead.kind == "invalid_event"
    assert ("source", b"test") in dead.original_headers
    labeled = consume_all(kafka, topics.labeled, 3000)
    assert len({orjson.loads(m.value())["id"] for m in labeled}) == 3000


def test_a_restarted_ingest_resumes_from_its_store_without_double_counting(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    profile = set_up_sea(kafka, topics)
    publish(kafka, topics, 4000)
    settings = settings_for(kafka, topics, tmp_path / "state")
    registry = ProfileRegistry(kafka, topics).start()
    registry.wait_for("sea", "1")
    first = Ingest(settings, registry=registry, batch_size=500, flush_interval=0.2).start()
    run_until(first, threading.Event(), lambda: first.telemetry.predictions._value.get() >= 1500)
    first.close()  # offsets committed asynchronously may lag: the store's marks decide
    second = Ingest(settings, registry=registry, flush_interval=0.2).start()
    run_until(
        second,
        threading.Event(),
        lambda: (
            first.telemetry.predictions._value.get() + second.telemetry.predictions._value.get()
            >= 4000
        ),
    )
    second.close()
    registry.close()
    assert second.telemetry.duplicates._value.get() == 0
    kept = latest_partials(kafka, topics, 1)
    n = sum(
        PaneSummary.from_bytes(p.summary, profile).n for p in kept.values() if p.kind == "features"
    )
    assert n == 4000


def test_a_fresh_machine_rebuilds_the_join_store_from_the_input_topics(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    """A member with an empty state_dir takes over partitions another member committed:
    labels that arrive afterwards still find their predictions (DESIGN §1: the join store is
    restorable on a fresh machine from Kafka), and nothing is sent twice in between."""
    profile = set_up_sea(kafka, topics)
    events = list(sea_events(3000, seed=7))
    producer = Producer({**confluent_config(kafka), "linger.ms": 5})
    for i, event in enumerate(events):
        key = event.prediction["prediction_id"].encode()
        producer.produce(topics.predictions, key=key, value=orjson.dumps(event.prediction))
        if i < 1500:
            producer.produce(topics.ground_truth, key=key, value=orjson.dumps(event.ground_truth))
    assert producer.flush(30) == 0
    registry = ProfileRegistry(kafka, topics).start()
    registry.wait_for("sea", "1")
    group = f"g-fresh-{tmp_path.name}"
    old = settings_for(kafka, topics, tmp_path / "old-machine")
    old = old.model_copy(update={"monitor": old.monitor.model_copy(update={"group_id": group})})
    first = Ingest(old, registry=registry, flush_interval=0.2).start()
    t1 = first.telemetry
    run_until(
        first,
        threading.Event(),
        lambda: t1.predictions._value.get() >= 3000 and t1.joined._value.get() >= 1500,
    )
    first.close()  # commits the applied offsets synchronously

    new = old.model_copy(
        update={"monitor": old.monitor.model_copy(update={"state_dir": tmp_path / "new-machine"})}
    )
    second = Ingest(new, registry=registry, flush_interval=0.2).start()
    for event in events[1500:]:
        key = event.prediction["prediction_id"].encode()
        producer.produce(topics.ground_truth, key=key, value=orjson.dumps(event.ground_truth))
    assert producer.flush(30) == 0
    t2 = second.telemetry
    run_until(
        second,
        threading.Event(),
        lambda: (
            t2.joined._value.get() >= 1500
            and not any(w.restoring for w in second._workers.values())
        ),
    )
    second.close()
    registry.close()

    sample = t2.registry.get_sample_value
    # The first half's joined examples were sent by the first member: not again.
    assert sample("driftline_ingest_restored_outputs_total") == 1500
    kept = latest_partials(kafka, topics, 1)
    features = [p for p in kept.values() if p.kind == "features"]
    performance = [p for p in kept.values() if p.kind == "performance"]
    assert sum(PaneSummary.from_bytes(p.summary, profile).n for p in features) == 3000
    assert sum(PerformanceSummary.from_bytes(p.summary).n for p in performance) == 3000
    labeled = consume_all(kafka, topics.labeled, 3000)
    by_id: dict[str, bytes] = {}
    for message in labeled:
        record_id = orjson.loads(message.value())["id"]
        assert by_id.setdefault(record_id, message.value()) == message.value()
    assert len(by_id) == 3000
    assert len(labeled) == 3000  # the first member committed everything it sent


def test_joined_examples_are_sent_only_when_asked_and_the_window_results_do_not_change(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    """The same inputs through two ingests, ``retrain.examples`` off then on (outputs on topics
    of their own): the pane partials, features and performance, are identical byte for
    byte; off, nothing reaches the labeled topic; on, every joined pair does, once."""
    set_up_sea(kafka, topics)
    publish(kafka, topics, 3000)
    registry = ProfileRegistry(kafka, topics).start()
    registry.wait_for("sea", "1")
    partials: dict[bool, dict[tuple[str, str, int, int, str, str], bytes]] = {}
    for examples in (False, True):
        own = topics.model_copy(
            update={
                "summaries": f"{topics.summaries}.{examples}",
                "labeled": f"{topics.labeled}.{examples}",
            }
        )
        create_topics(kafka, own)
        state = tmp_path / f"state-{examples}"
        settings = Settings(
            kafka=kafka,
            topics=own,
            monitor={"state_dir": state, "group_id": f"g-{state.name}"},
            models={
                "sea": {
                    "task": "binary",
                    "pane": "1m",
                    "windows": [{"size": "10m"}],
                    "retrain": {"examples": examples},
                }
            },
        )
        ingest = Ingest(settings, registry=registry, flush_interval=0.5, expire_interval=0.0)
        ingest.start()
        t = ingest.telemetry
        run_until(
            ingest,
            threading.Event(),
            lambda t=t: t.predictions._value.get() >= 3000 and t.joined._value.get() >= 3000,
        )
        ingest._emit(force=True)
        sent = t.registry.get_sample_value(
            "driftline_ingest_messages_out_total", {"topic": own.labeled}
        )
        ingest.close()
        assert (sent or 0) == (3000 if examples else 0)
        kept = latest_partials(kafka, own, 1)
        partials[examples] = {identity: p.summary for identity, p in kept.items()}
        assert {identity[4] for identity in partials[examples]} == {"features", "performance"}
        labeled = consume_all(kafka, own.labeled, 3000 if examples else 1, timeout=10)
        if examples:
            assert len({orjson.loads(m.value())["id"] for m in labeled}) == len(labeled) == 3000
        else:
            assert labeled == []
    registry.close()
    assert partials[False] == partials[True]
