"""The trainer's rollout against the real broker (issue 16): ``driftline trainer run`` with
``rollout.mode`` set registers a winner as the challenger, then applies the RolloutDecision
records published on the rollout topic: promote crowns it, rollback rejects it, a record that
is not a decision is dead-lettered and the agent serves on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest

from driftline.config import KafkaSettings, TopicSettings
from driftline.schemas.outputs import DLQ_HEADER_KIND, RolloutDecision
from tests.streams.kafka_helpers import assigned_reader
from tests.streams.test_trainer import BINARY, Trainers, _at, _request


@pytest.fixture
def trainers(kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> Iterator[Trainers]:
    models = {
        "up": {**BINARY, "rollout": {"mode": "shadow"}},
        "down": {**BINARY, "rollout": {"mode": "canary", "canary_share": 0.2}},
    }
    rig = Trainers(kafka, topics, tmp_path, models)
    try:
        yield rig
    finally:
        rig.close()


def _decision(model: str, action: Literal["promote", "rollback"]) -> RolloutDecision:
    end = _at(60)
    return RolloutDecision(
        model=model,
        model_version="2",
        window_start=end - timedelta(minutes=10),
        window_end=end,
        decision_id=RolloutDecision.make_id(model, "1", "2", action, end),
        champion_version="1",
        challenger_version="2",
        design="shadow",
        decision=action,
        action=action,
        metric="accuracy",
        estimate=0.04 if action == "promote" else -0.04,
        lower=0.01 if action == "promote" else -0.07,
        upper=0.07 if action == "promote" else -0.01,
        n=2000,
        alpha=0.05,
        margin=0.0,
        method="betting confidence sequence",
    )


def _status(trainers: Trainers, model: str, version: str) -> str | None:
    if model not in trainers.registry.models():
        return None
    known = {v.version: v.status for v in trainers.registry.versions(model)}
    return known.get(version)


def test_a_winner_in_rollout_is_the_challenger_until_a_decision_promotes_or_rejects_it(
    trainers: Trainers,
) -> None:
    trainers.examples("up", seed=5)
    trainers.examples("down", seed=6)
    trainers.start("a")
    requests = {m: _request(m, 5) for m in ("up", "down")}
    for request in requests.values():
        trainers.send(request)
    trainers.wait(
        "both successes",
        lambda: all("succeeded" in trainers.of(r) for r in requests.values()),
    )
    for model, mode in (("up", "shadow"), ("down", "canary")):
        done = next(
            o
            for o in trainers.outcomes
            if o.request_id == requests[model].request_id and o.status == "succeeded"
        )
        assert not done.promoted
        assert f"in {mode} rollout" in done.reason
        challenger = trainers.registry.metadata(model, "2")
        assert challenger.status == "challenger"
        assert challenger.rollout is not None
        assert challenger.rollout.mode == mode
        assert trainers.registry.champion(model) is None
    trainers.wait("both references", lambda: {v.model for v in trainers.versions} >= {"up", "down"})

    # Something that is not a decision first: dead-lettered, and the decisions after it apply.
    trainers.producer.produce(trainers.topics.rollout, key=b"up", value=b"{not json")
    for model, action in (("up", "promote"), ("down", "rollback")):
        decision = _decision(model, action)
        trainers.producer.produce(
            trainers.topics.rollout, key=model.encode(), value=decision.to_json()
        )
    assert trainers.producer.flush(30) == 0
    trainers.wait("the promotion", lambda: _status(trainers, "up", "2") == "champion")
    trainers.wait("the rollback", lambda: _status(trainers, "down", "2") == "rejected")
    promoted = trainers.registry.metadata("up", "2").history[-1]
    assert (promoted.by, promoted.action) == ("trainer", "promote")
    assert "accuracy difference 0.04 [0.01, 0.07] over 2000 labels" in promoted.reason
    rejected = trainers.registry.metadata("down", "2").history[-1]
    assert (rejected.action, rejected.previous) == ("set_status", "challenger")
    assert "accuracy difference -0.04" in rejected.reason
    assert trainers.registry.champion("down") is None

    dlq = assigned_reader(trainers.kafka, [trainers.topics.dlq], "rollout-dlq")
    try:
        kinds = [
            dict(m.headers() or []).get(DLQ_HEADER_KIND)
            for m in dlq.consume(100, 5.0)
            if m.error() is None
        ]
    finally:
        dlq.close()
    assert kinds == [b"invalid_decision"]
