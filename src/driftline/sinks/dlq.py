"""The InfluxDB writer's dead-letter producer: one dead letter at a time, each acknowledged.

The writer commits an outbox offset only once the message there is written to InfluxDB *or*
acknowledged on the dead-letter topic, so each dead letter is flushed before the writer goes
on; a failed delivery raises, and the writer retries the batch as it would an InfluxDB outage.
What goes into a dead letter is :mod:`driftline.deadletter`'s; creating the Kafka producer
stays with the writer, which owns the client configuration.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException, Message
from prometheus_client import Counter

from driftline.errors import DeliveryError, FailedDelivery, KafkaError
from driftline.schemas.outputs import DeadLetter

__all__ = ["DeadLetterProducer"]

_FLUSH_TIMEOUT_S = 30.0


class DeadLetterProducer:
    """Sends dead letters to ``topic`` and waits for the broker's acknowledgement of each.

    Parameters
    ----------
    producer
        A ``confluent_kafka.Producer`` (or a stand-in with ``produce`` and ``flush``).
    topic
        The dead-letter topic.
    sent
        Counts the dead letters delivered, labelled by their ``kind``.

    >>> class Broker:  # acknowledges everything
    ...     def produce(self, topic, key, value, headers, on_delivery): pass
    ...     def flush(self, timeout): return 0
    >>> sent = Counter("dead_letters", "Dead letters", ["kind"], registry=None)
    >>> dlq = DeadLetterProducer(Broker(), "driftline.dlq", sent)
    >>> dlq.flush()  # nothing failed: returns quietly
    """

    def __init__(self, producer: Any, topic: str, sent: Counter) -> None:
        self._producer = producer
        self._topic = topic
        self._sent = sent
        self._failures: list[FailedDelivery] = []

    def send(self, dead: DeadLetter) -> None:
        """Produce one dead letter and wait for the broker's acknowledgement.

        Raises :class:`~driftline.errors.KafkaError` when it cannot be produced or delivered.
        """
        try:
            self._producer.produce(
                self._topic,
                key=dead.key,
                value=dead.value,
                headers=dead.kafka_headers(),
                on_delivery=self._on_delivery,
            )
        except (KafkaException, BufferError) as exc:
            raise KafkaError(f"cannot dead-letter to {self._topic!r}: {exc}") from None
        self.flush()
        self._sent.labels(dead.kind).inc()

    def flush(self) -> None:
        """Wait for what was produced; raises :class:`~driftline.errors.DeliveryError` for what
        the broker refused or did not acknowledge in time."""
        remaining = int(self._producer.flush(_FLUSH_TIMEOUT_S))
        failures, self._failures = self._failures, []
        if failures or remaining:
            raise DeliveryError(failures, undelivered=remaining)

    def _on_delivery(self, err: Any, msg: Message) -> None:
        if err is not None:
            self._failures.append(
                FailedDelivery(topic=msg.topic() or "", key=msg.key(), error=str(err.str()))
            )
