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

Rollout (issue 16): when the registry holds a ``challenger`` (a version in rollout, its mode in
its metadata) the follower loads it too, and :meth:`ChampionFollower.predict` serves both:

- ``shadow``: both versions predict on every request; the champion's answer is the one used;
  the challenger's prediction is published with role ``shadow``, its own prediction id
  (``<champion id>/shadow/<version>``) and ``shadow_of`` the champion's prediction id, keyed
  by ``shadow_of`` so it lands on the champion's partition and meets the same label;
- ``canary``: a hash of the request key (:func:`routes_to_challenger`) sends ``canary_share`` of
  the keys to the challenger, each key always to the same version; its predictions carry
  role ``canary``.

The follower re-reads the registry whenever a record of its model arrives and every
``poll_interval`` seconds besides (a rolled-back challenger publishes nothing), so a promotion
or a rollback, by the trainer or a person, switches what it serves.

:func:`publish_served` sends one request's :class:`Served` predictions through the producer
SDK (:class:`~driftline.client.DriftlineProducer`) with their role, ``shadow_of`` and key.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, NamedTuple, Self

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from pydantic import ValidationError

from driftline.client import DriftlineProducer
from driftline.config import KafkaSettings, TopicSettings
from driftline.errors import DriftlineError, KafkaError
from driftline.kafka_auth import confluent_config
from driftline.schemas.events import PredictionEvent
from driftline.schemas.outputs import ModelVersionRegistered
from driftline.trainer.protocol import FeatureValue, FittedModel, Label
from driftline.trainer.registry import FileSystemRegistry, Registry
from driftline.trainer.serialise import load

__all__ = [
    "Challenger",
    "Champion",
    "ChampionFollower",
    "Served",
    "publish_served",
    "routes_to_challenger",
]

logger = logging.getLogger(__name__)


class Champion(NamedTuple):
    """The model a service should predict with, and the version to stamp predictions with."""

    version: str
    model: FittedModel


Role = Literal["champion", "shadow", "canary"]


class Challenger(NamedTuple):
    """The version in rollout beside the champion, and how it is rolled out."""

    version: str
    model: FittedModel
    mode: Literal["shadow", "canary"]
    canary_share: float


class Served(NamedTuple):
    """One prediction to publish (``PredictionEvent`` fields), from
    :meth:`ChampionFollower.predict`."""

    version: str
    role: Role
    prediction: Label
    scores: dict[str, float] | None
    prediction_id: str
    shadow_of: str | None
    answer: bool
    """Whether this is the prediction the service answers the request with."""

    @property
    def key(self) -> str:
        """The Kafka message key: ``shadow_of`` for a shadow prediction, else its own id."""
        return self.shadow_of if self.shadow_of is not None else self.prediction_id


def routes_to_challenger(request_key: str, share: float, salt: str = "") -> bool:
    """Whether a canary rollout sends this request key to the challenger.

    Deterministic: the key's BLAKE2b hash (with ``salt``, the model and challenger version in
    the follower, so each rollout picks its own keys) read as a number in [0, 1) is compared
    with ``share``, so one key always gets the same version and a share of the keys close to
    ``share`` gets the challenger.

    >>> routes_to_challenger("user-1", 0.5) == routes_to_challenger("user-1", 0.5)
    True
    >>> routes_to_challenger("user-1", 0.0), routes_to_challenger("user-1", 1.0)
    (False, True)
    """
    digest = hashlib.blake2b(f"{salt}\x00{request_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


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
    poll_interval
        Seconds between reads of the registry when no record arrives (rollbacks of a
        challenger publish none).
    fallback
        The service's own model, used as the champion while the registry has none.

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

    With rollout, :meth:`predict` says what to publish and which answer to give::

        served = follower.predict(user_id, features, prediction_id=request_id)
        publish_served(producer, "fraud", served, features)
        answer = next(s.prediction for s in served if s.answer)
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        registry: Registry | Path,
        model: str,
        *,
        poll_interval: float = 5.0,
        fallback: Champion | None = None,
    ) -> None:
        self._kafka = kafka
        self._topic = topics.models
        self._registry = FileSystemRegistry(registry) if isinstance(registry, Path) else registry
        self.model = model
        self._current: Champion | None = None
        self._challenger: Challenger | None = None
        self._poll_interval = poll_interval
        self._fallback = fallback
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

    def challenger(self) -> Challenger | None:
        """The version in rollout beside the champion now, or None."""
        return self._challenger

    def predict(
        self,
        request_key: str,
        features: Mapping[str, FeatureValue],
        *,
        prediction_id: str | None = None,
    ) -> list[Served]:
        """The predictions to publish for one request, the answer first (module docstring).

        ``request_key`` picks the version in a canary rollout (a user id, say: one user sticks
        to one version); ``prediction_id`` (default ``request_key``) is the id of the answer's
        prediction. Empty while there is neither a registry champion nor a ``fallback``.
        """
        champion, challenger = self._current or self._fallback, self._challenger
        pid = prediction_id if prediction_id is not None else request_key
        if champion is None:
            return []
        if challenger is None:
            return [_served(champion.model, champion.version, "champion", features, pid)]
        if challenger.mode == "canary":
            salt = f"{self.model}/{challenger.version}"
            if routes_to_challenger(request_key, challenger.canary_share, salt):
                return [_served(challenger.model, challenger.version, "canary", features, pid)]
            return [_served(champion.model, champion.version, "champion", features, pid)]
        shadow_id = f"{pid}/shadow/{challenger.version}"
        return [
            _served(champion.model, champion.version, "champion", features, pid),
            _served(
                challenger.model,
                challenger.version,
                "shadow",
                features,
                shadow_id,
                shadow_of=pid,
            ),
        ]

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

    def wait_for_challenger(self, version: str | None, timeout: float) -> bool:
        """Block until ``version`` (None: no version) is the challenger served, or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (None if self._challenger is None else self._challenger.version) != version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _run(self) -> None:
        assert self._consumer is not None
        polled = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - polled >= self._poll_interval:
                polled = time.monotonic()
                self._refresh()
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
        """Load the registry's champion and challenger where they changed."""
        self._refresh_champion()
        self._refresh_challenger()

    def _refresh_challenger(self) -> None:
        """Load the registry's challenger if it is not the one served, or drop it when the
        registry has none (promoted or rolled back); a failure keeps what is served."""
        try:
            found = self._registry.challenger(self.model)
            if found is None or found.rollout is None:
                fresh = None
            elif self._challenger is not None and self._challenger.version == found.version:
                return
            else:
                fitted = load(self._registry.artifact(self.model, found.version))
                rollout = found.rollout
                fresh = Challenger(found.version, fitted, rollout.mode, rollout.canary_share)
        except DriftlineError as exc:
            logger.error("cannot load the challenger of %s: %s", self.model, exc)
            self.error = exc
            return
        if fresh is None and self._challenger is None:
            return
        with self._changed:
            self._challenger = fresh
            self._changed.notify_all()
        if fresh is None:
            logger.info("%s has no challenger now: serving the champion only", self.model)
        else:
            logger.info("%s version %s in %s rollout", self.model, fresh.version, fresh.mode)

    def _refresh_champion(self) -> None:
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


