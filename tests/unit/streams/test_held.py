"""Held predictions (a version without a profile) past the join TTL: their index goes with
them, so a later warm-up baseline is built from live predictions only."""

from __future__ import annotations

from pathlib import Path

from driftline.detectors.summary import PaneSummary
from driftline.schemas.reference import ReferenceProfile
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
    truth,
)

WEEK = 7 * 24 * 60 * MINUTE


def worker(path: Path) -> PartitionWorker:
    """A worker that knows no profile at all: every prediction is held."""
    return Worker(0, PartitionStore(path), lambda m, v: None, SETTINGS)


def held(first: int, n: int, *, ts: int, version: str = "2") -> list[Msg]:
    return [
        Msg(PRED, i, prediction(i, version=version, ts=ts + i), f"p{i}".encode())
        for i in range(first, first + n)
    ]


def test_held_predictions_that_expired_leave_no_baseline_behind(tmp_path: Path) -> None:
    """Regression: the held index outlived its predictions, and the baseline read none of
    them back (``IndexError`` in ``profile_from_events``)."""
    w = worker(tmp_path / "db")
    w.apply(held(0, 60, ts=T0), T0)
    assert w.held() == {("m", "2"): 60}
    # Another version's traffic a week later moves the watermark past the join TTL.
    w.apply(held(60, 1, ts=T0 + WEEK + MINUTE, version="9"), T0)
    w.expire()
    assert w.baseline("m", "2", warmup_events=50) is None
    assert w.held() == {("m", "9"): 1}
    w.store.close()
    assert worker(tmp_path / "db").held() == {("m", "9"): 1}  # the store agrees


def test_a_baseline_after_expiry_is_built_from_live_held_predictions_only(
    tmp_path: Path,
) -> None:
    w = worker(tmp_path / "db")
    w.apply(held(0, 30, ts=T0), T0)
    w.apply(held(30, 40, ts=T0 + WEEK + MINUTE), T0)  # the first 30 expire with this
    w.expire()
    assert w.held() == {("m", "2"): 40}
    assert w.baseline("m", "2", warmup_events=50) is None  # 40 live, not 70
    w.apply(held(70, 20, ts=T0 + WEEK + 2 * MINUTE), T0)
    baseline = w.baseline("m", "2", warmup_events=50)
    assert baseline is not None
    assert baseline.n_rows == 50


def test_labels_that_come_after_the_profile_but_before_its_release_lose_no_prediction(
    tmp_path: Path,
) -> None:
    """Regression: once the registry knew a held version's profile, its labels joined the
    held predictions at once, and the release that followed skipped those predictions:
    labels joined, predictions never counted."""
    profiles: dict[tuple[str, str], ReferenceProfile] = {}
    w = Worker(0, PartitionStore(tmp_path / "db"), lambda m, v: profiles.get((m, v)), SETTINGS)
    w.apply(held(0, 60, ts=T0), T0)
    baseline = w.baseline("m", "2", warmup_events=50)
    assert baseline is not None
    profiles[("m", "2")] = baseline  # the registry has it; profile_arrived comes next poll
    w.apply([Msg(TRUTH, i, truth(i, 1), f"p{i}".encode()) for i in range(30)], T0)
    w.apply(held(60, 10, ts=T0 + MINUTE), T0)
    result = w.profile_arrived("m", "2")
    assert result.predictions == 70
    assert result.joined == 30
    assert w.held() == {}
    folded = sum(
        PaneSummary.from_bytes(p.summary, baseline).n for p in w.drain() if p.kind == "features"
    )
    assert folded == 70


def test_a_refused_baseline_dead_letters_every_held_event_once_and_holds_later_ones_anew(
    tmp_path: Path,
) -> None:
    """Issue 15: a warm-up baseline too large to publish. Its version's held predictions, and
    the labels waiting with them, become dead letters from their stored bytes; they leave the
    store only when the batch is written; later predictions are held for another warm-up."""
    w = worker(tmp_path / "db")
    w.apply(held(0, 60, ts=T0), T0)
    w.apply([Msg(TRUTH, i, truth(i, 1), f"p{i}".encode()) for i in range(10)], T0)
    assert w.baseline("m", "2", warmup_events=50) is not None
    result = w.refuse_held("m", "2", "output_too_large", "too large", T0)
    assert w.store.held_versions() == {("m", "2"): 60}  # nothing leaves before the write
    w.persist(result)
    assert w.store.held_versions() == {}
    assert w.held() == {}
    assert {d.kind for d in result.dead_letters} == {"output_too_large"}
    assert {d.reason for d in result.dead_letters} == {"too large"}
    by_source = {(d.source_topic, d.source_offset): d for d in result.dead_letters}
    assert len(by_source) == len(result.dead_letters) == 70
    for i in range(60):
        letter = by_source[(PRED, i)]
        assert (letter.key, letter.value) == (f"p{i}".encode(), held(i, 1, ts=T0)[0].value())
    for i in range(10):
        assert by_source[(TRUTH, i)].value == truth(i, 1)

    w.apply(held(60, 60, ts=T0 + MINUTE), T0)  # the same version keeps coming: held anew
    assert w.held() == {("m", "2"): 60}
    assert w.baseline("m", "2", warmup_events=50) is not None
    again = w.refuse_held("m", "2", "output_too_large", "too large", T0)
    w.persist(again)
    assert sorted(d.source_offset for d in again.dead_letters) == list(range(60, 120))
    assert w.held() == {}
    assert w.refuse_held("m", "2", "output_too_large", "too large", T0).dead_letters == []
