"""Stage 1 for one input partition number: decode, fold, join, in one atomic write per batch.

A :class:`PartitionWorker` owns partition ``p`` of both input topics (they are co-partitioned
by ``prediction_id``). :meth:`PartitionWorker.apply` takes a batch of raw messages from either
topic and

1. skips what the store has already applied (offsets below its marks),
2. decodes and validates each event; a bad one becomes a :class:`DeadLetter` with its reason,
3. drops duplicates (a ``prediction_id`` already kept; a label for an already matched one),
4. folds predictions into the cumulative feature summary of their (model, version, pane),
5. joins predictions and labels (whichever comes first waits in the store) and folds each
   pair into the performance summary of the *prediction's* pane,
6. writes summaries, join entries and the new marks in one RocksDB write batch.

Changed summaries are handed out by :meth:`PartitionWorker.drain` as cumulative
:class:`~driftline.streams.partials.PanePartial`; emitting one twice is harmless. No Kafka
client lives here: the ingest loop feeds batches in and sends what comes out.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import repeat
from typing import NamedTuple, cast

import numpy as np

from driftline.config import ModelConfig, Settings
from driftline.deadletter import RawMessage
from driftline.detectors.profile import profile_from_events
from driftline.detectors.task import infer_task
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import (
    StoredPrediction,
    WireGroundTruth,
    WirePrediction,
    decode_ground_truth,
    decode_ground_truths,
    decode_prediction,
    decode_predictions,
    decode_stored_predictions,
    event_time_ms,
)
from driftline.streams.concept_watch import ConceptWatch
from driftline.streams.intake import Columns, event_times, take
from driftline.streams.labeled import labeled_record
from driftline.streams.panes import PaneSummaries, horizon_ms
from driftline.streams.partials import PanePartial
from driftline.streams.result import ApplyResult
from driftline.streams.store import (
    JOINED,
    LABEL,
    PENDING,
    Marks,
    PartitionStore,
    StoreBatch,
    split_entries,
    split_entry,
    waiting_entries,
    waiting_entry,
)

log = logging.getLogger(__name__)
_MS = timedelta(milliseconds=1)


class PartitionWorker:
    """Stage 1's state machine for input partition number ``partition``.

    Parameters
    ----------
    partition
        The partition number, shared by the predictions and ground-truth topics.
    store
        This partition's RocksDB store.
    profiles
        Looks up a version's reference profile (the registry); None while unknown.
    settings
        Topic names, per-model configuration and the join TTL.
    """

    def __init__(
        self,
        partition: int,
        store: PartitionStore,
        profiles: Callable[[str, str], ReferenceProfile | None],
        settings: Settings,
    ) -> None:
        self.partition = partition
        self.store = store
        self._profiles = profiles
        self._settings = settings
        self._topics = settings.topics
        self._ttl_ms = settings.monitor.join_ttl // _MS
        self.marks = store.marks()
        self.watermark_ms = -1
        """The newest prediction event time applied (lateness, expiry, pruning)."""
        self.label_watermark_ms = -1
        """The newest ground-truth event time applied."""
        self._labels_seen_ms: int | None = None
        """Wall time of the last batch with ground truth, else of the first batch since the
        store was opened: until the ground truth shows it is idle, it is waited for."""
        self._late_before_ms = -1
        """The watermark when the current batch began: lateness is judged against what was
        already emitted, never against other models' newer events in the same batch."""
        self._concept = ConceptWatch(store)
        self._panes = PaneSummaries(store, profiles, settings)
        self._held = store.held_versions()
        self._overlay: dict[bytes, bytes | None] = {}
        """Join entries as batches applied but not yet persisted left them: the next batch
        may be applied while the previous one's outputs are being acknowledged."""
        self._unpersisted = 0
        self._held_waiting: set[bytes] = set()
        self.restore_until = Marks()
        """Offsets the consumer group had committed when this worker started: below them
        another member already applied the inputs and sent their outputs (see
        :meth:`restoring`)."""
        self.watermark_ms = self._panes.mark_all_dirty()  # re-emit all on start

    # --- configuration --------------------------------------------------------------------

    def config(self, model: str, profile: ReferenceProfile) -> ModelConfig:
        """How a model is watched (its configuration, or defaults for its task)."""
        return self._settings.model(model, profile.task)

    # --- applying a batch -----------------------------------------------------------------

    def apply(self, messages: Sequence[RawMessage], failed_at_ms: int) -> ApplyResult:
        """Apply a batch of raw messages from this partition of either input topic.

        The store changes come back in ``result.batch``: send the dead letters and joined
        examples first, then :meth:`persist`."""
        topic_predictions = self._topics.predictions
        from_predictions: list[RawMessage] = []
        from_truth: list[RawMessage] = []
        for message in messages:
            (from_predictions if message.topic() == topic_predictions else from_truth).append(
                message
            )
        return self.apply_split(from_predictions, from_truth, failed_at_ms)

    def apply_split(
        self,
        from_predictions: list[RawMessage],
        from_truth: list[RawMessage],
        failed_at_ms: int,
    ) -> ApplyResult:
        """:meth:`apply` of a batch already split by topic (each list in offset order)."""
        result = ApplyResult()
        self._late_before_ms = self.watermark_ms
        if self._labels_seen_ms is None:
            self._labels_seen_ms = failed_at_ms
        result.prediction_messages, result.truth_messages = len(from_predictions), len(from_truth)
        if from_truth:
            self._labels_seen_ms = failed_at_ms
        until = self.restore_until
        predictions, next_pred = take(
            from_predictions,
            self.marks.predictions,
            until.predictions,
            decode_predictions,
            failed_at_ms,
            result,
        )
        truth_columns, next_truth = take(
            from_truth,
            self.marks.ground_truth,
            until.ground_truth,
            decode_ground_truths,
            failed_at_ms,
            result,
        )
        if truth_columns.events:
            newest = int(event_times([truth.timestamp for truth in truth_columns.events]).max())
            self.label_watermark_ms = max(self.label_watermark_ms, newest)
        batch = self.store.batch()
        ids = predictions.ids + truth_columns.ids
        overlay = self._overlay
        if overlay:
            unknown = [pid for pid in ids if pid not in overlay]
            entries = dict(zip(unknown, self.store.get_entries(unknown), strict=True))
            entries.update((pid, overlay[pid]) for pid in ids if pid in overlay)
        else:
            entries = dict(zip(ids, self.store.get_entries(ids), strict=True))
        work = _Work(entries, remember=bool(truth_columns.ids))
        self._apply_predictions(predictions, batch, result, work)
        self._apply_truths(truth_columns, batch, result, work)
        self.marks = Marks(next_pred, next_truth)
        sequence = (next_pred, next_truth)
        batch.expire_later("predictions", work.newest_prediction, sequence, work.new_predictions)
        batch.expire_later("labels", work.newest_label, sequence, work.new_labels)
        batch.expire_later("held_labels", work.newest_label, sequence, work.held_labels)
        self._panes.write(batch)
        batch.set_marks(self.marks)
        result.batch = batch
        overlay.update(work.entries)
        self._unpersisted += 1
        return result

    def persist(self, result: ApplyResult) -> None:
        """Write a batch's store changes and marks atomically."""
        if result.batch is not None:
            self.store.write(result.batch)
            result.batch = None
            self._unpersisted -= 1
            if self._unpersisted <= 0:
                self._unpersisted = 0
                self._overlay.clear()
                self._held_waiting.clear()

    @property
    def restoring(self) -> bool:
        """Whether the store is still behind what the group committed: a fresh (or stale)
        store being rebuilt by re-reading the inputs. Nothing is emitted meanwhile: partials
        and watermarks halfway through the rebuild would replace complete ones downstream."""
        until = self.restore_until
        return self.marks.predictions < until.predictions or (
            self.marks.ground_truth < until.ground_truth
        )

    @property
    def unpersisted(self) -> int:
        """Batches applied whose changes are not written yet (see :meth:`persist`)."""
        return self._unpersisted

    def _apply_predictions(
        self,
        predictions: Columns[WirePrediction],
        batch: StoreBatch,
        result: ApplyResult,
        work: _Work,
    ) -> None:
        for (model, version), arrivals in _admit(predictions, work, result):
            profile = self._profiles(model, version)
            if profile is None:
                self._hold(model, version, arrivals, batch, result, work)
            else:
                self._fold_predictions(profile, arrivals, batch, result, work)

    def _hold(
        self,
        model: str,
        version: str,
        arrivals: _Arrivals,
        batch: StoreBatch,
        result: ApplyResult,
        work: _Work,
    ) -> None:
        """Keep the new predictions of a version without a profile in the store, to fold
        when the profile arrives (from the registry, or from the warm-up baseline that
        partition 0 builds from these events)."""
        entries = work.entries
        labels = arrivals.labels or repeat(None)
        for event, raw, pid, offset, label in zip(*arrivals[:4], labels, strict=False):
            ts = event_time_ms(event.timestamp)
            self.watermark_ms = max(self.watermark_ms, ts)
            pending = waiting_entry(PENDING, offset, raw)
            batch.put_entry(pid, pending)
            entries[pid] = pending
            batch.hold(model, version, pid)
            work.added_prediction(pid, ts)
            if label is not None:  # its label came first: it waits for the profile too
                batch.put_waiting_for_held(pid, label)
                work.held_labels.append(pid)
        key = (model, version)
        self._held[key] = self._held.get(key, 0) + len(arrivals.ids)
        result.waiting_for_profile += len(arrivals.ids)

    def _fold_predictions(
        self,
        profile: ReferenceProfile,
        arrivals: _Arrivals,
        batch: StoreBatch,
        result: ApplyResult,
        work: _Work | None,
    ) -> None:
        """Fold new predictions of one version whose profile is known: each waits for its
        label in the join, or joins the label that waited for it. ``work`` is None for held
        ones (already waiting in the store). Column by column, with a loop only over the
        rows that need one (too late, or with a label waiting)."""
        config = self.config(profile.model, profile)
        events, raws, ids, offsets, labels = arrivals
        times = event_times([event.timestamp for event in events])
        self.watermark_ms = max(self.watermark_ms, int(times.max()))
        entries: dict[bytes, bytes | None] = {} if work is None else work.entries
        too_old = self._late_before_ms - horizon_ms(config)
        if int(times.min()) < too_old:
            # Its pane may be gone downstream: folding it would replace a complete partial
            # with a partial one. A label that waits for it goes on waiting.
            on_time = times >= too_old
            for row in np.flatnonzero(~on_time).tolist():
                entries[ids[row]] = None if labels is None else labels[row]
                result.too_late += 1
            rows = np.flatnonzero(on_time).tolist()
            if not rows:
                return
            events, raws, ids, offsets = (
                [events[i] for i in rows],
                [raws[i] for i in rows],
                [ids[i] for i in rows],
                [offsets[i] for i in rows],
            )
            labels = None if labels is None else [labels[i] for i in rows]
            times = times[on_time]
        pairs: list[_Pair] = []
        waiting = ids, offsets, raws
        if labels is not None and any(labels):
            waiting = [], [], []
            joined: list[tuple[bytes, bytes]] = []
            for event, raw, pid, offset, label in zip(
                events, raws, ids, offsets, labels, strict=True
            ):
                if label is None:
                    waiting[0].append(pid)
                    waiting[1].append(offset)
                    waiting[2].append(raw)
                    continue
                label_offset, label_raw = split_entry(label)
                pairs.append((event, decode_ground_truth(label_raw), raw, offset, label_offset))
                joined.append((pid, JOINED))
                entries[pid] = JOINED
                if work is None:
                    batch.delete_waiting_for_held(pid)
            batch.put_entries(joined)
        if work is not None:
            pending = waiting_entries(PENDING, waiting[1], waiting[2])
            entries.update(zip(waiting[0], pending, strict=True))
            batch.put_entries(list(zip(waiting[0], pending, strict=True)))
            if work.remember:
                work.events.update(zip(ids, events, strict=True))
            work.new_predictions.extend(ids)
            work.newest_prediction = max(work.newest_prediction, int(times.max()))
        result.predictions += len(events)
        self._panes.fold_features(profile, config, events, times)
        self._fold_pairs(profile, config, pairs, result, batch)

    def _apply_truths(
        self,
        truth_columns: Columns[WireGroundTruth],
        batch: StoreBatch,
        result: ApplyResult,
        work: _Work,
    ) -> None:
        matched = _match(truth_columns, batch, result, work)
        if not matched.ids:
            return
        prediction_offsets, stored = split_entries(matched.entries)
        # The waiting predictions this batch did not decode itself, decoded in one call.
        remembered = work.events
        again = iter(
            decode_stored_predictions(
                [raw for pid, raw in zip(matched.ids, stored, strict=True) if pid not in remembered]
            )
        )
        predictions = [remembered.get(pid) or next(again) for pid in matched.ids]
        versions = list(map(_VERSION, predictions))
        profiles = {version: self._profiles(*version) for version in dict.fromkeys(versions)}
        rows_of: dict[tuple[str, str], list[int] | None] = {versions[0]: None}
        if len(profiles) > 1 or None in profiles.values():
            by_version: dict[tuple[str, str], list[int]] = {}
            held: list[int] = []
            for row, version in enumerate(versions):
                if profiles[version] is None:
                    held.append(row)
                else:
                    by_version.setdefault(version, []).append(row)
            self._hold_labels(matched, held, batch, result, work)
            rows_of = dict(by_version)
        columns = (predictions, matched.truths, stored, prediction_offsets, matched.offsets)
        for version, rows in rows_of.items():
            profile = profiles[version]
            assert profile is not None
            ids = matched.ids if rows is None else [matched.ids[i] for i in rows]
            batch.put_entries([(pid, JOINED) for pid in ids])
            result.labels += len(ids)
            pairs: list[_Pair] = list(
                zip(*columns, strict=True)
                if rows is None
                else zip(*([column[i] for i in rows] for column in columns), strict=True)
            )
            self._fold_pairs(profile, self.config(version[0], profile), pairs, result, batch)

    def _hold_labels(
        self,
        matched: _Matched,
        rows: list[int],
        batch: StoreBatch,
        result: ApplyResult,
        work: _Work,
    ) -> None:
        """Labels whose prediction is held for its version's profile: each waits with it."""
        entries = work.entries
        held_waiting = self._held_waiting
        for row in rows:
            pid, truth = matched.ids[row], matched.truths[row]
            entries[pid] = matched.entries[row]  # still waiting, with its held prediction
            if pid in held_waiting or self.store.get_waiting_for_held(pid) is not None:
                result.duplicates += 1
                continue
            held_waiting.add(pid)
            result.labels += 1
            batch.put_waiting_for_held(
                pid, waiting_entry(LABEL, matched.offsets[row], matched.values[row])
            )
            work.held_labels.append(pid)
            work.newest_label = max(work.newest_label, event_time_ms(truth.timestamp))

    def _fold_pairs(
        self,
        profile: ReferenceProfile,
        config: ModelConfig,
        pairs: list[_Pair],
        result: ApplyResult,
        batch: StoreBatch,
    ) -> None:
        if not pairs:
            return
        predictions = [pair[0] for pair in pairs]
        truths = [pair[1] for pair in pairs]
        predicted_at = event_times([prediction.timestamp for prediction in predictions])
        labelled_at = event_times([truth.timestamp for truth in truths])
        labels = [truth.label for truth in truths]
        guesses = [prediction.prediction for prediction in predictions]
        for pane_start in self._concept.watch(
            profile, config, labels, guesses, predicted_at, batch
        ):
            self._panes.changed("performance", profile.model, profile.model_version, pane_start)
        self._panes.fold_pairs(
            profile, config, predictions, labels, guesses, predicted_at, labelled_at
        )
        until = self.restore_until
        for (prediction, truth, raw, at_offset, label_offset), at, labelled in zip(
            pairs, predicted_at.tolist(), labelled_at.tolist(), strict=True
        ):
            if at_offset < until.predictions and label_offset < until.ground_truth:
                result.restored += 1  # rebuilding: the previous owner sent this one
                continue
            result.labeled.append(
                labeled_record(prediction.prediction_id, raw, truth, at, labelled)
            )
        result.joined += len(pairs)

    # --- profiles arriving ----------------------------------------------------------------

    def profile_arrived(self, model: str, version: str) -> ApplyResult:
        """Fold the predictions held for a version whose profile just became known."""
        result = ApplyResult()
        # Nothing of this version was emitted before its profile: no partial downstream can
        # be replaced by a smaller one, so none of its held predictions is too late.
        self._late_before_ms = -(2**62)
        profile = self._profiles(model, version)
        if profile is None or (model, version) not in self._held:
            return result
        held = _Arrivals([], [], [], [], [])
        batch = self.store.batch()
        for pid in list(self.store.held(model, version)):
            entry = self.store.get_entry(pid)
            if entry is not None and entry[:1] == PENDING:
                offset, raw = split_entry(entry)
                held.events.append(decode_prediction(raw))
                held.values.append(raw)
                held.ids.append(pid)
                held.offsets.append(offset)
                assert held.labels is not None
                held.labels.append(self.store.get_waiting_for_held(pid))
            batch.release(model, version, pid)
        del self._held[(model, version)]
        if held.ids:
            self._fold_predictions(profile, held, batch, result, None)
        self._panes.write(batch)
        batch.set_marks(self.marks)
        result.batch = batch
        self._unpersisted += 1
        return result

    def held(self) -> dict[tuple[str, str], int]:
        """Predictions held per version while its profile is unknown."""
        return dict(self._held)

    def baseline(self, model: str, version: str, warmup_events: int) -> ReferenceProfile | None:
        """A warm-up profile from the first held predictions of a version without one.

        Only one partition should build it (the ingest loop asks partition 0's owner), so
        every worker ends up with the same published profile.
        """
        if self._held.get((model, version), 0) < warmup_events or warmup_events < 1:
            return None
        events = []
        for pid in self.store.held(model, version):
            kept = self.store.get_prediction(pid)
            if kept is not None:
                events.append(decode_prediction(kept[1]))
        events.sort(key=lambda e: (event_time_ms(e.timestamp), e.prediction_id))
        events = events[:warmup_events]
        task = infer_task(events)
        config = self._settings.model(model, task)
        return profile_from_events(events, config.task, config)

    # --- emitting -------------------------------------------------------------------------

    def closing_watermark(self, now_ms: int, label_idle_ms: int) -> int:
        """The event time up to which this partition applied *both* inputs, for stage 2's
        :class:`~driftline.streams.partials.Watermark`: the predictions' watermark, held back
        to the ground truth's while ground truth flows. The two topics are fetched separately
        (after a rebalance the new owner may apply the predictions' backlog a second or more
        before the labels'), and stage 2 judges a window, alerts and retrain requests
        included, as soon as this passes its end plus the allowed lateness. Ground truth
        silent for ``label_idle_ms`` of wall time holds nothing back."""
        if self._labels_seen_ms is None or now_ms - self._labels_seen_ms >= label_idle_ms:
            return self.watermark_ms
        return min(self.watermark_ms, self.label_watermark_ms)

    def drain(self) -> list[PanePartial]:
        """The partials changed since the last drain (all of them after a start); none while
        :attr:`restoring`."""
        if self.restoring:
            return []
        covered = max(self.marks.predictions, 0) + max(self.marks.ground_truth, 0)
        return self._panes.drain(self.partition, covered, self.watermark_ms, self._concept.flagged)

    def mark_all_dirty(self) -> None:
        """Send every stored partial again at the next drain (after a failed delivery)."""
        self._panes.mark_all_dirty()

    def models(self) -> set[str]:
        """Models this partition has summaries for (for watermark heartbeats)."""
        return self._panes.models()

    # --- housekeeping ---------------------------------------------------------------------

    def expire(self) -> int:
        """Forget predictions and labels past the join TTL (in event time); returns how many
        predictions expired without their label ("never labelled")."""
        if self.watermark_ms < 0:
            return 0
        cutoff = self.watermark_ms - self._ttl_ms
        batch = self.store.batch()
        unlabelled = 0
        for key, ids in list(self.store.expired("predictions", cutoff)):
            for pid, entry in zip(ids, self.store.get_entries(ids), strict=True):
                tag = None if entry is None else entry[:1]
                if tag in (PENDING, JOINED):
                    unlabelled += tag == PENDING
                    batch.delete_entry(pid)
            batch.delete_expiry(key)
        for key, ids in list(self.store.expired("labels", cutoff)):
            for pid, entry in zip(ids, self.store.get_entries(ids), strict=True):
                if entry is not None and entry[:1] == LABEL:
                    batch.delete_entry(pid)
            batch.delete_expiry(key)
        for key, ids in list(self.store.expired("held_labels", cutoff)):
            for pid in ids:
                batch.delete_waiting_for_held(pid)
            batch.delete_expiry(key)
        self._panes.evict(batch, self.watermark_ms, self._ttl_ms)
        if batch.size:
            batch.set_marks(self.marks)
            self.store.write(batch)
        return unlabelled


