"""The workload of the end-to-end benchmark on the broker: realistic prediction events and one
label per prediction, the topics they go to, pre-loading them with a fast producer, and the
reference profile the events are drawn from, published as ``driftline reference publish`` does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Producer

from common.synthetic import binary_profile, prediction_json
from driftline.config import KafkaSettings, TopicSettings
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import ModelVersionRegistered
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.registry import publish_profile

MODEL, VERSION = "bench", "1"
N_FEATURES = 20
FEATURES = [f"f{j}" for j in range(N_FEATURES)]
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 1  # a thousand predictions per second of event time: one-minute panes of 60k events
LABEL_DELAY_MS = 60_000
CHUNK = 50_000
PREFIX = "e2e"


def _prediction_ids(seed: int, chunk: int, n: int) -> list[str]:
    """UUID-shaped ids, the same for a (seed, chunk) whichever topic asks."""
    raw = np.random.default_rng((seed, chunk)).bytes(16 * n).hex()
    ids = []
    for i in range(n):
        h = raw[32 * i : 32 * i + 32]
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def _scores(seed: int, chunk: int, n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.random.default_rng((seed, chunk, 1)).uniform(size=n).round(6)


def prediction_events(n: int, seed: int, step_ms: int = STEP_MS) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of ``n`` prediction events, ``step_ms`` of event time apart."""
    for chunk, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        ids = _prediction_ids(seed, chunk, size)
        scores = _scores(seed, chunk, size).tolist()
        rng = np.random.default_rng((seed, chunk, 2))
        values = rng.normal(50.0, 20.0, size=(size, N_FEATURES)).round(4).tolist()
        for i in range(size):
            k = start + i
            value = prediction_json(
                event_id=f"p-{seed}-{k}",
                prediction_id=ids[i],
                model=MODEL,
                version=VERSION,
                timestamp=START_MS + k * step_ms,
                features=dict(zip(FEATURES, values[i], strict=True)),
                p=scores[i],
                digits=6,
            )
            yield ids[i].encode(), value


def label_events(n: int, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of the ground truth of :func:`prediction_events` (same ids, a minute on)."""
    for chunk, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        ids = _prediction_ids(seed, chunk, size)
        scores = _scores(seed, chunk, size)
        labels = (np.random.default_rng((seed, chunk, 3)).uniform(size=size) < scores).tolist()
        for i in range(size):
            k = start + i
            event = {
                "event_id": f"t-{seed}-{k}",
                "prediction_id": ids[i],
                "timestamp": START_MS + k * STEP_MS + LABEL_DELAY_MS,
                "label": int(labels[i]),
            }
            yield ids[i].encode(), orjson.dumps(event)


def reference_profile() -> ReferenceProfile:
    """The reference the live events are drawn from (20k rows, 100 bins per feature)."""
    rng = np.random.default_rng(99)
    values = rng.normal(50.0, 20.0, size=(20_000, N_FEATURES))
    p = rng.uniform(size=20_000)
    labels = (rng.uniform(size=20_000) < p).astype(int)
    features = {name: values[:, j] for j, name in enumerate(FEATURES)}
    return binary_profile(MODEL, VERSION, features, p, labels=labels)


def topic_names(
    ground_truth: str, partitions: int, predictions: str = "predictions"
) -> TopicSettings:
    """Shared output topics; inputs named per workload so runs can share the predictions."""
    names = {role: f"{PREFIX}.{role}" for role in TopicSettings().names()}
    names["predictions"] = f"{PREFIX}.{predictions}"
    names["ground_truth"] = f"{PREFIX}.{ground_truth}"
    return TopicSettings(**names, input_partitions=partitions, output_partitions=2)


def preload(kafka: KafkaSettings, topic: str, events: Iterator[tuple[bytes, bytes]]) -> float:
    """Produce every event, wait for the acknowledgements; seconds taken (generation included)."""
    producer = Producer(
        {
            **confluent_config(kafka),
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    start = time.perf_counter()
    for key, value in events:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:  # queue full: let librdkafka deliver some first
                producer.poll(0.05)
    remaining = producer.flush(300)
    if remaining:
        raise RuntimeError(f"{remaining} events for {topic!r} were not acknowledged")
    return time.perf_counter() - start


def publish_reference(kafka: KafkaSettings, topics: TopicSettings) -> ReferenceProfile:
    """Publish the reference on the models topic, as ``driftline reference publish`` does."""
    profile = reference_profile()
    record = ModelVersionRegistered(
        model=MODEL, model_version=VERSION, registered_at=0, source="cli", reference=profile
    )
    publish_profile(kafka, topics, record)
    return profile
