"""Predictions held in stage 1 while their model version has no reference profile yet.

A version's predictions cannot be folded before its profile is known (the profile fixes the
summaries' bins and categories). Until then they are kept in the store, waiting in the join
like any prediction and indexed by version, and a label that finds one waits with it. This
module owns that state: holding predictions and their labels, counting them per version,
reading them back when the profile arrives, the warm-up baseline built from the first ones
when no profile comes, and their expiry: a held prediction past the join TTL leaves the
version's index with its join entry, and so do the labels waiting for held predictions.
Released for a regression, what its sums cannot take is dead-lettered (:func:`regression_fit`);
a version whose warm-up baseline cannot be published has every held event dead-lettered
(:meth:`HeldPredictions.refuse`).
"""

from __future__ import annotations

from itertools import repeat

import numpy as np

from driftline.config import Settings, TopicSettings
from driftline.deadletter import dead_letter
from driftline.detectors.profile import profile_from_events
from driftline.detectors.regression import LARGEST, check_magnitudes, check_numbers
from driftline.detectors.task import infer_task
from driftline.detectors.values import to_numeric
from driftline.errors import StatisticsError
from driftline.schemas.outputs import DeadLetter
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import (
    WirePrediction,
    decode_ground_truth,
    decode_prediction,
    event_time_ms,
)
from driftline.streams.entries import LABEL, PENDING, message_key, split_entry, waiting_entry
from driftline.streams.join import Arrivals, JoinWork, Matched
from driftline.streams.result import ApplyResult
from driftline.streams.store import PartitionStore, StoreBatch


