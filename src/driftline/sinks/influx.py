"""The InfluxDB writer: drains the metrics outbox into InfluxDB, committing only what it wrote.

DESIGN §3: "The InfluxDB writer consumes the metrics outbox and commits its offsets only after
the write succeeded. An InfluxDB outage delays metrics; it loses none and never blocks stage 1."

How a batch goes:

1. up to ``batch_size`` outbox messages are consumed (waiting at most ``flush_interval``);
2. messages that are not valid line protocol (:func:`~driftline.sinks.outbox.decode_lines`)
   go to the dead-letter topic with the reason in their headers;
3. the lines of the others are written in as few calls as ``max_lines_per_write`` allows,
   with precision ``ms``;
4. then, and only then, the batch's offsets are committed, synchronously.

When InfluxDB is unreachable, times out or answers 5xx/429 (or the dead-letter topic cannot
be written), the writer keeps the batch, pauses its partitions (so the consumer stays in its
group without fetching more), waits with exponential back-off and jitter, and writes the
*same* batch again, for as long as it takes. When InfluxDB refuses the data itself (400
unparseable, 413 too large, 422 unprocessable), writing it again cannot help: the writer
writes the batch's messages one by one, dead-letters each one InfluxDB still refuses, and
goes on. A crash between a write and its commit rewrites at most that batch, which is
harmless: InfluxDB overwrites a point with the same identity.

The writer counts what it does in a :class:`~driftline.telemetry.writer.WriterTelemetry`
and answers :meth:`InfluxWriter.health`: unhealthy while InfluxDB has failed for longer than
``unhealthy_after`` or the consumer has not polled for ``stall_after`` seconds.

This module owns the writer's lifecycle and its loop (consume, write or dead-letter, retry,
commit). Its parts live beside it: :mod:`~driftline.sinks.batch` (a batch's bookkeeping),
:mod:`~driftline.sinks.retry` (which failure is worth retrying, and the back-off),
:mod:`~driftline.sinks.hold` (staying in the group during retries),
:mod:`~driftline.sinks.offsets` (committing), :mod:`~driftline.sinks.dlq` (producing dead
letters) and :mod:`~driftline.sinks.health`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaException, Producer
from confluent_kafka import KafkaError as _RdKafkaError
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from prometheus_client import Counter

from driftline.config import InfluxSettings, KafkaSettings, TopicSettings
from driftline.deadletter import from_message
from driftline.errors import DecodeError, InfluxRejectedError, InfluxUnavailableError, KafkaError
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import DeadLetter, utc_now
from driftline.sinks.batch import Batch, Entry
from driftline.sinks.dlq import DeadLetterProducer
from driftline.sinks.health import WriterHealth
from driftline.sinks.hold import ConsumerHold
from driftline.sinks.offsets import UncommittedOffsets
from driftline.sinks.outbox import decode_lines
from driftline.sinks.retry import Backoff, translate_write_error
from driftline.telemetry.writer import WriterTelemetry

log = logging.getLogger(__name__)


def _total(counter: Counter, **labels: str) -> int:
    """A Prometheus counter's count, summed over its children whose labels include ``labels``."""
    return int(
        sum(
            sample.value
            for metric in counter.collect()
            for sample in metric.samples
            if sample.name.endswith("_total") and labels.items() <= sample.labels.items()
        )
    )


