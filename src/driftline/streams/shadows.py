"""Shadow predictions in stage 1: each paired with its champion's through the label they share.

A shadow prediction (role ``shadow``, issue 16) answers the same request as a champion
prediction, whose id is its ``shadow_of`` and its message key. It waits in the join under
that id and :data:`~driftline.streams.store.SHADOW`
(:func:`~driftline.streams.store.shadow_entry_key`): one shadow per champion prediction, a
second one is a duplicate. It folds into its own version's feature summaries like any
prediction, never into the champion's.

When the champion's label joins the champion (whichever of the three came first),
:meth:`ShadowPairing.pair` finds the shadow waiting: the label scores both predictions with the
model's rollout metric (:func:`~driftline.detectors.rollout_sources.rollout_metric`), the
difference folds into the rollout evidence of (challenger, champion, pane of the champion's
prediction) (:func:`~driftline.detectors.rollout_sources.fold_shadow_pairs`), the shadow is
marked joined, and its own pair goes back to the worker for the challenger's performance
summary. A label never waits for a shadow: a shadow that comes after its champion joined its
label can never be paired (:meth:`ShadowPairing.arrived` counts it), nor can one still held
for its version's profile when the label comes (it waits on, and is folded with its version).
Only models whose ``rollout.mode`` is ``shadow`` pair; when no model is, the labels' path
reads nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import timedelta

from driftline.config import ModelConfig, Settings
from driftline.detectors.regression import check_numbers
from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric
from driftline.detectors.rollout_sources import fold_shadow_pairs, rollout_metric
from driftline.errors import StatisticsError
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import (
    StoredPrediction,
    WireGroundTruth,
    WirePrediction,
    decode_stored_predictions,
)
from driftline.streams.entries import JOINED, PENDING, SHADOW, shadow_entry_key, split_entries
from driftline.streams.intake import Columns, event_times
from driftline.streams.join import Pair
from driftline.streams.panes import PaneSummaries
from driftline.streams.result import ApplyResult
from driftline.streams.store import StoreBatch

_MS = timedelta(milliseconds=1)
Entries = dict[bytes, bytes | None]
Lookup = Callable[[Entries, list[bytes]], list[bytes | None]]
"""The join entries of ids as a batch sees them (``JoinEntries.lookup``)."""


def champion_keys(shadow_keys: Sequence[bytes]) -> list[bytes]:
    """The champions' join ids of shadows' join keys.

    >>> champion_keys([b"p1\\xffs"])
    [b'p1']
    """
    return [key[: -len(SHADOW)] for key in shadow_keys]


class ShadowPairing:
    """Which models pair shadows (``rollout.mode: shadow``), and the pairing itself.

    Parameters
    ----------
    settings
        The models' configuration.
    profile_of
        A version's profile as the worker sees it: None while its predictions are held.
    panes
        The worker's pane summaries (they are replaced when the worker resets).
    """

    def __init__(
        self,
        settings: Settings,
        profile_of: Callable[[str, str], ReferenceProfile | None],
        panes: Callable[[], PaneSummaries],
    ) -> None:
        self.models = frozenset(
            name for name, config in settings.models.items() if config.rollout.mode == "shadow"
        )
        self._profile_of = profile_of
        self._panes = panes

    def label_keys(self, truths: Columns[WireGroundTruth]) -> list[bytes]:
        """The shadow keys the batch's labels may find, read in the batch's one multi-get:
        of each label of a model in shadow mode, or naming no model; none when no model is
        in shadow mode."""
        models = self.models
        if not models or not truths.ids:
            return []
        return [
            shadow_entry_key(pid)
            for truth, pid in zip(truths.events, truths.ids, strict=True)
            if truth.model is None or truth.model in models
        ]

    def arrived(
        self,
        keys: list[bytes],
        entries: Entries,
        batch: StoreBatch,
        result: ApplyResult,
        *,
        held: bool,
    ) -> None:
        """New shadows (their join keys), kept waiting: those whose champion has joined its
        label already can never be paired; they are counted and joined at once (a repeat is
        then a duplicate), but for held ones, which wait on to be folded with their version."""
        for key in keys:
            entry = entries.get(key)
            if entry is None or entry[:1] != PENDING:
                continue  # too late for any window: not kept
            champion = entries.get(key[: -len(SHADOW)])
            if champion is not None and champion[:1] == JOINED:
                result.shadows_unpaired += 1
                if not held:
                    entries[key] = JOINED
                    batch.put_entry(key, JOINED)

    def pair(
        self,
        profile: ReferenceProfile,
        config: ModelConfig,
        pairs: list[Pair],
        entries: Entries,
        lookup: Lookup,
        batch: StoreBatch,
        result: ApplyResult,
    ) -> list[tuple[ReferenceProfile, list[Pair]]]:
        """Pair the shadows waiting for the champion predictions of ``pairs`` (just joined
        with their labels, all of ``profile``'s version; ``entries`` the batch's, read with
        ``lookup``): fold their rollout evidence, mark them joined, and return each
        challenger's shadow pairs (shadow, label, its bytes, offsets) to fold as its own."""
        if profile.model not in self.models or not pairs:
            return []
        keys = [shadow_entry_key(pair[0].prediction_id.encode()) for pair in pairs]
        found = lookup(entries, keys)
        waiting = [
            (i, entry)
            for i, entry in enumerate(found)
            if entry is not None and entry[:1] == PENDING
        ]
        if not waiting:
            return []
        rows = [i for i, _ in waiting]
        offsets, raws = split_entries([entry for _, entry in waiting])
        champions: list[Pair] = []
        shadows: list[Pair] = []
        challengers: dict[str, ReferenceProfile] = {}
        for row, shadow, raw, offset in zip(
            rows, decode_stored_predictions(raws), raws, offsets, strict=True
        ):
            challenger = (
                self._profile_of(shadow.model, shadow.model_version)
                if shadow.model == profile.model
                else None
            )
            if challenger is None:
                result.shadows_unpaired += 1  # held for its profile: it waits on, unpaired
                continue
            challengers[shadow.model_version] = challenger
            entries[keys[row]] = JOINED
            batch.put_entry(keys[row], JOINED)
            champion = pairs[row]
            champions.append(champion)
            shadows.append((shadow, champion[1], raw, offset, champion[4]))
        if not shadows:
            return []
        self._fold_evidence(profile.model, config, champions, shadows, result, self._panes())
        by_version: dict[str, list[Pair]] = {}
        for shadow_pair in shadows:
            if config.task == "regression" and not _numbers(shadow_pair):
                continue  # not for its performance: the label, which scored the champion, stays
            by_version.setdefault(shadow_pair[0].model_version, []).append(shadow_pair)
        return [(challengers[version], own) for version, own in by_version.items()]

    def _fold_evidence(
        self,
        model: str,
        config: ModelConfig,
        champions: list[Pair],
        shadows: list[Pair],
        result: ApplyResult,
        panes: PaneSummaries,
    ) -> None:
        """Fold the (label, champion, shadow) triples into the rollout evidence of their
        (challenger, champion, pane of the champion's prediction)."""
        metric = rollout_metric(config.task, config.performance.metric, config.rollout.cap)
        if metric is None:  # no per-example score for this task yet (regression)
            result.shadow_pairs_unscored += len(shadows)
            return
        pane_ms = config.pane // _MS
        times = event_times([pair[0].timestamp for pair in champions])
        starts = (times - times % pane_ms).tolist()
        groups: dict[tuple[str, str, int], list[int]] = {}
        for row, (champion, shadow, start) in enumerate(
            zip(champions, shadows, starts, strict=True)
        ):
            key = (shadow[0].model_version, champion[0].model_version, start)
            groups.setdefault(key, []).append(row)
        for (challenger, champion_version, start), group in groups.items():
            evidence = panes.evidence(model, challenger, champion_version, start, metric)
            labels, ours, theirs = _values(
                evidence.metric,
                config.positive_class,
                [champions[i][1] for i in group],
                [champions[i][0] for i in group],
                [shadows[i][0] for i in group],
            )
            scored = _fold(evidence, labels, ours, theirs)
            result.shadow_pairs_unscored += len(group) - scored
            if scored:
                panes.changed("rollout", model, challenger, start, champion_version)


