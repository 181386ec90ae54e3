"""What stage 1 refuses at the edge: events dated ahead of the wall clock, unkeyed messages,
and events beyond the configured limits, each to the DLQ while the stream goes on."""

from __future__ import annotations

from pathlib import Path

import orjson

from driftline.config import Settings
from driftline.detectors.summary import PaneSummary
from driftline.schemas.events import parse_timestamp, to_epoch_ms
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import decode_prediction
from driftline.streams.partition import PartitionWorker
from driftline.streams.store import PartitionStore
from tests.unit.streams.test_partition import (
    MINUTE,
    PRED,
    SETTINGS,
    T0,
    TRUTH,
    Msg,
    Worker,
    prediction,
    predictions,
    profile,
    truth,
)

FAR = to_epoch_ms(parse_timestamp("2900-01-01T00:00:00Z"))
NOW = T0 + 10 * MINUTE  # the wall clock of every batch below
DEFAULTS = Settings(models=SETTINGS.models)  # monitor.max_clock_skew: 5 min


def worker(path: Path, settings: Settings = DEFAULTS) -> PartitionWorker:
    profiles = {("m", "1"): profile()}
    return Worker(0, PartitionStore(path), lambda m, v: profiles.get((m, v)), settings)


def features_n(w: PartitionWorker, reference: ReferenceProfile) -> int:
    return sum(
        PaneSummary.from_bytes(p.summary, reference).n for p in w.drain() if p.kind == "features"
    )


def test_a_far_future_prediction_is_dead_lettered_and_does_not_silence_its_partition(
    tmp_path: Path,
) -> None:
    """Issue 15: one prediction dated 2900-01-01 moved the partition's watermark there, and
    every valid event after it was counted too late."""
    w = worker(tmp_path / "db")
    reference = profile()
    first = w.apply([*predictions(0, 50), Msg(PRED, 50, prediction(50, ts=FAR), b"p50")], NOW)
    assert [(d.source_offset, d.kind, d.path) for d in first.dead_letters] == [
        (50, "clock_skew", "$.timestamp")
    ]
    assert "2900-01-01T00:00:00.000Z" in first.dead_letters[0].reason
    assert "monitor.max_clock_skew allows 5m" in first.dead_letters[0].reason
    assert w.watermark_ms == T0 + 49_000
    later = predictions(51, 249)
    results = [w.apply(later[:100], NOW), w.apply(later[100:], NOW)]
    assert [r.too_late for r in results] == [0, 0]
    assert sum(r.predictions for r in results) == 249  # every later valid event counted
    assert features_n(w, reference) == 50 + 249
    assert w.marks.predictions == 300


def test_a_far_future_label_is_dead_lettered_and_the_others_join(tmp_path: Path) -> None:
    w = worker(tmp_path / "db")
    w.apply(predictions(0, 3), NOW)
    far = orjson.dumps({"event_id": "t9", "prediction_id": "p1", "timestamp": FAR, "label": 1})
    result = w.apply(
        [
            Msg(TRUTH, 0, truth(0, 1), b"p0"),
            Msg(TRUTH, 1, far, b"p1"),
            Msg(TRUTH, 2, truth(2, 0), b"p2"),
        ],
        NOW,
    )
    assert [(d.source_offset, d.kind) for d in result.dead_letters] == [(1, "clock_skew")]
    assert result.joined == 2
    assert w.label_watermark_ms == T0 + 2000 + 5000


def test_an_event_within_the_skew_is_accepted_and_one_just_beyond_is_not(tmp_path: Path) -> None:
    w = worker(tmp_path / "db")
    skew = 5 * MINUTE
    result = w.apply(
        [
            Msg(PRED, 0, prediction(0, ts=NOW + skew), b"p0"),
            Msg(PRED, 1, prediction(1, ts=NOW + skew + 1), b"p1"),
        ],
        NOW,
    )
    assert result.predictions == 1
    assert [d.source_offset for d in result.dead_letters] == [1]


