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
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import numpy as np
import orjson

from driftline.config import ModelConfig, Settings
from driftline.detectors.concept import ConceptDriftDetector, detector_from_snapshot, make_detector
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.summary import PaneSummary, category_key, columns_from_events
from driftline.errors import DecodeError
from driftline.schemas.ids import stable_id
from driftline.schemas.outputs import DeadLetter
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import (
    WireGroundTruth,
    WirePrediction,
    decode_ground_truth,
    decode_prediction,
    event_time_ms,
)
from driftline.streams.partials import PanePartial
from driftline.streams.store import Kind, Marks, PartitionStore, StoreBatch

log = logging.getLogger(__name__)
_MS = timedelta(milliseconds=1)


class RawMessage(Protocol):
    """What the worker needs of a Kafka message (confluent-kafka's Message has it)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...


@dataclass(frozen=True, slots=True)
class Labeled:
    """A joined example for ``driftline.labeled`` (key = prediction id)."""

    key: bytes
    value: bytes


@dataclass
class ApplyResult:
    """What one batch produced besides the store changes."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    labeled: list[Labeled] = field(default_factory=list)
    predictions: int = 0
    labels: int = 0
    joined: int = 0
    duplicates: int = 0
    skipped: int = 0
    too_late: int = 0
    waiting_for_profile: int = 0
    batch: StoreBatch | None = None
    """The store changes, marks included, to :meth:`PartitionWorker.persist` once the
    outputs above are acknowledged (a crash in between replays the batch: at-least-once)."""


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
        self._late_before_ms = -1
        """The watermark when the current batch began: lateness is judged against what was
        already emitted, never against other models' newer events in the same batch."""
        self._batch_kept: dict[bytes, tuple[bool, bytes]] = {}
        self._detectors: dict[tuple[str, str], ConceptDriftDetector] = {}
        self._concept: set[tuple[str, str, int]] = set()
        self._cache: dict[tuple[Kind, str, str, int], PaneSummary | PerformanceSummary] = {}
        self._dirty: set[tuple[Kind, str, str, int]] = set()
        self._held = store.held_versions()
        for kind, model, version, pane_start, _ in store.partials():
            self._dirty.add((kind, model, version, pane_start))  # re-emit all on start
            self.watermark_ms = max(self.watermark_ms, pane_start)

    # --- configuration --------------------------------------------------------------------

    def config(self, model: str, profile: ReferenceProfile) -> ModelConfig:
        """How a model is watched (its configuration, or defaults for its task)."""
        configured = self._settings.models.get(model)
        return configured if configured is not None else ModelConfig(task=profile.task)

    def _horizon_ms(self, config: ModelConfig) -> int:
        longest = max(w.size for w in config.windows)
        return (longest + config.allowed_lateness + config.pane) // _MS

    # --- summaries ------------------------------------------------------------------------

    def _summary(
        self, kind: Kind, profile: ReferenceProfile, config: ModelConfig, pane_start: int
    ) -> PaneSummary | PerformanceSummary:
        key = (kind, profile.model, profile.model_version, pane_start)
        summary = self._cache.get(key)
        if summary is None:
            raw = self.store.get_partial(kind, profile.model, profile.model_version, pane_start)
            if kind == "features":
                summary = (
                    PaneSummary(profile) if raw is None else PaneSummary.from_bytes(raw, profile)
                )
            else:
                summary = (
                    PerformanceSummary.from_profile(profile, positive_class=config.positive_class)
                    if raw is None
                    else PerformanceSummary.from_bytes(raw)
                )
            self._cache[key] = summary
        return summary

    # --- applying a batch -----------------------------------------------------------------

    def apply(self, messages: Sequence[RawMessage], failed_at_ms: int) -> ApplyResult:
        """Apply a batch of raw messages from this partition of either input topic.

        The store changes come back in ``result.batch``: send the dead letters and joined
        examples first, then :meth:`persist`."""
        result = ApplyResult()
        self._late_before_ms = self.watermark_ms
        predictions: list[tuple[WirePrediction, bytes]] = []
        truths: list[tuple[WireGroundTruth, bytes]] = []
        next_pred, next_truth = self.marks.predictions, self.marks.ground_truth
        for message in messages:
            topic, offset = message.topic(), message.offset() or 0
            is_prediction = topic == self._topics.predictions
            mark = next_pred if is_prediction else next_truth
            if offset < mark:
                result.skipped += 1
                continue
            if is_prediction:
                next_pred = offset + 1
            else:
                next_truth = offset + 1
            raw = message.value() or b""
            try:
                if is_prediction:
                    predictions.append((decode_prediction(raw, message.key()), raw))
                else:
                    truths.append((decode_ground_truth(raw, message.key()), raw))
            except DecodeError as exc:
                result.dead_letters.append(
                    DeadLetter(
                        source_topic=topic or "",
                        source_partition=self.partition,
                        source_offset=offset,
                        reason=exc.reason,
                        kind=exc.kind,
                        path=exc.path,
                        key=message.key(),
                        value=message.value(),
                        original_headers=tuple(message.headers() or ()),
                        failed_at=failed_at_ms,
                    )
                )
        batch = self.store.batch()
        self._batch_kept = {}
        self._apply_predictions(predictions, batch, result)
        self._apply_truths(truths, batch, result)
        self.marks = Marks(next_pred, next_truth)
        self._write_summaries(batch)
        batch.set_marks(self.marks)
        result.batch = batch
        return result

    def persist(self, result: ApplyResult) -> None:
        """Write a batch's store changes and marks atomically."""
        if result.batch is not None:
            self.store.write(result.batch)
            result.batch = None

    def _apply_predictions(
        self,
        predictions: list[tuple[WirePrediction, bytes]],
        batch: StoreBatch,
        result: ApplyResult,
    ) -> None:
        seen: set[str] = set()
        by_version: dict[tuple[str, str], list[tuple[WirePrediction, bytes]]] = defaultdict(list)
        for event, raw in predictions:
            pid = event.prediction_id
            if pid in seen or self.store.get_prediction(pid.encode()) is not None:
                result.duplicates += 1
                continue
            seen.add(pid)
            by_version[(event.model, event.model_version)].append((event, raw))
        for (model, version), group in by_version.items():
            profile = self._profiles(model, version)
            if profile is None:
                # Kept in the store and folded when the profile arrives (from the registry,
                # or from the warm-up baseline that partition 0 builds from these events).
                for event, raw in group:
                    ts = event_time_ms(event.timestamp)
                    self.watermark_ms = max(self.watermark_ms, ts)
                    held_id = event.prediction_id.encode()
                    batch.put_prediction(held_id, ts, raw, joined=False, new=True)
                    batch.hold(model, version, held_id)
                    self._batch_kept[held_id] = (False, raw)
                key = (model, version)
                self._held[key] = self._held.get(key, 0) + len(group)
                result.waiting_for_profile += len(group)
                continue
            self._fold_predictions(profile, group, batch, result, stored=False)

    def _fold_predictions(
        self,
        profile: ReferenceProfile,
        group: list[tuple[WirePrediction, bytes]],
        batch: StoreBatch,
        result: ApplyResult,
        *,
        stored: bool,
    ) -> None:
        config = self.config(profile.model, profile)
        pane_ms = config.pane // _MS
        horizon_ms = self._horizon_ms(config)
        by_pane: dict[int, list[WirePrediction]] = defaultdict(list)
        pairs: list[tuple[WirePrediction, WireGroundTruth, bytes]] = []
        for event, raw in group:
            ts = event_time_ms(event.timestamp)
            self.watermark_ms = max(self.watermark_ms, ts)
            if ts < self._late_before_ms - horizon_ms:
                result.too_late += 1  # its pane may be gone downstream: folding it would
                continue  # replace a complete partial with a partial one
            by_pane[ts - ts % pane_ms].append(event)
            pid = event.prediction_id.encode()
            waiting = self.store.get_label(pid)
            if waiting is not None:
                truth = decode_ground_truth(waiting)
                batch.delete_label(pid, event_time_ms(truth.timestamp))
                pairs.append((event, truth, raw))
                batch.put_prediction(pid, ts, raw, joined=True, new=not stored)
                self._batch_kept[pid] = (True, raw)
            elif not stored:
                batch.put_prediction(pid, ts, raw, joined=False, new=True)
                self._batch_kept[pid] = (False, raw)
            result.predictions += 1
        for pane_start, events in by_pane.items():
            summary = self._summary("features", profile, config, pane_start)
            assert isinstance(summary, PaneSummary)
            summary.fold(columns_from_events(events, profile))
            self._dirty.add(("features", profile.model, profile.model_version, pane_start))
        self._fold_pairs(profile, config, pairs, result, batch)

    def _apply_truths(
        self, truths: list[tuple[WireGroundTruth, bytes]], batch: StoreBatch, result: ApplyResult
    ) -> None:
        pairs: dict[tuple[str, str], list[tuple[WirePrediction, WireGroundTruth, bytes]]] = (
            defaultdict(list)
        )
        seen: set[str] = set()
        for truth, raw in truths:
            pid = truth.prediction_id.encode()
            # Predictions of this same batch are not in the store yet: look there first.
            kept = self._batch_kept.get(pid) or self.store.get_prediction(pid)
            if truth.prediction_id in seen or (kept is not None and kept[0]):
                result.duplicates += 1  # the prediction already has its label
                continue
            seen.add(truth.prediction_id)
            event = None if kept is None else decode_prediction(kept[1])
            if event is None or self._profiles(event.model, event.model_version) is None:
                if self.store.get_label(pid) is not None:
                    result.duplicates += 1  # this label already waits for its prediction
                    continue
                result.labels += 1
                batch.put_label(pid, event_time_ms(truth.timestamp), raw)
                continue
            assert kept is not None
            result.labels += 1
            batch.put_prediction(
                pid, event_time_ms(event.timestamp), kept[1], joined=True, new=False
            )
            pairs[(event.model, event.model_version)].append((event, truth, kept[1]))
        for (model, version), group in pairs.items():
            profile = self._profiles(model, version)
            assert profile is not None
            self._fold_pairs(profile, self.config(model, profile), group, result, batch)

    def _fold_pairs(
        self,
        profile: ReferenceProfile,
        config: ModelConfig,
        pairs: list[tuple[WirePrediction, WireGroundTruth, bytes]],
        result: ApplyResult,
        batch: StoreBatch,
    ) -> None:
        if not pairs:
            return
        pane_ms = config.pane // _MS
        self._watch_errors(profile, config, pairs, batch)
        by_pane: dict[int, list[tuple[WirePrediction, WireGroundTruth, bytes]]] = defaultdict(list)
        for pair in pairs:
            ts = event_time_ms(pair[0].timestamp)
            by_pane[ts - ts % pane_ms].append(pair)
        classes = sorted({c for p, _, _ in pairs if p.scores for c in p.scores})
        for pane_start, group in by_pane.items():
            summary = self._summary("performance", profile, config, pane_start)
            assert isinstance(summary, PerformanceSummary)
            scores = (
                {
                    c: np.array([(p.scores or {}).get(c, np.nan) for p, _, _ in group])
                    for c in classes
                }
                if classes
                else None
            )
            delays = np.array(
                [
                    max(0, event_time_ms(t.timestamp) - event_time_ms(p.timestamp))
                    for p, t, _ in group
                ]
            )
            summary.fold(
                [t.label for _, t, _ in group],
                [p.prediction for p, _, _ in group],
                scores,
                delays,
            )
            self._dirty.add(("performance", profile.model, profile.model_version, pane_start))
        for prediction, truth, _ in pairs:
            result.labeled.append(self._labeled(prediction, truth))
            result.joined += 1

    def _watch_errors(
        self,
        profile: ReferenceProfile,
        config: ModelConfig,
        pairs: list[tuple[WirePrediction, WireGroundTruth, bytes]],
        batch: StoreBatch,
    ) -> None:
        """Feed the pairs' errors to the version's concept-drift detector (in the order they
        were joined) and flag the panes of the predictions it fired on. The detector's state is
        written in the same batch as the marks, so a restart resumes it exactly."""
        model, version = profile.model, profile.model_version
        detector = self._detectors.get((model, version))
        if detector is None:
            stored = self.store.get_detector(model, version)
            detector = (
                detector_from_snapshot(orjson.loads(stored))
                if stored is not None
                else make_detector(config.performance.concept_detector)
            )
            self._detectors[(model, version)] = detector
        try:
            if profile.task == "regression":
                errors = [abs(float(t.label) - float(p.prediction)) for p, t, _ in pairs]
            else:
                errors = [
                    float(category_key(t.label) != category_key(p.prediction)) for p, t, _ in pairs
                ]
            detector.update(errors)
        except (TypeError, ValueError):
            # A label that is no number for a regression model (the performance summary
            # counts it as a type error), or a binary-only detector on residuals: no signal.
            return
        pane_ms = config.pane // _MS
        for position in detector.drift_positions:
            ts = event_time_ms(pairs[position][0].timestamp)
            pane_start = ts - ts % pane_ms
            batch.flag_concept(model, version, pane_start)
            self._concept.add((model, version, pane_start))
            self._dirty.add(("performance", model, version, pane_start))
        batch.put_detector(model, version, orjson.dumps(detector.snapshot()))

    @staticmethod
    def _labeled(prediction: WirePrediction, truth: WireGroundTruth) -> Labeled:
        record: dict[str, Any] = {
            "id": stable_id("labeled", prediction.prediction_id),
            "prediction_id": prediction.prediction_id,
            "model": prediction.model,
            "model_version": prediction.model_version,
            "prediction_time": event_time_ms(prediction.timestamp),
            "label_time": event_time_ms(truth.timestamp),
            "features": prediction.features,
            "prediction": prediction.prediction,
            "scores": prediction.scores,
            "label": truth.label,
        }
        return Labeled(prediction.prediction_id.encode(), orjson.dumps(record))

    def _write_summaries(self, batch: StoreBatch) -> None:
        for kind, model, version, pane_start in self._dirty:
            summary = self._cache.get((kind, model, version, pane_start))
            if summary is not None:
                batch.put_partial(kind, model, version, pane_start, summary.to_bytes())

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
        group = []
        batch = self.store.batch()
        for pid in list(self.store.held(model, version)):
            kept = self.store.get_prediction(pid)
            if kept is not None:
                group.append((decode_prediction(kept[1]), kept[1]))
            batch.release(model, version, pid)
        del self._held[(model, version)]
        self._fold_predictions(profile, group, batch, result, stored=True)
        self._write_summaries(batch)
        batch.set_marks(self.marks)
        result.batch = batch
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
        from driftline.detectors.profile import profile_from_events
        from driftline.replay import infer_task

        task = infer_task(events)
        configured = self._settings.models.get(model)
        config = configured if configured is not None else ModelConfig(task=task)
        return profile_from_events(events, config.task, config)

    # --- emitting -------------------------------------------------------------------------

    def drain(self) -> list[PanePartial]:
        """The partials changed since the last drain (all of them after a start)."""
        partials = []
        covered = max(self.marks.predictions, 0) + max(self.marks.ground_truth, 0)
        for kind, model, version, pane_start in sorted(self._dirty):
            profile = self._profiles(model, version)
            if profile is None:
                continue
            config = self.config(model, profile)
            summary = self._summary(kind, profile, config, pane_start)
            partials.append(
                PanePartial(
                    model=model,
                    version=version,
                    pane_start_ms=pane_start,
                    pane_ms=config.pane // _MS,
                    source_partition=self.partition,
                    kind=kind,
                    covered=covered,
                    watermark_ms=self.watermark_ms,
                    summary=summary.to_bytes(),
                    concept_drift=kind == "performance"
                    and self._flagged(model, version, pane_start),
                )
            )
        self._dirty.clear()
        return partials

    def _flagged(self, model: str, version: str, pane_start: int) -> bool:
        if (model, version, pane_start) in self._concept:
            return True
        return self.store.concept_flagged(model, version, pane_start)

    def mark_all_dirty(self) -> None:
        """Send every stored partial again at the next drain (after a failed delivery)."""
        for kind, model, version, pane_start, _ in self.store.partials():
            self._dirty.add((kind, model, version, pane_start))

    def models(self) -> set[str]:
        """Models this partition has summaries for (for watermark heartbeats)."""
        return {model for _, model, _, _ in self._cache}

    # --- housekeeping ---------------------------------------------------------------------

    def expire(self) -> int:
        """Forget predictions and labels past the join TTL (in event time); returns how many
        predictions expired without their label ("never labelled")."""
        if self.watermark_ms < 0:
            return 0
        cutoff = self.watermark_ms - self._ttl_ms
        batch = self.store.batch()
        unlabelled = 0
        for pid, ts in list(self.store.expired_predictions(cutoff)):
            kept = self.store.get_prediction(pid)
            if kept is not None and not kept[0]:
                unlabelled += 1
            batch.delete_prediction(pid, ts)
        for pid, ts in list(self.store.expired_labels(cutoff)):
            batch.delete_label(pid, ts)
        self._evict(batch)
        if batch.size:
            batch.set_marks(self.marks)
            self.store.write(batch)
        return unlabelled

    def _evict(self, batch: StoreBatch) -> None:
        """Drop summaries no window can need any more, from the cache and the store."""
        for kind, model, version, pane_start, _ in list(self.store.partials()):
            key = (kind, model, version, pane_start)
            profile = self._profiles(model, version)
            if profile is None:
                continue
            config = self.config(model, profile)
            keep_ms = self._ttl_ms if kind == "performance" else self._horizon_ms(config)
            if pane_start < self.watermark_ms - keep_ms - config.pane // _MS and key not in (
                self._dirty
            ):
                self._cache.pop(key, None)
                batch.delete_partial(kind, model, version, pane_start)
