"""The serving follower's rollout (issue 16): canary routing by a hash of the request key
(deterministic, sticky, the configured share), shadow predictions, and switching when the
registry promotes or rolls back, without a broker (the follower's registry reads only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from driftline.client import DriftlineProducer
from driftline.config import KafkaSettings, TopicSettings
from driftline.errors import FailedDelivery, InvalidEventError
from driftline.schemas.events import GroundTruthEvent, PredictionEvent
from driftline.schemas.model_version import RolloutMetadata
from driftline.serving import Champion, ChampionFollower, publish_served, routes_to_challenger
from driftline.trainer.protocol import FeatureValue, Label
from driftline.trainer.registry import FileSystemRegistry
from driftline.trainer.serialise import dumps
from tests.unit.trainer.test_registry import registration

KEYS = [f"user-{i}" for i in range(10_000)]


class Constant:
    """A model that always says ``label``."""

    def __init__(self, label: str) -> None:
        self.label = label

    def predict(self, rows: Sequence[Mapping[str, FeatureValue]]) -> list[Label]:
        return [self.label for _ in rows]

    def predict_scores(self, rows: Sequence[Mapping[str, FeatureValue]]) -> list[dict[str, float]]:
        return [{self.label: 1.0} for _ in rows]

    def params(self) -> dict[str, object]:
        return {"label": self.label}


@pytest.mark.parametrize("share", [0.01, 0.1, 0.25, 0.5, 0.9])
def test_the_canary_gets_its_share_of_keys_within_a_tolerance(share: float) -> None:
    """Over 10,000 keys the share routed is within 4 binomial standard deviations."""
    routed = sum(routes_to_challenger(key, share, "fraud/2") for key in KEYS)
    sd = (share * (1 - share) * len(KEYS)) ** 0.5
    assert abs(routed - share * len(KEYS)) <= 4 * sd, routed


def test_routing_is_deterministic_and_sticky_per_key() -> None:
    first = [routes_to_challenger(key, 0.1, "fraud/2") for key in KEYS]
    assert first == [routes_to_challenger(key, 0.1, "fraud/2") for key in KEYS]
    # A larger share keeps every key it had: growing a canary moves no user back.
    wider = [routes_to_challenger(key, 0.3, "fraud/2") for key in KEYS]
    assert all(w for f, w in zip(first, wider, strict=True) if f)


def test_each_rollout_picks_its_own_keys() -> None:
    two = {key for key in KEYS if routes_to_challenger(key, 0.1, "fraud/2")}
    three = {key for key in KEYS if routes_to_challenger(key, 0.1, "fraud/3")}
    assert two != three


def follower(registry: FileSystemRegistry) -> ChampionFollower:
    """A follower whose registry reads are driven by hand (no broker, no thread)."""
    return ChampionFollower(KafkaSettings(), TopicSettings(), registry, "fraud", poll_interval=0.1)


@pytest.fixture
def registry(tmp_path: Path) -> FileSystemRegistry:
    """fraud: version 1 (says "a") the champion, version 2 (says "b") a candidate."""
    store = FileSystemRegistry(tmp_path / "registry")
    store.register(registration(), dumps(Constant("a")))
    store.promote("fraud", "1", by="trainer", reason="first")
    store.register(registration(parent="1"), dumps(Constant("b")))
    return store


def test_without_a_challenger_only_the_champion_predicts(registry: FileSystemRegistry) -> None:
    f = follower(registry)
    f._refresh()
    served = f.predict("user-1", {"x1": 1.0}, prediction_id="p-1")
    assert [(s.version, s.role, s.prediction, s.prediction_id, s.shadow_of) for s in served] == [
        ("1", "champion", "a", "p-1", None)
    ]
    assert served[0].answer
    assert served[0].scores == {"a": 1.0}


def test_shadow_predicts_with_both_and_answers_with_the_champion(
    registry: FileSystemRegistry,
) -> None:
    registry.challenge("fraud", "2", RolloutMetadata(mode="shadow"), by="trainer", reason="won")
    f = follower(registry)
    f._refresh()
    served = f.predict("user-1", {"x1": 1.0}, prediction_id="p-1")
    assert [
        (s.version, s.role, s.prediction, s.prediction_id, s.shadow_of, s.answer, s.key)
        for s in served
    ] == [
        ("1", "champion", "a", "p-1", None, True, "p-1"),
        ("2", "shadow", "b", "p-1/shadow/2", "p-1", False, "p-1"),
    ]


def test_canary_answers_its_share_with_the_challenger(registry: FileSystemRegistry) -> None:
    mode = RolloutMetadata(mode="canary", canary_share=0.2)
    registry.challenge("fraud", "2", mode, by="trainer", reason="won")
    f = follower(registry)
    f._refresh()
    served = [f.predict(key, {"x1": 1.0}) for key in KEYS[:2000]]
    assert all(len(s) == 1 and s[0].answer for s in served)
    canary = [s[0] for s in served if s[0].role == "canary"]
    assert {(s.version, s.prediction) for s in canary} == {("2", "b")}
    assert {(s[0].version, s[0].role) for s in served if s[0].role != "canary"} == {
        ("1", "champion")
    }
    assert 0.15 < len(canary) / len(served) < 0.25
    again = [f.predict(key, {"x1": 1.0})[0].version for key in KEYS[:2000]]
    assert again == [s[0].version for s in served]  # sticky


def test_the_follower_switches_on_promotion_and_on_rollback(
    registry: FileSystemRegistry,
) -> None:
    registry.challenge("fraud", "2", RolloutMetadata(mode="shadow"), by="trainer", reason="won")
    f = follower(registry)
    f._refresh()
    challenger = f.challenger()
    assert challenger is not None
    assert challenger.version == "2"
    registry.promote("fraud", "2", by="trainer", reason="rollout decision d-1")
    f._refresh()
    assert f.challenger() is None
    champion = f.current()
    assert champion is not None
    assert champion.version == "2"
    assert [s.role for s in f.predict("user-1", {})] == ["champion"]
    registry.register(registration(parent="2"), dumps(Constant("c")))
    registry.challenge("fraud", "3", RolloutMetadata(mode="shadow"), by="trainer", reason="won")
    f._refresh()
    assert [s.version for s in f.predict("user-1", {})] == ["2", "3"]
    registry.rollback("fraud", "3", by="person", reason="no")
    f._refresh()
    assert f.wait_for_challenger(None, timeout=0)
    assert [s.version for s in f.predict("user-1", {})] == ["2"]


def test_the_fallback_is_the_champion_while_the_registry_has_none(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    f = ChampionFollower(
        KafkaSettings(),
        TopicSettings(),
        FileSystemRegistry(tmp_path / "empty"),
        "fraud",
        fallback=Champion("0", Constant("own")),
    )
    f._refresh()
    assert [(s.version, s.prediction) for s in f.predict("k", {})] == [("0", "own")]


class Recording(DriftlineProducer):
    """The producer SDK with ``send`` recording what it would publish (no broker)."""

    def __init__(self) -> None:
        super().__init__("localhost:9092", clock=lambda: datetime(2026, 12, 1, tzinfo=UTC))
        self.sent: list[PredictionEvent] = []

    def send(
        self,
        event: PredictionEvent | GroundTruthEvent,
        on_done: Callable[[FailedDelivery | None], None] | None = None,
    ) -> None:
        assert isinstance(event, PredictionEvent)
        self.sent.append(event)


def test_publish_served_sends_the_champion_and_the_shadow_keyed_by_the_champion_id(
    registry: FileSystemRegistry,
) -> None:
    registry.challenge("fraud", "2", RolloutMetadata(mode="shadow"), by="trainer", reason="won")
    f = follower(registry)
    f._refresh()
    producer = Recording()
    served = f.predict("user-1", {"x1": 1.0}, prediction_id="p-1")
    events = publish_served(producer, "fraud", served, {"x1": 1.0}, segments={"country": "FR"})
    assert producer.sent == events
    assert [
        (e.model, e.model_version, e.role, e.prediction, e.prediction_id, e.shadow_of)
        for e in events
    ] == [
        ("fraud", "1", "champion", "a", "p-1", None),
        ("fraud", "2", "shadow", "b", "p-1/shadow/2", "p-1"),
    ]
    assert [e.message_key for e in events] == [s.key for s in served] == ["p-1", "p-1"]
    assert [e.scores for e in events] == [{"a": 1.0}, {"b": 1.0}]
    assert {e.timestamp for e in events} == {datetime(2026, 12, 1, tzinfo=UTC)}
    assert all(e.features == {"x1": 1.0} and e.segments == {"country": "FR"} for e in events)
    assert len({e.event_id for e in events}) == 2


def test_publish_served_sends_the_chosen_version_alone_in_a_canary(
    registry: FileSystemRegistry,
) -> None:
    mode = RolloutMetadata(mode="canary", canary_share=0.5)
    registry.challenge("fraud", "2", mode, by="trainer", reason="won")
    f = follower(registry)
    f._refresh()
    producer = Recording()
    for key in KEYS[:200]:
        publish_served(producer, "fraud", f.predict(key, {"x1": 1.0}), {"x1": 1.0}, timestamp=0)
    assert len(producer.sent) == 200
    roles = {(e.model_version, e.role, e.message_key == e.prediction_id) for e in producer.sent}
    assert roles == {("1", "champion", True), ("2", "canary", True)}


def test_publish_served_sends_nothing_when_one_prediction_is_invalid(
    registry: FileSystemRegistry,
) -> None:
    registry.challenge("fraud", "2", RolloutMetadata(mode="shadow"), by="trainer", reason="won")
    f = follower(registry)
    f._refresh()
    producer = Recording()
    served = f.predict("user-1", {"x1": 1.0}, prediction_id="p-1")
    broken = [served[0], served[1]._replace(shadow_of=None)]  # a shadow must name its champion
    with pytest.raises(InvalidEventError):
        publish_served(producer, "fraud", broken, {"x1": 1.0})
    assert producer.sent == []
