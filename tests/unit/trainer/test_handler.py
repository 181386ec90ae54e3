"""The trainer's decisions for one request, without a broker: a real example store and a real
file-system registry, the training run in this process, the records collected in a list.
(The agent around it is tested against the real broker in ``tests/streams/test_trainer.py``.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftline.config import Settings
from driftline.errors import DeliveryError, FailedDelivery
from driftline.schemas.outputs import (
    ModelVersionRegistered,
    Reason,
    RetrainRequest,
    TrainingOutcome,
)
from driftline.testing.synthetic import START_MS
from driftline.trainer.candidate import train_candidate
from driftline.trainer.examples import ExampleStore
from driftline.trainer.handler import MAX_ATTEMPTS, RequestHandler
from driftline.trainer.job import Trained
from driftline.trainer.outcomes import OutcomeLog
from driftline.trainer.rebaseline import reference_profile
from driftline.trainer.registry import FileSystemRegistry
from driftline.trainer.serialise import load
from tests.unit.trainer.sea_helpers import labeled_records

BINARY = {"task": "binary", "retrain": {"cooldown": "1h"}}
REASON = Reason(kind="performance", statistic="accuracy", value=0.84, threshold=0.9)
T0 = datetime.fromtimestamp(START_MS / 1000, UTC)


def _request(end_minutes: int, model: str = "sea") -> RetrainRequest:
    return RetrainRequest.create(
        model, "1", T0, T0 + timedelta(minutes=end_minutes), rule="on_performance", reasons=[REASON]
    )


class Collected:
    """A publisher that keeps what it was given (or fails, when told to)."""

    def __init__(self) -> None:
        self.outcomes: list[TrainingOutcome] = []
        self.versions: list[ModelVersionRegistered] = []
        self.fail_versions = False

    def outcome(self, outcome: TrainingOutcome) -> None:
        self.outcomes.append(outcome)

    def version(self, record: ModelVersionRegistered) -> None:
        if self.fail_versions:
            raise DeliveryError([FailedDelivery("models", None, "broker down")])
        self.versions.append(record)


def _train_here(examples: Any, **arguments: Any) -> Trained:
    """The child process's work (``driftline.trainer.job``), in this process."""
    candidate = train_candidate(examples, **arguments)
    fitted = load(candidate.model)
    model, config = arguments["model"], arguments["config"]
    return Trained(candidate, reference_profile(model, "c", config, fitted, candidate.data.train))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[RequestHandler, Collected]]:
    settings = Settings(
        models={"sea": BINARY, "never": {**BINARY, "retrain": {"policy": "never"}}},
        trainer={"store_dir": str(tmp_path / "trainer")},
        registry={"root": str(tmp_path / "registry")},
    )
    (tmp_path / "registry").mkdir()
    store = ExampleStore.from_settings(settings.trainer)
    # After a concept change (version 1 predicts the old concept): a candidate can win.
    store.apply(labeled_records(3000, drift_at=0, seed=3, model="sea"), now_ms=START_MS + 10**9)
    publisher = Collected()
    handler = RequestHandler(
        settings,
        registry=FileSystemRegistry(tmp_path / "registry"),
        store=store,
        feed=None,
        publisher=publisher,
        train=_train_here,
    )
    yield handler, publisher
    store.close()


def _statuses(publisher: Collected) -> list[str]:
    return [o.status for o in publisher.outcomes]


def test_a_winning_candidate_is_registered_promoted_published_and_recorded(
    rig: tuple[RequestHandler, Collected],
) -> None:
    handler, publisher = rig
    assert handler.handle(_request(5)) == "succeeded"
    assert _statuses(publisher) == ["started", "succeeded"]
    done = publisher.outcomes[-1]
    assert done.promoted
    assert done.candidate_version == "2"
    assert done.candidate_value is not None
    assert done.champion_value is not None
    assert done.candidate_value > done.champion_value
    champion = handler.registry.champion("sea")
    assert champion is not None
    assert champion.version == "2"
    assert [(v.model_version, v.source, v.parent_version) for v in publisher.versions] == [
        ("2", "trainer", "1")
    ]


