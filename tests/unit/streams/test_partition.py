"""Stage 1 for one partition: exactly-once folding and joining over a real RocksDB store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from driftline.config import Settings
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.errors import StateStoreError
from driftline.schemas.reference import ReferenceProfile
from driftline.streams import join
from driftline.streams.partition import PartitionWorker
from driftline.streams.result import ApplyResult
from driftline.streams.store import PartitionStore

PRED, TRUTH = "driftline.predictions", "driftline.ground-truth"
T0 = 1_767_225_600_000
MINUTE = 60_000
SETTINGS = Settings(
    # These tests' clocks are made up (``failed_at_ms`` is often T0 or smaller, with events
    # dated later): the wall-clock bound is tested on its own, in test_intake.py.
    monitor={"max_clock_skew": "36500d"},
    models={
        "m": {
            "task": "binary",
            "pane": "1m",
            "windows": [{"size": "10m"}],
            "allowed_lateness": "1m",
            "warmup_events": 50,
        }
    },
)


@dataclass
class Msg:
    """A stand-in for confluent-kafka's Message (the worker reads only these accessors)."""

    _topic: str
    _offset: int
    _value: bytes
    _key: bytes | None = None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return [("trace", b"abc")]


def profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    return build_profile(
        "m", "1", "binary", {"x": x}, prediction=(x > 0).astype(int), labels=(x > 0).astype(int)
    )


def prediction(i: int, *, x: float = 0.5, ts: int | None = None, version: str = "1") -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{i}",
            "prediction_id": f"p{i}",
            "model": "m",
            "model_version": version,
            "timestamp": T0 + i * 1000 if ts is None else ts,
            "features": {"x": x},
            "prediction": int(x > 0),
        }
    )


def truth(i: int, label: int, delay_ms: int = 5000) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"t{i}",
            "prediction_id": f"p{i}",
            "timestamp": T0 + i * 1000 + delay_ms,
            "label": label,
        }
    )


def predictions(first: int, n: int) -> list[Msg]:
    return [
        Msg(PRED, i, prediction(i, x=float(np.sin(i))), f"p{i}".encode())
        for i in range(first, first + n)
    ]


@pytest.fixture
def profiles() -> dict[tuple[str, str], ReferenceProfile]:
    return {("m", "1"): profile()}


class Worker(PartitionWorker):
    """Persists every batch at once, as the ingest loop does after sending its outputs."""

    def apply(self, messages, failed_at_ms):  # type: ignore[no-untyped-def]
        result = super().apply(messages, failed_at_ms)
        self.persist(result)
        return result

    def profile_arrived(self, model, version):  # type: ignore[no-untyped-def]
        result = super().profile_arrived(model, version)
        self.persist(result)
        return result


def worker(path: Path, profiles: dict[tuple[str, str], ReferenceProfile]) -> PartitionWorker:
    return Worker(0, PartitionStore(path), lambda m, v: profiles.get((m, v)), SETTINGS)


def features_n(w: PartitionWorker, profiles: dict[tuple[str, str], ReferenceProfile]) -> int:
    return sum(
        PaneSummary.from_bytes(p.summary, profiles[("m", "1")]).n
        for p in w.drain()
        if p.kind == "features"
    )


