"""The trainer's intake: ``driftline.labeled`` into its example store, in a thread.

Joined examples are keyed by prediction id, so one model's examples are spread over every
partition of ``driftline.labeled``. Every trainer process therefore reads every partition, by
assignment (no consumer group), into its own :class:`~driftline.trainer.examples.ExampleStore`,
from the offsets the store wrote with its examples (one write batch per fetch), so a restart
goes on where the store stopped and a replay adds nothing twice.

Before training on a request, the agent waits (:meth:`LabeledFeed.wait_caught_up`) until the
feed has read up to what the topic held when it asked, so that the newest examples, those the
holdout is made of, are in the store. Tansu's end offsets are unreliable (DESIGN §6): caught
up means every partition's position reached the high watermark its last fetch reported, or
no message arrived for a short idle time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from driftline.config import Settings
from driftline.errors import KafkaError
from driftline.kafka_auth import confluent_config
from driftline.trainer.examples import ExampleStore, LabeledRecord

__all__ = ["LabeledFeed"]

logger = logging.getLogger(__name__)

BATCH = 2000
"""Records taken per fetch, and written in one batch."""


class LabeledFeed:
    """A thread that keeps the example store fed from ``driftline.labeled``.

    ``clock`` gives the wall time in seconds (the store refuses examples dated too far ahead
    of it). :attr:`error` is set, and the thread ends, when the store or the topic fails for
    good; :meth:`wait_caught_up` then raises it.
    """

    def __init__(
        self,
        settings: Settings,
        store: ExampleStore,
        *,
        idle: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._store = store
        self._idle = idle
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._assignment: list[TopicPartition] = []
        self._position: dict[int, int] = {}
        self._last_message = time.monotonic()
        self._answered = False
        self._caught_up = False
        self.error: BaseException | None = None
        self.rejected: Counter[str] = Counter()
        self.stored = 0

    def start(self) -> LabeledFeed:
        """Assign every partition of the labeled topic from the store's offsets and start."""
        topic = self._settings.topics.labeled
        consumer = Consumer(
            {
                **confluent_config(self._settings.kafka),
                "group.id": "driftline-trainer-feed",  # required; never joined or committed
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "fetch.queue.backoff.ms": 5,
            }
        )
        try:
            listed = consumer.list_topics(topic, timeout=10).topics[topic]
        except (KafkaException, KeyError) as exc:
            consumer.close()
            raise KafkaError(f"cannot read topic {topic!r}: {exc}") from None
        if listed.error is not None:
            consumer.close()
            raise KafkaError(f"cannot read topic {topic!r}: {listed.error}")
        stored = self._store.offsets()
        self._assignment = [
            TopicPartition(topic, p, stored.get(p, OFFSET_BEGINNING)) for p in listed.partitions
        ]
        self._position = {p: stored.get(p, 0) for p in listed.partitions}
        consumer.assign(self._assignment)
        self._consumer = consumer
        self._thread = threading.Thread(target=self._run, name="driftline-trainer-feed")
        self._thread.start()
        logger.info(
            "trainer feed reading %s (%d partitions) from %s",
            topic,
            len(self._assignment),
            "the beginning" if not stored else "the store's offsets",
        )
        return self

    def _run(self) -> None:
        assert self._consumer is not None
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(num_messages=BATCH, timeout=0.2)
                records = []
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.fatal() or not error.retriable():
                            raise KafkaError(f"reading {message.topic()!r}: {error}")
                        continue
                    value = message.value()
                    partition, offset = message.partition() or 0, message.offset() or 0
                    records.append(LabeledRecord(partition, offset, value or b""))
                    self._position[partition] = max(self._position.get(partition, 0), offset + 1)
                if records:
                    result = self._store.apply(records, now_ms=int(self._clock() * 1000))
                    self.rejected.update(result.rejected)
                    self.stored += result.added
                    self._last_message = time.monotonic()
                # Only this thread may use the consumer (its calls wait for each other).
                self._caught_up = self._behind() == 0 or (
                    self._answered and time.monotonic() - self._last_message >= self._idle
                )
        except BaseException as exc:  # noticed by wait_caught_up
            logger.error("trainer feed stopped: %s", exc)
            self.error = exc

    def _behind(self) -> int | None:
        """Partitions not yet read to the high watermark their last fetch reported; None
        while one has had no fetch response."""
        assert self._consumer is not None
        behind = 0
        for tp in self._assignment:
            low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                return None
            if max(self._position.get(tp.partition, 0), low) < high:
                behind += 1
        self._answered = True
        return behind

    def caught_up(self) -> bool:
        """Whether every partition was read to the high watermark its last fetch reported,
        or nothing has arrived for the idle time once every partition has answered."""
        return self._caught_up

    def wait_caught_up(self, timeout: float) -> bool:
        """Block until :meth:`caught_up` (True) or ``timeout`` seconds passed (False); raise
        the feed's error when it stopped."""
        deadline = time.monotonic() + timeout
        while True:
            if self.error is not None:
                raise KafkaError(f"the trainer's feed of examples stopped: {self.error}")
            if self.caught_up():
                return True
            if time.monotonic() >= deadline:
                return False
            self._stop.wait(0.1)

    def close(self) -> None:
        """Stop the thread and close the consumer (the store is the caller's)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
