"""Stage 1's outputs on their way to Kafka: sent, acknowledged, and only then written as applied.

:class:`Delivery` owns stage 1's producer. A batch's dead letters and joined examples are
produced (:meth:`Delivery.queue`); :meth:`Delivery.settle` waits until the broker has every
one of them and only then writes the batches that made them, so a committed or stored input
offset always has its outputs in Kafka. A dead letter too large to produce whole is cut to fit
(:func:`~driftline.deadletter.fit`), first to the producer's ``message.max.bytes``, then to
half its size each time the broker refuses it as too large (a DLQ topic with a smaller
``max.message.bytes``): never dropped. Any other refusal stops the process before the input
counts as applied. A failed store write is tried again a few times, then stops the process
with the store named.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from confluent_kafka import KafkaError as LibrdkafkaError
from confluent_kafka import KafkaException, Producer
from rocksdict import DbClosedError

from driftline.config import TopicSettings
from driftline.deadletter import dead_letter, fit
from driftline.errors import KafkaError, StateStoreError
from driftline.schemas.outputs import DeadLetter
from driftline.streams.labeled import Labeled
from driftline.streams.partition import PartitionWorker
from driftline.streams.result import ApplyResult
from driftline.telemetry.ingest import IngestTelemetry

log = logging.getLogger(__name__)
PRODUCER_MAX_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``: the largest record a producer sends."""
STORE_ATTEMPTS = 3
"""Tries of a store operation that fails for a reason other than the events."""
RETRY_DELAY = 0.5
"""Seconds before the first retry of a failed store operation; doubled each time."""
# The broker's refusal, and librdkafka's own (the producer's ``message.max.bytes``).
_TOO_LARGE = (LibrdkafkaError.MSG_SIZE_TOO_LARGE,)


def not_the_events_fault(exc: BaseException) -> bool:
    """Whether a failure while applying or writing a batch comes from the store, the broker
    or the machine rather than from the events: RocksDB's errors (plain ``Exception``), a
    closed store, I/O, memory, Kafka."""
    return type(exc) is Exception or isinstance(
        exc, StateStoreError | DbClosedError | OSError | MemoryError | KafkaException | KafkaError
    )