def test_a_repeated_request_is_dropped_and_a_request_in_the_cool_down_skipped(
    rig: tuple[RequestHandler, Collected],
) -> None:
    handler, publisher = rig
    handler.handle(_request(5))
    assert handler.handle(_request(5)) is None  # the same id: dropped, nothing recorded
    assert handler.handle(_request(30)) == "skipped"  # ends 25 minutes later: cooling
    assert "cool-down" in publisher.outcomes[-1].reason
    assert handler.handle(_request(70)) == "succeeded"  # ends 65 minutes later: trains
    assert [v.version for v in handler.registry.versions("sea")] == ["2", "3"]


@pytest.mark.parametrize(
    ("model", "why"),
    [("nobody", "models.nobody is not configured"), ("never", "retrain.policy is never")],
)
def test_a_model_the_trainer_may_not_retrain_is_skipped_with_the_reason(
    rig: tuple[RequestHandler, Collected], model: str, why: str
) -> None:
    handler, publisher = rig
    assert handler.handle(_request(5, model)) == "skipped"
    assert why in publisher.outcomes[-1].reason


def test_an_interrupted_request_is_tried_again_then_given_up(
    rig: tuple[RequestHandler, Collected],
) -> None:
    """Each ``started`` without an end is an interrupted try; past MAX_ATTEMPTS it fails."""
    handler, publisher = rig
    request = _request(5)
    log = OutcomeLog()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        log.add(TrainingOutcome.create(request, "started", attempt=attempt))
    handler.log = log
    assert handler.handle(request) == "failed"
    assert "given up" in publisher.outcomes[-1].reason
    assert "sea" not in handler.registry.models()


def test_a_try_after_a_crash_reuses_the_version_an_earlier_try_registered(
    rig: tuple[RequestHandler, Collected],
) -> None:
    """The first try registered version 2 and died before promoting it: the second try
    promotes that version, and registers no third."""
    handler, publisher = rig
    request = _request(5)
    publisher.fail_versions = True  # the crash: publishing the promoted version fails
    with pytest.raises(DeliveryError):
        handler.handle(request)
    assert _statuses(publisher) == ["started"]  # not recorded failed: tried again later
    publisher.fail_versions = False
    assert handler.handle(request) == "succeeded"
    assert [o.attempt for o in publisher.outcomes] == [1, 2, 2]
    assert [v.version for v in handler.registry.versions("sea")] == ["2"]
    assert len(publisher.versions) == 1


def test_too_few_examples_fail_the_request_with_the_counts(tmp_path: Path) -> None:
    settings = Settings(models={"sea": BINARY}, trainer={"store_dir": str(tmp_path / "t")})
    store = ExampleStore.from_settings(settings.trainer)
    store.apply(labeled_records(100, seed=3, model="sea"), now_ms=START_MS + 10**9)
    publisher = Collected()
    handler = RequestHandler(
        settings,
        registry=FileSystemRegistry(tmp_path / "registry"),
        store=store,
        feed=None,
        publisher=publisher,
        train=_train_here,
    )
    try:
        assert handler.handle(_request(5)) == "failed"
    finally:
        store.close()
    assert "100" in publisher.outcomes[-1].reason


def test_a_retrained_version_keeps_the_segments_its_champion_tracked(
    rig: tuple[RequestHandler, Collected],
) -> None:
    """Training examples carry no segments: version 3's profile (parent 1, not in the
    registry) tracks the segment values of champion 2, so slicing goes on after a retrain."""
    handler, _ = rig
    tracked = {"region": ["eu", "us", "apac"]}
    trained_without: list[Trained] = []

    def train(examples: Any, **arguments: Any) -> Trained:
        trained = _train_here(examples, **arguments)
        trained_without.append(trained)
        if len(trained_without) == 1:  # version 2: as a profile built with segments would be
            reference = trained.reference.model_copy(update={"segments": tracked})
            return Trained(trained.candidate, reference)
        return trained

    handler._train = train
    assert handler.handle(_request(5)) == "succeeded"
    assert handler.handle(_request(70)) == "succeeded"
    assert [v.version for v in handler.registry.versions("sea")] == ["2", "3"]
    assert trained_without[1].reference.segments == {}
    third = handler.registry.reference("sea", "3")
    assert third is not None
    assert third.segments == tracked
    assert third.content_hash == trained_without[1].reference.content_hash
