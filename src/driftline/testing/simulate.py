"""``driftline simulate``: a model-serving service on river's SEA stream that follows its champion.

What a real service does around driftline, simulated:

1. **Version 1.** Trains the built-in trainer (:class:`~driftline.trainer.builtin.RiverTrainer`)
   on a sample of the first concept, registers it in the registry with its reference profile
   (built from the model's own predictions on that sample), makes it the champion and publishes
   the reference on the models topic: the monitor judges version 1 against it.
2. **Serving.** Predicts a drifting SEA stream with the champion of the moment
   (:class:`~driftline.serving.ChampionFollower`), stamps each prediction with the version it
   came from and publishes it through the producer SDK; the outcome of each prediction is
   published too, its event time a minute later (:data:`~driftline.testing.synthetic.
   LABEL_DELAY_MS`). The stream has three phases (:class:`Plan`): calm, a covariate shift of
   ``x3`` (a feature the model ignores: its distribution moves, labels do not), calm again,
   then a concept change (the threshold of ``x1 + x2`` moves: labels move, features do not).
3. **Promotion.** When the trainer promotes a new version the follower loads it and the
   service serves it; the simulation ends ``after_switch`` predictions later.

Progress goes to a JSON status file (:class:`Status`, written atomically) that the demo reads.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from driftline.client import DriftlineProducer
from driftline.config import Settings
from driftline.detectors.profile import build_profile
from driftline.errors import ConfigError, ConfigProblem
from driftline.schemas.events import GroundTruthEvent, PredictionEvent
from driftline.schemas.model_version import TrainingSummary
from driftline.serving import ChampionFollower
from driftline.streams.registry import publish_profile
from driftline.testing.synthetic import START_MS, STEP_MS, X3_SHIFT, SyntheticEvent, sea_events
from driftline.trainer.announce import version_record
from driftline.trainer.builtin import RiverTrainer
from driftline.trainer.protocol import Example, Examples, FittedModel
from driftline.trainer.registry import FileSystemRegistry, Registration
from driftline.trainer.serialise import dumps

__all__ = ["Plan", "Status", "register_first_version", "simulate"]

FEATURES = ("x1", "x2", "x3")


@dataclass(frozen=True)
class Plan:
    """Where the stream's phases begin (event indexes; ten events a second of event time).

    >>> Plan.short().change_at < Plan().change_at
    True
    """

    shift_at: int = 9_000
    shift_end: int = 18_000
    change_at: int = 24_000
    after_switch: int = 15_000
    rate: float = 1500.0
    max_events: int = 300_000
    seed: int = 17

    @classmethod
    def short(cls) -> Plan:
        """The shortest plan that still shows every phase (five-minute windows)."""
        return cls(shift_at=6_000, shift_end=12_000, change_at=15_000, after_switch=9_000)

    def __post_init__(self) -> None:
        if not 0 < self.shift_at < self.shift_end <= self.change_at:
            problem = "need 0 < shift_at < shift_end <= change_at"
            raise ConfigError([ConfigProblem("plan", problem)])
        if self.after_switch <= 0:
            raise ConfigError([ConfigProblem("plan.after_switch", "must be positive")])
        if self.rate <= 0:
            raise ConfigError([ConfigProblem("rate", "must be positive")])

    def ms(self, index: int) -> int:
        """The event time of event ``index``."""
        return START_MS + index * STEP_MS


@dataclass
class Status:
    """What the simulation has done so far, as the status file holds it."""

    phase: str = "starting"
    version: str | None = None
    sent: int = 0
    switched_at: int | None = None
    switched_ms: int | None = None
    last_ms: int | None = None
    done: bool = False
    error: str | None = None
    shift_ms: int = 0
    shift_end_ms: int = 0
    change_ms: int = 0
    correct: dict[str, list[int]] = field(default_factory=dict)
    """Per phase: [correct predictions, predictions] as the service itself counts them."""

    def write(self, path: Path) -> None:
        """Write atomically (a reader never sees half a file)."""
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(asdict(self)))
        os.replace(partial, path)

    @classmethod
    def read(cls, path: Path) -> Status | None:
        """The status in ``path``, or None when there is none yet."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _stream(plan: Plan) -> Iterator[SyntheticEvent]:
    """SEA events with the concept change at ``change_at`` and ``x3`` shifted in
    ``[shift_at, shift_end)``."""
    for i, event in enumerate(sea_events(plan.max_events, drift_at=plan.change_at, seed=plan.seed)):
        if plan.shift_at <= i < plan.shift_end:
            features = {**event.prediction["features"]}
            features["x3"] += X3_SHIFT
            event = SyntheticEvent({**event.prediction, "features": features}, event.ground_truth)
        yield event


