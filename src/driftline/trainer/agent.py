"""The trainer agent's faust wiring: retrain requests in, trainings, registrations and outcomes out.

One faust agent (:data:`AGENT_NAME`) consumes ``driftline.retrain`` in the trainer's
consumer group (``<monitor.group_id>-trainer``): requests are keyed by model, so one model's
requests are handled by one process, in order, one at a time. Each message is decoded here
(one that is not a request goes to the dead-letter topic, kind ``invalid_request``) and
handed to :class:`~driftline.trainer.handler.RequestHandler` in a thread, so the event loop
keeps serving the group's heartbeats while a training runs (itself in a child process, with
a timeout). faust commits a request's offset only after the handler returned, so a process
killed mid-training sees the request again when it (or another trainer) restarts; the
outcomes it published tell the handler which try that is.

Whenever the process gains retrain partitions it reads ``driftline.training`` whole
(:func:`~driftline.trainer.outcomes.read_outcomes`) before handling any request: another
process may have handled some until the rebalance. A failure to publish (the broker) stops
the worker with the error instead of skipping the request.

A second agent (:data:`ROLLOUT_AGENT_NAME`, same group) consumes the ``rollout`` topic's
:class:`~driftline.schemas.outputs.RolloutDecision` records and hands each to
:class:`~driftline.trainer.rollout.RolloutHandler` in a thread (promote or reject the
challenger); a record that is not a decision is dead-lettered (kind ``invalid_decision``), and a
decision the registry refuses (its version unknown, say) is logged and passed over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import faust
from confluent_kafka import Producer
from pydantic import ValidationError

from driftline.config import Settings
from driftline.deadletter import dead_letter, fit
from driftline.errors import DeliveryError, DriftlineError, FailedDelivery, KafkaError
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import (
    DeadLetter,
    ModelVersionRegistered,
    RetrainRequest,
    RolloutDecision,
    TrainingOutcome,
)
from driftline.schemas.reasons import INVALID_DECISION, INVALID_REQUEST
from driftline.streams.faust_app import new_app
from driftline.trainer.handler import RequestHandler
from driftline.trainer.outcomes import OutcomeLog
from driftline.trainer.rollout import RolloutHandler

__all__ = ["AGENT_NAME", "ROLLOUT_AGENT_NAME", "KafkaPublisher", "create_app"]

logger = logging.getLogger(__name__)

AGENT_NAME = "driftline.trainer.handle-requests"
ROLLOUT_AGENT_NAME = "driftline.trainer.handle-rollout-decisions"
_DLQ_BYTES = 1_000_000


class KafkaPublisher:
    """The handler's :class:`~driftline.trainer.handler.Publisher` on Kafka: each record is
    acknowledged (``acks=all``) before the call returns."""

    def __init__(self, settings: Settings, *, timeout: float = 30.0) -> None:
        self._topics = settings.topics
        self._timeout = timeout
        self._producer = Producer(
            {**confluent_config(settings.kafka), "enable.idempotence": True, "acks": "all"}
        )

    def _send(self, topic: str, key: bytes | None, value: bytes, headers: Any = None) -> None:
        failures: list[FailedDelivery] = []

        def report(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(FailedDelivery(topic, msg.key(), str(err)))

        self._producer.produce(topic, key=key, value=value, headers=headers, on_delivery=report)
        remaining = self._producer.flush(self._timeout)
        if failures or remaining:
            raise DeliveryError(failures, undelivered=remaining)

    def outcome(self, outcome: TrainingOutcome) -> None:
        """Publish a training outcome (key = model)."""
        self._send(self._topics.training, outcome.key(), outcome.to_json())

    def version(self, record: ModelVersionRegistered) -> None:
        """Publish a promoted version's reference profile on the models topic."""
        self._send(self._topics.models, record.key(), record.to_json())

    def dead_letter(self, letter: DeadLetter) -> None:
        """Publish a dead letter, cut to fit."""
        letter = fit(letter, _DLQ_BYTES)
        self._send(self._topics.dlq, letter.key, letter.value or b"", letter.kafka_headers())