def _served(
    model: FittedModel,
    version: str,
    role: Role,
    features: Mapping[str, FeatureValue],
    prediction_id: str,
    *,
    shadow_of: str | None = None,
) -> Served:
    rows = [features]
    prediction = model.predict(rows)[0]
    scores = model.predict_scores(rows)
    return Served(
        version,
        role,
        prediction,
        None if scores is None else scores[0],
        prediction_id,
        shadow_of,
        answer=role != "shadow",
    )


def publish_served(
    producer: DriftlineProducer,
    model: str,
    served: Sequence[Served],
    features: Mapping[str, FeatureValue],
    *,
    timestamp: datetime | int | str | None = None,
    segments: Mapping[str, str] | None = None,
) -> list[PredictionEvent]:
    """Publish one request's predictions from :meth:`ChampionFollower.predict`; returns the
    events sent.

    Each :class:`Served` becomes what ``producer.send_prediction(model=model,
    model_version=s.version, role=s.role, prediction_id=s.prediction_id,
    shadow_of=s.shadow_of, ...)`` sends: the champion's and the shadow's in shadow mode, the
    chosen version's in canary. Its message key is :attr:`Served.key` (a shadow lands on its
    champion's partition and meets the same label). Every event carries the same
    ``timestamp`` (default: the producer's clock, read once), so a shadow falls in its
    champion's pane; all are validated before the first is sent, so an invalid request
    sends nothing (:class:`~driftline.errors.InvalidEventError`).

    >>> served = [Served("1", "champion", 1, None, "p-1", None, answer=True),
    ...           Served("2", "shadow", 0, None, "p-1/shadow/2", "p-1", answer=False)]
    >>> producer = DriftlineProducer("localhost:9092")
    >>> events = _events(producer, "fraud", served, {"x": 1.0}, 0, None)
    >>> [(e.model_version, e.role, e.prediction_id, e.shadow_of, e.message_key) for e in events]
    [('1', 'champion', 'p-1', None, 'p-1'), ('2', 'shadow', 'p-1/shadow/2', 'p-1', 'p-1')]
    """
    events = _events(producer, model, served, features, timestamp, segments)
    for event in events:
        producer.send(event)
    return events


def _events(
    producer: DriftlineProducer,
    model: str,
    served: Sequence[Served],
    features: Mapping[str, FeatureValue],
    timestamp: datetime | int | str | None,
    segments: Mapping[str, str] | None,
) -> list[PredictionEvent]:
    """The validated events :func:`publish_served` sends, one timestamp for all."""
    events: list[PredictionEvent] = []
    for s in served:
        event = producer.build_prediction(
            model=model,
            model_version=s.version,
            features=features,
            prediction=s.prediction,
            scores=s.scores,
            segments=segments,
            prediction_id=s.prediction_id,
            timestamp=timestamp if not events else events[0].timestamp,
            role=s.role,
            shadow_of=s.shadow_of,
        )
        if event.message_key != s.key:  # the contract's key rule and Served's must agree
            raise ValueError(f"{s.prediction_id}: key {event.message_key!r} is not {s.key!r}")
        events.append(event)
    return events