class InfluxWriter:
    """Writes the metrics outbox to InfluxDB; commits a batch's offsets after its write succeeded.

    Parameters
    ----------
    kafka, influx, topics
        Connections and names; reads ``topics.metrics``, dead-letters to ``topics.dlq``.
        ``influx.batch_size`` is the most messages consumed per batch, ``influx.flush_interval``
        the longest :meth:`run` waits for a batch to fill.
    group_id
        The consumer group; every writer of one outbox shares it.
    clock
        Stamps dead letters (``failed_at``).
    sleep
        Waits between retries; by default an interruptible wait that :meth:`stop` (or the
        event given to :meth:`run`) cuts short.
    max_backoff, base_backoff
        The back-off between retries of a failed batch grows from ``base_backoff`` to
        ``max_backoff`` seconds (see :class:`~driftline.sinks.retry.Backoff`).
    seed
        Seeds the jitter; None draws a fresh seed, so separate writers retry at different times.
    max_lines_per_write
        The most lines per write call; a batch's messages are split at message boundaries.
    consumer_factory, producer_factory, client_factory
        Build the Kafka consumer, the dead-letter producer and the ``InfluxDBClient`` (tests
        inject their own).
    config
        Extra librdkafka consumer properties, applied last.
    telemetry
        Prometheus metrics (``driftline_writer_…``); a private registry by default.
    unhealthy_after
        Seconds of uninterrupted failures (InfluxDB unavailable, or the DLQ unwritable)
        after which :meth:`health` is unhealthy.
    stall_after
        Seconds without a poll of the outbox consumer after which :meth:`health` is
        unhealthy. Keep it above ``max_backoff``: the consumer polls once per retry.
    wall_clock
        Unix seconds: poll times, how long failures last, the age of records at write.

    Counters (read-only properties, read from the Prometheus counters of ``telemetry``, so a
    telemetry shared by two writers counts both): ``points_written``, ``messages_written``,
    ``batches`` (committed), ``failures`` (failed attempts while InfluxDB or the DLQ was
    unavailable), ``retries`` (attempts repeated after a failure), ``dead_lettered`` and
    ``commit_failures``; ``telemetry`` has more.

    >>> writer = InfluxWriter(KafkaSettings(), InfluxSettings(), TopicSettings())
    >>> writer.started, writer.points_written  # no client exists before start()
    (False, 0)
    >>> writer.health()
    (False, {'part': 'writer', 'problem': 'not started'})

    Typical use::

        stop = threading.Event()
        with InfluxWriter(settings.kafka, settings.influxdb, settings.topics) as writer:
            writer.run(stop)  # until another thread sets stop
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        influx: InfluxSettings,
        topics: TopicSettings,
        *,
        group_id: str = "driftline-influx-writer",
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], object] | None = None,
        max_backoff: float = 30.0,
        base_backoff: float = 0.5,
        seed: int | None = None,
        max_lines_per_write: int = 10_000,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
        client_factory: Callable[..., Any] = InfluxDBClient,
        config: Mapping[str, Any] | None = None,
        telemetry: WriterTelemetry | None = None,
        unhealthy_after: float = 60.0,
        stall_after: float = 90.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not group_id:
            raise ValueError("group_id must not be empty")
        if not 0 < base_backoff <= max_backoff:
            raise ValueError(
                f"backoff: need 0 < base_backoff <= max_backoff, got {base_backoff} and "
                f"{max_backoff} seconds"
            )
        if max_lines_per_write < 1:
            raise ValueError(f"max_lines_per_write must be at least 1, got {max_lines_per_write}")
        self._health = WriterHealth(unhealthy_after, stall_after, wall_clock)
        self._kafka = kafka
        self._influx = influx
        self._topics = topics
        self._group_id = group_id
        self._clock = clock
        self._sleep = sleep
        self._backoff = Backoff(base=base_backoff, cap=max_backoff)
        self._rng = random.Random(seed)
        self._max_lines = max_lines_per_write
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self._client_factory = client_factory
        self._extra = dict(config or {})
        self._stop = threading.Event()
        self._consumer: Any = None
        self._dlq: DeadLetterProducer | None = None
        self._client: Any = None
        self._write_api: Any = None
        self._pending: Batch | None = None
        self._wall = wall_clock
        self._newest_window: dict[bytes, int] = {}  # per record key (model): ms, for window_age
        self.telemetry = telemetry or WriterTelemetry()
        t = self.telemetry
        t.pending.set_function(lambda: self.pending)
        t.last_poll.set_function(lambda: self._health.last_poll or 0.0)
        t.failing_since.set_function(lambda: self._health.failing_since or 0.0)
        self._offsets = UncommittedOffsets(t.written_offset, t.committed_offset, t.commit_failures)
        self._hold = ConsumerHold(influx.batch_size, self._health.polled)

    # --- counters, read from the telemetry ------------------------------------------------

    @property
    def points_written(self) -> int:
        """Points InfluxDB accepted."""
        return _total(self.telemetry.points_written)

    @property
    def messages_written(self) -> int:
        """Outbox messages whose points InfluxDB accepted."""
        return _total(self.telemetry.messages_written)

    @property
    def batches(self) -> int:
        """Batches written and committed."""
        return _total(self.telemetry.batches)

    @property
    def failures(self) -> int:
        """Failed attempts while InfluxDB or the dead-letter topic was unavailable."""
        counter = self.telemetry.failures
        return _total(counter, reason="unavailable") + _total(counter, reason="dead_letter")

    @property
    def retries(self) -> int:
        """Attempts repeated after a failure."""
        return _total(self.telemetry.retries)

    @property
    def dead_lettered(self) -> int:
        """Outbox messages sent to the dead-letter topic."""
        return _total(self.telemetry.dead_letters)

    @property
    def commit_failures(self) -> int:
        """Offset commits that failed (and were retried later)."""
        return _total(self.telemetry.commit_failures)

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the clients exist (they are created by :meth:`start`)."""
        return self._consumer is not None

    @property
    def pending(self) -> int:
        """Messages of the current batch not yet written (non-zero while InfluxDB is down)."""
        return 0 if self._pending is None else len(self._pending.entries)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while started, polling, and not failing for longer than ``unhealthy_after``;
        the detail says why not (see :class:`~driftline.sinks.health.WriterHealth`)."""
        return self._health.check(started=self.started, pending=self.pending)

    @property
    def unhealthy_after(self) -> float:
        """Seconds of uninterrupted failures after which :meth:`health` is unhealthy."""
        return self._health.unhealthy_after

    @property
    def stall_after(self) -> float:
        """Seconds without a poll after which :meth:`health` is unhealthy."""
        return self._health.stall_after

    def consumer_config(self) -> dict[str, Any]:
        """The librdkafka properties of the outbox consumer."""
        return {
            **confluent_config(self._kafka),
            "group.id": self._group_id,
            "enable.auto.commit": False,
            # A new group starts at the oldest metrics, not after them: none may be skipped.
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            # librdkafka's default back-off stalls a consumer that works per batch (DESIGN §6).
            "fetch.queue.backoff.ms": 5,
            **self._extra,
        }

    def start(self) -> Self:
        """Create the consumer (subscribed to the outbox), the DLQ producer and the client."""
        if self.started:
            return self
        client = self._client_factory(  # no connection yet: the first write makes one
            url=self._influx.url,
            token=self._influx.token.get_secret_value(),
            org=self._influx.org,
            enable_gzip=self._influx.gzip,
            timeout=int(self._influx.timeout.total_seconds() * 1000),
        )
        consumer = None
        try:
            consumer = self._consumer_factory(self.consumer_config())
            consumer.subscribe(
                [self._topics.metrics], on_assign=self._on_assign, on_revoke=self._on_revoke
            )
            producer = self._producer_factory(
                {
                    **confluent_config(self._kafka),
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                }
            )
        except KafkaException as exc:
            client.close()
            if consumer is not None:
                consumer.close()
            raise KafkaError(f"cannot create the outbox consumer or DLQ producer: {exc}") from None
        self._client = client
        self._write_api = client.write_api(write_options=SYNCHRONOUS)
        self._consumer = consumer
        self._dlq = DeadLetterProducer(producer, self._topics.dlq, self.telemetry.dead_letters)
        log.info(
            "influx writer subscribed to %r as group %r; writing to %s bucket %r",
            self._topics.metrics,
            self._group_id,
            self._influx.url,
            self._influx.bucket,
        )
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def stop(self) -> None:
        """Ask :meth:`run` (and a retry wait in :meth:`run_once`) to return soon.

        Holds until :meth:`close`; a writer started again after that runs again.
        """
        self._stop.set()

    def close(self) -> None:
        """Flush dead letters, commit what was written, close the consumer and the client.

        Messages of an unfinished batch that were not written stay uncommitted: the next
        writer of the group reads them again.
        """
        if not self.started:
            return
        assert self._dlq is not None  # start() creates it with the consumer
        try:
            if self._pending is not None:
                self._merge_done(self._pending)
                self._pending = None
            with contextlib.suppress(KafkaError):
                self._dlq.flush()
            self._offsets.commit(self._consumer)
        finally:
            try:
                # Runs the revoke callback, which still needs the consumer: clear it after.
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing the outbox consumer failed: %s; the group will expire it", exc)
            finally:
                self._client.close()
                self._consumer = self._dlq = self._client = self._write_api = None
                self._hold.paused = False
                self._stop = threading.Event()

    # --- the loop -------------------------------------------------------------------------

    def run(self, stop_event: threading.Event | None = None) -> None:
        """Write batches until ``stop_event`` is set (or :meth:`stop` is called).

        Starts the writer if needed; closing it stays the caller's (``with`` does it).
        """
        if stop_event is not None:
            self._stop = stop_event
        self.start()
        interval = self._influx.flush_interval.total_seconds()
        while not self._stop.is_set():
            self.run_once(interval)

    def run_once(self, timeout: float = 1.0) -> int:
        """Consume one batch (waiting up to ``timeout`` s), write it, commit it; starts if needed.

        A batch that cannot be written is retried, with back-off, until it is written; only a
        stop request ends the retries early, leaving the batch for the next call. Returns the
        points written by this call.
        """
        self.start()
        before = self.points_written
        if self._pending is None:
            messages = self._consume(timeout)
            if not messages:
                self._offsets.commit(self._consumer)  # what a revoked batch left, if any
                return 0
            self._pending = self._prepare(messages)
        self._deliver(self._pending)
        return self.points_written - before

    def _consume(self, timeout: float) -> list[Any]:
        try:
            messages: list[Any] = self._consumer.consume(
                num_messages=self._influx.batch_size, timeout=timeout
            )
        except KafkaException as exc:
            raise KafkaError(f"cannot consume {self._topics.metrics!r}: {exc}") from None
        self._health.polled()
        if messages:
            self.telemetry.messages_in.labels(self._topics.metrics).inc(len(messages))
        return messages

    def _prepare(self, messages: Iterable[Any]) -> Batch:
        entries: deque[Entry] = deque()
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != _RdKafkaError._PARTITION_EOF:
                    log.warning("consumer error on %r: %s; continuing", self._topics.metrics, error)
                continue
            try:
                lines = decode_lines(message.value())
            except DecodeError as exc:
                dead = self._dead_letter(message, exc.reason, exc.kind, exc.path)
                entries.append(Entry(message, dead=dead))
            else:
                entries.append(Entry(message, tuple(lines)))
        return Batch(entries)

    def _deliver(self, batch: Batch) -> None:
        while True:
            try:
                self._drain(batch)
                break
            except (InfluxUnavailableError, KafkaError) as exc:
                unavailable = isinstance(exc, InfluxUnavailableError)
                self.telemetry.failures.labels(
                    "unavailable" if unavailable else "dead_letter"
                ).inc()
                self._health.failed(exc)
                batch.attempts += 1
                hint = exc.retry_after if isinstance(exc, InfluxUnavailableError) else None
                delay = self._backoff.delay(batch.attempts, self._rng, at_least=hint or 0.0)
                log.warning(
                    "writing %d outbox message(s) failed (attempt %d): %s; their offsets stay "
                    "uncommitted and the same batch is retried in %.2fs",
                    len(batch.entries),
                    batch.attempts,
                    exc,
                    delay,
                )
                self._hold.hold(self._consumer)
                if self._stop.is_set():
                    return
                self.telemetry.backoff.inc(delay)
                self._wait(delay)
                if self._stop.is_set():
                    return
                self.telemetry.retries.inc()
        self._health.recovered()
        self._merge_done(batch)
        self._pending = None
        self._offsets.commit(self._consumer)
        self.telemetry.batches.inc()
        if self._hold.paused:
            log.info("outbox batch written after %d failed attempt(s); resuming", batch.attempts)
            self._hold.resume(self._consumer)

    def _drain(self, batch: Batch) -> None:
        """Write (or dead-letter) the batch's entries front to back; raises on a failure."""
        while batch.entries:
            head = batch.entries[0]
            if head.dead is not None:
                self._send_dead_letter(head.dead)
                batch.pop()
                continue
            chunk = batch.chunk(self._max_lines)
            try:
                self._write(chunk)
            except InfluxRejectedError as exc:
                self.telemetry.failures.labels("rejected").inc()
                if len(chunk) > 1:
                    log.warning(
                        "InfluxDB refused %d message(s) (%s); writing them one by one to "
                        "dead-letter only the refused ones",
                        len(chunk),
                        exc.message,
                    )
                    batch.one_by_one = len(chunk)
                else:
                    head.dead = self._dead_letter(
                        head.message, f"InfluxDB refused the write: {exc.message}", "rejected"
                    )
                continue
            for _ in chunk:
                batch.pop()
            n_points = sum(len(e.lines) for e in chunk)
            t = self.telemetry
            t.messages_written.inc(len(chunk))
            t.points_written.inc(n_points)
            now = self._wall()
            for entry in chunk:
                kind, timestamp_ms = entry.message.timestamp()
                if kind != TIMESTAMP_NOT_AVAILABLE:
                    t.record_age.observe(max(0.0, now - timestamp_ms / 1000))
                self._observe_window(entry, now)

    def _observe_window(self, entry: Entry, now: float) -> None:
        """Time a newly written window from its end (its points' timestamp; stage 2 writes
        one window's points per record): the first record of each window ending later than
        any before it of the same key. The keys are models, which the monitor bounds."""
        if not entry.lines:
            return
        end_ms = int(entry.lines[0].rsplit(" ", 1)[1])
        key = entry.message.key() or b""
        if end_ms > self._newest_window.get(key, -1):
            self._newest_window[key] = end_ms
            self.telemetry.window_age.observe(max(0.0, now - end_ms / 1000))

    def _write(self, chunk: list[Entry]) -> None:
        body = "\n".join(line for entry in chunk for line in entry.lines)
        self.telemetry.write_calls.inc()
        try:
            self._write_api.write(
                bucket=self._influx.bucket,
                org=self._influx.org,
                record=body,
                write_precision=WritePrecision.MS,
            )
        except Exception as exc:
            translated = translate_write_error(exc, self._influx.url)
            if translated is None:
                raise
            raise translated from exc

    def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self._stop.wait(seconds)

    # --- committing -----------------------------------------------------------------------

    def _merge_done(self, batch: Batch) -> None:
        self._offsets.add(batch.take_done())

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        log.info(
            "influx writer assigned %s",
            ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing",
        )

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Commit what was written for the partitions leaving; forget what was not."""
        revoked = {(p.topic, p.partition) for p in partitions}
        batch = self._pending
        if batch is not None:
            self._merge_done(batch)
            dropped = batch.drop(revoked)
            if dropped:
                log.info(
                    "%d unwritten outbox message(s) of revoked partitions dropped from the "
                    "batch; their next owner reads them again",
                    dropped,
                )
        self._offsets.commit(self._consumer, only=revoked)
        self._offsets.forget(revoked)

    # --- dead letters ---------------------------------------------------------------------

    def _dead_letter(
        self, message: Any, reason: str, kind: str, path: str | None = None
    ) -> DeadLetter:
        return from_message(message, reason=reason, kind=kind, path=path, failed_at=self._clock())

    def _send_dead_letter(self, dead: DeadLetter) -> None:
        assert self._dlq is not None  # dead letters are sent only while started
        self._dlq.send(dead)
        log.warning(
            "outbox message %s[%d]@%d dead-lettered to %r (%s): %s; continuing",
            dead.source_topic,
            dead.source_partition,
            dead.source_offset,
            self._topics.dlq,
            dead.kind,
            dead.reason,
        )
