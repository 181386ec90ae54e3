"""Exactly-once effects under crashes: SIGKILL the ingest process while events flow."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer

from driftline.config import KafkaSettings, TopicSettings
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.summary import PaneSummary
from driftline.kafka_auth import confluent_config
from driftline.streams import partials as wire
from driftline.testing.service import start_monitor
from driftline.testing.synthetic import sea_events
from tests.streams.test_ingest import set_up_sea

N_EVENTS = 100_000
LABEL_SHARE = 0.8  # every fifth prediction never gets its label
PANE_MS = 60_000


def produce(kafka: KafkaSettings, topics: TopicSettings, done: threading.Event) -> None:
    producer = Producer({**confluent_config(kafka), "linger.ms": 20, "enable.idempotence": True})
    for i, event in enumerate(sea_events(N_EVENTS, seed=21)):
        key = event.prediction["prediction_id"].encode()
        producer.produce(topics.predictions, key=key, value=orjson.dumps(event.prediction))
        if i % 5:
            producer.produce(topics.ground_truth, key=key, value=orjson.dumps(event.ground_truth))
        if i % 2000 == 0:
            producer.poll(0)
            time.sleep(0.05)  # keep the stream flowing over ~3 s while the kills happen
    assert producer.flush(60) == 0
    done.set()


@pytest.mark.faults
@pytest.mark.parametrize("store_wal", [True, False], ids=["wal", "no-wal"])
def test_three_sigkills_lose_nothing_and_count_nothing_twice(
    kafka: KafkaSettings,
    topics: TopicSettings,
    tmp_path: Path,
    store_wal: bool,
    reliability: Callable[[dict[str, Any]], None],
) -> None:
    """With or without RocksDB's write-ahead log (without it, each kill loses the memtables
    and the partitions are replayed from the last flush, with outputs already sent held back)."""
    profile = set_up_sea(kafka, topics)
    names = "\n".join(f"  {role}: {name}" for role, name in topics.names().items())
    config = tmp_path / "driftline.yaml"
    config.write_text(
        f"kafka: {{bootstrap_servers: '{kafka.bootstrap_servers}'}}\n"
        f"topics:\n{names}\n  input_partitions: {topics.input_partitions}\n"
        f"monitor: {{state_dir: '{tmp_path / 'state'}', metrics_port: null,"
        f" group_id: crash-test, store_wal: {str(store_wal).lower()}}}\n"
        "models: {sea: {task: binary, pane: 1m, windows: [{size: 1h}]}}\n"
    )
    log = tmp_path / "ingest.log"
    done = threading.Event()
    producer = threading.Thread(target=produce, args=(kafka, topics, done), daemon=True)
    producer.start()
    rng = random.Random(5)
    process = start_monitor("ingest", config, log)
    for _ in range(3):
        time.sleep(rng.uniform(4.0, 9.0))  # group join takes ~3 s: kill at random points after
        process.send_signal(signal.SIGKILL)
        process.wait()
        process = start_monitor("ingest", config, log)
    restarted = time.monotonic()
    producer.join(120)
    assert done.is_set(), "the producer did not finish"

    expected_panes = Counter()
    for i in range(N_EVENTS):
        ts = 1_767_225_600_000 + i * 100
        expected_panes[ts - ts % PANE_MS] += 1
    expected_labels = sum(1 for i in range(N_EVENTS) if i % 5)

    consumer = Consumer(
        {
            **confluent_config(kafka),
            "group.id": f"check-{tmp_path.name}",
            "auto.offset.reset": "earliest",
            "fetch.queue.backoff.ms": 5,
        }
    )
    consumer.subscribe([topics.summaries])
    latest: dict = {}
    complete_s = None
    deadline = time.monotonic() + 180
    features: Counter = Counter()
    labelled = 0
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    item = wire.decode(message.value())
                    if isinstance(item, wire.PanePartial):
                        old = latest.get(item.identity)
                        if old is None or item.covered >= old.covered:
                            latest[item.identity] = item
            features = Counter()
            labelled = 0
            for p in latest.values():
                if p.kind == "features":
                    features[p.pane_start_ms] += PaneSummary.from_bytes(p.summary, profile).n
                else:
                    labelled += PerformanceSummary.from_bytes(p.summary).n
            if features == expected_panes and labelled == expected_labels:
                complete_s = round(time.monotonic() - restarted, 1)
                break
    finally:
        consumer.close()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    lost = sum((expected_panes - features).values()) + max(0, expected_labels - labelled)
    twice = sum((features - expected_panes).values()) + max(0, labelled - expected_labels)
    row = {
        "scenario": f"ingest killed 3 times ({'with' if store_wal else 'without'} WAL)",
        "injected": "3 SIGKILLs of `monitor ingest` at random points, each restarted at once",
        "produced": N_EVENTS + expected_labels,
        "lost": lost,
        "counted_twice": twice,
        "first_result_s": None,
        "complete_s": complete_s,
    }
    assert features == expected_panes, log.read_text()[-3000:]
    assert labelled == expected_labels

    # Joined examples: at-least-once on the topic, exactly once by id, identical repeats.
    consumer = Consumer(
        {
            **confluent_config(kafka),
            "group.id": f"labeled-{tmp_path.name}",
            "auto.offset.reset": "earliest",
            "fetch.queue.backoff.ms": 5,
        }
    )
    consumer.subscribe([topics.labeled])
    by_id: dict[str, bytes] = {}
    repeats = 0
    deadline = time.monotonic() + 60
    try:
        while len(by_id) < expected_labels and time.monotonic() < deadline:
            for message in consumer.consume(5000, 0.5):
                if message.error() is None:
                    record_id = orjson.loads(message.value())["id"]
                    if record_id in by_id:
                        repeats += 1
                        assert by_id[record_id] == message.value()
                    by_id[record_id] = message.value()
    finally:
        consumer.close()
    reliability({**row, "ids_missing": expected_labels - len(by_id)})
    assert len(by_id) == expected_labels
    print(f"joined examples re-sent after crashes: {repeats}")