class HeldPredictions:
    """The held predictions of one partition, and the labels waiting with them.

    Parameters
    ----------
    store
        The partition's store, which keeps the held predictions, their index by version and
        their labels.
    """

    def __init__(self, store: PartitionStore) -> None:
        self._store = store
        self._counts = store.held_versions()
        self._unwritten_labels: set[bytes] = set()
        """Ids of labels held by batches applied but not yet written (a repeat of one in a
        later batch is a duplicate, though the store does not know it yet)."""
        self._added: dict[tuple[str, str], list[bytes]] = {}
        """Ids held by the batch being applied, per version, for its expiry records."""

    def counts(self) -> dict[tuple[str, str], int]:
        """Predictions held per version."""
        return dict(self._counts)

    def holds(self, model: str, version: str) -> bool:
        """Whether predictions of this version are held."""
        return (model, version) in self._counts

    def hold(
        self,
        model: str,
        version: str,
        arrivals: Arrivals,
        batch: StoreBatch,
        result: ApplyResult,
        work: JoinWork,
    ) -> int:
        """Keep new predictions of a version without a profile, to fold when the profile
        arrives (from the registry, or from the warm-up baseline that partition 0 builds
        from these events); returns their newest event time."""
        entries = work.entries
        newest = -1
        labels = arrivals.labels or repeat(None)
        for event, raw, pid, offset, label in zip(*arrivals[:4], labels, strict=False):
            ts = event_time_ms(event.timestamp)
            newest = max(newest, ts)
            pending = waiting_entry(PENDING, offset, raw)
            batch.put_entry(pid, pending)
            entries[pid] = pending
            batch.hold(model, version, pid)
            work.added_prediction(pid, ts)
            if label is not None:  # its label came first: it waits for the profile too
                batch.put_waiting_for_held(pid, label)
                work.held_labels.append(pid)
        key = (model, version)
        self._counts[key] = self._counts.get(key, 0) + len(arrivals.ids)
        self._added.setdefault(key, []).extend(arrivals.ids)
        result.waiting_for_profile += len(arrivals.ids)
        return newest

    def hold_labels(
        self,
        matched: Matched,
        rows: list[int],
        batch: StoreBatch,
        result: ApplyResult,
        work: JoinWork,
    ) -> None:
        """Labels (the ``rows`` of ``matched``) whose prediction is held: each waits with it."""
        entries = work.entries
        unwritten = self._unwritten_labels
        for row in rows:
            pid, truth = matched.ids[row], matched.truths[row]
            entries[pid] = matched.entries[row]  # still waiting, with its held prediction
            if pid in unwritten or self._store.get_waiting_for_held(pid) is not None:
                result.duplicates += 1
                continue
            unwritten.add(pid)
            result.labels += 1
            batch.put_waiting_for_held(
                pid, waiting_entry(LABEL, matched.offsets[row], matched.values[row])
            )
            work.held_labels.append(pid)
            work.newest_label = max(work.newest_label, event_time_ms(truth.timestamp))

    def expire_later(self, newest_ms: int, sequence: tuple[int, int], batch: StoreBatch) -> None:
        """Index, in ``batch``, the predictions the batch held under ``newest_ms``: the time
        of the batch's record of new predictions, so that the index of a held prediction
        expires with its join entry, never before it."""
        for (model, version), ids in self._added.items():
            batch.expire_held_later(model, version, newest_ms, sequence, ids)
        self._added.clear()

    def written(self) -> None:
        """Every batch applied is written: the store knows all held labels."""
        self._unwritten_labels.clear()

    def release(self, model: str, version: str, batch: StoreBatch) -> Arrivals:
        """The predictions held for a version whose profile arrived, with the labels waiting
        for them; they are no longer held once ``batch`` is written."""
        held = Arrivals([], [], [], [], [])
        assert held.labels is not None
        store = self._store
        for pid in list(store.held(model, version)):
            entry = store.get_entry(pid)
            if entry is not None and entry[:1] == PENDING:
                offset, raw = split_entry(entry)
                held.events.append(decode_prediction(raw))
                held.values.append(raw)
                held.ids.append(pid)
                held.offsets.append(offset)
                held.labels.append(store.get_waiting_for_held(pid))
            batch.release(model, version, pid)
        del self._counts[(model, version)]
        return held

    def refuse(
        self,
        model: str,
        version: str,
        batch: StoreBatch,
        topics: TopicSettings,
        partition: int,
        kind: str,
        reason: str,
        failed_at_ms: int,
    ) -> list[DeadLetter]:
        """Dead letters (``kind``, ``reason``), from their stored bytes and source offsets, of
        every prediction held for a version and of the labels waiting with them; they and
        their join entries are forgotten once ``batch`` is written (after the dead letters
        are acknowledged), and later predictions of the version are held anew."""

        def letter(topic: str, offset: int, key: bytes, value: bytes) -> DeadLetter:
            return _held_letter(topic, partition, offset, key, value, reason, kind, failed_at_ms)

        store, letters = self._store, []
        for pid in list(store.held(model, version)):
            entry = store.get_entry(pid)
            if entry is not None and entry[:1] == PENDING:
                offset, raw = split_entry(entry)
                batch.delete_entry(pid)
                letters.append(letter(topics.predictions, offset, pid, raw))
                label = store.get_waiting_for_held(pid)
                if label is not None:
                    label_offset, label_raw = split_entry(label)
                    batch.delete_waiting_for_held(pid)
                    letters.append(letter(topics.ground_truth, label_offset, pid, label_raw))
            batch.release(model, version, pid)
        self._counts.pop((model, version), None)
        return letters

    def baseline(
        self, model: str, version: str, warmup_events: int, settings: Settings
    ) -> ReferenceProfile | None:
        """A warm-up profile from the first ``warmup_events`` held predictions of a version
        (by event time); None until that many are held."""
        if self._counts.get((model, version), 0) < warmup_events or warmup_events < 1:
            return None
        events = []
        for pid in self._store.held(model, version):
            kept = self._store.get_prediction(pid)
            if kept is not None:
                events.append(decode_prediction(kept[1]))
        if len(events) < warmup_events:
            # Index entries whose predictions expired (a store written before their expiry
            # records existed): wait for as many live ones as the warm-up asks for.
            return None
        events.sort(key=lambda e: (event_time_ms(e.timestamp), e.prediction_id))
        events = events[:warmup_events]
        task = infer_task(events)
        config = settings.model(model, task)
        return profile_from_events(events, config.task, config)

    def expire(self, cutoff_ms: int, batch: StoreBatch) -> None:
        """Forget, in ``batch``, the held predictions added before ``cutoff_ms`` (event time)
        from their version's index (their join entries expire with the others', in the same
        batch), and the labels that began waiting for a held prediction before it."""
        store, counts = self._store, self._counts
        for key, model, version, ids in list(store.expired_held(cutoff_ms)):
            version_key = (model, version)
            for pid in ids:
                if store.is_held(model, version, pid):  # else released when its profile came
                    batch.release(model, version, pid)
                    counts[version_key] = counts.get(version_key, 1) - 1
            if counts.get(version_key) == 0:
                del counts[version_key]
            batch.delete_expiry(key)
        for key, ids in list(store.expired("held_labels", cutoff_ms)):
            for pid in ids:
                batch.delete_waiting_for_held(pid)
            batch.delete_expiry(key)


