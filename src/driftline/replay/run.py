"""The replay loop: both files read in chunks, deduplicated, joined and folded as stage 1 would.

Predictions are read in chunks of ``chunk`` lines and decoded in one call each, under the
configured limits (``monitor.limits``), as ingest decodes them. The labels file is read
alongside, a chunk at a time while its newest event time is not ahead of the predictions'
watermark, so labels meet their predictions about where the service would see them.

Like stage 1 (:mod:`driftline.streams.join`, :mod:`driftline.streams.partition`):

* a prediction whose ``prediction_id`` is known already (waiting or joined, within the join
  TTL), or repeated in its chunk, is a duplicate; so is a label whose prediction has its
  label, or whose id has a label waiting: the service deduplicates on the join key, the
  ``prediction_id`` (a repeated ``event_id`` with a new ``prediction_id`` is a new event);
* a prediction older than the watermark (as the chunk began) minus its version's horizon
  (longest window + allowed lateness + pane) is too late and dropped: that horizon is the
  disorder replay accepts, as the service does;
* the join keeps entries for the join TTL in event time, on disk (:mod:`.join`).

What a version does with its events is :mod:`.version`'s.
"""

from __future__ import annotations

import gc
import operator
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np

from driftline.config import Settings
from driftline.detectors.engine import WindowReport
from driftline.errors import DecodeError, ReplayError
from driftline.replay.join import (
    JOINED,
    LABEL,
    PENDING,
    WARMUP,
    JoinStore,
    Waiting,
    label_entry,
    marked,
    pending_entries,
    pending_entry,
    read_label,
    read_pending,
    read_pendings,
)
from driftline.replay.version import VersionReplay
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import (
    EventDecoder,
    WireGroundTruth,
    WirePrediction,
    decode_ground_truth,
    decode_prediction,
    event_time_ms,
)

CHUNK = 10_000
"""Lines read and decoded at a time."""
SAMPLES = 100
"""Invalid lines kept with their reason (all are counted)."""
_MS = timedelta(milliseconds=1)
_FAR = 2**62
_SEEN = b"S"
_VERSION = operator.attrgetter("model", "model_version")


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line of an input file that is not a valid event, and why."""

    path: str
    line: int
    reason: str


@dataclass
class ReplayResult:
    """The reports of every judged window, in order, and what was dropped on the way."""

    reports: list[WindowReport] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    """The first :data:`SAMPLES` invalid lines (``invalid`` counts them all)."""
    baselined: dict[tuple[str, str], int] = field(default_factory=dict)
    unlabelled: int = 0
    """Predictions folded that no label joined."""
    invalid: int = 0
    """Lines of either file that are not a valid event."""
    duplicates: int = 0
    """Predictions whose ``prediction_id`` was known already."""
    duplicate_labels: int = 0
    """Labels whose prediction had its label already, or whose id had one waiting."""
    too_late: int = 0
    """Predictions older than the watermark minus their version's horizon."""
    labels_let_go: int = 0
    """Labels joined after their prediction's pane was let go (``label_wait`` < the TTL)."""


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-empty lines of a JSON-lines file, numbered from 1."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped:
                yield number, stripped


def read_chunks(path: Path, chunk: int) -> Iterator[tuple[list[int], list[bytes]]]:
    """The non-empty lines of a file, about ``chunk`` at a time, with their numbers."""
    with path.open("rb") as handle:
        first = 1
        while raw := handle.readlines(chunk * 256):
            lines = [line.strip() for line in raw]
            if all(lines):
                numbers = list(range(first, first + len(lines)))
            else:
                numbers = [first + i for i, line in enumerate(lines) if line]
                lines = [line for line in lines if line]
            first += len(raw)
            if lines:
                yield numbers, lines


def _ms(ts: datetime | int) -> int:
    return ts if type(ts) is int else event_time_ms(ts)


