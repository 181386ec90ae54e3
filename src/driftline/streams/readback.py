"""Reading topics whole, from the beginning of every partition to their current end.

Some parts learn what they did before from their own output topics: stage 2 reads the alerts
and retrain topics back so that a restart sends no id twice
(:mod:`driftline.streams.stage2.published`), the trainer reads its outcomes topic back to know
which requests are done (:mod:`driftline.trainer.outcomes`). Both read by assignment, with no
consumer group, every partition from its beginning, until caught up.

Tansu's end offsets are unreliable (DESIGN §6), so the reader is caught up once a fetch has
answered for every partition and then either every partition's position has reached the high
watermark its fetches reported, or no message has arrived for a short idle time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from driftline.config import KafkaSettings
from driftline.errors import KafkaError
from driftline.kafka_auth import confluent_config

__all__ = ["read_to_end"]


def read_to_end(
    kafka: KafkaSettings,
    topics: Sequence[str],
    on_value: Callable[[str, bytes], None],
    *,
    group: str,
    what: str,
    idle: float = 1.0,
    timeout: float = 300.0,
) -> int:
    """Hand every record value of ``topics`` to ``on_value(topic, value)``, in topic order
    per partition, from the beginning of every partition until caught up (module
    docstring); returns how many records were read. ``group`` is required by the client but
    never joined or committed; ``what`` names the topics in errors.
    :class:`~driftline.errors.KafkaError` when a topic cannot be listed, a fetch fails for
    good, or ``timeout`` seconds pass before the end is reached."""
    consumer = Consumer(
        {
            **confluent_config(kafka),
            "group.id": group,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.queue.backoff.ms": 5,
        }
    )
    try:
        assignment: list[TopicPartition] = []
        for topic in topics:
            try:
                listed = consumer.list_topics(topic, timeout=10).topics[topic]
            except (KafkaException, KeyError) as exc:
                raise KafkaError(f"cannot read topic {topic!r}: {exc}") from None
            if listed.error is not None:
                raise KafkaError(f"cannot read topic {topic!r}: {listed.error}")
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in listed.partitions]
        consumer.assign(assignment)
        return _read(consumer, assignment, on_value, what, idle, time.monotonic() + timeout)
    finally:
        consumer.close()


def _read(
    consumer: Consumer,
    assignment: list[TopicPartition],
    on_value: Callable[[str, bytes], None],
    what: str,
    idle: float,
    deadline: float,
) -> int:
    read = 0
    position: dict[tuple[str, int], int] = {}
    quiet_since: float | None = None  # set once a fetch has answered for every partition
    while True:
        now = time.monotonic()
        behind = _behind(consumer, assignment, position)
        if behind is not None:
            if not behind:
                return read
            if quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= idle:
                return read
        if now > deadline:
            raise KafkaError(f"{what} were not read to their end in time; {read} records read")
        for message in consumer.consume(num_messages=1000, timeout=min(0.2, idle)):
            error = message.error()
            if error is not None:
                if error.fatal() or not error.retriable():
                    raise KafkaError(f"reading {message.topic()!r}: {error}")
                continue
            if quiet_since is not None:
                quiet_since = time.monotonic()
            topic = message.topic() or ""
            position[topic, message.partition() or 0] = (message.offset() or 0) + 1
            value = message.value()
            read += 1
            if value is not None:
                on_value(topic, value)


def _behind(
    consumer: Consumer, assignment: list[TopicPartition], position: dict[tuple[str, int], int]
) -> int | None:
    """How many partitions are not yet read up to the high watermark their last fetch
    reported (``cached``: no ListOffsets request, whose answers Tansu gets wrong); None
    while some partition has had no fetch response."""
    behind = 0
    for tp in assignment:
        low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high < 0:
            return None
        if max(position.get((tp.topic, tp.partition), 0), low) < high:
            behind += 1
    return behind
