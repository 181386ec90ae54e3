"""The outbox offsets the InfluxDB writer has finished with, and their commit to Kafka.

An outbox offset is finished once the messages before it are written to InfluxDB or
acknowledged on the dead-letter topic. This module keeps, per partition, the finished offset
not yet committed, commits such offsets synchronously, and keeps what fails to commit for the
next commit: a crash before then makes the group read those messages again, which is
harmless, as InfluxDB overwrites a point with the same identity. It reports both offsets per
partition and stops reporting a partition the writer lost, whose next owner reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from prometheus_client import Counter, Gauge

__all__ = ["TP", "UncommittedOffsets"]

log = logging.getLogger(__name__)

TP = tuple[str, int]
"""A topic and a partition."""


class UncommittedOffsets:
    """Finished outbox offsets not yet committed, per partition, and their commit.

    Parameters
    ----------
    written, committed
        Gauges labelled ``topic`` and ``partition``: the next finished offset, and the last
        offset committed.
    commit_failures
        Counts failed commits (of a whole call, or of one partition in it).

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> offsets = UncommittedOffsets(
    ...     Gauge("written", "", ["topic", "partition"], registry=registry),
    ...     Gauge("committed", "", ["topic", "partition"], registry=registry),
    ...     Counter("commit_failures", "", registry=registry),
    ... )
    >>> offsets.add({("metrics", 0): 7})
    >>> offsets.add({("metrics", 0): 5, ("metrics", 1): 2})  # an offset never goes back
    >>> offsets.uncommitted
    {('metrics', 0): 7, ('metrics', 1): 2}
    """

    def __init__(self, written: Gauge, committed: Gauge, commit_failures: Counter) -> None:
        self._uncommitted: dict[TP, int] = {}
        self._written = written
        self._committed = committed
        self._commit_failures = commit_failures

    @property
    def uncommitted(self) -> dict[TP, int]:
        """The next offset to commit, per partition with finished offsets not yet committed."""
        return dict(self._uncommitted)

    def add(self, done: Mapping[TP, int]) -> None:
        """Record finished offsets: ``done`` maps a partition to the next offset to commit."""
        for tp, offset in done.items():
            self._uncommitted[tp] = max(self._uncommitted.get(tp, 0), offset)
            self._written.labels(tp[0], str(tp[1])).set(self._uncommitted[tp])

    def commit(self, consumer: Any, only: set[TP] | None = None) -> None:
        """Commit finished offsets synchronously; what fails is committed with a later batch."""
        todo = {
            tp: offset for tp, offset in self._uncommitted.items() if only is None or tp in only
        }
        if not todo:
            return
        offsets = [TopicPartition(t, p, offset) for (t, p), offset in todo.items()]
        try:
            result = consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            self._commit_failures.inc()
            log.warning(
                "committing %d written outbox partition offset(s) failed: %s; they are "
                "committed with the next batch (a crash before that rewrites them, harmlessly)",
                len(offsets),
                exc,
            )
            return
        for partition in result or offsets:
            tp = (partition.topic, partition.partition)
            if partition.error is None and tp in todo:
                self._committed.labels(tp[0], str(tp[1])).set(todo[tp])
            if partition.error is None and self._uncommitted.get(tp) == todo.get(tp):
                del self._uncommitted[tp]
            elif partition.error is not None:
                self._commit_failures.inc()
                log.warning("committing %s failed: %s; retrying later", tp, partition.error)

    def forget(self, partitions: Iterable[TP]) -> None:
        """Drop partitions the writer lost, and their gauges: their next owner reports them."""
        for tp in partitions:
            self._uncommitted.pop(tp, None)
            self._written.remove(tp[0], str(tp[1]))
            self._committed.remove(tp[0], str(tp[1]))