def test_the_clock_check_leaves_decode_errors_and_the_order_alone() -> None:
    from driftline.errors import DecodeError
    from driftline.streams.intake import ahead_of_clock

    ok = decode_prediction(prediction(0, ts=NOW))
    bad = DecodeError("broken")
    batch = [bad, decode_prediction(prediction(1, ts=FAR)), ok, bad]
    assert ahead_of_clock(batch, NOW, 1000) == 1
    assert [batch[0], batch[2], batch[3]] == [bad, ok, bad]
    assert [e.kind for e in batch if isinstance(e, DecodeError)] == [
        "invalid_event",
        "clock_skew",
        "invalid_event",
    ]
    assert ahead_of_clock([], NOW, 1000) == 0
    assert ahead_of_clock([bad], NOW, 1000) == 0


def test_a_message_without_a_key_is_dead_lettered(tmp_path: Path) -> None:
    """Issue 15: an unkeyed prediction was accepted, though it lands on a random partition
    where its label never arrives (the contract: key = prediction_id)."""
    w = worker(tmp_path / "db")
    result = w.apply(
        [*predictions(0, 2), Msg(PRED, 2, prediction(2), None), *predictions(3, 2)], NOW
    )
    assert [(d.source_offset, d.kind) for d in result.dead_letters] == [(2, "missing_key")]
    assert result.predictions == 4
    labels = w.apply([Msg(TRUTH, 0, truth(0, 1), None), Msg(TRUTH, 1, truth(1, 1), b"p1")], NOW)
    assert [(d.source_offset, d.kind) for d in labels.dead_letters] == [(0, "missing_key")]
    assert labels.joined == 1


def test_events_beyond_the_configured_limits_are_dead_lettered_naming_the_setting(
    tmp_path: Path,
) -> None:
    tight = DEFAULTS.model_copy(
        update={
            "monitor": DEFAULTS.monitor.model_copy(
                update={
                    "limits": DEFAULTS.monitor.limits.model_copy(
                        update={"max_features": 2, "max_message_bytes": 2048}
                    )
                }
            )
        }
    )
    w = worker(tmp_path / "db", tight)
    wide = orjson.loads(prediction(1))
    wide["features"] = {"x": 1.0, "y": 2.0, "z": 3.0}
    huge = orjson.loads(prediction(2))
    huge["features"] = {"x": "a" * 3000}
    result = w.apply(
        [
            *predictions(0, 1),
            Msg(PRED, 1, orjson.dumps(wide), b"p1"),
            Msg(PRED, 2, orjson.dumps(huge), b"p2"),
        ],
        NOW,
    )
    assert [(d.kind, d.path) for d in result.dead_letters] == [
        ("limit_exceeded", "$.features"),
        ("limit_exceeded", None),
    ]
    assert "monitor.limits.max_features" in result.dead_letters[0].reason
    assert "monitor.limits.max_message_bytes" in result.dead_letters[1].reason
    assert result.predictions == 1


def test_limits_wider_than_the_defaults_also_hold_for_events_held_and_released(
    tmp_path: Path,
) -> None:
    """Events accepted under configured limits are re-read from the store (held for a
    profile, waiting for a label) whatever the default limits say."""
    wide = DEFAULTS.model_copy(
        update={
            "monitor": DEFAULTS.monitor.model_copy(
                update={
                    "limits": DEFAULTS.monitor.limits.model_copy(
                        update={"max_features": 2000, "max_message_bytes": 1 << 20}
                    )
                }
            )
        }
    )
    profiles: dict[tuple[str, str], ReferenceProfile] = {}
    w = Worker(0, PartitionStore(tmp_path / "db"), lambda m, v: profiles.get((m, v)), wide)
    many = []
    for i in range(5):
        event = orjson.loads(prediction(i))
        event["features"] = {"x": 0.5, **{f"f{j}": j for j in range(1500)}}
        many.append(Msg(PRED, i, orjson.dumps(event), f"p{i}".encode()))
    held = w.apply(many, NOW)
    assert held.dead_letters == []
    assert w.held() == {("m", "1"): 5}
    profiles[("m", "1")] = profile()
    released = w.profile_arrived("m", "1")
    assert released.predictions == 5
    labels = w.apply([Msg(TRUTH, i, truth(i, 1), f"p{i}".encode()) for i in range(5)], NOW)
    assert labels.joined == 5