def test_a_batch_is_folded_into_pane_partials_and_moves_the_marks(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    result = w.apply(predictions(0, 150), T0)
    assert result.predictions == 150
    partials = w.drain()
    assert {p.pane_start_ms for p in partials} == {T0, T0 + MINUTE, T0 + 2 * MINUTE}
    assert sum(PaneSummary.from_bytes(p.summary, profiles[("m", "1")]).n for p in partials) == 150
    assert w.marks.predictions == 150
    assert w.drain() == []  # nothing changed since


def test_an_unpersisted_batch_is_applied_again_after_a_crash(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    plain = PartitionWorker(
        0, PartitionStore(tmp_path / "db"), lambda m, v: profiles.get((m, v)), SETTINGS
    )
    plain.persist(plain.apply(predictions(0, 50), T0))
    plain.apply(predictions(50, 50), T0)  # outputs not yet acknowledged: crash before persist
    plain.store.close()
    again = worker(tmp_path / "db", profiles)
    assert again.marks.predictions == 50
    assert again.apply(predictions(50, 50), T0).predictions == 50
    assert features_n(again, profiles) == 100


def test_replayed_offsets_are_skipped_even_by_a_restarted_worker(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    first = worker(tmp_path / "db", profiles)
    first.apply(predictions(0, 100), T0)
    first.store.close()  # a crash after the write: the marks are durable with the data
    again = worker(tmp_path / "db", profiles)
    # The consumer restarts from an older committed offset and reads 0..149 again.
    result = again.apply(predictions(0, 150), T0)
    assert result.skipped == 100
    assert result.predictions == 50
    assert features_n(again, profiles) == 150  # every partial re-emitted, each event once


def test_invalid_events_become_dead_letters_and_valid_ones_are_counted(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    batch = [
        *predictions(0, 3),
        Msg(PRED, 3, b'{"event_id": "x"}'),
        Msg(PRED, 4, b"\xff"),
        Msg(PRED, 5, prediction(5), b"wrong-key"),
        *predictions(6, 2),
    ]
    result = w.apply(batch, T0)
    assert result.predictions == 5
    assert [(d.source_offset, d.kind) for d in result.dead_letters] == [
        (3, "invalid_event"),
        (4, "malformed_json"),
        (5, "key_mismatch"),
    ]
    letter = result.dead_letters[0]
    assert letter.value == b'{"event_id": "x"}'
    assert letter.source_topic == PRED
    assert "prediction_id" in letter.reason
    assert ("trace", b"abc") in letter.kafka_headers()
    assert w.marks.predictions == 8  # bad events are applied too: to the DLQ


def test_labels_join_in_either_order_into_the_prediction_pane(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    early = [Msg(TRUTH, i, truth(i, 1), f"p{i}".encode()) for i in range(10)]
    assert w.apply(early, T0).joined == 0  # labels wait for their predictions
    result = w.apply(predictions(0, 20), T0)
    assert result.joined == 10
    late = [Msg(TRUTH, 10 + i, truth(i, 0), f"p{i}".encode()) for i in range(10, 20)]
    result = w.apply(late, T0)
    assert result.joined == 10
    assert len(result.labeled) == 10
    record = orjson.loads(result.labeled[0].value)
    assert record["prediction_id"] == "p10"
    assert record["label"] == 0
    assert record["features"] == {"x": pytest.approx(np.sin(10))}
    perf = [p for p in w.drain() if p.kind == "performance"]
    assert [p.pane_start_ms for p in perf] == [T0]  # the pane of the predictions, not labels
    summary = PerformanceSummary.from_bytes(perf[0].summary)
    assert summary.n == 20
    assert summary.mean_label_delay_ms == 5000


def test_predictions_and_labels_in_one_batch_join(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    labels = [Msg(TRUTH, i, truth(i, 1), f"p{i}".encode()) for i in range(30)]
    result = w.apply([*labels[:10], *predictions(0, 30), *labels[10:]], T0)
    assert result.joined == 30
    assert w.store.get_label(b"p5") is None
    assert w.store.get_prediction(b"p5") == (True, b"")  # joined: only the mark stays
    assert w.store.get_prediction(b"p40") is None


def test_duplicates_are_dropped(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    w.apply(predictions(0, 5), T0)
    again = [Msg(PRED, 5 + i, prediction(i), f"p{i}".encode()) for i in range(5)]
    labels = [Msg(TRUTH, i, truth(0, 1), b"p0") for i in range(3)]
    result = w.apply([*again, *labels], T0)
    assert result.duplicates == 5 + 2
    assert result.joined == 1
    assert features_n(w, profiles) == 5


def test_a_version_without_profile_is_held_across_restarts_then_folded(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    held = [Msg(PRED, i, prediction(i, version="2"), f"p{i}".encode()) for i in range(60)]
    result = w.apply(held, T0)
    assert result.waiting_for_profile == 60
    assert w.drain() == []
    w.apply([Msg(TRUTH, 0, truth(3, 1), b"p3")], T0)  # its label waits too
    w.store.close()
    w = worker(tmp_path / "db", profiles)
    assert w.held() == {("m", "2"): 60}
    baseline = w.baseline("m", "2", warmup_events=50)
    assert baseline is not None
    assert baseline.n_rows == 50
    profiles[("m", "2")] = baseline
    result = w.profile_arrived("m", "2")
    assert result.predictions == 60
    assert result.joined == 1
    assert w.held() == {}
    assert (
        sum(
            PaneSummary.from_bytes(p.summary, baseline).n for p in w.drain() if p.kind == "features"
        )
        == 60
    )


def test_no_baseline_before_the_warm_up_is_complete(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    w.apply([Msg(PRED, i, prediction(i, version="3"), f"p{i}".encode()) for i in range(49)], T0)
    assert w.baseline("m", "3", warmup_events=50) is None


def test_expired_predictions_count_as_never_labelled(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    w.apply(predictions(0, 10), T0)
    w.apply([Msg(TRUTH, 0, truth(0, 1), b"p0")], T0)
    week = 7 * 24 * 60 * MINUTE
    w.apply([Msg(PRED, 10, prediction(10, ts=T0 + week + MINUTE), b"p10")], T0)
    assert w.expire() == 9  # p1..p9 never got a label; p0 did
    w.apply([Msg(TRUTH, 1, truth(5, 1), b"p5")], T0)
    assert w.store.get_label(b"p5") is not None  # p5 is gone: its label now waits


def test_events_too_old_for_any_window_are_not_folded(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    w.apply([Msg(PRED, 0, prediction(0, ts=T0 + 60 * MINUTE), b"p0")], T0)
    w.drain()
    result = w.apply([Msg(PRED, 1, prediction(1, ts=T0), b"p1")], T0)
    assert result.too_late == 1
    assert w.drain() == []


def test_the_concept_detector_flags_the_pane_where_errors_jump_and_survives_restarts(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    n = 3000  # 3,000 s of predictions: panes of one minute
    w.apply(predictions(0, n), T0)
    right = [Msg(TRUTH, i, truth(i, int(np.sin(i) > 0)), f"p{i}".encode()) for i in range(1500)]
    wrong = [Msg(TRUTH, i, truth(i, int(np.sin(i) <= 0)), f"p{i}".encode()) for i in range(1500, n)]
    w.apply(right, T0)
    flagged = [p for p in w.drain() if p.concept_drift]
    assert flagged == []  # a model right every time: nothing to detect
    w.store.close()
    w = worker(tmp_path / "db", profiles)  # the detector's state comes back from the store
    w.apply(wrong, T0)
    flagged = [p for p in w.drain() if p.kind == "performance" and p.concept_drift]
    assert flagged, "ADWIN missed a jump from 0 % to 100 % errors"
    first = min(p.pane_start_ms for p in flagged)
    assert T0 + 25 * MINUTE <= first <= T0 + 27 * MINUTE  # errors start at 1,500 s
    w.mark_all_dirty()
    again = {p.pane_start_ms for p in w.drain() if p.concept_drift}
    assert first in again  # the flag is stored, not only remembered


def test_a_label_sent_twice_before_its_prediction_counts_once(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    first = w.apply([Msg(TRUTH, 0, truth(7, 1), b"p7")], T0)
    again = w.apply([Msg(TRUTH, 1, truth(7, 1), b"p7")], T0)
    assert (first.labels, first.duplicates) == (1, 0)
    assert (again.labels, again.duplicates) == (0, 1)


def test_a_catch_up_batch_of_two_models_drops_nothing_as_too_late(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    """One batch spanning 20 minutes (longer than the 12-minute horizon), two models
    interleaved: one model's newer events must not make the other's older ones 'too late'."""
    profiles[("n", "1")] = profiles[("m", "1")].model_copy(update={"model": "n"})
    w = worker(tmp_path / "db", profiles)
    batch = []
    for i in range(1200):
        event = orjson.loads(prediction(i, ts=T0 + i * 1000))
        event["model"] = "m" if i % 2 else "n"
        batch.append(Msg(PRED, i, orjson.dumps(event), f"p{i}".encode()))
    result = w.apply(batch, T0)
    assert result.too_late == 0
    assert result.predictions == 1200


def test_a_joined_example_carries_the_prediction_event_and_the_label(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    w.apply(predictions(0, 3), T0)
    result = w.apply([Msg(TRUTH, 0, truth(2, 1), b"p2")], T0)
    record = orjson.loads(result.labeled[0].value)
    original = orjson.loads(prediction(2, x=float(np.sin(2))))
    assert {k: record[k] for k in original} == original  # every field of the prediction event
    assert (record["label"], record["label_event_id"]) == (1, "t2")
    assert (record["prediction_time"], record["label_time"]) == (T0 + 2000, T0 + 7000)
    again = Worker(
        0, PartitionStore(tmp_path / "again"), lambda m, v: profiles.get((m, v)), SETTINGS
    )
    again.apply(predictions(0, 3), T0)
    replayed = again.apply([Msg(TRUTH, 0, truth(2, 1), b"p2")], T0)
    assert replayed.labeled == result.labeled  # same id, same bytes: consumers drop repeats


def test_expiry_forgets_waiting_labels_and_joined_marks_but_counts_only_the_unlabelled(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    w.apply(predictions(0, 4), T0)
    w.apply([Msg(TRUTH, 0, truth(0, 1), b"p0"), Msg(TRUTH, 1, truth(99, 1), b"p99")], T0)
    assert w.store.get_label(b"p99") is not None
    week = 7 * 24 * 60 * MINUTE
    w.apply([Msg(PRED, 4, prediction(4, ts=T0 + week + 2 * MINUTE), b"p4")], T0)
    assert w.expire() == 3  # p1, p2, p3; p0 was joined
    assert [w.store.get_entry(f"p{i}".encode()) for i in (0, 1, 99)] == [None, None, None]
    assert w.store.get_entry(b"p4") is not None  # not yet a week old
    assert w.expire() == 0  # the expiry records went with their entries


def test_a_store_of_another_format_is_refused_with_its_path(tmp_path: Path) -> None:
    from rocksdict import Options, Rdict

    old = Rdict(str(tmp_path / "old"), Options(raw_mode=True))
    old.put(b"m", b"\x92\x05\x03")  # marks written by a store without a format record
    old.close()
    with pytest.raises(StateStoreError, match="format 1") as caught:
        PartitionStore(tmp_path / "old")
    assert caught.value.path == str(tmp_path / "old")


def test_a_batch_applied_before_the_previous_one_is_written_sees_its_join_entries(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    """The ingest loop applies a poll while the previous poll's outputs are acknowledged."""
    w = PartitionWorker(
        0, PartitionStore(tmp_path / "db"), lambda m, v: profiles.get((m, v)), SETTINGS
    )
    first = w.apply(predictions(0, 5), T0)
    second = w.apply([Msg(TRUTH, i, truth(i, 1), f"p{i}".encode()) for i in range(5)], T0)
    repeats = [Msg(PRED, 5 + i, prediction(i), f"p{i}".encode()) for i in range(5)]
    third = w.apply(repeats, T0)  # repeats of still unwritten predictions
    assert (second.joined, second.labels, third.duplicates) == (5, 5, 5)
    assert w.unpersisted == 3
    assert w.store.get_entry(b"p0") is None  # nothing written yet
    for result in (first, second, third):
        w.persist(result)
    assert w.unpersisted == 0
    assert w.store.get_prediction(b"p0") == (True, b"")


def test_a_crash_before_the_write_replays_both_unwritten_batches(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    lookup = lambda m, v: profiles.get((m, v))  # noqa: E731
    w = PartitionWorker(0, PartitionStore(tmp_path / "db"), lookup, SETTINGS)
    w.apply(predictions(0, 5), T0)
    w.apply([Msg(TRUTH, i, truth(i, 1), f"p{i}".encode()) for i in range(5)], T0)
    w.store.close()  # killed: neither batch was written
    again = Worker(0, PartitionStore(tmp_path / "db"), lookup, SETTINGS)
    assert again.marks.predictions == -1
    again.apply(predictions(0, 5), T0)
    result = again.apply([Msg(TRUTH, i, truth(i, 1), f"p{i}".encode()) for i in range(5)], T0)
    assert result.joined == 5
    assert features_n(again, profiles) == 5


def test_the_closing_watermark_waits_for_the_labels_while_they_flow(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    """A new owner catching up may apply the predictions' backlog before the labels': its
    watermark must not pass labels it has not read, until the ground truth is idle."""
    w = worker(tmp_path / "db", profiles)
    now, idle = 1_000_000, 5_000
    w.apply(predictions(0, 120), now)  # two minutes of predictions, no label read yet
    assert w.watermark_ms == T0 + 119_000
    assert w.closing_watermark(now, idle) == -1
    w.apply([Msg(TRUTH, i, truth(i, 1), f"p{i}".encode()) for i in range(60)], now + 100)
    assert w.closing_watermark(now + 100, idle) == T0 + 59_000 + 5000  # the newest label
    w.apply([Msg(TRUTH, i, truth(i, 1), f"p{i}".encode()) for i in range(60, 120)], now + 200)
    assert w.closing_watermark(now + 200, idle) == T0 + 119_000  # labels ahead: predictions
    w.apply(predictions(120, 60), now + 300)
    assert w.closing_watermark(now + 300, idle) == T0 + 119_000 + 5000
    assert w.closing_watermark(now + 200 + idle, idle) == T0 + 179_000  # ground truth idle


def test_without_ground_truth_the_closing_watermark_follows_the_predictions_after_the_idle_time(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    w = worker(tmp_path / "db", profiles)
    w.apply(predictions(0, 30), 1_000_000)
    assert w.closing_watermark(1_000_000 + 4_999, 5_000) == -1
    assert w.closing_watermark(1_000_000 + 5_000, 5_000) == T0 + 29_000


def test_the_shortcuts_for_the_usual_batches_change_nothing_but_speed(
    tmp_path: Path,
    profiles: dict[tuple[str, str], ReferenceProfile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Store, partials, outputs and counts are the same whether the usual batches (every
    prediction new, every label finding its prediction waiting) skip the loop per event or
    not."""
    offsets = {PRED: iter(range(1000)), TRUTH: iter(range(1000))}

    def pred(i: int, ts: int | None = None) -> Msg:
        value = prediction(i, x=float(np.sin(i)), ts=ts)
        return Msg(PRED, next(offsets[PRED]), value, f"p{i}".encode())

    def label(i: int) -> Msg:
        return Msg(TRUTH, next(offsets[TRUTH]), truth(i, i % 2), f"p{i}".encode())

    batches = [
        [pred(i) for i in range(40)],  # all new: the shortcut
        [pred(i) for i in range(40, 80)] + [label(i) for i in range(30)],  # both shortcuts
        [pred(i) for i in range(70, 90)],  # 70..79 repeat: the loop
        [label(i) for i in range(100, 105)],  # no prediction waits: the loop
        [pred(i) for i in range(100, 110)],  # 100..104 have labels waiting: the loop
        [pred(i, T0 + 130 * MINUTE + i) for i in range(110, 140)],  # a later pane, all new
        [pred(i) for i in range(140, 150)],  # all new, but too late for any window now
        [label(i) for i in range(30, 60)],  # all waiting, decoded from the store
        [label(i) for i in range(55, 65)],  # 55..59 repeat: the loop
        # Predictions and their labels in one batch: the labels join the decoded predictions.
        [pred(i, T0 + 131 * MINUTE + i) for i in range(150, 160)]
        + [label(i) for i in range(150, 160)],
    ]
    all_new: list[bool] = []
    all_waiting: list[bool] = []

    def recorded(name: str, calls: list[bool]) -> Callable[..., bool]:
        shortcut = getattr(join, name)

        def record(*args: Any) -> bool:
            calls.append(shortcut(*args))
            return calls[-1]

        return record

    def apply_with_shortcuts(batch: list[Msg]) -> ApplyResult:
        with monkeypatch.context() as patch:
            patch.setattr(join, "all_new", recorded("all_new", all_new))
            patch.setattr(join, "all_waiting", recorded("all_waiting", all_waiting))
            return fast.apply(batch, 1)

    def apply_without(batch: list[Msg]) -> ApplyResult:
        with monkeypatch.context() as patch:
            patch.setattr(join, "all_new", lambda *args: False)
            patch.setattr(join, "all_waiting", lambda *args: False)
            return general.apply(batch, 1)

    fast = Worker(0, PartitionStore(tmp_path / "fast"), lambda m, v: profiles.get((m, v)), SETTINGS)
    general = Worker(
        0, PartitionStore(tmp_path / "general"), lambda m, v: profiles.get((m, v)), SETTINGS
    )
    totals = {"duplicates": 0, "joined": 0, "too_late": 0}
    for batch in batches:
        a, b = apply_with_shortcuts(batch), apply_without(batch)
        for name in ("predictions", "labels", "joined", "duplicates", "too_late", "skipped"):
            assert getattr(a, name) == getattr(b, name), name
        assert a.labeled == b.labeled
        for name in totals:
            totals[name] += getattr(a, name)
    # Asked only of batches with predictions (resp. labels): batches 0, 1, 2, 4, 5, 6, 9.
    assert all_new == [True, True, False, False, True, True, True]
    # Batches 1, 3, 7, 8, 9.
    assert all_waiting == [True, False, True, False, True]
    assert totals == {"duplicates": 15, "joined": 80, "too_late": 10}
    assert dict(fast.store._scan(b"")) == dict(general.store._scan(b""))
    assert list(fast.store.join_entries()) == list(general.store.join_entries())
    assert len(list(fast.store.join_entries())) > 80
    assert [p.summary for p in fast.drain()] == [p.summary for p in general.drain()]
    assert fast.watermark_ms == general.watermark_ms


def test_a_store_without_its_write_ahead_log_keeps_everything_across_a_clean_close(
    tmp_path: Path, profiles: dict[tuple[str, str], ReferenceProfile]
) -> None:
    """monitor.store_wal=false: closing flushes the memtables, so a restart resumes exactly."""
    path = tmp_path / "p0"
    store = PartitionStore(path, wal=False)
    w = Worker(0, store, lambda m, v: profiles.get((m, v)), SETTINGS)
    w.apply(
        predictions(0, 30) + [Msg(TRUTH, i, truth(i, 1), f"p{i}".encode()) for i in range(10)], 1
    )
    partials = {p.kind: p.summary for p in w.drain()}
    store.close()
    files = {f.name for f in path.iterdir()}
    assert any(name.endswith(".sst") for name in files)  # flushed at close, not in a log
    again = worker(path, profiles)
    assert again.marks == w.marks
    assert {p.kind: p.summary for p in again.drain()} == partials
    result = again.apply(
        [Msg(TRUTH, 10 + i, truth(10 + i, 1), f"p{10 + i}".encode()) for i in range(5)], 1
    )
    assert (result.joined, result.duplicates) == (5, 0)  # the waiting predictions survived