_VERSION = operator.attrgetter("model", "model_version")
_FIRST_BYTE = operator.itemgetter(0)
_PENDING_ONLY = {PENDING[0]}


_SEEN = b"S"
"""In-batch marker of a prediction id already handled (never written to the store)."""

_Pair = tuple["WirePrediction | StoredPrediction", WireGroundTruth, bytes, int, int]
"""A joined pair: (prediction, label, the prediction's bytes, the input offsets of both)."""


@dataclass
class _Work:
    """What one batch knows beyond the store: the join entries as they stand after each
    event (read for all of the batch's ids in one multi-get), the predictions it decoded,
    and the ids it added, for the expiry index."""

    entries: dict[bytes, bytes | None]
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


class _Arrivals(NamedTuple):
    """New predictions of one version, as columns, with the entry of the label waiting for
    each (``labels`` None: no label waits for any of them)."""

    events: list[WirePrediction]
    values: list[bytes]
    ids: list[bytes]
    offsets: list[int]
    labels: list[bytes | None] | None


class _Matched(NamedTuple):
    """Labels that found their prediction waiting, as columns, with its join entry."""

    truths: list[WireGroundTruth]
    values: list[bytes]
    ids: list[bytes]
    offsets: list[int]
    entries: list[bytes]


def _admit(
    predictions: Columns[WirePrediction], work: _Work, result: ApplyResult
) -> list[tuple[tuple[str, str], _Arrivals]]:
    """The batch's new predictions by version, in order of first appearance. A prediction
    whose id is known already (waiting or joined), or repeated in the batch, is a duplicate."""
    events, values, ids, offsets = predictions
    if not ids:
        return []
    entries = work.entries
    labels: list[bytes | None] | None = None
    if not _all_new(ids, entries):
        kept = _Arrivals([], [], [], [], [])
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
    versions = set(map(_VERSION, events))
    if len(versions) == 1:
        return [(versions.pop(), _Arrivals(events, values, ids, offsets, labels))]
    rows_of: dict[tuple[str, str], list[int]] = {}
    for row, version in enumerate(map(_VERSION, events)):
        rows_of.setdefault(version, []).append(row)
    return [
        (
            version,
            _Arrivals(
                [events[i] for i in rows],
                [values[i] for i in rows],
                [ids[i] for i in rows],
                [offsets[i] for i in rows],
                None if labels is None else [labels[i] for i in rows],
            ),
        )
        for version, rows in rows_of.items()
    ]


