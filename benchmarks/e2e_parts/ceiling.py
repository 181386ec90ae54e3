"""The ceiling of the end-to-end benchmark: what one bare confluent-kafka consumer on one core
reads per second from the pre-loaded topics, raw and with driftline's decoders on every message.

The consumer is set as DESIGN §6 says for ingest (``assign`` from the beginning, batch
``consume``, ``fetch.queue.backoff.ms`` = 5), so ingest is compared with the same client doing
nothing else.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from driftline.config import KafkaSettings, TopicSettings
from driftline.kafka_auth import confluent_config
from driftline.schemas import decode_ground_truth, decode_prediction
from e2e_parts.load import PREFIX

_OFFSET_BEGINNING = -2

Decoder = Callable[[bytes, bytes | None], object]


def consume_seconds(
    kafka: KafkaSettings, decoders: dict[str, Decoder | None], expected: int, partitions: int
) -> float:
    """Seconds one bare consumer takes from ``assign`` to the last of ``expected`` messages read
    from the beginning of the topics; each message goes through its topic's decoder unless that
    is None."""
    consumer = Consumer(
        {
            **confluent_config(kafka),
            "group.id": f"{PREFIX}-ceiling-{uuid.uuid4().hex[:8]}",  # required; never joined
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 5,
            "enable.partition.eof": False,
        }
    )
    start = time.perf_counter()
    consumer.assign(
        [TopicPartition(t, p, _OFFSET_BEGINNING) for t in decoders for p in range(partitions)]
    )
    seen = 0
    try:
        while seen < expected:
            # Never ask for more than is left: consume() would wait out its timeout for it.
            wanted = min(5000, expected - seen)
            for message in consumer.consume(num_messages=wanted, timeout=0.2):
                if message.error() is not None:
                    continue
                decode = decoders[message.topic() or ""]
                if decode is not None:
                    decode(message.value() or b"", message.key())
                seen += 1
            if time.perf_counter() - start > 600:
                raise RuntimeError(f"consumed {seen} of {expected} messages in 10 minutes")
        return time.perf_counter() - start
    finally:
        consumer.close()


def ceiling(
    kafka: KafkaSettings, topics: TopicSettings, predictions: int, partitions: int, repeats: int
) -> dict[str, float]:
    """Messages/s, best of ``repeats``, by measurement: ``raw consume, <workload>`` and
    ``consume + decode, <workload>`` for the workloads ``predictions`` and
    ``predictions + labels`` (as many labels as predictions)."""
    pred, truth = topics.predictions, topics.ground_truth
    workloads: dict[str, dict[str, Decoder | None]] = {
        "predictions": {pred: decode_prediction},
        "predictions + labels": {pred: decode_prediction, truth: decode_ground_truth},
    }
    rates = {}
    for workload, decoders in workloads.items():
        expected = predictions * len(decoders)
        for name, used in (
            ("raw consume", dict.fromkeys(decoders)),
            ("consume + decode", decoders),
        ):
            # The best run is what the machine can do; the others were disturbed.
            fastest = min(
                consume_seconds(kafka, used, expected, partitions) for _ in range(repeats)
            )
            rates[f"{name}, {workload}"] = expected / fastest
    return rates
