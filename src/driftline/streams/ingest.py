"""Stage 1's Kafka loop: consume both input topics in batches, apply, send, persist.

One consumer group over the predictions and ground-truth topics with **range assignment**, so
a member owns the same partition numbers of both (they are co-partitioned by
``prediction_id``) and the join stays local. Per polled batch and partition number:

1. :meth:`PartitionWorker.apply` decodes, folds and joins (nothing written yet);
2. dead letters and joined examples are produced;
3. once they are **acknowledged**, the store batch (summaries, join entries, applied offsets)
   is written atomically.

Step 3 of one poll happens after step 1 of the next: the acknowledgements of a poll's outputs
come back while the next poll is applied (the worker keeps the unwritten join entries in
memory meanwhile), instead of the loop waiting for them. A crash before 3 replays the batch:
its outputs are sent again with the same ids (at-least-once; consumers drop repeats).

Every ``flush_interval`` the changed cumulative pane partials and a watermark per model go to
the summaries topic, and the offsets the store has written are committed to Kafka (for lag
monitoring and for a new owner of the partition: the store's marks are what a restart resumes
from). A committed offset always has its outputs acknowledged, so nothing below it is lost.

A batch that fails to apply is contained (:mod:`driftline.streams.containment`); sending,
acknowledging and writing are :mod:`driftline.streams.delivery`'s.

No statistics in here: :mod:`driftline.streams.partition` holds the logic.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import threading
import time
from collections.abc import Callable
from itertools import groupby
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)

from driftline.config import Settings
from driftline.deadletter import RawMessage
from driftline.errors import KafkaError
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import ModelVersionRegistered
from driftline.schemas.reasons import OUTPUT_TOO_LARGE, UNKNOWN_MODEL
from driftline.schemas.reference import ReferenceProfile
from driftline.streams import partials as wire
from driftline.streams.admission import ModelAdmission
from driftline.streams.baseline import publish_baseline
from driftline.streams.containment import contain
from driftline.streams.delivery import Delivery
from driftline.streams.partition import PartitionWorker
from driftline.streams.registry import ProfileRegistry
from driftline.streams.result import ApplyResult
from driftline.streams.runtime import trim_heap
from driftline.streams.store import Marks, PartitionStore
from driftline.telemetry.ingest import IngestTelemetry

log = logging.getLogger(__name__)
BASELINE_PARTITION = 0
_PARTITION_TOPIC = operator.itemgetter(0, 1)
_MESSAGE = operator.itemgetter(2)


class Ingest:
    """Stage 1 for the partitions this process is assigned.

    Parameters
    ----------
    settings
        Kafka connection, topic names, per-model configuration, ``monitor.state_dir`` (one
        RocksDB per partition number below ``ingest/``) and ``monitor.group_id``.
    registry
        Where profiles come from; a new :class:`ProfileRegistry` on the models topic if None.
    batch_size
        Messages per poll (default ``monitor.batch_size``).
    flush_interval
        Seconds between emissions of changed partials, watermarks and offset commits.
    label_idle
        Seconds without ground truth on a partition after which its watermark stops waiting
        for labels (:meth:`PartitionWorker.closing_watermark`); default ``monitor.label_idle``.
        Keep it well below the models' ``idle_timeout``, after which stage 2 stops waiting
        for the partition.
    clock
        Wall-clock seconds (for timestamps of dead letters and intervals); injectable.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: ProfileRegistry | None = None,
        batch_size: int | None = None,
        flush_interval: float = 1.0,
        expire_interval: float = 30.0,
        label_idle: float | None = None,
        clock: Callable[[], float] = time.time,
        telemetry: IngestTelemetry | None = None,
    ) -> None:
        self.settings = settings
        self._topics = settings.topics
        self._registry = registry
        self._own_registry = registry is None
        monitor = settings.monitor
        self._batch_size = monitor.batch_size if batch_size is None else batch_size
        self._flush_interval = flush_interval
        self._expire_interval = expire_interval
        idle = monitor.label_idle.total_seconds() if label_idle is None else label_idle
        self._label_idle_ms = int(idle * 1000)
        self._clock = clock
        self.telemetry = telemetry or IngestTelemetry()
        self.admission = ModelAdmission.from_settings(settings, clock=clock)
        """The models this process tracks (``models_policy``), shared by its partitions."""
        self._state_dir = Path(settings.monitor.state_dir) / "ingest"
        self._workers: dict[int, PartitionWorker] = {}
        self._consumer: Consumer | None = None
        self._delivery: Delivery | None = None
        self._failed = False
        self._n_partitions = 0
        self._last_flush = 0.0
        self._last_expire = 0.0
        self._arrived: set[tuple[str, str]] = set()
        self._arrived_lock = threading.Lock()
        self._published: set[tuple[str, str]] = set()
        self._recheck_held = False
        """Whether the held versions of every partition are checked against the registry at
        the next poll (after an assignment, which may open stores holding versions whose
        profile the registry already has)."""
        self._failed_partials = False
        self._last_poll = 0.0
        self.stall_after = monitor.health.ingest_stall_after.total_seconds()
        """Seconds without a poll after which :meth:`health` reports unhealthy."""

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> Ingest:
        """Create the clients and join the consumer group."""
        if self.settings.models_policy.allow == "listed" and not self.settings.models:
            log.warning(
                "models_policy.allow is 'listed' but no model is configured under models: "
                "every prediction will go to the DLQ as %s",
                UNKNOWN_MODEL,
            )
        if self._registry is None:
            self._registry = ProfileRegistry(
                self.settings.kafka, self._topics, on_profile=self._on_profile
            ).start()
        else:
            self._registry._on_profile = self._on_profile
        kafka = confluent_config(self.settings.kafka)
        producer = {
            **kafka,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.timeout.ms": 300_000,
        }
        self._delivery = Delivery(producer, self._topics, self.telemetry)
        self._consumer = Consumer(
            {
                **kafka,
                "group.id": f"{self.settings.monitor.group_id}-ingest",
                "partition.assignment.strategy": "range",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "fetch.queue.backoff.ms": 5,  # DESIGN §6: the 1000 ms default stalls a busy loop
                "enable.partition.eof": False,
                "on_commit": self._committed,
            }
        )
        try:
            metadata = self._consumer.list_topics(self._topics.predictions, timeout=10)
            self._n_partitions = len(metadata.topics[self._topics.predictions].partitions)
        except KafkaException as exc:
            raise KafkaError(f"cannot read {self._topics.predictions!r}: {exc}") from None
        self._consumer.subscribe(
            [self._topics.predictions, self._topics.ground_truth],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        return self

    def _on_profile(self, record: ModelVersionRegistered) -> None:
        with self._arrived_lock:
            self._arrived.add((record.model, record.model_version))

    def _profile(self, model: str, version: str) -> Any:
        assert self._registry is not None
        return self._registry.get(model, version)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for number in sorted({tp.partition for tp in partitions}):
            if number not in self._workers:
                store = PartitionStore(
                    self._state_dir / f"p{number}", wal=self.settings.monitor.store_wal
                )
                self._workers[number] = PartitionWorker(
                    number, store, self._profile, self.settings, admission=self.admission
                )
        committed = self._committed_offsets(consumer, partitions)
        for tp in partitions:
            worker = self._workers[tp.partition]
            is_prediction = tp.topic == self._topics.predictions
            mark = worker.marks.predictions if is_prediction else worker.marks.ground_truth
            # Resume exactly where the store's applied marks are; a store that never applied
            # anything starts from the beginning of the retained input, whatever the group
            # committed: the join entries and partials before the committed offset are
            # rebuilt from it (the inputs are the store's changelog).
            tp.offset = mark if mark >= 0 else OFFSET_BEGINNING
        for number in sorted({tp.partition for tp in partitions}):
            worker = self._workers[number]
            worker.restore_until = Marks(
                committed.get((self._topics.predictions, number), -1),
                committed.get((self._topics.ground_truth, number), -1),
            )
            self.telemetry.restoring.labels(str(number)).set(int(worker.restoring))
            if worker.restoring:
                log.info(
                    "partition %d: the store has applied predictions up to %d and ground "
                    "truth up to %d, the group committed %d and %d; rebuilding from the "
                    "input topics (dead letters and joined examples below the committed "
                    "offsets are not sent again; partials wait until the rebuild is done)",
                    number,
                    worker.marks.predictions,
                    worker.marks.ground_truth,
                    worker.restore_until.predictions,
                    worker.restore_until.ground_truth,
                )
        consumer.assign(partitions)
        self._recheck_held = True
        self.telemetry.partitions.set(len(self._workers))
        log.info(
            "ingest assigned partitions %s; resuming from the store's marks",
            sorted({tp.partition for tp in partitions}),
        )

    @staticmethod
    def _committed_offsets(
        consumer: Consumer, partitions: list[TopicPartition]
    ) -> dict[tuple[str, int], int]:
        """The group's committed offsets of these partitions ({} if they cannot be read:
        then only a store that is behind on its own cannot tell, and resumes as it is)."""
        try:
            found = consumer.committed(
                [TopicPartition(tp.topic, tp.partition) for tp in partitions], timeout=10
            )
        except KafkaException as exc:
            log.warning("cannot read the committed offsets (%s); resuming from the stores", exc)
            return {}
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = sorted({tp.partition for tp in partitions})
        self._emit(force=True)
        for number in numbers:
            worker = self._workers.pop(number, None)
            if worker is not None:
                worker.store.close()
            for gauge in (self.telemetry.store_keys, self.telemetry.store_bytes):
                with contextlib.suppress(KeyError):
                    gauge.remove(str(number))
        self.telemetry.partitions.set(len(self._workers))
        log.info("ingest released partitions %s after emitting their partials", numbers)

    def close(self) -> None:
        """Emit what changed, commit, leave the group and release every store."""
        if self._consumer is not None:
            self._emit(force=True)
            self._consumer.close()  # triggers on_revoke, which closes the stores
            self._consumer = None
        for worker in self._workers.values():
            worker.store.close()
        self._workers.clear()
        if self._delivery is not None:
            self._delivery.producer.flush(30)
            self._delivery = None
        if self._registry is not None and self._own_registry:
            self._registry.close()

    # --- the loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll and apply until ``stop`` is set, then :meth:`close`."""
        try:
            while not stop.is_set():
                self.run_once()
        except BaseException:
            self.fail()
            raise
        finally:
            self.close()

    def fail(self) -> None:
        """Stop emitting: the loop failed with batches applied in memory but not written.
        Their partials may not be sent nor their offsets committed; a restart resumes from
        the store's marks."""
        self._failed = True

    def run_once(self, timeout: float = 0.2) -> int:
        """One poll: apply what came, then emit and commit when the interval has passed."""
        assert self._consumer is not None
        assert self._delivery is not None
        delivery = self._delivery
        messages = self._consumer.consume(num_messages=self._batch_size, timeout=timeout)
        self._last_poll = self._clock()
        self.telemetry.last_poll.set(self._last_poll)
        if any(map(Message.error, messages)):
            for message in messages:
                if (error := message.error()) is not None:
                    log.warning("consumer error (librdkafka retries on its own): %s", error)
            messages = [message for message in messages if message.error() is None]
        # Split by partition and topic without a Python loop per message: librdkafka hands
        # out each fetched partition as one run of messages, in offset order.
        predictions = self._topics.predictions
        by_partition: dict[int, tuple[list[RawMessage], list[RawMessage]]] = {}
        runs = zip(
            map(Message.partition, messages), map(Message.topic, messages), messages, strict=True
        )
        for (number, topic), run in groupby(runs, key=_PARTITION_TOPIC):
            lists = by_partition.get(number)
            if lists is None:
                lists = by_partition[number] = ([], [])
            lists[topic != predictions].extend(map(_MESSAGE, run))
        now_ms = int(self._clock() * 1000)
        applied = []
        for number, (from_predictions, from_truth) in by_partition.items():
            worker = self._workers.get(number or 0)
            if worker is None:  # revoked while the batch was in flight
                continue
            events_in = self.telemetry.events_in
            events_in.labels(topic=self._topics.predictions).inc(len(from_predictions))
            events_in.labels(topic=self._topics.ground_truth).inc(len(from_truth))
            try:
                result = worker.apply_split(from_predictions, from_truth, now_ms)
            except Exception as exc:
                contain(
                    worker,
                    from_predictions,
                    from_truth,
                    now_ms,
                    exc,
                    settle=delivery.settle,
                    queue=delivery.queue,
                )
                continue
            applied.append((worker, result))
        # The previous poll's outputs were in flight while this poll was applied: wait for
        # what is left of their acknowledgements, write their batches, then send this poll's.
        delivery.settle()
        for worker, result in applied:
            delivery.queue(worker, result)
        self._arrivals()
        now = self._clock()
        if now - self._last_flush >= self._flush_interval:
            self._emit()
            self._last_flush = now
        if now - self._last_expire >= self._expire_interval:
            self.admission.forget()
            self.telemetry.unknown_models.set(self.admission.unknown)
            self._settle()
            for worker in self._workers.values():
                self.telemetry.unlabelled.inc(worker.expire())
                keys, size = worker.store.size()
                self.telemetry.store_keys.labels(str(worker.partition)).set(keys)
                self.telemetry.store_bytes.labels(str(worker.partition)).set(size)
            trim_heap()  # expiry freed memory: give it back instead of letting glibc keep it
            self._last_expire = now
        return len(messages)

    def _committed(self, err: Any, partitions: list[TopicPartition]) -> None:
        if err is not None:
            log.warning("offset commit failed (the store's marks still hold): %s", err)
            return
        for tp in partitions:
            if tp.error is None and tp.offset >= 0:
                self.telemetry.committed_offset.labels(tp.topic, str(tp.partition)).set(tp.offset)

    def _apply_now(self, worker: PartitionWorker, result: ApplyResult) -> None:
        """Send, acknowledge and write one batch at once (profile arrivals)."""
        assert self._delivery is not None
        self._delivery.queue(worker, result)
        self._settle()

    def _arrivals(self) -> None:
        """Fold held predictions of versions whose profile arrived; build warm-up baselines."""
        with self._arrived_lock:
            arrived, self._arrived = self._arrived, set()
        recheck, self._recheck_held = self._recheck_held or bool(arrived), False
        for worker in self._workers.values():
            # Every held version whose profile is known, not only those that just arrived:
            # a store reopened after a restart may hold versions the registry knew before.
            ready = (
                [version for version in worker.held() if self._profile(*version) is not None]
                if recheck
                else []
            )
            if ready or (worker.partition == BASELINE_PARTITION and worker.held()):
                self._settle()  # held predictions are read back from the store
            for model, version in ready:
                now_ms = int(self._clock() * 1000)
                self._apply_now(worker, worker.profile_arrived(model, version, now_ms))
            if worker.partition != BASELINE_PARTITION:
                continue
            for model, version in worker.held():
                if (model, version) in self._published or not self.admission.admitted(model):
                    continue  # a model no longer tracked gets no baseline on the models topic
                warmup = self.settings.model(model).warmup_events
                profile = worker.baseline(model, version, warmup)
                if profile is not None:
                    self._publish_baseline(profile)

    def _settle(self) -> None:
        """Wait for every output sent so far, then write the batches that made them."""
        assert self._delivery is not None
        self._delivery.settle()

    def _publish_baseline(self, profile: ReferenceProfile) -> None:
        """Publish a version's warm-up baseline; one too large is not, and the predictions
        held for the version on this process's partitions go to the DLQ instead (kind
        ``output_too_large``): later ones are held again, for another warm-up."""
        assert self._delivery is not None
        key = (model, version) = profile.model, profile.model_version
        limit = self.settings.monitor.max_output_bytes
        reason = publish_baseline(self._delivery.producer, self._topics.models, profile, limit)
        if reason is None:
            self._published.add(key)
            return
        now_ms, letters = int(self._clock() * 1000), 0
        for worker in self._workers.values():
            result = worker.refuse_held(model, version, OUTPUT_TOO_LARGE, reason, now_ms)
            letters += len(result.dead_letters)
            self._apply_now(worker, result)
        log.warning(
            "not publishing a warm-up baseline to %s: %s; %d held events and labels sent to "
            "%s, later ones are held again for another warm-up",
            *(self._topics.models, reason, letters, self._topics.dlq),
        )

    def _emit(self, *, force: bool = False) -> None:
        """Send changed partials and watermarks, then commit the applied offsets."""
        if self._delivery is None or self._consumer is None or self._failed:
            return
        self._settle()  # partials and committed offsets only ever reflect written batches
        producer = self._delivery.producer
        offsets = []
        now_ms = int(self._clock() * 1000)
        for worker in self._workers.values():
            watermark_ms = worker.closing_watermark(now_ms, self._label_idle_ms)
            for partial in worker.drain():
                producer.produce(
                    self._topics.summaries,
                    key=partial.model.encode(),
                    value=wire.encode(partial),
                    on_delivery=self._partial_delivered,
                )
                self.telemetry.panes_emitted.inc()
                self.telemetry.messages_out.labels(topic=self._topics.summaries).inc()
            if worker.restoring:
                continue  # no watermark, no commit: the group's committed offsets stand
            self.telemetry.restoring.labels(str(worker.partition)).set(0)
            for model in sorted(worker.models()):
                producer.produce(
                    self._topics.summaries,
                    key=model.encode(),
                    value=wire.encode(
                        wire.Watermark(model, worker.partition, watermark_ms, self._n_partitions)
                    ),
                )
            marks = worker.store.marks()  # written, so their outputs are acknowledged
            for topic, mark in (
                (self._topics.predictions, marks.predictions),
                (self._topics.ground_truth, marks.ground_truth),
            ):
                if mark >= 0:
                    self.telemetry.applied_offset.labels(topic, str(worker.partition)).set(mark)
            if marks.predictions >= 0:
                offsets.append(
                    TopicPartition(self._topics.predictions, worker.partition, marks.predictions)
                )
            if marks.ground_truth >= 0:
                offsets.append(
                    TopicPartition(self._topics.ground_truth, worker.partition, marks.ground_truth)
                )
        producer.flush(30 if force else 10)
        if self._failed_partials:
            # Cumulative partials: sending every one again repairs any that failed.
            for worker in self._workers.values():
                worker.mark_all_dirty()
            self._failed_partials = False
        if offsets:
            try:
                if force:
                    done = self._consumer.commit(offsets=offsets, asynchronous=False)
                    self._committed(None, done or [])
                else:
                    self._consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:
                log.warning("offset commit failed (the store's marks still hold): %s", exc)

    def _partial_delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failed_partials = True
            self.telemetry.sink_errors.labels(sink="summaries").inc()
            log.warning("a pane partial was not delivered (%s); all will be sent again", err)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the loop polls: a stalled loop (a hung broker call, a crash in the
        loop's thread) stops polling."""
        age = self._clock() - self._last_poll if self._last_poll else None
        ok = self._consumer is not None and age is not None and age < self.stall_after
        return ok, {
            "part": "ingest",
            "seconds_since_poll": None if age is None else round(age, 3),
            "partitions": self.partitions,
        }

    @property
    def partitions(self) -> list[int]:
        """Partition numbers this process currently owns."""
        return sorted(self._workers)