def _all_new(ids: list[bytes], entries: dict[bytes, bytes | None]) -> bool:
    """Whether each id is new to the join and once in the batch (the usual predictions):
    then :func:`_admit` keeps them all without a loop."""
    return not any(map(entries.get, ids)) and len(set(ids)) == len(ids)


def _all_waiting(ids: list[bytes], found: list[bytes | None]) -> bool:
    """Whether each label finds its prediction waiting, once (the usual labels): then
    :func:`_match` matches them all without a loop."""
    return (
        None not in found
        and len(set(ids)) == len(ids)
        and set(map(_FIRST_BYTE, cast(list[bytes], found))) == _PENDING_ONLY
    )


def _match(
    truths: Columns[WireGroundTruth], batch: StoreBatch, result: ApplyResult, work: _Work
) -> _Matched:
    """The batch's labels that find their prediction waiting (now joined, in ``work``). A
    label that finds none waits for it; a repeat, or a label for a joined prediction, is a
    duplicate."""
    labels, values, ids, offsets = truths
    entries = work.entries
    found = list(map(entries.get, ids))
    if ids and _all_waiting(ids, found):
        entries.update(zip(ids, repeat(JOINED)))
        return _Matched(labels, values, ids, offsets, cast(list[bytes], found))
    matched = _Matched([], [], [], [], [])
    for truth, raw, pid, offset in zip(labels, values, ids, offsets, strict=True):
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
        matched.truths.append(truth)
        matched.values.append(raw)
        matched.ids.append(pid)
        matched.offsets.append(offset)
        matched.entries.append(entry)
    return matched
