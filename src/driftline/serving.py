"""The serving side of the loop: a model-serving service that follows its model's champion.

When the trainer promotes a version it publishes the version's reference profile on the
compacted ``driftline.models`` topic. A :class:`ChampionFollower` in the serving process reads
that topic (every partition, by assignment, from the beginning, in a thread); whenever a
record of its model arrives it asks the registry which version is the champion, and when
that changed it loads the version's model from the registry (the registry checks the file's
hash, the model format its own: :mod:`driftline.trainer.serialise`) and swaps it in. The
service predicts with :meth:`ChampionFollower.current` and stamps each prediction with the
version it came from, so the monitor judges each version against its own reference.

A person's ``driftline models promote`` or ``rollback`` publishes the same record, so the
follower follows those too. Until the registry has a champion (a model trained outside
driftline), :meth:`~ChampionFollower.current` is None and the service keeps its own model.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from pydantic import ValidationError

from driftline.config import KafkaSettings, TopicSettings
from driftline.errors import DriftlineError, KafkaError
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import ModelVersionRegistered
from driftline.trainer.protocol import FittedModel
from driftline.trainer.registry import FileSystemRegistry, Registry
from driftline.trainer.serialise import load

__all__ = ["Champion", "ChampionFollower"]

logger = logging.getLogger(__name__)


class Champion(NamedTuple):
    """The model a service should predict with, and the version to stamp predictions with."""

    version: str
    model: FittedModel


class ChampionFollower:
    """Follow ``model``'s champion version from the models topic and the registry.

    Parameters
    ----------
    kafka, topics
        Where the models topic is.
    registry
        The model registry (a :class:`~driftline.trainer.registry.Registry`, or the root
        folder of a file-system one): models are loaded from it only.
    model
        The model this service serves.

    Examples
    --------
    In a serving process (``features`` is one request's feature dict)::

        with ChampionFollower(kafka, topics, Path("var/registry"), "fraud") as follower:
            champion = follower.current()
            if champion is None:
                version, label = "1", my_own_model(features)
            else:
                version, label = champion.version, champion.model.predict([features])[0]
            producer.send_prediction(model="fraud", model_version=version, ...)
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        registry: Registry | Path,
        model: str,
    ) -> None:
        self._kafka = kafka
        self._topic = topics.models
        self._registry = FileSystemRegistry(registry) if isinstance(registry, Path) else registry
        self.model = model
        self._current: Champion | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self.error: DriftlineError | None = None
        """The last failure to load a champion (the previous one keeps serving)."""

    def start(self) -> Self:
        """Load the registry's champion now, then follow the models topic in a thread."""
        consumer = Consumer(
            {
                **confluent_config(self._kafka),
                "group.id": f"driftline-serving-{self.model}",  # never joined or committed
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "fetch.queue.backoff.ms": 5,
            }
        )
        try:
            listed = consumer.list_topics(self._topic, timeout=10).topics[self._topic]
        except (KafkaException, KeyError) as exc:
            consumer.close()
            raise KafkaError(f"cannot read topic {self._topic!r}: {exc}") from None
        consumer.assign(
            [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in listed.partitions]
        )
        self._consumer = consumer
        self._refresh()
        self._thread = threading.Thread(target=self._run, name=f"driftline-follow-{self.model}")
        self._thread.start()
        return self

    def current(self) -> Champion | None:
        """The champion to predict with now (None while the registry has none)."""
        return self._current

    def wait_for(self, version: str, timeout: float) -> bool:
        """Block until ``version`` is the champion being served (True) or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._current is None or self._current.version != version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _run(self) -> None:
        assert self._consumer is not None
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(num_messages=100, timeout=0.5)
            except KafkaException as exc:
                logger.warning("reading %s: %s", self._topic, exc)
                continue
            mine = False
            for message in messages:
                value = message.value()
                if message.error() is not None or value is None:
                    continue
                try:
                    record = ModelVersionRegistered.model_validate_json(value)
                except ValidationError:
                    continue
                mine = mine or record.model == self.model
            if mine:
                self._refresh()

    def _refresh(self) -> None:
        """Load the registry's champion if it is not the one served (a failure keeps the
        one served and is kept in :attr:`error`)."""
        try:
            champion = self._registry.champion(self.model)
            if champion is None:
                return
            if self._current is not None and self._current.version == champion.version:
                return
            fitted = load(self._registry.artifact(self.model, champion.version))
        except DriftlineError as exc:
            logger.error("cannot load the champion of %s: %s", self.model, exc)
            self.error = exc
            return
        with self._changed:
            self._current = Champion(champion.version, fitted)
            self._changed.notify_all()
        logger.info("serving %s version %s (the registry's champion)", self.model, champion.version)

    def close(self) -> None:
        """Stop following (the champion last loaded stays available)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
