"""Containment in stage 1: an event that fails to apply is dead-lettered, the rest counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from driftline.config import Settings
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.errors import StateStoreError, StatisticsError
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.containment import contain
from driftline.streams.partition import PartitionWorker
from driftline.streams.result import ApplyResult
from driftline.streams.store import PartitionStore
from tests.unit.streams.test_partition import PRED, T0, TRUTH, Msg

SETTINGS = Settings(
    models={
        "r": {
            "task": "regression",
            "pane": "1m",
            "windows": [{"size": "10m"}],
            "allowed_lateness": "1m",
        }
    }
)


def regression_profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    return build_profile("r", "1", "regression", {"x": x}, prediction=2 * x, labels=2 * x)


def prediction(i: int, value: float = 1.0) -> Msg:
    body = {
        "event_id": f"e{i}",
        "prediction_id": f"p{i}",
        "model": "r",
        "model_version": "1",
        "timestamp": T0 + i * 1000,
        "features": {"x": 0.5},
        "prediction": value,
    }
    return Msg(PRED, i, orjson.dumps(body), f"p{i}".encode())


def label(offset: int, i: int, value: float = 1.5) -> Msg:
    body = {"event_id": f"t{i}", "prediction_id": f"p{i}", "timestamp": T0 + i * 1000 + 10}
    return Msg(TRUTH, offset, orjson.dumps({**body, "label": value}), f"p{i}".encode())


class Loop:
    """The ingest loop's part in containment, without Kafka: outputs are 'acknowledged' at
    once, and a batch is written at the next settle, as :class:`Delivery` does."""

    def __init__(self, worker: PartitionWorker) -> None:
        self.worker = worker
        self.pending: list[ApplyResult] = []
        self.results: list[ApplyResult] = []

    def queue(self, worker: PartitionWorker, result: ApplyResult) -> None:
        self.pending.append(result)
        self.results.append(result)

    def settle(self) -> None:
        for result in self.pending:
            self.worker.persist(result)
        self.pending.clear()

    def apply(self, messages: list[Msg]) -> None:
        """Apply a batch as :meth:`Ingest.run_once` does, then settle."""
        preds = [m for m in messages if m.topic() == PRED]
        truths = [m for m in messages if m.topic() == TRUTH]
        try:
            self.queue(self.worker, self.worker.apply_split(preds, truths, T0))
        except Exception as exc:
            contain(
                self.worker,
                preds,
                truths,
                T0,
                exc,
                settle=self.settle,
                queue=self.queue,
                sleep=lambda _: None,
            )
        self.settle()

    def count(self, name: str) -> int:
        return sum(getattr(result, name) for result in self.results)

    def letters(self) -> list[tuple[str, int, str]]:
        return [
            (letter.source_topic, letter.source_offset, letter.kind)
            for result in self.results
            for letter in result.dead_letters
        ]


@pytest.fixture
def loop(tmp_path: Path) -> Loop:
    profile = regression_profile()
    store = PartitionStore(tmp_path / "db")
    return Loop(PartitionWorker(0, store, lambda m, v: profile if m == "r" else None, SETTINGS))


def performance_n(worker: PartitionWorker) -> int:
    return sum(
        PerformanceSummary.from_bytes(p.summary).n
        for p in worker.drain()
        if p.kind == "performance"
    )


def test_a_regression_label_whose_square_overflows_is_dead_lettered_and_the_rest_counted(
    loop: Loop,
) -> None:
    # Before containment, apply raised (exact_sum takes finite values only) and every
    # restart raised again on the same offsets.
    loop.apply([prediction(i) for i in range(20)])
    loop.apply([label(i, i, 1e300 if i == 7 else 1.5) for i in range(20)])
    assert loop.letters() == [(TRUTH, 7, "processing_error")]
    letter = next(d for r in loop.results for d in r.dead_letters)
    assert letter.reason.startswith("StatisticsError: regression labels must be at most")
    assert loop.count("joined") == 19
    assert loop.worker.marks.ground_truth == 20  # past every label, the bad one included
    assert loop.worker.store.marks().ground_truth == 20
    assert performance_n(loop.worker) == 19
    # The stream goes on: later labels join as usual.
    loop.apply([prediction(i) for i in range(20, 30)])
    loop.apply([label(20 + i, 20 + i) for i in range(10)])
    assert loop.count("joined") == 29


def test_a_regression_prediction_too_large_is_dead_lettered_itself(loop: Loop) -> None:
    batch = [prediction(i, 1e300 if i == 3 else 1.0) for i in range(10)]
    loop.apply(batch)
    assert loop.letters() == [(PRED, 3, "processing_error")]
    assert loop.count("predictions") == 9
    features = sum(
        PaneSummary.from_bytes(p.summary, regression_profile()).n
        for p in loop.worker.drain()
        if p.kind == "features"
    )
    assert features == 9  # nothing of the failed first attempt is left in the summaries
    loop.apply([label(i, i) for i in range(10)])
    assert loop.count("joined") == 9
    assert loop.letters() == [(PRED, 3, "processing_error")]


def test_any_failure_of_one_event_is_contained_not_only_overflow(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    fold = PaneSummary.fold_events

    def fails_on_p5(self: PaneSummary, events: list) -> None:  # type: ignore[type-arg]
        fold(self, events)  # the summary changed before the failure: reset must undo it
        if any(event.prediction_id == "p5" for event in events):
            raise KeyError("something unforeseen")

    monkeypatch.setattr(PaneSummary, "fold_events", fails_on_p5)
    loop.apply([prediction(i) for i in range(10)])
    loop.apply([prediction(i) for i in range(10, 20)])
    assert loop.letters() == [(PRED, 5, "processing_error")]
    assert loop.count("predictions") == 19
    features = sum(
        PaneSummary.from_bytes(p.summary, regression_profile()).n
        for p in loop.worker.drain()
        if p.kind == "features"
    )
    assert features == 19
    letter = next(d for r in loop.results for d in r.dead_letters)
    assert letter.reason == "KeyError: 'something unforeseen'"


def test_a_failure_of_the_store_is_retried_then_stops_with_the_store_named(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: PartitionStore, ids: list[bytes]) -> list[bytes | None]:
        raise Exception("IO error: No space left on device")  # what rocksdict raises

    monkeypatch.setattr(PartitionStore, "get_entries", broken)
    with pytest.raises(StateStoreError, match="No space left") as caught:
        loop.apply([prediction(i) for i in range(3)])
    assert caught.value.path == str(loop.worker.store.path)
    assert loop.letters() == []  # not the events' fault: none dead-lettered
    assert loop.worker.store.marks().predictions == -1


def test_the_check_rejects_what_the_square_sums_cannot_take() -> None:
    from driftline.detectors.regression import RegressionSums

    sums = RegressionSums()
    with pytest.raises(StatisticsError, match="at most"):
        sums.fold([1.0, 1e300], [1.0, 1.0])
    assert sums.n == 0  # nothing folded by the failed call
    sums.fold([1.0, 2.0**500], [1.0, -(2.0**500)])
    assert sums.n == 2


def test_a_held_regression_prediction_too_large_is_dead_lettered_when_the_profile_comes(
    tmp_path: Path,
) -> None:
    # Held, it was never checked: before, folding the release raised, and again after
    # every restart (the registry replays the profile, the prediction is still held).
    profiles: dict[tuple[str, str], ReferenceProfile] = {}
    w = PartitionWorker(
        0, PartitionStore(tmp_path / "db"), lambda m, v: profiles.get((m, v)), SETTINGS
    )
    w.persist(w.apply_split([prediction(i, 1e300 if i == 4 else 1.0) for i in range(8)], [], T0))
    w.persist(w.apply_split([], [label(0, 4), label(1, 5)], T0))  # wait with their predictions
    assert w.held() == {("r", "1"): 8}
    profiles[("r", "1")] = regression_profile()
    result = w.profile_arrived("r", "1", T0)
    w.persist(result)
    assert [(d.source_offset, d.key, d.kind) for d in result.dead_letters] == [
        (4, b"p4", "processing_error")
    ]
    assert result.dead_letters[0].value == prediction(4, 1e300).value()
    assert result.predictions == 7
    assert result.joined == 1  # p5's label; p4's is forgotten with it
    assert w.held() == {}
    assert w.store.get_entry(b"p4") is None
