"""Reference profiles from the compacted ``models`` topic, for every worker (DESIGN §1).

Every worker reads the whole topic (no consumer group: all partitions, from the beginning)
into memory, then follows it; a model version's profile is there as soon as anyone publishes
it. Workers need no shared file system.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from pydantic import ValidationError

from driftline.config import KafkaSettings, TopicSettings
from driftline.errors import DeliveryError, FailedDelivery, KafkaError
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import ModelVersionRegistered
from driftline.schemas.reference import ReferenceProfile

log = logging.getLogger(__name__)
_OFFSET_BEGINNING = -2


class ProfileRegistry:
    """The latest :class:`ModelVersionRegistered` per (model, version), kept up to date.

    ``start()`` reads what the topic holds in a background thread; :meth:`get` answers from
    memory; :meth:`wait_for` blocks until a version's profile has arrived (tests, warm-up).
    Records that do not decode are skipped with a warning: one bad record must not hide every
    other model's profile.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        *,
        on_profile: Callable[[ModelVersionRegistered], None] | None = None,
    ) -> None:
        self._kafka = kafka
        self._topic = topics.models
        self._on_profile = on_profile
        self._profiles: dict[tuple[str, str], ModelVersionRegistered] = {}
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.skipped = 0

    def start(self) -> ProfileRegistry:
        """Start following the topic."""
        if self._thread is None:
            consumer = Consumer(
                {
                    **confluent_config(self._kafka),
                    "group.id": "driftline-profile-registry",  # required, never joined or committed
                    "enable.auto.commit": False,
                    "fetch.queue.backoff.ms": 5,
                }
            )
            try:
                partitions = consumer.list_topics(self._topic, timeout=10).topics[self._topic]
            except KafkaException as exc:
                consumer.close()
                raise KafkaError(f"cannot read topic {self._topic!r}: {exc}") from None
            consumer.assign(
                [TopicPartition(self._topic, p, _OFFSET_BEGINNING) for p in partitions.partitions]
            )
            self._thread = threading.Thread(
                target=self._follow, args=(consumer,), name="driftline-profiles", daemon=True
            )
            self._thread.start()
        return self

    def _follow(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                for message in consumer.consume(num_messages=100, timeout=0.2):
                    value = message.value()
                    if message.error() is None and value is not None:
                        self._accept(value)
        finally:
            consumer.close()

    def _accept(self, value: bytes) -> None:
        try:
            record = ModelVersionRegistered.model_validate_json(value)
        except ValidationError as exc:
            self.skipped += 1
            log.warning("skipped a models record that is not a ModelVersionRegistered: %s", exc)
            return
        with self._lock:
            self._profiles[(record.model, record.model_version)] = record
            self._lock.notify_all()
        if self._on_profile is not None:
            self._on_profile(record)

    def get(self, model: str, version: str) -> ReferenceProfile | None:
        """The reference profile of a model version, if registered."""
        with self._lock:
            record = self._profiles.get((model, version))
        return None if record is None else record.reference

    def parent_version(self, model: str, version: str) -> str | None:
        """The version ``version`` was retrained from (its record's ``parent_version``), if
        registered with one: a canary's champion (issue 16)."""
        with self._lock:
            record = self._profiles.get((model, version))
        return None if record is None else record.parent_version

    def wait_for(self, model: str, version: str, timeout: float = 30.0) -> ReferenceProfile:
        """Block until a version's profile is known; :class:`KafkaError` after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while (model, version) not in self._profiles:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise KafkaError(
                        f"no profile for model {model!r} version {version!r} on "
                        f"{self._topic!r} after {timeout:.0f}s"
                    )
                self._lock.wait(left)
            return self._profiles[(model, version)].reference

    def versions(self) -> list[tuple[str, str]]:
        """Every (model, version) with a profile."""
        with self._lock:
            return sorted(self._profiles)

    def close(self) -> None:
        """Stop following the topic."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def publish_profile(
    kafka: KafkaSettings,
    topics: TopicSettings,
    record: ModelVersionRegistered,
    *,
    timeout: float = 30.0,
) -> None:
    """Publish a version's profile on the models topic and wait for the acknowledgement."""
    failures: list[FailedDelivery] = []

    def report(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(FailedDelivery(topics.models, msg.key(), str(err)))

    producer = Producer({**confluent_config(kafka), "enable.idempotence": True, "acks": "all"})
    producer.produce(topics.models, key=record.key(), value=record.to_json(), on_delivery=report)
    remaining = producer.flush(timeout)
    if failures or remaining:
        raise DeliveryError(failures, undelivered=remaining)
