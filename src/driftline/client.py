"""The producer SDK: what a model-serving service imports to publish predictions and outcomes.

>>> from driftline.client import DriftlineProducer
>>> producer = DriftlineProducer("localhost:9092")  # no connection until the first send
>>> producer.started
False

Typical use::

    with DriftlineProducer("broker:9092") as producer:
        sent = producer.send_prediction(
            model="fraud", model_version="3",
            features={"amount": 12.5, "country": "FR"},
            prediction=1, scores={"0": 0.1, "1": 0.9},
        )
        ...
        producer.send_ground_truth(prediction_id=sent.prediction_id, label=0)
    # leaving the block flushed everything, or raised DeliveryError

Every event is validated against the contract before it leaves (an invalid one raises
:class:`~driftline.errors.InvalidEventError` and is not sent). The Kafka producer is idempotent
with ``acks=all``; the message key is the ``prediction_id``, so predictions and their outcomes
land on the same partition number. Delivery failures are never silent: each one is passed to
``on_delivery_error`` when given, and :meth:`DriftlineProducer.flush` raises
:class:`~driftline.errors.DeliveryError` for every failure since the previous flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from confluent_kafka import KafkaError as _RdKafkaError
from confluent_kafka import KafkaException, Message, Producer
from pydantic import ValidationError

from driftline.config import KafkaSettings, TopicSettings
from driftline.errors import DeliveryError, FailedDelivery, InvalidEventError, KafkaError
from driftline.kafka_auth import confluent_config
from driftline.schemas.events import GroundTruthEvent, PredictionEvent
from driftline.schemas.outputs import utc_now

Event = PredictionEvent | GroundTruthEvent
_QUEUE_FULL_WAIT_S = 0.1


def _new_id() -> str:
    return str(uuid.uuid4())


_MAPPING_FIELDS = {"features", "scores", "segments"}


def _field_of(loc: tuple[int | str, ...]) -> str:
    # pydantic appends the union branch it tried ("constrained-int", "bool", ...) to the
    # location; the caller cares about the field (and the key, inside mappings).
    depth = 2 if loc and loc[0] in _MAPPING_FIELDS and len(loc) > 1 else 1
    return ".".join(str(p) for p in loc[:depth])


def _invalid(exc: ValidationError, kind: str) -> InvalidEventError:
    problems: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        problems.setdefault(_field_of(tuple(err["loc"])), err["msg"])
    details = "; ".join(f"{field}: {msg}" for field, msg in problems.items())
    return InvalidEventError(f"invalid {kind}: {details}", fields=list(problems))


class DriftlineProducer:
    """Publishes :class:`PredictionEvent` and :class:`GroundTruthEvent` records to Kafka.

    Parameters
    ----------
    kafka
        Connection settings, or just a bootstrap servers string.
    topics
        Topic names; the defaults of :class:`~driftline.config.TopicSettings` otherwise.
    delivery_timeout
        Seconds librdkafka keeps retrying a message before reporting it failed
        (``message.timeout.ms``).
    on_delivery_error
        Called (from :meth:`poll` / :meth:`flush`) with each message that failed delivery.
    clock
        Fills in ``timestamp`` when the caller omits it; injectable for tests.
    config
        Extra librdkafka producer properties (e.g. ``linger.ms``), applied last.
    """

    def __init__(
        self,
        kafka: KafkaSettings | str = "localhost:9092",
        topics: TopicSettings | None = None,
        *,
        delivery_timeout: float = 30.0,
        on_delivery_error: Callable[[FailedDelivery], None] | None = None,
        clock: Callable[[], datetime] = utc_now,
        id_factory: Callable[[], str] = _new_id,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if delivery_timeout <= 0:
            raise ValueError(f"delivery_timeout must be positive seconds, got {delivery_timeout}")
        self._kafka = KafkaSettings(bootstrap_servers=kafka) if isinstance(kafka, str) else kafka
        self._topics = topics or TopicSettings()
        self._delivery_timeout = delivery_timeout
        self._on_delivery_error = on_delivery_error
        self._clock = clock
        self._new_id = id_factory
        self._extra = dict(config or {})
        self._producer: Producer | None = None
        self._failures: list[FailedDelivery] = []
        self.delivered = 0
        """Messages acknowledged by the broker so far."""

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the Kafka producer exists (it is created on start or first send)."""
        return self._producer is not None

    def start(self) -> Self:
        """Create the Kafka producer. Called by ``with`` and by the first send."""
        if self._producer is None:
            config: dict[str, Any] = {
                **confluent_config(self._kafka),
                "enable.idempotence": True,
                "acks": "all",
                "message.timeout.ms": int(self._delivery_timeout * 1000),
                "linger.ms": 5,
                "compression.type": "lz4",
                **self._extra,
            }
            try:
                self._producer = Producer(config)
            except KafkaException as exc:
                raise KafkaError(f"cannot create the Kafka producer: {exc}") from None
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.flush()
            return
        # The body already failed: still push out what it sent, but let its error win.
        with contextlib.suppress(DeliveryError):
            self.flush()

    def close(self, timeout: float | None = None) -> None:
        """Flush and release the producer."""
        if self._producer is not None:
            try:
                self.flush(timeout)
            finally:
                self._producer = None

    # --- sending ---------------------------------------------------------------------------

    def send_prediction(
        self,
        *,
        model: str,
        model_version: str,
        features: Mapping[str, Any],
        prediction: Any,
        scores: Mapping[str, float] | None = None,
        segments: Mapping[str, str] | None = None,
        prediction_id: str | None = None,
        event_id: str | None = None,
        timestamp: datetime | int | str | None = None,
        role: str = "champion",
        shadow_of: str | None = None,
    ) -> PredictionEvent:
        """Validate and publish a prediction; returns the event sent (with its filled-in ids).

        ``role`` is the part its version plays in a rollout: ``champion`` (the default),
        ``shadow`` (then ``shadow_of`` is the champion's ``prediction_id`` for the same request,
        and the message is keyed by it) or ``canary``."""
        event = self.build_prediction(
            model=model,
            model_version=model_version,
            features=features,
            prediction=prediction,
            scores=scores,
            segments=segments,
            prediction_id=prediction_id,
            event_id=event_id,
            timestamp=timestamp,
            role=role,
            shadow_of=shadow_of,
        )
        self.send(event)
        return event

    def build_prediction(
        self,
        *,
        model: str,
        model_version: str,
        features: Mapping[str, Any],
        prediction: Any,
        scores: Mapping[str, float] | None = None,
        segments: Mapping[str, str] | None = None,
        prediction_id: str | None = None,
        event_id: str | None = None,
        timestamp: datetime | int | str | None = None,
        role: str = "champion",
        shadow_of: str | None = None,
    ) -> PredictionEvent:
        """The validated event :meth:`send_prediction` would publish, ids and time filled in."""
        fields = {
            "event_id": event_id or self._new_id(),
            "prediction_id": prediction_id or self._new_id(),
            "model": model,
            "model_version": model_version,
            "timestamp": self._clock() if timestamp is None else timestamp,
            "features": dict(features),
            "prediction": prediction,
            "scores": None if scores is None else dict(scores),
            "segments": None if segments is None else dict(segments),
            "role": role,
            "shadow_of": shadow_of,
        }
        try:
            return PredictionEvent(**fields)
        except ValidationError as exc:
            raise _invalid(exc, "prediction") from None

    def send_ground_truth(
        self,
        *,
        prediction_id: str,
        label: Any,
        model: str | None = None,
        event_id: str | None = None,
        timestamp: datetime | int | str | None = None,
    ) -> GroundTruthEvent:
        """Validate and publish the true outcome of an earlier prediction."""
        event = self.build_ground_truth(
            prediction_id=prediction_id,
            label=label,
            model=model,
            event_id=event_id,
            timestamp=timestamp,
        )
        self.send(event)
        return event

    def build_ground_truth(
        self,
        *,
        prediction_id: str,
        label: Any,
        model: str | None = None,
        event_id: str | None = None,
        timestamp: datetime | int | str | None = None,
    ) -> GroundTruthEvent:
        """The validated event :meth:`send_ground_truth` would publish."""
        fields = {
            "event_id": event_id or self._new_id(),
            "prediction_id": prediction_id,
            "timestamp": self._clock() if timestamp is None else timestamp,
            "label": label,
            "model": model,
        }
        try:
            return GroundTruthEvent(**fields)
        except ValidationError as exc:
            raise _invalid(exc, "ground truth") from None

    def send(
        self, event: Event, on_done: Callable[[FailedDelivery | None], None] | None = None
    ) -> None:
        """Publish an already-built event to its topic, keyed by its ``prediction_id`` (a
        shadow prediction by its ``shadow_of``).

        ``on_done``, when given, is called with None once the broker acknowledged the message,
        or with the failure; that failure is then the caller's and is not raised by
        :meth:`flush`.
        """
        if isinstance(event, PredictionEvent):
            topic = self._topics.predictions
        elif isinstance(event, GroundTruthEvent):
            topic = self._topics.ground_truth
        else:
            raise TypeError(f"expected PredictionEvent or GroundTruthEvent, got {type(event)}")
        callback = self._on_delivery
        if on_done is not None:
            callback = functools.partial(self._on_delivery, on_done=on_done)
        self._produce(topic, event.message_key.encode(), event.to_json(), callback)

    def _produce(
        self, topic: str, key: bytes, value: bytes, callback: Callable[[Any, Message], None]
    ) -> None:
        producer = self.start()._producer
        assert producer is not None
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=callback)
            except BufferError:
                # Local queue full: serve delivery reports until there is room (backpressure).
                producer.poll(_QUEUE_FULL_WAIT_S)
                continue
            except KafkaException as exc:
                raise KafkaError(f"cannot produce to {topic!r}: {exc}") from None
            break
        producer.poll(0)

    def _on_delivery(
        self,
        err: _RdKafkaError | None,
        msg: Message,
        on_done: Callable[[FailedDelivery | None], None] | None = None,
    ) -> None:
        failure = None
        if err is None:
            self.delivered += 1
        else:
            failure = FailedDelivery(topic=msg.topic() or "", key=msg.key(), error=str(err.str()))
            if on_done is None:
                self._failures.append(failure)
            if self._on_delivery_error is not None:
                self._on_delivery_error(failure)
        if on_done is not None:
            on_done(failure)

    # --- delivery --------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports; returns how many were served."""
        if self._producer is None:
            return 0
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every message sent so far is acknowledged or has failed.

        Raises :class:`DeliveryError` for the failures since the previous flush, and when
        messages are still queued after ``timeout`` seconds (default: the delivery timeout
        plus a margin, by which librdkafka has decided every message).
        """
        if self._producer is None:
            return
        wait = self._delivery_timeout + 5.0 if timeout is None else timeout
        remaining = int(self._producer.flush(wait))
        failures, self._failures = self._failures, []
        if failures or remaining:
            raise DeliveryError(failures, undelivered=remaining)


class AsyncDriftlineProducer:
    """The asyncio face of :class:`DriftlineProducer`: each send awaits its acknowledgement.

    A background thread serves librdkafka's delivery reports and hands each result to the
    event loop, so ``await send_prediction(...)`` returns once the broker has the event, or
    raises :class:`DeliveryError` for that event alone. Takes the same arguments.

    >>> import asyncio
    >>> async def main() -> None:
    ...     async with AsyncDriftlineProducer("localhost:9092") as producer:
    ...         await producer.send_prediction(model="fraud", model_version="3",
    ...                                        features={"amount": 12.5}, prediction=1)
    >>> # asyncio.run(main())  -- needs a broker
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._sync = DriftlineProducer(*args, **kwargs)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    async def __aenter__(self) -> Self:
        self._sync.start()
        self._stop.clear()
        self._poller = threading.Thread(target=self._serve, name="driftline-delivery", daemon=True)
        self._poller.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
            self._poller = None
        await asyncio.to_thread(self._sync.flush)

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._sync.poll(0.05)

    @property
    def delivered(self) -> int:
        """Messages acknowledged by the broker so far."""
        return self._sync.delivered

    async def _send(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(future: asyncio.Future[None], failure: FailedDelivery | None) -> None:
            if future.done():  # the caller stopped waiting (cancelled)
                return
            if failure is None:
                future.set_result(None)
            else:
                future.set_exception(DeliveryError([failure]))

        def on_done(failure: FailedDelivery | None) -> None:
            loop.call_soon_threadsafe(settle, done, failure)

        self._sync.send(event, on_done=on_done)
        await done

    async def send_prediction(self, **fields: Any) -> PredictionEvent:
        """Validate, publish and await a prediction (arguments as in the sync producer)."""
        event = self._sync.build_prediction(**fields)
        await self._send(event)
        return event

    async def send_ground_truth(self, **fields: Any) -> GroundTruthEvent:
        """Validate, publish and await a ground-truth event."""
        event = self._sync.build_ground_truth(**fields)
        await self._send(event)
        return event
