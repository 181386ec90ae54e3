"""One retrain request, handled from start to end: the trainer agent's decisions.

For each request (:meth:`RequestHandler.handle`, called by the agent in a thread, one at a
time):

1. a request already ended (:class:`~driftline.trainer.outcomes.OutcomeLog`) is dropped: a
   repeat, or one another trainer process handled;
2. a model with no ``models.<name>`` configuration, or with ``retrain.policy: never``, is
   recorded ``skipped``; so is a request inside the model's cool-down;
3. a request interrupted :data:`MAX_ATTEMPTS` times is recorded ``failed`` (a training that
   kills its process would otherwise kill every restart);
4. otherwise ``started`` is published, the example feed is given time to catch up, and a
   candidate is trained on the served version's stored examples in a child process
   (:func:`~driftline.trainer.job.run_training`); an error, a timeout or too few examples is
   recorded ``failed`` with the reason;
5. the candidate is registered, once per request: a retry finds the version an earlier try
   registered; it is promoted when it beat the champion on the holdout (the registry records
   the figures either way), and then its reference profile is published on the models topic
   (the monitor re-baselines on it, serving processes follow it) and ``succeeded`` is recorded;
   a losing candidate is recorded ``rejected``. When ``models.<name>.rollout.mode`` is not
   ``none``, a winner becomes the ``challenger`` instead (registry
   status, rollout mode in its metadata), its reference is published the same way so the
   monitor judges it beside the champion, and ``succeeded`` says ``promoted=false`` and that
   it is in rollout; :mod:`driftline.trainer.rollout` acts on the monitor's decision.

Publishing goes through a :class:`Publisher` that returns once the broker acknowledged, so an
outcome is on its topic before the next step; a crash between steps leaves a request with
only ``started``, which the next try resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, cast

from pydantic import JsonValue

from driftline.config import Settings
from driftline.config.settings import ModelConfig
from driftline.errors import DriftlineError, KafkaError, TrainingError, UnknownVersionError
from driftline.schemas.model_version import (
    FeatureKind,
    HoldoutMetrics,
    ModelVersionMetadata,
    RolloutMetadata,
    TrainingSummary,
)
from driftline.schemas.outputs import (
    ModelVersionRegistered,
    RetrainRequest,
    TrainingOutcome,
    TrainingStatus,
    utc_now,
)
from driftline.schemas.reference import ReferenceProfile
from driftline.trainer.announce import version_record
from driftline.trainer.examples import ExampleStore
from driftline.trainer.feed import LabeledFeed
from driftline.trainer.job import Trained, run_training
from driftline.trainer.outcomes import OutcomeLog
from driftline.trainer.protocol import Examples
from driftline.trainer.rebaseline import carry_segments
from driftline.trainer.registry import Registration, Registry
from driftline.trainer.serialise import read_header

__all__ = ["MAX_ATTEMPTS", "Publisher", "RequestHandler"]

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Tries of one request that may be interrupted (their process died) before it is failed."""
CATCH_UP_S = 30.0
"""How long a request waits for the example feed to catch up before training anyway."""

Train = Callable[..., Trained]


