"""Replay drops and joins what stage 1 drops and joins: the same messy file through
:class:`~driftline.streams.partition.PartitionWorker` (the service's oracle) and ``replay``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from driftline.config import Settings
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.replay import replay
from driftline.replay.run import read_chunks
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.partition import PartitionWorker
from driftline.streams.store import PartitionStore

PRED, TRUTH = "driftline.predictions", "driftline.ground-truth"
T0 = 1_767_225_600_000
SETTINGS = Settings(
    monitor={"max_clock_skew": "36500d"},  # the events' clock is made up
    models={
        "m": {
            "task": "binary",
            "pane": "1m",
            "windows": [{"size": "10m"}],
            "allowed_lateness": "1m",
            "drift": {"min_samples": 10},
        }
    },
)
WINDOW_MS = 600_000


@dataclass
class Msg:
    """What the worker reads of a confluent-kafka message."""

    _topic: str
    _offset: int
    _value: bytes

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return bytes(orjson.loads(self._value)["prediction_id"], "utf-8")

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return []


def profile() -> ReferenceProfile:
    x = np.random.default_rng(0).normal(size=5000)
    return build_profile(
        "m", "1", "binary", {"x": x}, prediction=(x > 0).astype(int), labels=(x > 0).astype(int)
    )


def prediction(i: int, ts: int, *, event: str = "", x: float | None = None) -> bytes:
    value = math.sin(i) if x is None else x
    return orjson.dumps(
        {
            "event_id": event or f"e{i}",
            "prediction_id": f"p{i}",
            "model": "m",
            "model_version": "1",
            "timestamp": ts,
            "features": {"x": value},
            "prediction": int(value > 0),
        }
    )


def truth(i: int, label: int, *, event: str = "") -> bytes:
    return orjson.dumps(
        {
            "event_id": event or f"t{i}",
            "prediction_id": f"p{i}",
            "timestamp": T0 + 4_000_000 + i,  # after every prediction: read once they are
            "label": label,
        }
    )


def messy_files(directory: Path) -> tuple[Path, Path]:
    rows = [prediction(i, T0 + i * 10_000) for i in range(300)]
    rows.insert(250, rows[5])  # a repeated line
    rows.insert(260, rows[17])
    rows.insert(270, prediction(30, T0 + 300_000, event="again", x=-3.0))  # new event_id
    rows.insert(210, prediction(999, T0))  # an hour behind the watermark: too late
    labels = [truth(i, int(math.sin(i) > 0) ^ (i % 7 == 0)) for i in range(0, 300, 2)]
    labels.insert(40, truth(10, 1 - int(math.sin(10) > 0), event="second"))  # a second label
    labels.insert(60, labels[3])  # a repeated line
    labels.append(truth(999, 1))  # for the too-late prediction: waits for it in vain
    predictions, ground_truth = directory / "p.jsonl", directory / "t.jsonl"
    predictions.write_bytes(b"".join(r + b"\n" for r in rows))
    ground_truth.write_bytes(b"".join(r + b"\n" for r in labels))
    return predictions, ground_truth


def test_replay_drops_and_joins_what_stage_one_does(tmp_path: Path) -> None:
    predictions, ground_truth = messy_files(tmp_path)
    profiles = {("m", "1"): profile()}
    chunk = 20
    result = replay(predictions, ground_truth, settings=SETTINGS, references=profiles, chunk=chunk)

    # The service, fed the same chunks of predictions as batches, then the labels.
    worker = PartitionWorker(
        0, PartitionStore(tmp_path / "store"), lambda m, v: profiles.get((m, v)), SETTINGS
    )
    duplicates = too_late = joined = 0
    offsets = {PRED: 0, TRUTH: 0}
    for topic, path in ((PRED, predictions), (TRUTH, ground_truth)):
        for _, lines in read_chunks(path, chunk):
            batch = [Msg(topic, offsets[topic] + i, line) for i, line in enumerate(lines)]
            offsets[topic] += len(lines)
            applied = worker.apply(batch, T0)
            worker.persist(applied)
            duplicates += applied.duplicates
            too_late += applied.too_late
            joined += applied.joined
    events: dict[int, int] = {}
    for partial in worker.drain():
        if partial.kind == "features":
            n = PaneSummary.from_bytes(partial.summary, profiles[("m", "1")]).n
            window = partial.pane_start_ms - partial.pane_start_ms % WINDOW_MS
            events[window] = events.get(window, 0) + n

    assert (too_late, duplicates) == (1, 5)
    assert result.too_late == too_late
    assert result.duplicates + result.duplicate_labels == duplicates
    assert sum(r.n_labels for r in result.reports) == joined == 150
    assert {r.window.start_ms: r.n_events for r in result.reports} == events
