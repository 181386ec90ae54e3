"""Rollout in the trainer (issue 16): a winner in rollout becomes the challenger, and the
monitor's RolloutDecision records promote or reject it, once each, a person's word first.
Without a broker: a real file-system registry, the records collected in a list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest

from driftline.config import Settings
from driftline.schemas.model_version import RolloutMetadata
from driftline.schemas.outputs import RolloutDecision
from driftline.testing.synthetic import START_MS
from driftline.trainer.examples import ExampleStore
from driftline.trainer.handler import RequestHandler
from driftline.trainer.registry import FileSystemRegistry
from driftline.trainer.rollout import RolloutHandler
from tests.unit.trainer.sea_helpers import labeled_records
from tests.unit.trainer.test_handler import Collected, _request, _train_here
from tests.unit.trainer.test_registry import profile, registration

T = datetime(2026, 12, 1, 10, tzinfo=UTC)


@pytest.fixture
def registry(tmp_path: Path) -> FileSystemRegistry:
    """``sea``: version 1 the champion, version 2 the challenger in shadow, both with references."""
    store = FileSystemRegistry(tmp_path / "registry")
    store.register(registration("sea"), b"one", reference=profile("sea"))
    store.promote("sea", "1", by="trainer", reason="first")
    store.register(registration("sea", parent="1"), b"two", reference=profile("sea"))
    store.challenge("sea", "2", RolloutMetadata(mode="shadow"), by="trainer", reason="won")
    return store


def decision(
    action: Literal["promote", "rollback"],
    kind: Literal["promote", "rollback", "end"] | None = None,
    *,
    challenger: str = "2",
    minutes: int = 10,
) -> RolloutDecision:
    said = kind or action
    end = T + timedelta(minutes=minutes)
    return RolloutDecision(
        model="sea",
        model_version=challenger,
        window_start=T,
        window_end=end,
        decision_id=RolloutDecision.make_id("sea", "1", challenger, said, end),
        champion_version="1",
        challenger_version=challenger,
        design="shadow",
        decision=said,
        action=action,
        metric="accuracy",
        estimate=0.05 if action == "promote" else -0.05,
        lower=0.02 if action == "promote" else -0.08,
        upper=0.08 if action == "promote" else -0.02,
        n=1200,
        alpha=0.05,
        margin=0.0,
        method="betting confidence sequence",
    )


def test_a_promote_decision_crowns_the_challenger_and_publishes_it_once(
    registry: FileSystemRegistry,
) -> None:
    publisher = Collected()
    handler = RolloutHandler(registry=registry, publisher=publisher)
    promote = decision("promote")
    assert handler.handle(promote) == "promoted"
    champion = registry.champion("sea")
    assert champion is not None
    assert champion.version == "2"
    assert promote.decision_id in champion.history[-1].reason
    assert "accuracy difference 0.05 [0.02, 0.08] over 1200 labels" in champion.history[-1].reason
    assert registry.metadata("sea", "1").status == "retired"
    assert [(v.model_version, v.source) for v in publisher.versions] == [("2", "trainer")]
    assert handler.handle(promote) is None  # the same decision again: dropped
    assert len(publisher.versions) == 1


def test_a_rollback_decision_rejects_the_challenger_with_its_figures(
    registry: FileSystemRegistry,
) -> None:
    publisher = Collected()
    handler = RolloutHandler(registry=registry, publisher=publisher)
    assert handler.handle(decision("rollback")) == "rolled back"
    rejected = registry.metadata("sea", "2")
    assert rejected.status == "rejected"
    last = rejected.history[-1]
    assert (last.by, last.action, last.previous) == ("trainer", "set_status", "challenger")
    assert "accuracy difference -0.05 [-0.08, -0.02]" in last.reason
    champion = registry.champion("sea")
    assert champion is not None
    assert champion.version == "1"
    assert publisher.versions == []


def test_an_undecided_end_does_the_configured_action(registry: FileSystemRegistry) -> None:
    handler = RolloutHandler(registry=registry, publisher=Collected())
    assert handler.handle(decision("rollback", "end")) == "rolled back"
    assert "(shadow, end)" in registry.metadata("sea", "2").history[-1].reason


def test_a_persons_rollback_comes_first(registry: FileSystemRegistry) -> None:
    registry.rollback("sea", "2", by="person", reason="I do not trust it")
    publisher = Collected()
    handler = RolloutHandler(registry=registry, publisher=publisher)
    assert handler.handle(decision("promote")) == "stale"
    assert registry.metadata("sea", "2").status == "rejected"
    champion = registry.champion("sea")
    assert champion is not None
    assert champion.version == "1"
    assert publisher.versions == []


def test_a_persons_promotion_comes_first(registry: FileSystemRegistry) -> None:
    registry.promote("sea", "2", by="person", reason="ship it")
    handler = RolloutHandler(registry=registry, publisher=Collected())
    assert handler.handle(decision("rollback")) == "stale"
    champion = registry.champion("sea")
    assert champion is not None
    assert champion.version == "2"


def test_a_promote_decision_delivered_again_after_a_crash_publishes_again(
    registry: FileSystemRegistry,
) -> None:
    """A crash between the promotion and the publication: the redelivered decision (a new
    process, an empty log) finds the version champion and publishes its reference."""
    RolloutHandler(registry=registry, publisher=Collected())._apply(decision("promote"))
    publisher = Collected()
    assert RolloutHandler(registry=registry, publisher=publisher).handle(decision("promote")) == (
        "republished"
    )
    assert [v.model_version for v in publisher.versions] == ["2"]


def test_a_decision_about_an_unknown_model_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    handler = RolloutHandler(registry=FileSystemRegistry(tmp_path / "empty"), publisher=Collected())
    assert handler.handle(decision("promote")) == "stale"


# --- the retrain request side --------------------------------------------------------------


@pytest.fixture
def shadow_rig(tmp_path: Path) -> Iterator[tuple[RequestHandler, Collected]]:
    settings = Settings(
        models={"sea": {"task": "binary", "rollout": {"mode": "canary", "canary_share": 0.2}}},
        trainer={"store_dir": str(tmp_path / "trainer")},
        registry={"root": str(tmp_path / "registry")},
    )
    registry = FileSystemRegistry(tmp_path / "registry")
    registry.register(registration("sea"), b"one", reference=profile("sea"))
    registry.promote("sea", "1", by="person", reason="the model served before driftline")
    store = ExampleStore.from_settings(settings.trainer)
    store.apply(labeled_records(3000, drift_at=0, seed=3, model="sea"), now_ms=START_MS + 10**9)
    publisher = Collected()
    handler = RequestHandler(
        settings,
        registry=registry,
        store=store,
        feed=None,
        publisher=publisher,
        train=_train_here,
    )
    yield handler, publisher
    store.close()


def test_a_winner_in_rollout_becomes_the_challenger_not_the_champion(
    shadow_rig: tuple[RequestHandler, Collected],
) -> None:
    handler, publisher = shadow_rig
    assert handler.handle(_request(5)) == "succeeded"
    done = publisher.outcomes[-1]
    assert not done.promoted
    assert done.candidate_version == "2"
    assert "in canary rollout beside champion 1" in done.reason
    challenger = handler.registry.metadata("sea", "2")
    assert challenger.status == "challenger"
    assert challenger.rollout == RolloutMetadata(mode="canary", canary_share=0.2)
    champion = handler.registry.champion("sea")
    assert champion is not None
    assert champion.version == "1"
    assert [v.model_version for v in publisher.versions] == ["2"]  # the monitor judges it


def test_a_challenger_a_person_rejected_between_tries_is_not_challenged_again(
    shadow_rig: tuple[RequestHandler, Collected],
) -> None:
    """A try registers the challenger and dies before its outcome; a person rolls the
    challenger back; the next try (a new process) records the request rejected and leaves the
    version rejected, instead of failing on the status change."""
    handler, _ = shadow_rig
    request = _request(5)
    assert handler.handle(request) == "succeeded"
    handler.registry.rollback("sea", "2", by="person", reason="not this one")
    publisher = Collected()
    retry = RequestHandler(
        handler.settings,
        registry=handler.registry,
        store=handler.store,
        feed=None,
        publisher=publisher,
        train=_train_here,
    )
    assert retry.handle(request) == "rejected"
    assert "version 2 became rejected before this try ended (by person: not this one)" in (
        publisher.outcomes[-1].reason
    )
    assert handler.registry.metadata("sea", "2").status == "rejected"
    assert publisher.versions == []
