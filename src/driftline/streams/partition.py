"""Stage 1 for one input partition number: decode, fold, join, in one atomic write per batch.

A :class:`PartitionWorker` owns partition ``p`` of both input topics (they are co-partitioned
by ``prediction_id``). :meth:`PartitionWorker.apply` takes a batch of raw messages from either
topic and

1. skips what the store has already applied (offsets below its marks) and decodes the rest; a
   bad event becomes a :class:`~driftline.schemas.outputs.DeadLetter` with its reason
   (:mod:`~driftline.streams.intake`), and so does a prediction of a model that
   ``models_policy`` does not admit (:mod:`~driftline.streams.admission`),
2. drops duplicates (a ``prediction_id`` already kept; a label for an already matched one) and
   joins predictions and labels, whichever comes first waiting in the store
   (:mod:`~driftline.streams.join`); predictions of a version without a profile are held
   until it has one (:mod:`~driftline.streams.held`),
3. folds predictions into the cumulative feature summary of their (model, version, pane), and
   each joined pair into the performance summary of the *prediction's* pane
   (:mod:`~driftline.streams.panes`), the pairs' errors into the version's concept-drift
   detector (:mod:`~driftline.streams.concept_watch`), and makes a joined example of each
   pair (:mod:`~driftline.streams.labeled`) of a model that wants them (``retrain.examples``;
   the others' predictions wait in the join compact, without their bytes); a shadow
   prediction is paired with its champion's through their label, into rollout evidence
   (:mod:`~driftline.streams.shadows`),
4. writes summaries, join entries and the new marks in one RocksDB write batch.

This module holds the order of those steps, the watermarks, and what a batch may emit while
the store is rebuilt. When applying a batch raises, :meth:`PartitionWorker.reset` forgets
what the batch did in memory (the store is the truth: nothing of it was written), the ingest
loop applies the batch again in parts, and :meth:`PartitionWorker.reject` dead-letters each
event that fails alone (kind ``processing_error``).

Changed summaries are handed out by :meth:`PartitionWorker.drain` as cumulative
:class:`~driftline.streams.partials.PanePartial`; emitting one twice is harmless.
No Kafka client lives here: the ingest loop feeds batches in and sends what comes out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from driftline.config import ModelConfig, Settings
from driftline.deadletter import RawMessage, from_message
from driftline.detectors.regression import check_magnitudes, check_numbers
from driftline.detectors.values import to_numeric
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import EventDecoder, WireGroundTruth, WirePrediction
from driftline.streams.admission import ModelAdmission, refuse_unknown
from driftline.streams.concept_watch import ConceptWatch
from driftline.streams.held import HeldPredictions, regression_fit
from driftline.streams.intake import Columns, event_times, split_shadows, take
from driftline.streams.join import (
    Arrivals,
    JoinEntries,
    JoinWork,
    Pair,
    admit,
    expire_entries,
    join_labels,
    join_predictions,
    match,
    rows_by_version,
)
from driftline.streams.labeled import labeled_record
from driftline.streams.panes import PaneSummaries, horizon_ms
from driftline.streams.partials import PanePartial
from driftline.streams.result import ApplyResult
from driftline.streams.shadows import ShadowPairing, champion_keys
from driftline.streams.store import Marks, PartitionStore, StoreBatch

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
    admission
        Which models are tracked (shared by the partitions of a process); by default one of
        this worker's own, from ``settings.models_policy``.
    """

    def __init__(
        self,
        partition: int,
        store: PartitionStore,
        profiles: Callable[[str, str], ReferenceProfile | None],
        settings: Settings,
        *,
        admission: ModelAdmission | None = None,
    ) -> None:
        self.partition = partition
        self.admission = admission or ModelAdmission.from_settings(settings)
        self.store = store
        self._profiles = profiles
        self._settings = settings
        self._topics = settings.topics
        self._ttl_ms = settings.monitor.join_ttl // _MS
        self._decoder = EventDecoder(settings.monitor.limits.limits(), require_key=True)
        self._skew_ms = settings.monitor.max_clock_skew // _MS
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
        self._join = JoinEntries(store)
        self._held = HeldPredictions(store)
        self._shadows = ShadowPairing(settings, self._profile, lambda: self._panes)
        self._unpersisted = 0
        self.restore_until = Marks()
        """Offsets the consumer group had committed when this worker started: below them
        another member already applied the inputs and sent their outputs (see
        :meth:`restoring`)."""
        self.watermark_ms = self._panes.mark_all_dirty()  # re-emit all on start
        self._checkpoint: tuple[int, int, int | None] = (
            self.watermark_ms,
            self.label_watermark_ms,
            self._labels_seen_ms,
        )
        """The watermarks before the last batch (for :meth:`reset`)."""

    # --- configuration --------------------------------------------------------------------

    def config(self, model: str, profile: ReferenceProfile) -> ModelConfig:
        """How a model is watched (its configuration, or defaults for its task)."""
        return self._settings.model(model, profile.task)

    def _profile(self, model: str, version: str) -> ReferenceProfile | None:
        """A version's profile as a batch sees it: none while predictions are held for it,
        until :meth:`profile_arrived` releases them, even if the registry knows it already
        (a label joined before the release would leave its prediction unfolded)."""
        return None if self._held.holds(model, version) else self._profiles(model, version)

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
        self._checkpoint = (self.watermark_ms, self.label_watermark_ms, self._labels_seen_ms)
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
            self._decoder.predictions,
            failed_at_ms,
            result,
            max_skew_ms=self._skew_ms,
        )
        predictions, shadows = split_shadows(
            refuse_unknown(
                predictions,
                from_predictions,
                self.admission,
                until.predictions,
                failed_at_ms,
                result,
            )
        )
        truth_columns, next_truth = take(
            from_truth,
            self.marks.ground_truth,
            until.ground_truth,
            self._decoder.ground_truths,
            failed_at_ms,
            result,
            max_skew_ms=self._skew_ms,
        )
        if truth_columns.events:
            newest = int(event_times([truth.timestamp for truth in truth_columns.events]).max())
            self.label_watermark_ms = max(self.label_watermark_ms, newest)
        batch = self.store.batch()
        ids = predictions.ids + truth_columns.ids + self._shadows.label_keys(truth_columns)
        if shadows.ids:
            ids += shadows.ids + champion_keys(shadows.ids)
        work = self._join.read(ids, remember=bool(truth_columns.ids))
        if shadows.ids:
            # First: a champion of this batch that joins a waiting label then finds its shadow.
            self._apply_predictions(shadows, batch, result, work, shadows=True)
        self._apply_predictions(predictions, batch, result, work)
        self._apply_truths(truth_columns, batch, result, work)
        self.marks = Marks(next_pred, next_truth)
        sequence = (next_pred, next_truth)
        batch.expire_later("predictions", work.newest_prediction, sequence, work.new_predictions)
        batch.expire_later("labels", work.newest_label, sequence, work.new_labels)
        batch.expire_later("held_labels", work.newest_label, sequence, work.held_labels)
        self._held.expire_later(work.newest_prediction, sequence, batch)
        self._panes.write(batch)
        batch.set_marks(self.marks)
        result.batch = batch
        self._join.applied(work)
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
                self._join.written()
                self._held.written()

    # --- containment ----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget what the last, failed :meth:`apply_split` did in memory: the caches are
        read again from the store, the watermarks go back to where that batch found them.

        Only once every batch applied before it is persisted (the store is then the truth);
        the panes changed since the last drain stay due for emission."""
        if self._unpersisted:
            raise RuntimeError("reset() with batches not yet persisted would lose them")
        self.marks = self.store.marks()
        self.watermark_ms, self.label_watermark_ms, self._labels_seen_ms = self._checkpoint
        dirty = self._panes.dirty
        self._panes = PaneSummaries(self.store, self._profiles, self._settings)
        # Due: those the store has (a pane only the failed batch made is not there).
        self._panes.dirty.update(key for key in dirty if self.store.get_partial(*key) is not None)
        self._concept = ConceptWatch(self.store)
        self._join = JoinEntries(self.store)
        self._held = HeldPredictions(self.store)

    def reject(self, message: RawMessage, error: BaseException, failed_at_ms: int) -> ApplyResult:
        """A batch of one message that failed to apply on its own: its dead letter (kind
        ``processing_error``, the exception as reason) and marks past it, nothing else."""
        result = ApplyResult()
        offset = message.offset() or 0
        if message.topic() == self._topics.predictions:
            result.prediction_messages = 1
            mark, until = self.marks.predictions, self.restore_until.predictions
            marks = Marks(max(mark, offset + 1), self.marks.ground_truth)
        else:
            result.truth_messages = 1
            mark, until = self.marks.ground_truth, self.restore_until.ground_truth
            marks = Marks(self.marks.predictions, max(mark, offset + 1))
        if offset < mark:
            result.skipped += 1
        elif offset < until:
            result.restored += 1  # rebuilding: the previous owner dead-lettered it
        else:
            result.dead_letters.append(
                from_message(
                    message,
                    reason=f"{type(error).__name__}: {error}",
                    kind="processing_error",
                    failed_at=failed_at_ms,
                )
            )
        self.marks = marks
        batch = self.store.batch()
        batch.set_marks(marks)
        result.batch = batch
        self._unpersisted += 1
        return result

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

    @property
    def panes_cached(self) -> int:
        """Pane summaries held in memory (bounded by the models' horizons; for diagnostics)."""
        return len(self._panes)

    def _apply_predictions(
        self,
        predictions: Columns[WirePrediction],
        batch: StoreBatch,
        result: ApplyResult,
        work: JoinWork,
        *,
        shadows: bool = False,
    ) -> None:
        for (model, version), arrivals in admit(predictions, work, result):
            profile = self._profile(model, version)
            if profile is None:
                newest = self._held.hold(model, version, arrivals, batch, result, work)
                self.watermark_ms = max(self.watermark_ms, newest)
            else:
                self._fold_predictions(profile, arrivals, batch, result, work, shadows=shadows)
            if shadows:
                held = profile is None
                self._shadows.arrived(arrivals.ids, work.entries, batch, result, held=held)

    def _fold_predictions(
        self,
        profile: ReferenceProfile,
        arrivals: Arrivals,
        batch: StoreBatch,
        result: ApplyResult,
        work: JoinWork | None,
        *,
        shadows: bool = False,
    ) -> None:
        """Join and fold new predictions of one version whose profile is known; ``work`` is
        None for held ones (already waiting in the store). They wait compact unless their
        model makes joined examples, or they are ``shadows`` (whose entries keep their own
        prediction id, which their join key does not)."""
        config = self.config(profile.model, profile)
        if profile.task == "regression":
            # Here rather than when its label joins: the fault is the prediction's.
            guesses, _ = to_numeric([event.prediction for event in arrivals.events])
            check_magnitudes(guesses, "predictions")
        times = event_times([event.timestamp for event in arrivals.events])
        self.watermark_ms = max(self.watermark_ms, int(times.max()))
        too_old = self._late_before_ms - horizon_ms(config)
        compact = not shadows and not self._settings.examples(profile.model)
        events, times, pairs = join_predictions(
            arrivals,
            times,
            too_old,
            batch,
            result,
            work,
            compact=compact,
            segments=profile.segments,
        )
        if not events:
            return
        result.predictions += len(events)
        self._panes.fold_features(profile, config, events, times)
        self._fold_pairs(profile, config, pairs, result, batch, work)

    def _apply_truths(
        self,
        truth_columns: Columns[WireGroundTruth],
        batch: StoreBatch,
        result: ApplyResult,
        work: JoinWork,
    ) -> None:
        matched = match(truth_columns, batch, result, work)
        if not matched.ids:
            return
        rows_of = rows_by_version(matched.predictions)
        profiles = {version: self._profile(*version) for version in rows_of}
        if None in profiles.values():
            # Held in the order they came, whatever their version.
            every = range(len(matched.ids))
            held = sorted(
                row
                for version, rows in rows_of.items()
                if profiles[version] is None
                for row in (every if rows is None else rows)
            )
            self._held.hold_labels(matched, held, batch, result, work)
        for version, rows in rows_of.items():
            profile = profiles[version]
            if profile is None:
                continue
            pairs = join_labels(matched, rows, batch, result)
            self._fold_pairs(profile, self.config(version[0], profile), pairs, result, batch, work)

    def _fold_pairs(
        self,
        profile: ReferenceProfile,
        config: ModelConfig,
        pairs: list[Pair],
        result: ApplyResult,
        batch: StoreBatch,
        work: JoinWork | None,
        *,
        shadow: bool = False,
    ) -> None:
        """Fold joined pairs of one version; then pair the shadows waiting for them (a
        ``shadow`` pair, folded for its challenger, makes no joined example: its champion's
        carries the same input and label)."""
        if not pairs:
            return
        predictions = [pair[0] for pair in pairs]
        truths = [pair[1] for pair in pairs]
        predicted_at = event_times([prediction.timestamp for prediction in predictions])
        labelled_at = event_times([truth.timestamp for truth in truths])
        labels = [truth.label for truth in truths]
        guesses = [prediction.prediction for prediction in predictions]
        if profile.task == "regression":
            check_numbers(labels, guesses)  # before anything changes: contained, dead-lettered
        for pane_start in self._concept.watch(
            profile, config, labels, guesses, predicted_at, batch
        ):
            self._panes.changed("performance", profile.model, profile.model_version, pane_start)
        self._panes.fold_pairs(
            profile, config, predictions, labels, guesses, predicted_at, labelled_at
        )
        result.joined += len(pairs)
        if shadow:
            result.shadow_pairs += len(pairs)
            return
        if self._settings.examples(profile.model):
            self._examples(pairs, predicted_at.tolist(), labelled_at.tolist(), result)
        entries = {} if work is None else work.entries
        lookup = self._join.lookup
        shadows = self._shadows.pair(profile, config, pairs, entries, lookup, batch, result)
        for challenger, own in shadows:
            own_config = self.config(challenger.model, challenger)
            self._fold_pairs(challenger, own_config, own, result, batch, None, shadow=True)

    def _examples(
        self,
        pairs: list[Pair],
        predicted_at: list[int],
        labelled_at: list[int],
        result: ApplyResult,
    ) -> None:
        """The joined examples of ``pairs``: but those the previous owner sent (while the store
        is rebuilt), and those whose prediction waited compact (its model made no examples
        then: its features are gone)."""
        until = self.restore_until
        for (prediction, truth, raw, at_offset, label_offset), at, labelled in zip(
            pairs, predicted_at, labelled_at, strict=True
        ):
            if at_offset < until.predictions and label_offset < until.ground_truth:
                result.restored += 1  # rebuilding: the previous owner sent this one
                continue
            if not raw:
                continue
            result.labeled.append(
                labeled_record(prediction.prediction_id, raw, truth, at, labelled)
            )

    # --- profiles arriving ----------------------------------------------------------------

    def profile_arrived(self, model: str, version: str, failed_at_ms: int = 0) -> ApplyResult:
        """Fold the predictions held for a version whose profile just became known (those
        a regression's sums cannot take are dead-lettered, at ``failed_at_ms``)."""
        result = ApplyResult()
        # Nothing of this version was emitted before its profile: no partial downstream can
        # be replaced by a smaller one, so none of its held predictions is too late.
        self._late_before_ms = -(2**62)
        profile = self._profiles(model, version)
        if profile is None or not self._held.holds(model, version):
            return result
        batch = self.store.batch()
        held = self._held.release(model, version, batch)
        if profile.task == "regression" and held.ids:
            held = regression_fit(held, batch, result, self._topics, self.partition, failed_at_ms)
        if held.ids:
            self._fold_predictions(profile, held, batch, result, None)
        self._panes.write(batch)
        batch.set_marks(self.marks)
        result.batch = batch
        self._unpersisted += 1
        return result

    def refuse_held(
        self, model: str, version: str, kind: str, reason: str, failed_at_ms: int
    ) -> ApplyResult:
        """Dead-letter every prediction held for a version and the labels waiting with them
        (e.g. its warm-up baseline cannot be published). Send the dead letters, then
        :meth:`persist`: the held entries leave the store only with that write."""
        result = ApplyResult()
        if self._held.holds(model, version):
            batch = self.store.batch()
            result.dead_letters = self._held.refuse(
                model, version, batch, self._topics, self.partition, kind, reason, failed_at_ms
            )
            batch.set_marks(self.marks)
            result.batch = batch
            self._unpersisted += 1
        return result

    def held(self) -> dict[tuple[str, str], int]:
        """Predictions held per version while its profile is unknown."""
        return self._held.counts()

    def baseline(self, model: str, version: str, warmup_events: int) -> ReferenceProfile | None:
        """A warm-up profile from the first held predictions of a version without one.

        Only one partition should build it (the ingest loop asks partition 0's owner), so
        every worker ends up with the same published profile.
        """
        return self._held.baseline(model, version, warmup_events, self._settings)

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
        unlabelled = expire_entries(self.store, cutoff, batch)
        self._held.expire(cutoff, batch)
        self._panes.evict(batch, self.watermark_ms, self._ttl_ms)
        if batch.size:
            batch.set_marks(self.marks)
            self.store.write(batch)
        return unlabelled