class _Replay:
    """One replay's state: the join, the versions, the watermark, the counts."""

    def __init__(
        self,
        settings: Settings,
        references: Mapping[tuple[str, str], ReferenceProfile],
        warmup: int | None,
        label_wait_ms: int,
        join: JoinStore,
        ground_truth: Path | None,
        chunk: int,
    ) -> None:
        self.settings, self.references, self.warmup = settings, references, warmup
        self.label_wait_ms, self.join, self.ground_truth = label_wait_ms, join, ground_truth
        self.chunk = chunk
        self.decoder = EventDecoder(settings.monitor.limits.limits())
        self.versions: list[VersionReplay] = []
        self.index: dict[tuple[str, str], int] = {}
        self.watermark = -1
        self._label_chunks: Iterator[tuple[list[int], list[bytes]]] = (
            iter(()) if ground_truth is None else read_chunks(ground_truth, chunk)
        )
        self._ahead: tuple[list[WireGroundTruth], list[int]] | None = None
        self.result = ReplayResult()
        self.valid = {"predictions": 0, "labels": 0}
        self.lines = {"predictions": 0, "labels": 0}

    def version(self, model: str, name: str) -> int:
        key = (model, name)
        index = self.index.get(key)
        if index is None:
            index = self.index[key] = len(self.versions)
            self.versions.append(
                VersionReplay(
                    model,
                    name,
                    self.settings,
                    self.references.get(key),
                    self.warmup,
                    self.label_wait_ms,
                )
            )
        return index

    def _valid(self, path: Path, kind: str, numbers: list[int], decoded: list[Any]) -> list[int]:
        """Rows of ``decoded`` that are events; the others are counted and sampled."""
        self.lines[kind] += len(numbers)
        if DecodeError not in set(map(type, decoded)):
            self.valid[kind] += len(decoded)
            return list(range(len(decoded)))
        rows = []
        for row, (number, event) in enumerate(zip(numbers, decoded, strict=True)):
            if isinstance(event, DecodeError):
                self.result.invalid += 1
                if len(self.result.rejected) < SAMPLES:
                    self.result.rejected.append(Rejected(str(path), number, event.reason))
            else:
                rows.append(row)
        self.valid[kind] += len(rows)
        return rows

    # --- predictions --------------------------------------------------------------------

    def predictions(self, path: Path, numbers: list[int], lines: list[bytes]) -> None:
        decoded = self.decoder.predictions(lines, [None] * len(lines))
        rows = self._valid(path, "predictions", numbers, decoded)
        events: list[WirePrediction] = [decoded[i] for i in rows]  # type: ignore[misc]
        seqs = [numbers[i] for i in rows]
        if not events:
            return
        times = [_ms(e.timestamp) for e in events]
        ids = [e.prediction_id.encode() for e in events]
        entries = self.join.get(ids, watermark_ms=self.watermark)
        late_before = self.watermark
        versions = set(map(_VERSION, events))
        if len(versions) == 1 and not any(entries) and len(set(ids)) == len(ids):
            # The usual chunk: one version, every id new and once; on time, no loop.
            index = self.version(*versions.pop())
            version = self.versions[index]
            if min(times) >= late_before - version.horizon_ms:
                payloads = [
                    (e.prediction, e.scores, e.segments) if e.segments else (e.prediction, e.scores)
                    for e in events
                ]
                self.join.write(
                    zip(ids, pending_entries(times, seqs, index, payloads), strict=True)
                )
                self.watermark = max(self.watermark, max(times))
                version.predictions(events, times, seqs)
                return
        seen: dict[bytes, bytes] = {}
        writes: list[tuple[bytes, bytes]] = []
        accepted: dict[int, tuple[list[WirePrediction], list[int], list[int]]] = {}
        joined: dict[int, list[tuple[WirePrediction, int, int, Any, int]]] = {}
        result = self.result
        for event, at, seq, pid, entry in zip(events, times, seqs, ids, entries, strict=True):
            entry = seen.get(pid, entry)
            tag = None if entry is None else entry[:1]
            if tag in (PENDING, JOINED, WARMUP, _SEEN):
                result.duplicates += 1
                continue
            seen[pid] = _SEEN
            index = self.version(event.model, event.model_version)
            if at < late_before - self.versions[index].horizon_ms:
                result.too_late += 1  # a label waiting for it goes on waiting
                continue
            if tag == LABEL:
                assert entry is not None
                waiting = read_label(entry)
                writes.append((pid, marked(JOINED, at)))
                joined.setdefault(index, []).append(
                    (event, at, seq, waiting.label, waiting.time_ms)
                )
            else:
                waiting_for = Waiting(
                    at, seq, index, event.prediction, event.scores, event.segments
                )
                writes.append((pid, pending_entry(waiting_for)))
            group = accepted.setdefault(index, ([], [], []))
            group[0].append(event)
            group[1].append(at)
            group[2].append(seq)
            if at > self.watermark:
                self.watermark = at
        self.join.write(writes)
        for index, (group_events, group_times, group_seqs) in accepted.items():
            self.versions[index].predictions(group_events, group_times, group_seqs)
        for index, pairs in joined.items():
            version = self.versions[index]
            if not version.started:
                for event, _, _, label, label_at in pairs:
                    version.hold_pair(event.prediction_id, _truth(event, label, label_at))
                continue
            version.pairs(
                [p[1] for p in pairs],
                [p[3] for p in pairs],
                [p[0].prediction for p in pairs],
                [p[0].scores for p in pairs],
                [p[4] for p in pairs],
                [p[0].segments for p in pairs],
            )

    # --- labels -------------------------------------------------------------------------

    def feed_labels(self, until_ms: int) -> None:
        """Apply the labels of the file, in file order, up to the first one dated after
        ``until_ms`` (the predictions' watermark; at the end, every one): a label applied
        before its prediction only waits for it, at a cost."""
        while True:
            if self._ahead is None:
                batch = next(self._label_chunks, None)
                if batch is None:
                    return
                assert self.ground_truth is not None
                decoded = self.decoder.ground_truths(batch[1], [None] * len(batch[1]))
                rows = self._valid(self.ground_truth, "labels", batch[0], decoded)
                truths: list[WireGroundTruth] = [decoded[i] for i in rows]  # type: ignore[misc]
                self._ahead = truths, [_ms(t.timestamp) for t in truths]
            truths, times = self._ahead
            later = np.flatnonzero(np.array(times, dtype=np.int64) > until_ms)
            cut = int(later[0]) if len(later) else len(times)
            if cut:
                self.labels(truths[:cut], times[:cut])
            if cut < len(times):
                self._ahead = truths[cut:], times[cut:]
                return
            self._ahead = None

    def labels(self, truths: list[WireGroundTruth], times: list[int]) -> None:
        """Join a run of labels (in file order) with their predictions, or let them wait."""
        ids = [t.prediction_id.encode() for t in truths]
        entries = self.join.get(ids, watermark_ms=self.watermark)
        writes: list[tuple[bytes, bytes]] = []
        matched: dict[int, list[tuple[Waiting, Any, int]]] = {}
        if len(set(ids)) == len(ids) and all(entry and entry[:1] == PENDING for entry in entries):
            # The usual run: every label finds its prediction waiting, once; no loop.
            self._join_all(truths, times, ids, cast(list[bytes], entries))
            return
        self._sort_labels(truths, times, ids, entries, writes, matched)
        self.join.write(writes)
        for index, rows in matched.items():
            version = self.versions[index]
            if not version.started:
                for _, truth, _ in rows:
                    version.hold_pair(truth.prediction_id, truth)
                continue
            version.pairs(
                [w.time_ms for w, _, _ in rows],
                [t.label for _, t, _ in rows],
                [w.prediction for w, _, _ in rows],
                [w.scores for w, _, _ in rows],
                [at for _, _, at in rows],
                [w.segments for w, _, _ in rows],
            )

    def _join_all(
        self,
        truths: list[WireGroundTruth],
        times: list[int],
        ids: list[bytes],
        entries: list[bytes],
    ) -> None:
        """Join labels that all find their prediction waiting."""
        heads, payloads = read_pendings(entries)
        predicted_at = heads["time"].tolist()
        self.join.write(zip(ids, [marked(JOINED, at) for at in predicted_at], strict=True))
        versions = heads["version"]
        for index in np.unique(versions).tolist():
            rows = np.flatnonzero(versions == index).tolist()
            version = self.versions[index]
            if not version.started:
                for row in rows:
                    version.hold_pair(truths[row].prediction_id, truths[row])
                continue
            version.pairs(
                [predicted_at[i] for i in rows],
                [truths[i].label for i in rows],
                [payloads[i][0] for i in rows],
                [payloads[i][1] for i in rows],
                [times[i] for i in rows],
                [payloads[i][2] if len(payloads[i]) > 2 else None for i in rows],
            )

    def _sort_labels(
        self,
        truths: list[WireGroundTruth],
        times: list[int],
        ids: list[bytes],
        entries: list[bytes | None],
        writes: list[tuple[bytes, bytes]],
        matched: dict[int, list[tuple[Waiting, Any, int]]],
    ) -> None:
        """The labels of a chunk one by one: duplicates, labels that wait, pairs."""
        seen: dict[bytes, bytes] = {}
        for truth, at, pid, entry in zip(truths, times, ids, entries, strict=True):
            entry = seen.get(pid, entry)
            tag = None if entry is None else entry[:1]
            if tag in (JOINED, LABEL):
                self.result.duplicate_labels += 1
                continue
            if entry is None:
                seen[pid] = waiting = label_entry(at, truth.label)
                writes.append((pid, waiting))
                continue
            if tag == WARMUP:  # its prediction built the baseline: the label did too
                seen[pid] = JOINED
                writes.append((pid, marked(JOINED, at)))
                continue
            prediction = read_pending(entry)
            seen[pid] = JOINED
            writes.append((pid, marked(JOINED, prediction.time_ms)))
            matched.setdefault(prediction.version, []).append((prediction, truth, at))

    # --- warm-ups and windows -----------------------------------------------------------

    def settle(self, version: VersionReplay) -> None:
        warm, events, times, seqs, labels = version.settle_warmup(self._scan_labels)
        self.join.write(
            (pid.encode(), marked(WARMUP, self.watermark)) for pid in warm if pid not in labels
        )
        version.predictions(events, times, seqs)
        rows = [i for i, e in enumerate(events) if e.prediction_id in labels]
        if rows:
            truths = [labels[events[i].prediction_id] for i in rows]
            version.pairs(
                [times[i] for i in rows],
                [t.label for t in truths],
                [events[i].prediction for i in rows],
                [events[i].scores for i in rows],
                [_ms(t.timestamp) for t in truths],
                [events[i].segments for i in rows],
            )

    def _scan_labels(self, missing: set[str]) -> dict[str, WireGroundTruth]:
        """The first label in the labels file of each warm-up prediction in ``missing``."""
        found: dict[str, WireGroundTruth] = {}
        if self.ground_truth is None:
            return found
        for _, lines in read_chunks(self.ground_truth, self.chunk):
            for truth in self.decoder.ground_truths(lines, [None] * len(lines)):
                if isinstance(truth, WireGroundTruth) and truth.prediction_id in missing:
                    found.setdefault(truth.prediction_id, truth)
        return found

    def close(self, watermark: int) -> None:
        for version in self.versions:
            if not version.started and (watermark == _FAR or version.warmup_due(watermark)):
                self.settle(version)
            self.result.reports.extend(version.close(watermark))

    def entirely_invalid(self, path: Path, kind: str) -> None:
        """Refuse a file none of whose lines is an event of its kind, saying which it holds."""
        if self.lines[kind] == 0 or self.valid[kind] > 0:
            return
        first = self.result.rejected[0] if self.result.rejected else None
        other, option = (
            (decode_ground_truth, "ground-truth events: pass it with --ground-truth")
            if kind == "predictions"
            else (decode_prediction, "prediction events: pass it as the predictions file")
        )
        hint = ""
        for _, line in read_lines(path):
            try:
                other(line)
            except DecodeError:
                pass
            else:
                hint = f"; it holds {option}"
            break
        raise ReplayError(
            f"{path}: none of its {self.lines[kind]} lines is a valid "
            f"{'PredictionEvent' if kind == 'predictions' else 'GroundTruthEvent'}"
            + ("" if first is None else f" (line {first.line}: {first.reason})")
            + hint
        )


