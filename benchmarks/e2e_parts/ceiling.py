"""The ceiling of the end-to-end benchmark: what one bare confluent-kafka consumer on one core
reads per second from the pre-loaded topics, raw and with driftline's decoders on every message;
and, over predictions and labels, the same plus producing each label's joined example
(:func:`~driftline.streams.labeled.labeled_record` from the prediction's bytes, kept by id), the
part of ingest's work that ``retrain.examples`` asks for.

The consumer is set as DESIGN §6 says for ingest (``assign`` from the beginning, batch
``consume``, ``fetch.queue.backoff.ms`` = 5), so ingest is compared with the same client doing
nothing else.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition

from driftline.config import KafkaSettings, TopicSettings
from driftline.kafka_auth import confluent_config
from driftline.schemas import decode_ground_truth, decode_prediction
from driftline.schemas.wire import WireGroundTruth, WirePrediction, event_time_ms
from driftline.streams.labeled import labeled_record
from e2e_parts.load import PREFIX

_OFFSET_BEGINNING = -2

Decoder = Callable[[bytes, bytes | None], object]
JOINED_CEILING = "consume + decode + produce joined, predictions + labels"


class Joiner:
    """Produces the joined example of each prediction and its label, whichever was read first
    (the consumer interleaves the topics), as ingest does: dicts of the predictions' bytes and
    of the labels by id stand in for the join store."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.topic = topic
        # As ingest's producer of joined examples (driftline.streams.ingest).
        self.producer = Producer(
            {
                **confluent_config(kafka),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
            }
        )
        self.waiting: dict[str, tuple[bytes, int]] = {}
        self.labels: dict[str, WireGroundTruth] = {}
        self.produced = 0

    def prediction(self, value: bytes, key: bytes | None) -> object:
        event = decode_prediction(value, key)
        assert isinstance(event, WirePrediction)
        at = event_time_ms(event.timestamp)
        truth = self.labels.pop(event.prediction_id, None)
        if truth is None:
            self.waiting[event.prediction_id] = (value, at)
        else:
            self._produce(value, truth, at)
        return event

    def label(self, value: bytes, key: bytes | None) -> object:
        truth = decode_ground_truth(value, key)
        assert isinstance(truth, WireGroundTruth)
        found = self.waiting.pop(truth.prediction_id, None)
        if found is None:
            self.labels[truth.prediction_id] = truth
        else:
            self._produce(found[0], truth, found[1])
        return truth

    def _produce(self, raw: bytes, truth: WireGroundTruth, at: int) -> None:
        record = labeled_record(truth.prediction_id, raw, truth, at, event_time_ms(truth.timestamp))
        while True:
            try:
                self.producer.produce(self.topic, key=record.key, value=record.value)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)
        self.produced += 1

    def flush(self) -> None:
        if self.producer.flush(120):
            raise RuntimeError(f"joined examples for {self.topic!r} were not acknowledged")


def consume_seconds(
    kafka: KafkaSettings,
    decoders: dict[str, Decoder | None],
    expected: int,
    partitions: int,
    joiner: Joiner | None = None,
) -> float:
    """Seconds one bare consumer takes from ``assign`` to the last of ``expected`` messages read
    from the beginning of the topics; each message goes through its topic's decoder unless that
    is None; with a ``joiner``, until its joined examples are acknowledged too."""
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
        if joiner is not None:
            joiner.flush()
        return time.perf_counter() - start
    finally:
        consumer.close()


def ceiling(
    kafka: KafkaSettings, topics: TopicSettings, predictions: int, partitions: int, repeats: int
) -> dict[str, float]:
    """Messages/s, best of ``repeats``, by measurement: ``raw consume, <workload>`` and
    ``consume + decode, <workload>`` for the workloads ``predictions`` and
    ``predictions + labels`` (as many labels as predictions), and
    :data:`JOINED_CEILING` (decode both, produce each label's joined example)."""
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
    seconds = []
    for run in range(repeats):
        joiner = Joiner(kafka, topics.labeled)
        decoders = {pred: joiner.prediction, truth: joiner.label}
        seconds.append(consume_seconds(kafka, decoders, 2 * predictions, partitions, joiner))
        if joiner.produced != predictions:
            raise RuntimeError(f"joined {joiner.produced} of {predictions} labels (run {run})")
    rates[JOINED_CEILING] = 2 * predictions / min(seconds)
    return rates
