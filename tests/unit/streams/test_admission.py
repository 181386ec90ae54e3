"""The models policy: which models stage 1 tracks, and the dead letters of the others."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from driftline.config import Settings, load_settings
from driftline.config.settings import ModelsPolicy
from driftline.errors import ConfigError
from driftline.schemas.reasons import UNKNOWN_MODEL
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.admission import ModelAdmission
from driftline.streams.partition import PartitionWorker
from driftline.streams.store import Marks, PartitionStore
from tests.unit.streams.test_partition import PRED, SETTINGS, T0, Msg, Worker, profile

HOUR = 3600.0


class Clock:
    """Wall-clock seconds that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def admission(clock: Clock, **policy: object) -> ModelAdmission:
    return ModelAdmission(ModelsPolicy.model_validate(policy), {"m"}, clock=clock)


def event(i: int, model: str, version: str = "1") -> Msg:
    body = {
        "event_id": f"e{i}",
        "prediction_id": f"p{i}",
        "model": model,
        "model_version": version,
        "timestamp": T0 + i * 1000,
        "features": {"x": 0.5},
        "prediction": 1,
    }
    return Msg(PRED, i, orjson.dumps(body), f"p{i}".encode())


def test_listed_admits_only_the_configured_models() -> None:
    clock = Clock()
    policy = admission(clock, allow="listed")
    assert policy.refused({"m", "stranger"}) == {"stranger": "allow"}
    assert policy.admitted("m")
    assert not policy.admitted("stranger")
    assert policy.unknown == 0
    reason = policy.reason("stranger", "allow")
    assert "models_policy.allow" in reason
    assert "'stranger'" in reason


def test_any_admits_unknown_models_up_to_the_cap_and_refuses_the_next() -> None:
    clock = Clock()
    policy = admission(clock, allow="any", max_unknown=2)
    assert policy.refused({"m", "a", "b"}) == {}
    assert policy.refused({"c"}) == {"c": "max_unknown"}
    assert policy.refused({"a", "b"}) == {}  # admitted ones stay admitted
    assert policy.unknown == 2
    assert "models_policy.max_unknown (2)" in policy.reason("c", "max_unknown")


def test_an_unknown_model_without_traffic_for_the_ttl_is_forgotten_and_its_place_reused() -> None:
    clock = Clock()
    policy = admission(clock, allow="any", max_unknown=2, unknown_ttl="1h")
    policy.refused({"a"})
    clock.now += 0.5 * HOUR
    policy.refused({"b"})
    clock.now += 0.6 * HOUR  # a silent for 1.1 h, b for 0.6 h
    assert not policy.admitted("a")
    assert policy.admitted("b")
    assert policy.refused({"c"}) == {}  # takes a's place
    assert policy.refused({"a"}) == {"a": "max_unknown"}  # a is new again, and there is no room
    clock.now += 0.5 * HOUR  # b silent for 1.1 h: forgotten by the sweep
    policy.forget()
    assert policy.unknown == 1
    assert policy.admitted("c")


def test_traffic_keeps_an_unknown_model_admitted_past_the_ttl() -> None:
    clock = Clock()
    policy = admission(clock, allow="any", max_unknown=1, unknown_ttl="1h")
    for _ in range(5):
        assert policy.refused({"a"}) == {}
        clock.now += 0.9 * HOUR
    assert policy.admitted("a")
    assert policy.refused({"b"}) == {"b": "max_unknown"}


def test_a_very_long_model_name_is_cut_in_the_reason() -> None:
    policy = admission(Clock(), allow="listed")
    reason = policy.reason("x" * 70_000, "allow")
    assert len(reason) < 300


def test_the_defaults_track_any_model_up_to_a_thousand_for_a_day() -> None:
    policy = Settings().models_policy
    assert (policy.allow, policy.max_unknown, policy.unknown_ttl.total_seconds()) == (
        "any",
        1000,
        86_400,
    )


def test_config_check_names_a_bad_models_policy_field() -> None:
    with pytest.raises(ConfigError, match=r"models_policy\.allow"):
        load_settings(None, models_policy={"allow": "some"})
    with pytest.raises(ConfigError, match=r"models_policy\.max_unknown"):
        load_settings(None, models_policy={"max_unknown": -1})
    with pytest.raises(ConfigError, match=r"models_policy\.unknown_ttl"):
        load_settings(None, models_policy={"unknown_ttl": "0s"})


def listed_worker(path: Path, profiles: dict[tuple[str, str], ReferenceProfile]) -> Worker:
    settings = SETTINGS.model_copy(update={"models_policy": ModelsPolicy(allow="listed")})
    return Worker(0, PartitionStore(path), lambda m, v: profiles.get((m, v)), settings)


def test_predictions_of_a_model_not_admitted_go_to_the_dlq_and_leave_no_state(
    tmp_path: Path,
) -> None:
    profiles = {("m", "1"): profile()}
    w = listed_worker(tmp_path / "db", profiles)
    batch = [event(i, "m" if i % 2 else f"stranger-{i % 4}") for i in range(40)]
    result = w.apply(batch, T0)
    assert result.predictions == 20
    assert len(result.dead_letters) == 20
    letters = {letter.source_offset: letter for letter in result.dead_letters}
    assert sorted(letters) == list(range(0, 40, 2))
    letter = letters[2]
    assert letter.kind == UNKNOWN_MODEL
    assert letter.path == "$.model"
    assert "models_policy.allow" in letter.reason
    assert "'stranger-2'" in letter.reason
    assert letter.value == batch[2].value()
    assert ("trace", b"abc") in letter.original_headers
    assert w.held() == {}
    assert w.models() == {"m"}
    assert w.store.get_entry(b"p2") is None  # nothing in the join either
    assert w.marks.predictions == 40  # the refused ones are applied: never read again


def test_a_model_not_admitted_is_never_held_so_never_baselined(tmp_path: Path) -> None:
    w = listed_worker(tmp_path / "db", {})
    w.apply([event(i, "stranger") for i in range(60)], T0)
    assert w.held() == {}
    assert w.baseline("stranger", "1", warmup_events=50) is None


def test_refused_predictions_below_the_restore_mark_are_not_dead_lettered_again(
    tmp_path: Path,
) -> None:
    w = listed_worker(tmp_path / "db", {("m", "1"): profile()})
    w.restore_until = Marks(predictions=10, ground_truth=-1)
    result = w.apply([event(i, "stranger") for i in range(20)], T0)
    assert result.restored == 10
    assert [letter.source_offset for letter in result.dead_letters] == list(range(10, 20))


def test_workers_of_one_process_share_the_cap(tmp_path: Path) -> None:
    clock = Clock()
    shared = ModelAdmission(ModelsPolicy(max_unknown=1), SETTINGS.models, clock=clock)
    first, second = (
        PartitionWorker(
            n, PartitionStore(tmp_path / f"p{n}"), lambda m, v: None, SETTINGS, admission=shared
        )
        for n in (0, 1)
    )
    assert first.apply([event(0, "a")], T0).dead_letters == []
    refused = second.apply([event(1, "b")], T0).dead_letters
    assert [letter.kind for letter in refused] == [UNKNOWN_MODEL]
    assert "models_policy.max_unknown (1)" in refused[0].reason
