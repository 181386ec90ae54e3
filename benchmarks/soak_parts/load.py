"""The soak's load: ``rate`` predictions a second stamped with the wall clock, each one's label
a fixed delay later (a time-ordered queue in the same thread), and the offsets acknowledged."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque

import orjson
from confluent_kafka import KafkaError, Message, Producer

from driftline.config import KafkaSettings, TopicSettings
from driftline.kafka_auth import confluent_config
from driftline.testing.synthetic import SyntheticEvent


class Load(threading.Thread):
    """Publishes ``rate`` predictions a second stamped with the wall clock, and each one's
    label ``label_delay`` seconds later; keeps the highest offset acknowledged per partition."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        rate: float,
        label_delay: float,
        pool: list[SyntheticEvent],
    ) -> None:
        super().__init__(name="soak-load", daemon=True)
        # As DriftlineProducer configures it (idempotent, acks=all, lz4), with the offsets of
        # the delivery reports, which DriftlineProducer does not pass on.
        self.config = {
            **confluent_config(kafka),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
        self.topics, self.rate, self.label_delay, self.pool = topics, rate, label_delay, pool
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.produced: dict[tuple[str, int], int] = {}  # next offset after the last acked
        self.predictions = self.labels = self.failed = 0
        self.error: str | None = None

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            self.error = str(err)
            return
        key, offset = (msg.topic() or "", msg.partition() or 0), (msg.offset() or 0) + 1
        with self.lock:
            if offset > self.produced.get(key, 0):
                self.produced[key] = offset

    def acknowledged(self) -> dict[tuple[str, int], int]:
        with self.lock:
            return dict(self.produced)

    def _produce(self, producer: Producer, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=self._delivered)
                return
            except BufferError:  # queue full: serve delivery reports first
                producer.poll(0.05)

    def run(self) -> None:
        # Made and dropped here, so that no client outlives the run (and the broker).
        producer = Producer(self.config)
        base = uuid.uuid4().int & ~((1 << 64) - 1)
        waiting: deque[tuple[float, bytes, int, int]] = deque()  # (due, id, label, i)
        start = time.monotonic()
        while not self.stopping.is_set():
            now = time.monotonic()
            now_ms = int(time.time() * 1000)
            due = int((now - start) * self.rate)
            while self.predictions < due:
                i = self.predictions
                event = self.pool[i % len(self.pool)]
                pid = str(uuid.UUID(int=base + i))
                value = {
                    **event.prediction,
                    "event_id": f"p-{pid}",
                    "prediction_id": pid,
                    "timestamp": now_ms,
                }
                self._produce(producer, self.topics.predictions, pid.encode(), orjson.dumps(value))
                waiting.append(
                    (now + self.label_delay, pid.encode(), event.ground_truth["label"], i)
                )
                self.predictions += 1
            while waiting and waiting[0][0] <= now:
                _, key, label, i = waiting.popleft()
                truth = {
                    "event_id": f"t-{key.decode()}",
                    "prediction_id": key.decode(),
                    "timestamp": now_ms,
                    "label": label,
                }
                self._produce(producer, self.topics.ground_truth, key, orjson.dumps(truth))
                self.labels += 1
            producer.poll(0)
            self.stopping.wait(0.005)  # pacing; the schedule above catches up after a late wake
        if producer.flush(30):
            self.error = self.error or "messages not acknowledged 30 s after the load stopped"
