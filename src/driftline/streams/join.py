"""The join of predictions and labels by prediction id, in one partition of stage 1.

The store's join family (:mod:`driftline.streams.store`) keeps one entry per prediction id:
``PENDING`` (a prediction waiting for its label, with its offset and bytes; ``COMPACT``
instead, without its bytes, for a model that makes no joined examples), ``LABEL`` (a
label waiting for its prediction, likewise) or ``JOINED`` (kept until the TTL, so that
repeats are recognised). This module owns the rules over those entries, one batch at a time:

* :class:`JoinEntries` reads a batch's entries in one multi-get, as the store and the batches
  applied but not yet written leave them, into a :class:`JoinWork`;
* :func:`admit` keeps the batch's new predictions (a known id, or one repeated in the batch,
  is a duplicate), by version;
* :func:`join_predictions` sets aside the new predictions too late for any window, and lets
  the others wait for their label or join the label that waited for them;
* :func:`match` finds the batch's labels whose prediction waits (the others wait, or are
  duplicates), and :func:`join_labels` joins them;
* :func:`expire_entries` forgets the entries past the join TTL.

Predictions of a version without a profile, and labels that find one of them, are held
instead (:mod:`driftline.streams.held`).

There is one path for predictions and one for labels. Each step works column by column and
loops only over the events that need it (too late, a label waiting, a repeat). Two checks
recognise the usual batches: :func:`all_new` (every prediction new, once) and
:func:`all_waiting` (every label finds its prediction waiting, once). For those,
:func:`admit` and :func:`match` skip the loop that sorts events out, which is then the only
Python loop per event left on the usual path; skipping it measurably speeds stage 1 up, and
gives what the loop would. ``tests/unit/streams/test_partition.py`` applies the same batches
with and without the checks and compares store, partials and outputs.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import NamedTuple, cast

import numpy as np
from numpy.typing import NDArray

from driftline.schemas.wire import (
    StoredPrediction,
    WireGroundTruth,
    WirePrediction,
    decode_ground_truth,
    event_time_ms,
)
from driftline.streams.entries import (
    COMPACT,
    JOINED,
    LABEL,
    PENDING,
    WAITING_PREDICTION,
    CompactCodec,
    Interned,
    decode_waiting,
    split_entry,
    waiting_entries,
    waiting_entry,
)
from driftline.streams.intake import Columns
from driftline.streams.result import ApplyResult
from driftline.streams.store import PartitionStore, StoreBatch

_VERSION = operator.attrgetter("model", "model_version")
"""(model, version) of an event."""
_FIRST_BYTE = operator.itemgetter(0)
_SEEN = b"S"
"""In-batch marker of a prediction id already handled (never written to the store)."""

Pair = tuple["WirePrediction | StoredPrediction", WireGroundTruth, bytes, int, int]
"""A joined pair: (prediction, label, the prediction's bytes, the input offsets of both)."""


@dataclass
class JoinWork:
    """What one batch knows beyond the store: the join entries as they stand after each
    event (read for all of the batch's ids in one multi-get), the predictions it decoded,
    and the ids it added, for the expiry index."""

    entries: dict[bytes, bytes | None]
    codec: CompactCodec
    remember: bool = False
    """Whether the batch has labels too: then its predictions are kept decoded for them."""
    events: dict[bytes, WirePrediction] = field(default_factory=dict)
    new_predictions: list[bytes] = field(default_factory=list)
    new_labels: list[bytes] = field(default_factory=list)
    held_labels: list[bytes] = field(default_factory=list)
    newest_prediction: int = -1
    newest_label: int = -1

    def added_prediction(self, pid: bytes, ts: int) -> None:
        self.new_predictions.append(pid)
        if ts > self.newest_prediction:
            self.newest_prediction = ts

    def added_label(self, pid: bytes, truth: WireGroundTruth) -> None:
        self.new_labels.append(pid)
        self.newest_label = max(self.newest_label, event_time_ms(truth.timestamp))


class JoinEntries:
    """The join entries of one partition as applied: the store's, under those that batches
    applied but not yet written left (the next batch may be applied while the previous
    one's outputs are being acknowledged).

    Parameters
    ----------
    store
        The partition's store.
    """

    def __init__(self, store: PartitionStore) -> None:
        self._store = store
        self._overlay: dict[bytes, bytes | None] = {}
        # Read again with the entries whenever the worker resets: an id a failed batch
        # interned was never written, and is handed out again.
        self.codec = CompactCodec(Interned(store.interned()))

    def read(self, ids: list[bytes], *, remember: bool) -> JoinWork:
        """A batch's work on the entries of ``ids`` (``remember``: see :class:`JoinWork`)."""
        overlay = self._overlay
        if overlay:
            unknown = [pid for pid in ids if pid not in overlay]
            entries = dict(zip(unknown, self._store.get_entries(unknown), strict=True))
            entries.update((pid, overlay[pid]) for pid in ids if pid in overlay)
        else:
            entries = dict(zip(ids, self._store.get_entries(ids), strict=True))
        return JoinWork(entries, self.codec, remember=remember)

    def lookup(self, entries: dict[bytes, bytes | None], ids: list[bytes]) -> list[bytes | None]:
        """The entries of ``ids`` as a batch sees them: those already in ``entries`` (the
        batch's), the others read (one multi-get) and added to ``entries``."""
        unknown = [pid for pid in ids if pid not in entries]
        if unknown:
            entries.update(self.read(unknown, remember=False).entries)
        return list(map(entries.get, ids))

    def applied(self, work: JoinWork) -> None:
        """Keep a batch's entries until it is written."""
        self._overlay.update(work.entries)

    def written(self) -> None:
        """Every batch applied is written: the store holds all their entries."""
        self._overlay.clear()


class Arrivals(NamedTuple):
    """New predictions of one version, as columns, with the entry of the label waiting for
    each (``labels`` None: no label waits for any of them)."""

    events: list[WirePrediction]
    values: list[bytes]
    ids: list[bytes]
    offsets: list[int]
    labels: list[bytes | None] | None


class Matched(NamedTuple):
    """Labels that found their prediction waiting, as columns, with that prediction: its
    join entry, decoded, its offset and its bytes."""

    truths: list[WireGroundTruth]
    values: list[bytes]
    ids: list[bytes]
    offsets: list[int]
    entries: list[bytes]
    predictions: list[WirePrediction | StoredPrediction]
    prediction_offsets: list[int]
    prediction_values: list[bytes]


def all_new(ids: list[bytes], entries: dict[bytes, bytes | None]) -> bool:
    """Whether each id is new to the join and once in the batch (the usual predictions):
    then :func:`admit` keeps them all without a loop."""
    return not any(map(entries.get, ids)) and len(set(ids)) == len(ids)


def all_waiting(ids: list[bytes], found: list[bytes | None]) -> bool:
    """Whether each label finds its prediction waiting, once (the usual labels): then
    :func:`match` matches them all without a loop."""
    return (
        None not in found
        and len(set(ids)) == len(ids)
        and set(map(_FIRST_BYTE, cast(list[bytes], found))) <= WAITING_PREDICTION
    )


def admit(
    predictions: Columns[WirePrediction], work: JoinWork, result: ApplyResult
) -> list[tuple[tuple[str, str], Arrivals]]:
    """The batch's new predictions by version, in order of first appearance. A prediction
    whose id is known already (waiting or joined), or repeated in the batch, is a duplicate."""
    events, values, ids, offsets = predictions
    if not ids:
        return []
    entries = work.entries
    labels: list[bytes | None] | None = None
    if not all_new(ids, entries):
        kept = Arrivals([], [], [], [], [])
        assert kept.labels is not None
        for event, raw, pid, offset in zip(*predictions, strict=True):
            entry = entries.get(pid)
            if entry is not None and entry[:1] != LABEL:
                result.duplicates += 1  # known already, waiting or joined
                continue
            entries[pid] = _SEEN  # a repeat later in this batch is a duplicate
            kept.events.append(event)
            kept.values.append(raw)
            kept.ids.append(pid)
            kept.offsets.append(offset)
            kept.labels.append(entry)
        events, values, ids, offsets, labels = kept
        if not ids:
            return []
    arrivals = Arrivals(events, values, ids, offsets, labels)
    return [
        (version, arrivals if rows is None else _rows(arrivals, rows))
        for version, rows in rows_by_version(events).items()
    ]


def _rows(arrivals: Arrivals, rows: list[int]) -> Arrivals:
    events, values, ids, offsets, labels = arrivals
    return Arrivals(
        [events[i] for i in rows],
        [values[i] for i in rows],
        [ids[i] for i in rows],
        [offsets[i] for i in rows],
        None if labels is None else [labels[i] for i in rows],
    )


def rows_by_version(
    events: list[WirePrediction] | list[WirePrediction | StoredPrediction],
) -> dict[tuple[str, str], list[int] | None]:
    """The rows of each (model, version) among ``events``, in order of first appearance;
    None for the rows of the only version, when there is one.

    >>> from driftline.schemas.wire import decode_stored_predictions
    >>> def event(version: str) -> bytes:
    ...     return b'{"prediction_id":"p","model":"m","model_version":"%s","timestamp":5,' \\
    ...         b'"prediction":0}' % version.encode()
    >>> rows_by_version(decode_stored_predictions([event("2"), event("1"), event("2")]))
    {('m', '2'): [0, 2], ('m', '1'): [1]}
    >>> rows_by_version(decode_stored_predictions([event("1"), event("1")]))
    {('m', '1'): None}
    """
    versions = set(map(_VERSION, events))
    if len(versions) == 1:
        return {versions.pop(): None}
    rows_of: dict[tuple[str, str], list[int]] = {}
    for row, version in enumerate(map(_VERSION, events)):
        rows_of.setdefault(version, []).append(row)
    return dict(rows_of)


def join_predictions(
    arrivals: Arrivals,
    times: NDArray[np.int64],
    too_old: int,
    batch: StoreBatch,
    result: ApplyResult,
    work: JoinWork | None,
    *,
    compact: bool = False,
    segments: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[WirePrediction], NDArray[np.int64], list[Pair]]:
    """New predictions of one version whose profile is known, at event ``times``: each
    waits for its label (``compact``: as a :data:`COMPACT` entry), or joins the label that
    waited for it; one before ``too_old`` is too late. ``work`` is None for held predictions
    (already waiting in the store). Returns the predictions to fold (all but the too-late
    ones), their times, and the pairs."""
    entries: dict[bytes, bytes | None] = {} if work is None else work.entries
    if int(times.min()) < too_old:
        # Its pane may be gone downstream: folding it would replace a complete partial
        # with a partial one. A label that waits for it goes on waiting.
        on_time = times >= too_old
        for row in np.flatnonzero(~on_time).tolist():
            entries[arrivals.ids[row]] = None if arrivals.labels is None else arrivals.labels[row]
            result.too_late += 1
        rows = np.flatnonzero(on_time).tolist()
        if not rows:
            return [], times[on_time], []
        arrivals, times = _rows(arrivals, rows), times[on_time]
    events, raws, ids, offsets, labels = arrivals
    pairs: list[Pair] = []
    waiting: list[int] | None = None  # the rows that wait (None: all)
    if labels is not None and any(labels):
        waiting = []
        joined: list[tuple[bytes, bytes]] = []
        for row, (event, raw, pid, offset, label) in enumerate(
            zip(events, raws, ids, offsets, labels, strict=True)
        ):
            if label is None:
                waiting.append(row)
                continue
            label_offset, label_raw = split_entry(label)
            pairs.append((event, decode_ground_truth(label_raw), raw, offset, label_offset))
            joined.append((pid, JOINED))
            entries[pid] = JOINED
            if work is None:
                batch.delete_waiting_for_held(pid)
        batch.put_entries(joined)
    if work is not None:
        if waiting is None:
            waiting_ids, pending = ids, _waiting(arrivals, times, batch, work, compact, segments)
        else:
            waiting_ids = [ids[row] for row in waiting]
            pending = _waiting(
                _rows(arrivals, waiting), times[waiting], batch, work, compact, segments
            )
        entries.update(zip(waiting_ids, pending, strict=True))
        batch.put_entries(list(zip(waiting_ids, pending, strict=True)))
        if work.remember:
            work.events.update(zip(ids, events, strict=True))
        work.new_predictions.extend(ids)
        work.newest_prediction = max(work.newest_prediction, int(times.max()))
    return events, times, pairs


def _waiting(
    arrivals: Arrivals,
    times: NDArray[np.int64],
    batch: StoreBatch,
    work: JoinWork,
    compact: bool,
    segments: Mapping[str, Sequence[str]] | None,
) -> list[bytes]:
    """The join entries of new predictions of one version that wait for their labels: whole
    (:data:`PENDING`), or :data:`COMPACT` with their slices of the version's tracked
    ``segments`` (new versions interned in ``batch``)."""
    if compact and arrivals.ids:
        entries, records = work.codec.encode(arrivals.events, arrivals.offsets, times, segments)
        for ident, record in records:
            batch.put_interned(ident, record)
        if entries is not None:
            return entries
    return waiting_entries(PENDING, arrivals.offsets, arrivals.values)


def match(
    truths: Columns[WireGroundTruth], batch: StoreBatch, result: ApplyResult, work: JoinWork
) -> Matched:
    """The batch's labels that find their prediction waiting (now joined, in ``work``), with
    those predictions. A label that finds none waits for it; a repeat, or a label for a
    joined prediction, is a duplicate."""
    labels, values, ids, offsets = truths
    entries = work.entries
    found = list(map(entries.get, ids))
    if ids and all_waiting(ids, found):
        entries.update(zip(ids, repeat(JOINED)))
        waiting = cast(list[bytes], found)
    else:
        labels, values, ids, offsets, waiting = [], [], [], [], []
        for truth, raw, pid, offset in zip(*truths, strict=True):
            entry = entries.get(pid)
            tag = None if entry is None else entry[:1]
            if tag in (JOINED, LABEL):
                result.duplicates += 1  # the prediction has its label, or this label waits
                continue
            if entry is None:
                result.labels += 1
                entries[pid] = label = waiting_entry(LABEL, offset, raw)
                batch.put_entry(pid, label)
                work.added_label(pid, truth)
                continue
            entries[pid] = JOINED  # a repeat later in this batch is a duplicate
            labels.append(truth)
            values.append(raw)
            ids.append(pid)
            offsets.append(offset)
            waiting.append(entry)
    # The waiting predictions this batch did not decode itself, decoded in one call per form.
    prediction_offsets, stored, predictions = decode_waiting(work.codec, waiting, ids, work.events)
    return Matched(labels, values, ids, offsets, waiting, predictions, prediction_offsets, stored)


def join_labels(
    matched: Matched, rows: list[int] | None, batch: StoreBatch, result: ApplyResult
) -> list[Pair]:
    """Join the matched labels of ``rows`` (None: all) with the predictions they found."""
    ids = matched.ids if rows is None else [matched.ids[i] for i in rows]
    batch.put_entries([(pid, JOINED) for pid in ids])
    result.labels += len(ids)
    columns = (
        matched.predictions,
        matched.truths,
        matched.prediction_values,
        matched.prediction_offsets,
        matched.offsets,
    )
    if rows is None:
        return list(zip(*columns, strict=True))
    return list(zip(*([column[i] for i in rows] for column in columns), strict=True))


def expire_entries(store: PartitionStore, cutoff_ms: int, batch: StoreBatch) -> int:
    """Forget, in ``batch``, the predictions and labels added before ``cutoff_ms`` (event
    time); returns how many predictions expired without their label ("never labelled")."""
    unlabelled = 0
    for key, ids in list(store.expired("predictions", cutoff_ms)):
        for pid, entry in zip(ids, store.get_entries(ids), strict=True):
            tag = None if entry is None else entry[:1]
            if tag in (PENDING, COMPACT, JOINED):
                unlabelled += tag != JOINED
                batch.delete_entry(pid)
        batch.delete_expiry(key)
    for key, ids in list(store.expired("labels", cutoff_ms)):
        for pid, entry in zip(ids, store.get_entries(ids), strict=True):
            if entry is not None and entry[:1] == LABEL:
                batch.delete_entry(pid)
        batch.delete_expiry(key)
    return unlabelled
