"""What the trainer has done with each retrain request, read back from ``driftline.training``.

The outcomes topic is the trainer's memory across restarts and processes: a request with a
terminal outcome (succeeded, rejected, failed, skipped) is never handled again, a request with
only ``started`` outcomes was interrupted (a crash, a SIGKILL, a rebalance) and is tried again
as the next attempt, and the newest started request of a model starts its cool-down. Every
trainer process reads the topic whole when it starts and whenever it gains retrain
partitions, and then adds what it publishes itself, so two processes agree on what is done.

The cool-down is measured in event time, between the window ends of the requests, as the
monitor's own cool-down is: a request whose window ends within ``retrain.cooldown`` after the
window end of the model's last started training is recorded as skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError

from driftline.config import KafkaSettings
from driftline.schemas.outputs import TERMINAL_STATUSES, RetrainRequest, TrainingOutcome
from driftline.streams.readback import read_to_end

__all__ = ["OutcomeLog", "read_outcomes"]

logger = logging.getLogger(__name__)


@dataclass
class OutcomeLog:
    """The outcomes seen so far, folded: per request its attempts and end, per model the
    window end of its last started training.

    >>> from datetime import UTC, datetime, timedelta
    >>> from driftline.schemas.outputs import Reason
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> reason = Reason(kind="performance", statistic="accuracy", value=0.8, threshold=0.9)
    >>> request = RetrainRequest.create("m", "1", t, t + timedelta(minutes=10),
    ...                                 rule="on_drift", reasons=[reason])
    >>> log = OutcomeLog()
    >>> log.add(TrainingOutcome.create(request, "started"))
    >>> log.done(request.request_id), log.next_attempt(request.request_id)
    (False, 2)
    >>> log.add(TrainingOutcome.create(request, "succeeded", attempt=2))
    >>> log.done(request.request_id)
    True
    """

    ended: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    last_started: dict[str, datetime] = field(default_factory=dict)

    def add(self, outcome: TrainingOutcome) -> None:
        """Fold one outcome in (in topic order; repeats change nothing)."""
        request = outcome.request_id
        if outcome.status in TERMINAL_STATUSES:
            self.ended.setdefault(request, outcome.status)
        elif outcome.status == "started":
            self.attempts[request] = max(self.attempts.get(request, 0), outcome.attempt)
            if outcome.window_end is not None:
                last = self.last_started.get(outcome.model)
                if last is None or outcome.window_end > last:
                    self.last_started[outcome.model] = outcome.window_end

    def merge(self, other: OutcomeLog) -> None:
        """Fold in what another log saw (a read of the topic): the union of both."""
        for request, status in other.ended.items():
            self.ended.setdefault(request, status)
        for request, attempt in other.attempts.items():
            self.attempts[request] = max(self.attempts.get(request, 0), attempt)
        for model, at in other.last_started.items():
            if model not in self.last_started or at > self.last_started[model]:
                self.last_started[model] = at

    def done(self, request_id: str) -> bool:
        """Whether the request has ended (it is never handled again)."""
        return request_id in self.ended

    def next_attempt(self, request_id: str) -> int:
        """The number of the next try of this request (1 when none started)."""
        return self.attempts.get(request_id, 0) + 1

    def cooling(self, request: RetrainRequest, cooldown: timedelta) -> datetime | None:
        """The window end of the model's last started training when ``request`` falls inside
        its cool-down (the same request tried again never does); None otherwise."""
        if request.request_id in self.attempts:
            return None
        last = self.last_started.get(request.model)
        if last is None or cooldown <= timedelta(0):
            return None
        if last <= request.window_end < last + cooldown:
            return last
        return None


def read_outcomes(kafka: KafkaSettings, topic: str, *, timeout: float = 300.0) -> OutcomeLog:
    """Every outcome on ``topic``, folded (:func:`~driftline.streams.readback.read_to_end`);
    a record that is not an outcome is logged and passed over."""
    log = OutcomeLog()

    def take(_: str, value: bytes) -> None:
        try:
            log.add(TrainingOutcome.model_validate_json(value))
        except ValidationError as exc:
            logger.warning("passing over a record on %s that is not an outcome: %s", topic, exc)

    read_to_end(
        kafka, [topic], take, group="driftline-trainer-outcomes", what=topic, timeout=timeout
    )
    return log