class Publisher(Protocol):
    """Where the handler's records go; each call returns once the broker acknowledged."""

    def outcome(self, outcome: TrainingOutcome) -> None:
        """Publish a training outcome on ``driftline.training``."""

    def version(self, record: ModelVersionRegistered) -> None:
        """Publish a promoted version's reference profile on ``driftline.models``."""


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class RequestHandler:
    """Handles retrain requests for one trainer process (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry,
        store: ExampleStore,
        feed: LabeledFeed | None,
        publisher: Publisher,
        log: OutcomeLog | None = None,
        train: Train = run_training,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.feed = feed
        self.publisher = publisher
        self.log = log or OutcomeLog()
        self._train = train
        self._clock = clock

    def _publish(self, request: RetrainRequest, status: TrainingStatus, **fields: object) -> str:
        outcome = TrainingOutcome.create(request, status, at=self._clock(), **fields)
        self.publisher.outcome(outcome)
        self.log.add(outcome)
        level = logging.WARNING if status == "failed" else logging.INFO
        logger.log(
            level,
            "retrain request %s for %s %s: %s%s",
            request.request_id,
            request.model,
            request.model_version,
            status,
            f" ({outcome.reason})" if outcome.reason else "",
        )
        return status

    def handle(self, request: RetrainRequest) -> str | None:
        """Handle one request; returns the status recorded, or None for a dropped repeat."""
        if self.log.done(request.request_id):
            logger.info("retrain request %s already handled; dropped", request.request_id)
            return None
        config = self.settings.models.get(request.model)
        if config is None:
            return self._publish(
                request, "skipped", reason=f"models.{request.model} is not configured"
            )
        if config.retrain.policy == "never":
            return self._publish(
                request, "skipped", reason=f"models.{request.model}.retrain.policy is never"
            )
        last = self.log.cooling(request, config.retrain.cooldown)
        if last is not None:
            return self._publish(
                request,
                "skipped",
                reason=f"inside the cool-down (models.{request.model}.retrain.cooldown "
                f"{config.retrain.cooldown}) of the training for the window ending "
                f"{last.isoformat()}",
            )
        attempt = self.log.next_attempt(request.request_id)
        if attempt > MAX_ATTEMPTS:
            return self._publish(
                request,
                "failed",
                attempt=attempt - 1,
                reason=f"{MAX_ATTEMPTS} tries were interrupted before they ended; given up",
            )
        self._publish(request, "started", attempt=attempt)
        try:
            return self._train_and_register(request, config, attempt)
        except KafkaError:
            raise  # not the request's fault: the agent stops, and the request is tried again
        except DriftlineError as exc:
            return self._publish(request, "failed", attempt=attempt, reason=str(exc))

    def _examples(self, request: RetrainRequest) -> Examples:
        if self.feed is not None and not self.feed.wait_caught_up(CATCH_UP_S):
            logger.warning(
                "the example feed did not catch up within %.0f s; training on what is stored",
                CATCH_UP_S,
            )
        return self.store.examples(request.model).of_version(request.model_version)

    def _train_and_register(
        self, request: RetrainRequest, config: ModelConfig, attempt: int
    ) -> str:
        examples = self._examples(request)
        onset = int(request.window_start.timestamp() * 1000)
        trained = self._train(
            examples,
            model=request.model,
            config=config,
            trainer=self.settings.trainer,
            onset_ms=onset,
        )
        candidate, evaluation = trained.candidate, trained.evaluation
        figures: dict[str, object] = {
            "metric": evaluation.metric,
            "candidate_value": evaluation.candidate,
            "champion_value": evaluation.champion,
            "n_train": len(candidate.data.train),
            "n_holdout": evaluation.n,
        }
        version = self._registered(request, trained)
        figures["candidate_version"] = version.version
        if not evaluation.promote:
            if version.status == "candidate":
                self.registry.set_status(
                    request.model,
                    version.version,
                    "rejected",
                    by="trainer",
                    reason=evaluation.reason,
                )
            return self._publish(
                request, "rejected", attempt=attempt, reason=evaluation.reason, **figures
            )
        if version.status in ("rejected", "retired"):  # decided between tries (a person, say)
            decided = version.history[-1]
            return self._publish(
                request,
                "rejected",
                attempt=attempt,
                reason=f"version {version.version} became {version.status} before this try "
                f"ended (by {decided.by}: {decided.reason})",
                **figures,
            )
        reason, promoted = evaluation.reason, True
        champion = self.registry.champion(request.model)
        rollout = config.rollout
        if rollout.mode != "none" and version.status != "champion":
            served = champion.version if champion is not None else request.model_version
            mode = RolloutMetadata(mode=rollout.mode, canary_share=rollout.canary_share)
            self.registry.challenge(
                request.model, version.version, mode, by="trainer", reason=evaluation.reason
            )
            reason = (
                f"{evaluation.reason}; in {rollout.mode} rollout beside champion "
                f"{served} (models.{request.model}.rollout.mode): the monitor decides"
            )
            promoted = False
        else:
            self.registry.promote(
                request.model, version.version, by="trainer", reason=evaluation.reason
            )
        record = version_record(self.registry, request.model, version.version, source="trainer")
        if record is None:
            raise TrainingError(f"version {version.version} of {request.model!r} has no reference")
        self.publisher.version(record)
        return self._publish(
            request,
            "succeeded",
            attempt=attempt,
            reason=reason,
            promoted=promoted,
            **figures,
        )

    def _reference(self, model: str, version: str) -> ReferenceProfile | None:
        """A version's reference profile in the registry; None when the registry holds no
        such version (one published with ``driftline reference publish``, say)."""
        try:
            return self.registry.reference(model, version)
        except UnknownVersionError:
            return None

    def _champion_reference(self, model: str) -> ReferenceProfile | None:
        champion = self.registry.champion(model)
        return None if champion is None else self._reference(model, champion.version)

    def _registered(self, request: RetrainRequest, trained: Trained) -> ModelVersionMetadata:
        """The version this request registered: an earlier try's, else a new one."""
        known = request.model in self.registry.models()
        for version in self.registry.versions(request.model) if known else []:
            if version.request_id == request.request_id:
                logger.info(
                    "retrain request %s registered version %s on an earlier try; reused",
                    request.request_id,
                    version.version,
                )
                return version
        candidate, evaluation = trained.candidate, trained.evaluation
        data = candidate.data
        kinds = self.settings.models[request.model].features
        features = {name: kinds.get(name) or _kind(data.train, name) for name in candidate.features}
        registration = Registration(
            model=request.model,
            parent_version=request.model_version,
            training_data=TrainingSummary(
                first_event_time=_time(data.start_ms),
                last_event_time=_time(data.end_ms),
                rows=len(data.train),
                content_hash=candidate.data_sha256,
            ),
            features=features,
            format=read_header(candidate.model).format,
            request_id=request.request_id,
            reasons=request.reasons,
            parameters={
                "trainer": candidate.trainer,
                "model": cast(JsonValue, candidate.params),
                "payload_sha256": candidate.sha256,
                "range": data.range,
                "range_reason": data.reason,
                "holdout_rows": len(data.holdout),
            },
            metrics=HoldoutMetrics(
                metric=evaluation.metric,
                candidate=evaluation.candidate,
                champion=evaluation.champion,
                n=evaluation.n,
            ),
        )
        return self.registry.register(
            registration,
            candidate.model,
            reference=carry_segments(
                trained.reference,
                self._reference(request.model, request.model_version),
                self._champion_reference(request.model),
            ),
            by="trainer",
            reason=f"retrain request {request.request_id} ({request.rule})",
        )


def _kind(examples: Examples, name: str) -> FeatureKind:
    """A feature's kind read from its values: numeric when every value present (in the
    first thousand examples) is a number."""
    for row in examples.rows[:1000]:
        value = row.features.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "categorical"
    return "numeric"
