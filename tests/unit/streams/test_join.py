"""The join's rules for one batch, without a worker: duplicates, waiting, matching."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import orjson

from driftline.schemas.wire import (
    WireGroundTruth,
    WirePrediction,
    decode_ground_truths,
    decode_predictions,
)
from driftline.streams.entries import JOINED, LABEL, PENDING, waiting_entry
from driftline.streams.intake import Columns
from driftline.streams.join import JoinEntries, admit, join_predictions, match
from driftline.streams.result import ApplyResult
from driftline.streams.store import PartitionStore


def predictions(*specs: tuple[str, str]) -> Columns[WirePrediction]:
    """Prediction columns of (id, version) pairs, at offsets 0, 1, ..."""
    values = [
        orjson.dumps(
            {
                "event_id": f"e{i}",
                "prediction_id": pid,
                "model": "m",
                "model_version": version,
                "timestamp": 1000 + i,
                "features": {},
                "prediction": 1,
            }
        )
        for i, (pid, version) in enumerate(specs)
    ]
    ids = [pid.encode() for pid, _ in specs]
    events = cast(list[WirePrediction], decode_predictions(values, ids))  # all valid
    return Columns(events, values, ids, list(range(len(specs))))


def labels(*ids: str) -> Columns[WireGroundTruth]:
    values = [
        orjson.dumps({"event_id": f"t{i}", "prediction_id": pid, "timestamp": 9, "label": 1})
        for i, pid in enumerate(ids)
    ]
    keys = [pid.encode() for pid in ids]
    events = cast(list[WireGroundTruth], decode_ground_truths(values, keys))  # all valid
    return Columns(events, values, keys, list(range(len(ids))))


def test_admit_drops_known_and_repeated_ids_and_groups_by_first_appearance(
    tmp_path: Path,
) -> None:
    store = PartitionStore(tmp_path / "p0")
    work = JoinEntries(store).read([b"a", b"b", b"c", b"d"], remember=False)
    work.entries[b"a"] = JOINED  # known: a duplicate
    work.entries[b"b"] = waiting_entry(LABEL, 7, b"{}")  # its label waits: new
    result = ApplyResult()
    batch = predictions(("a", "1"), ("b", "2"), ("c", "1"), ("c", "1"), ("d", "2"))
    admitted = admit(batch, work, result)
    assert result.duplicates == 2  # a, and the second c
    assert [(version, arrivals.ids) for version, arrivals in admitted] == [
        (("m", "2"), [b"b", b"d"]),
        (("m", "1"), [b"c"]),
    ]
    assert admitted[0][1].labels == [waiting_entry(LABEL, 7, b"{}"), None]
    store.close()


def test_new_predictions_wait_or_join_and_the_too_late_ones_leave_their_label_waiting(
    tmp_path: Path,
) -> None:
    store = PartitionStore(tmp_path / "p0")
    work = JoinEntries(store).read([b"a", b"b", b"c"], remember=True)
    label = waiting_entry(LABEL, 3, labels("b").values[0])
    work.entries[b"b"] = label
    ((_, arrivals),) = admit(predictions(("a", "1"), ("b", "1"), ("c", "1")), work, ApplyResult())
    times = np.array([500, 1001, 1002], dtype=np.int64)  # a is too late
    result = ApplyResult()
    kept, kept_times, pairs = join_predictions(arrivals, times, 1000, store.batch(), result, work)
    assert ([e.prediction_id for e in kept], kept_times.tolist()) == (["b", "c"], [1001, 1002])
    assert result.too_late == 1
    assert work.entries[b"a"] is None  # nothing of a is kept
    assert work.entries[b"b"] == JOINED
    assert (work.entries[b"c"] or b"")[:1] == PENDING
    assert [(p[0].prediction_id, p[1].event_id, p[3], p[4]) for p in pairs] == [("b", "t0", 1, 3)]
    assert work.new_predictions == [b"b", b"c"]
    assert set(work.events) == {b"b", b"c"}  # kept decoded for labels later in the batch
    store.close()


def test_labels_match_waiting_predictions_wait_for_absent_ones_and_repeat_as_duplicates(
    tmp_path: Path,
) -> None:
    store = PartitionStore(tmp_path / "p0")
    work = JoinEntries(store).read([b"a", b"b", b"c"], remember=False)
    stored = predictions(("a", "1")).values[0]
    work.entries[b"a"] = waiting_entry(PENDING, 11, stored)
    work.entries[b"c"] = JOINED
    result = ApplyResult()
    matched = match(labels("a", "b", "c", "a"), store.batch(), result, work)
    assert matched.ids == [b"a"]
    assert (matched.prediction_offsets, matched.prediction_values) == ([11], [stored])
    assert matched.predictions[0].prediction_id == "a"
    assert (result.labels, result.duplicates) == (1, 2)  # b waits; c joined; a repeated
    assert (work.entries[b"b"] or b"")[:1] == LABEL
    assert work.new_labels == [b"b"]
    store.close()