def _truth(event: WirePrediction, label: Any, at: int) -> WireGroundTruth:
    return WireGroundTruth("replay", event.prediction_id, at, label)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Fewer cyclic garbage collections while the loop runs: it allocates a few container
    objects per event (feature and score dicts), none in a cycle, and the default thresholds
    collect every 700 of them, rescanning what the imports left (about 10 % of the time)."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def replay(
    predictions: Path,
    ground_truth: Path | None = None,
    *,
    settings: Settings | None = None,
    references: Mapping[tuple[str, str], ReferenceProfile] | None = None,
    warmup_events: int | None = None,
    label_wait: timedelta | None = None,
    chunk: int = CHUNK,
    workdir: Path | None = None,
) -> ReplayResult:
    """Judge every window of every model version found in ``predictions``.

    ``references`` maps (model, version) to a profile; a version without one is baselined on
    its first ``warmup_events`` events (default: its configuration's ``warmup_events``).
    ``label_wait`` (default: the join TTL) is how long in event time a window waits for its
    labels before it is judged; a shorter one holds fewer panes in memory and restates a
    window a label joins later. The join's entries go to a temporary directory under
    ``workdir`` (default: the system's).
    """
    settings = settings or Settings()
    ttl_ms = settings.monitor.join_ttl // _MS
    wait_ms = ttl_ms if label_wait is None else min(label_wait // _MS, ttl_ms)
    with _fewer_collections(), JoinStore(ttl_ms, workdir) as join:
        run = _Replay(settings, references or {}, warmup_events, wait_ms, join, ground_truth, chunk)
        for numbers, lines in read_chunks(predictions, chunk):
            run.predictions(predictions, numbers, lines)
            run.feed_labels(run.watermark)
            run.close(run.watermark)
        run.entirely_invalid(predictions, "predictions")
        run.feed_labels(_FAR)
        if ground_truth is not None:
            run.entirely_invalid(ground_truth, "labels")
        run.close(_FAR)
    result = run.result
    for version in run.versions:
        if version.baselined:
            result.baselined[(version.model, version.version)] = version.baselined
        result.unlabelled += version.unlabelled
        result.labels_let_go += version.labels_let_go
    result.reports.sort(key=lambda r: (r.window.end_ms, r.model, r.version, r.window.label))
    return result