class Delivery:
    """Stage 1's producer, and the batches whose outputs it has not seen acknowledged yet.

    Parameters
    ----------
    config
        The producer's librdkafka configuration (connection, security, tuning).
    topics
        Topic names (the DLQ and the joined examples).
    telemetry
        Stage 1's metrics, counted when a batch is written.
    """

    def __init__(
        self, config: dict[str, Any], topics: TopicSettings, telemetry: IngestTelemetry
    ) -> None:
        self._topics = topics
        self._telemetry = telemetry
        self._dlq_max_bytes = int(config.get("message.max.bytes", PRODUCER_MAX_BYTES))
        self._undelivered: list[tuple[Any, Any, DeadLetter | None]] = []
        self._unacknowledged: list[tuple[PartitionWorker, ApplyResult]] = []
        self.producer = Producer(
            {
                **config,
                # Reports only failures: a dead letter or joined example the broker refused
                # must keep its batch from being written as applied (see settle).
                "on_delivery": self._refused,
                "delivery.report.only.error": True,
            }
        )

    def queue(self, worker: PartitionWorker, result: ApplyResult) -> None:
        """Send a batch's outputs now; :meth:`settle` writes it once they are acknowledged."""
        self.send(result)
        self._unacknowledged.append((worker, result))

    def send(self, result: ApplyResult) -> None:
        """Produce a batch's dead letters and joined examples."""
        for letter in result.dead_letters:
            self._dead_letter(fit(letter, self._dlq_max_bytes))
        produce, labeled = self.producer.produce, self._topics.labeled
        records = result.labeled
        while records:
            try:
                for record in records:
                    produce(labeled, key=record.key, value=record.value)
            except KafkaException as exc:
                # No try per record: the one that failed is the loop's last.
                records = records[records.index(record) + 1 :]
                self._too_large(record, exc)
            else:
                records = []
        if result.dead_letters or result.labeled:
            self.producer.poll(0)
            out = self._telemetry.messages_out
            out.labels(topic=self._topics.dlq).inc(len(result.dead_letters))
            out.labels(topic=labeled).inc(len(result.labeled))

    def _too_large(self, record: Labeled, exc: KafkaException) -> None:
        """A joined example the producer refused (larger than its ``message.max.bytes``):
        to the DLQ, cut to fit like any dead letter, rather than stop the stream."""
        if exc.args[0].code() not in _TOO_LARGE:
            raise KafkaError(f"cannot send a joined example to {self._topics.labeled}: {exc}")
        letter = dead_letter(
            topic=self._topics.labeled,
            partition=0,
            offset=0,
            key=record.key,
            value=bytes(record.value),
            headers=None,
            reason=f"the joined example ({len(record.value)} bytes) is too large to produce",
            kind="output_too_large",
            failed_at=int(time.time() * 1000),
        )
        self._dead_letter(fit(letter, self._dlq_max_bytes))

    def _dead_letter(self, letter: DeadLetter) -> None:
        headers: list[tuple[str, str | bytes | None]] = [*letter.kafka_headers()]
        self.producer.produce(
            self._topics.dlq,
            key=letter.key,
            value=letter.value,
            headers=headers,
            on_delivery=partial(self._letter_refused, letter),
        )

    def _refused(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._undelivered.append((err, msg, None))

    def _letter_refused(self, letter: DeadLetter, err: Any, msg: Any) -> None:
        if err is not None:
            self._undelivered.append((err, msg, letter))

    def settle(self) -> None:
        """Wait until every output sent so far is acknowledged, then write the batches that
        produced them: the store never records an input as applied before its outputs are
        safe in Kafka."""
        if not self._unacknowledged:
            return
        while True:
            remaining = self.producer.flush(60)
            if remaining:
                raise KafkaError(
                    f"{remaining} dead letters or joined examples were not acknowledged in "
                    "60 s; stopping before the store records their inputs as applied"
                )
            if not self._undelivered:
                break
            self._send_again()
        t = self._telemetry
        for worker, result in self._unacknowledged:
            persist(worker, result)
            t.restored.inc(result.restored)
            t.dead_letters.inc(len(result.dead_letters))
            t.joined.inc(result.joined)
            t.duplicates.inc(result.duplicates)
            t.too_late.inc(result.too_late)
            t.shadow_pairs.inc(result.shadow_pairs)
            t.shadows_unpaired.inc(result.shadows_unpaired)
            t.shadow_pairs_unscored.inc(result.shadow_pairs_unscored)
            t.predictions.inc(result.predictions)
            t.labels.inc(result.labels)
        self._unacknowledged.clear()

    def _send_again(self) -> None:
        """The records the broker refused since the last flush: a dead letter too large for
        the DLQ topic goes again, cut to half its size; any other refusal of a dead letter or
        joined example stops the process (the batch is not written: a restart replays it)."""
        refused, self._undelivered = self._undelivered, []
        for err, msg, letter in refused:
            topic = msg.topic()
            if topic not in (self._topics.dlq, self._topics.labeled):
                log.warning("a record for %s was not delivered: %s", topic, err)
                continue
            size = len(msg.value() or b"") + len(msg.key() or b"")
            if letter is None or err.code() not in _TOO_LARGE or size == 0:
                raise KafkaError(
                    f"a record for {topic} was not delivered ({err}); stopping before the "
                    "store records its input as applied"
                )
            log.warning("a dead letter of %d bytes is too large for %s; cutting it", size, topic)
            self._dead_letter(fit(letter, size // 2))


def persist(worker: PartitionWorker, result: ApplyResult) -> None:
    """Write a batch, trying again a few times before stopping with the store named."""
    delay = RETRY_DELAY
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            worker.persist(result)
            return
        except Exception as exc:
            if attempt == STORE_ATTEMPTS or not not_the_events_fault(exc):
                raise StateStoreError(
                    f"partition {worker.partition}: writing a batch to the store failed "
                    f"{attempt} times: {type(exc).__name__}: {exc}",
                    path=str(worker.store.path),
                ) from exc
            log.warning("writing to %s failed (%s); retrying", worker.store.path, exc)
            time.sleep(delay)
            delay *= 2