Prediction = WirePrediction | StoredPrediction


def _numbers(pair: Pair) -> bool:
    """Whether a regression's performance can count the pair (see ``check_numbers``)."""
    try:
        check_numbers([pair[1].label], [pair[0].prediction])
    except StatisticsError:
        return False
    return True


def _values(
    metric: RolloutMetric,
    positive_class: str | None,
    truths: list[WireGroundTruth],
    champion: list[Prediction],
    challenger: list[Prediction],
) -> tuple[list[object], list[object], list[object]]:
    """(labels, champion's values, shadow's values) as the metric scores them: the predicted
    classes, or for log loss 1/0 labels and each one's probability of class 1 (of
    ``positive_class`` when set; NaN, unscorable, when a prediction gives none)."""
    labels: list[object] = [truth.label for truth in truths]
    if metric.name != "log_loss":
        return (
            labels,
            [p.prediction for p in champion],
            [p.prediction for p in challenger],
        )
    key = positive_class or "1"
    if positive_class is not None:
        labels = [float(str(label) == positive_class) for label in labels]

    def probability(prediction: Prediction) -> object:
        return (prediction.scores or {}).get(key, math.nan)

    return labels, list(map(probability, champion)), list(map(probability, challenger))


def _fold(
    evidence: PairedEvidence,
    labels: list[object],
    champion: list[object],
    challenger: list[object],
) -> int:
    """Fold the triples into ``evidence``; those the metric cannot score are left out (the
    evidence folds all of a call or none). Returns how many were folded."""
    try:
        fold_shadow_pairs(evidence, labels, champion, challenger)
        return len(labels)
    except StatisticsError:
        pass
    scored = 0
    for label, ours, theirs in zip(labels, champion, challenger, strict=True):
        try:
            fold_shadow_pairs(evidence, [label], [ours], [theirs])
        except StatisticsError:
            continue
        scored += 1
    return scored