def _held_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes,
    value: bytes,
    reason: str,
    kind: str,
    failed_at_ms: int,
) -> DeadLetter:
    """The dead letter of a held event, from its stored bytes and its source offset (``key``
    its join id: a shadow's letter has its message key, the champion's id)."""
    return dead_letter(
        topic=topic,
        partition=partition,
        offset=offset,
        key=message_key(key),
        value=value,
        headers=None,
        reason=reason,
        kind=kind,
        failed_at=failed_at_ms,
    )


def regression_fit(
    held: Arrivals,
    batch: StoreBatch,
    result: ApplyResult,
    topics: TopicSettings,
    partition: int,
    failed_at_ms: int,
) -> Arrivals:
    """The held predictions of a regression version but those beyond what its sums take,
    which are dead-lettered from their stored bytes and forgotten with their labels, and
    without the held labels a pair cannot take (no number, or too large), dead-lettered
    likewise while their prediction is folded unlabelled. Held, none was checked: folding
    them would fail the whole release, and again after every restart (kind
    ``processing_error``, as when the same events fail to apply unheld)."""
    guesses, _ = to_numeric([event.prediction for event in held.events])
    bad = np.abs(guesses) > LARGEST  # NaN (no prediction) compares False
    waiting = held.labels or [None] * len(held.ids)
    unfit = [
        None if label is None or bad[row] else _unfit_label(label, held.events[row])
        for row, label in enumerate(waiting)
    ]
    if not bad.any() and not any(unfit):
        return held

    def letter(topic: str, offset: int, key: bytes, value: bytes, reason: str) -> DeadLetter:
        return _held_letter(
            topic, partition, offset, key, value, reason, "processing_error", failed_at_ms
        )

    labels: list[bytes | None] = []
    kept = Arrivals([], [], [], [], labels)
    rows = zip(*held[:4], waiting, strict=True)
    for row, (event, raw, pid, offset, label) in enumerate(rows):
        if bad[row]:
            batch.delete_entry(pid)
            if label is not None:
                batch.delete_waiting_for_held(pid)
            too_large = (
                f"StatisticsError: regression predictions must be at most {LARGEST:.3g} in "
                f"magnitude (got {guesses[row]:.3g}): their squares are summed"
            )
            result.dead_letters.append(letter(topics.predictions, offset, pid, raw, too_large))
            continue
        reason = unfit[row]
        if reason is not None and label is not None:
            label_offset, label_raw = split_entry(label)
            batch.delete_waiting_for_held(pid)
            result.dead_letters.append(
                letter(topics.ground_truth, label_offset, pid, label_raw, reason)
            )
            label = None
        kept.events.append(event)
        kept.values.append(raw)
        kept.ids.append(pid)
        kept.offsets.append(offset)
        labels.append(label)
    return kept


def _unfit_label(entry: bytes, prediction: WirePrediction) -> str | None:
    """Why a regression's held pair cannot be folded (a label that is no number or too
    large, or a prediction that is no number), as a dead letter's reason; None if it can."""
    label = decode_ground_truth(split_entry(entry)[1]).label
    try:
        check_numbers([label], [prediction.prediction])
        check_magnitudes(to_numeric([label])[0], "labels")
    except StatisticsError as exc:
        return f"StatisticsError: {exc}"
    return None