def register_first_version(
    settings: Settings, model: str, *, rows: int = 10_000, seed: int = 1000
) -> str:
    """Train version 1 on ``rows`` events of the first concept, register it with its reference
    profile as the champion and publish the reference; returns its version name. A registry
    that already has a champion is left as it is."""
    registry = FileSystemRegistry(settings.registry.root)
    champion = registry.champion(model)
    if champion is not None:
        return champion.version
    events = list(sea_events(rows, seed=seed, model=model))
    examples = Examples.of(
        Example(
            e.prediction["prediction_id"],
            e.prediction["timestamp"],
            e.prediction["features"],
            e.ground_truth["label"],
            "0",
        )
        for e in events
    )
    fitted = RiverTrainer("binary").fit(examples)
    rows_features = list(examples.features)
    predictions = fitted.predict(rows_features)
    scores = fitted.predict_scores(rows_features)
    profile = build_profile(
        model,
        "1",
        "binary",
        {k: [float(f[k]) for f in rows_features] for k in FEATURES},  # type: ignore[arg-type]
        predictions,
        scores=None if scores is None else {c: [s[c] for s in scores] for c in ("0", "1")},
        labels=list(examples.labels),
    )
    first, last = examples.rows[0].time_ms, examples.rows[-1].time_ms
    summary = TrainingSummary(
        first_event_time=datetime.fromtimestamp(first / 1000, UTC),
        last_event_time=datetime.fromtimestamp(last / 1000, UTC),
        rows=len(examples),
        content_hash=examples.digest(),
    )
    registration = Registration(model, None, summary, dict.fromkeys(FEATURES, "numeric"), "pickle")
    metadata = registry.register(
        registration, dumps(fitted), reference=profile, by="person", reason="simulated v1"
    )
    registry.promote(model, metadata.version, by="person", reason="the first version")
    record = version_record(registry, model, metadata.version)
    assert record is not None  # registered with its reference just above
    publish_profile(settings.kafka, settings.topics, record)
    return metadata.version


def _phase(plan: Plan, i: int, switched: bool) -> str:
    if switched:
        return "promoted"
    if i >= plan.change_at:
        return "concept change"
    if plan.shift_at <= i < plan.shift_end:
        return "covariate shift"
    return "calm"


def simulate(
    settings: Settings,
    model: str,
    plan: Plan,
    *,
    status_path: Path | None = None,
    stop: threading.Event | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Status:
    """Run the serving simulation (module docstring) until ``after_switch`` predictions of a
    promoted version were served, ``plan.max_events`` were sent, or ``stop`` is set."""
    stop = stop or threading.Event()
    status = Status(
        shift_ms=plan.ms(plan.shift_at),
        shift_end_ms=plan.ms(plan.shift_end),
        change_ms=plan.ms(plan.change_at),
    )

    def publish() -> None:
        if status_path is not None:
            status.write(status_path)

    publish()
    first = register_first_version(settings, model)
    say(f"version {first} of {model} registered, its reference published")
    status.version = first
    publish()
    with (
        ChampionFollower(
            settings.kafka, settings.topics, settings.registry.root, model, poll_interval=1.0
        ) as follower,
        DriftlineProducer(settings.kafka, settings.topics, config={"linger.ms": 20}) as producer,
    ):
        began = time.monotonic()
        end = plan.max_events
        for i, event in enumerate(_stream(plan)):
            if i >= end or stop.is_set():
                break
            champion = follower.current()
            assert champion is not None  # registered as the champion before following
            if champion.version != first and status.switched_at is None:
                status.switched_at, status.switched_ms = i, plan.ms(i)
                end = i + plan.after_switch
                say(f"serving version {champion.version} from event {i:,}")
            features = event.prediction["features"]
            fitted: FittedModel = champion.model
            predicted = fitted.predict([features])[0]
            scores = fitted.predict_scores([features])
            prediction = {
                **event.prediction,
                "model": model,
                "model_version": champion.version,
                "prediction": predicted,
                "scores": None if scores is None else scores[0],
            }
            producer.send(PredictionEvent.model_validate(prediction))
            producer.send(GroundTruthEvent.model_validate({**event.ground_truth, "model": model}))
            phase = _phase(plan, i, status.switched_at is not None)
            tally = status.correct.setdefault(phase, [0, 0])
            tally[0] += int(predicted == event.ground_truth["label"])
            tally[1] += 1
            status.sent, status.phase, status.version = i + 1, phase, champion.version
            status.last_ms = event.prediction["timestamp"]
            if i % 300 == 0:
                publish()
                ahead = began + i / plan.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # a steady pace: the loop closes while traffic flows
        producer.flush(60)
    status.done = True
    publish()
    return status