class _Wiring:
    """What the agent and the rebalance hook share inside one trainer process."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        handler: RequestHandler,
        publisher: KafkaPublisher,
        restore: Any,
    ) -> None:
        self.app = app
        self.settings = settings
        self.handler = handler
        self.publisher = publisher
        self.restore = restore
        self.requests = app.topic(
            settings.topics.retrain, key_serializer="raw", value_serializer="raw"
        )
        self.ready = asyncio.Event()

    async def on_assigned(self, assigned: Any) -> None:
        self.ready.clear()
        try:
            log: OutcomeLog = await asyncio.to_thread(self.restore)
        except DriftlineError as exc:
            await self.stop_worker(KafkaError(f"cannot read the training outcomes back: {exc}"))
            return
        self.handler.log.merge(log)
        logger.info(
            "trainer assigned %d retrain partition(s); %d request(s) already ended",
            len(assigned),
            len(self.handler.log.ended),
        )
        self.ready.set()

    async def stop_worker(self, error: DriftlineError) -> None:
        logger.critical("the trainer stops: %s", error)
        await self.app.crash(error)

    async def on_request(self, event: Any) -> None:
        await self.ready.wait()
        try:
            request = RetrainRequest.model_validate_json(event.value or b"")
        except ValidationError as exc:
            reason = f"not a retrain request: {exc.errors()[0]['msg']}"
            await self._refuse(event, reason, INVALID_REQUEST)
            return
        try:
            await asyncio.to_thread(self.handler.handle, request)
        except DriftlineError as exc:  # publishing failed for good: do not skip the request
            await self.stop_worker(exc)

    async def _refuse(self, event: Any, reason: str, kind: str) -> None:
        """Dead-letter a record that is not what its topic carries; a dead-letter topic that
        cannot be written stops the worker (the record is not skipped)."""
        message = event.message
        letter = dead_letter(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=event.key,
            value=event.value,
            headers=list((message.headers or {}).items())
            if isinstance(message.headers, dict)
            else message.headers,
            reason=reason,
            kind=kind,
            failed_at=int(time.time() * 1000),
        )
        try:
            await asyncio.to_thread(self.publisher.dead_letter, letter)
        except DriftlineError as error:
            await self.stop_worker(error)

    async def on_decision(self, event: Any, rollout: RolloutHandler) -> None:
        try:
            decision = RolloutDecision.model_validate_json(event.value or b"")
        except ValidationError as exc:
            reason = f"not a rollout decision: {exc.errors()[0]['msg']}"
            await self._refuse(event, reason, INVALID_DECISION)
            return
        try:
            await asyncio.to_thread(rollout.handle, decision)
        except KafkaError as exc:  # the publication failed: do not skip the decision
            await self.stop_worker(exc)
        except DriftlineError as exc:
            logger.error("rollout decision %s not applied: %s", decision.decision_id, exc)


def create_app(
    settings: Settings,
    handler: RequestHandler,
    publisher: KafkaPublisher,
    *,
    rollout: RolloutHandler | None = None,
    app_id: str | None = None,
    session_timeout: timedelta = timedelta(seconds=10),
) -> faust.App:
    """Build the trainer's faust app: one agent on the retrain topic and, given ``rollout``,
    one on the rollout topic (module docstring).

    ``app_id`` (the consumer group) defaults to ``<monitor.group_id>-trainer``. The topics
    must exist (:func:`driftline.topics.create_topics`); the app declares none. Run it with
    :func:`driftline.streams.stage2.agent.run_app`.
    """
    app = new_app(
        app_id or f"{settings.monitor.group_id}-trainer",
        settings,
        datadir=Path(settings.trainer.store_dir) / "faust",
        session_timeout=session_timeout,
        web_enabled=False,
    )
    from driftline.trainer.outcomes import read_outcomes

    wiring = _Wiring(
        app,
        settings,
        handler,
        publisher,
        lambda: read_outcomes(settings.kafka, settings.topics.training),
    )

    @app.agent(wiring.requests, name=AGENT_NAME)
    async def handle_requests(stream: Any) -> None:
        async for event in stream.events():
            await wiring.on_request(event)

    if rollout is not None:
        decisions = app.topic(settings.topics.rollout, key_serializer="raw", value_serializer="raw")

        @app.agent(decisions, name=ROLLOUT_AGENT_NAME)
        async def handle_decisions(stream: Any) -> None:
            async for event in stream.events():
                await wiring.on_decision(event, rollout)

    async def on_partitions_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        (assigned,) = args
        await wiring.on_assigned(assigned)

    app.on_partitions_assigned.connect(on_partitions_assigned)  # type: ignore[arg-type]
    return app
