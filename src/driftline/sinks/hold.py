"""Holding the outbox consumer while the writer retries a batch: in its group, taking nothing in.

A consumer that does not poll for ``max.poll.interval.ms`` is dropped from its group, and its
partitions go to a writer that reads the same batch again; one that polls as usual fetches past
the batch it cannot write. So while a batch is retried, every assigned partition is paused and
the consumer polled; what a poll still hands back (from a partition assigned meanwhile) is
sought back, to be read again once the batch is written and the partitions are resumed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from driftline.sinks.offsets import TP

__all__ = ["ConsumerHold"]

log = logging.getLogger(__name__)


class ConsumerHold:
    """Pauses the outbox consumer's partitions and polls it during a retry; resumes them after.

    Parameters
    ----------
    batch_size
        The most messages one poll hands back.
    polled
        Called after each poll that succeeded.

    >>> class Consumer:  # assigned one partition, and nothing to hand back
    ...     def assignment(self): return [TopicPartition("metrics", 0)]
    ...     def pause(self, partitions): print("pause", [p.partition for p in partitions])
    ...     def consume(self, num_messages, timeout): return []
    ...     def resume(self, partitions): print("resume", [p.partition for p in partitions])
    >>> hold = ConsumerHold(batch_size=100, polled=lambda: None)
    >>> hold.hold(Consumer())
    pause [0]
    >>> hold.paused
    True
    >>> hold.resume(Consumer())
    resume [0]
    """

    def __init__(self, batch_size: int, polled: Callable[[], None]) -> None:
        self._batch_size = batch_size
        self._polled = polled
        self.paused = False

    def hold(self, consumer: Any) -> None:
        """Keep the group membership alive during a retry, without taking in new messages."""
        try:
            # Every time: a rebalance may have assigned partitions since, and they run unpaused.
            consumer.pause(consumer.assignment())
            self.paused = True
            extra = consumer.consume(num_messages=self._batch_size, timeout=0)
            self._polled()
        except KafkaException as exc:
            log.warning("polling the paused outbox consumer failed: %s; retrying anyway", exc)
            return
        first: dict[TP, int] = {}
        for message in extra:
            if message.error() is None:
                tp = (message.topic(), message.partition())
                first[tp] = min(first.get(tp, message.offset()), message.offset())
        if first:
            partitions = [TopicPartition(t, p, offset) for (t, p), offset in first.items()]
            try:
                for partition in partitions:
                    consumer.seek(partition)
                consumer.pause(partitions)
            except KafkaException as exc:
                log.warning("cannot put back %d outbox message(s): %s", len(extra), exc)

    def resume(self, consumer: Any) -> None:
        """Resume every assigned partition; a failure leaves them paused until the next try."""
        try:
            consumer.resume(consumer.assignment())
        except KafkaException as exc:
            log.warning("cannot resume the outbox partitions: %s; retrying next batch", exc)
            return
        self.paused = False
