"""The pane summaries of one partition: what stage 1 folded, and what it has yet to emit.

A write-back cache over the store's pane partials, the cumulative feature and performance
summaries per (model, version, pane), and the rollout evidence of a shadow version against
its champion per (model, challenger, pane, champion) (see :mod:`driftline.streams.partials`).
A batch folds its predictions and joined pairs into the cached summaries and writes the ones
changed since the last emission into its store batch; :meth:`PaneSummaries.drain` hands those
out as :class:`~driftline.streams.partials.PanePartial`; :meth:`PaneSummaries.evict` drops
the panes no window can need any more, from the cache and from the store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from itertools import repeat
from typing import Any

import numpy as np
from numpy.typing import NDArray

from driftline.config import ModelConfig, Settings
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric
from driftline.detectors.rollout_sources import evidence_bytes, evidence_of_bytes
from driftline.detectors.summary import PaneSummary
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import StoredPrediction, WirePrediction
from driftline.streams.partials import PanePartial
from driftline.streams.store import Kind, PartitionStore, StoreBatch

_MS = timedelta(milliseconds=1)
_NO_SCORES: dict[str, float] = {}
PaneKey = tuple[Kind, str, str, int, str]
"""(kind, model, version, pane start, champion): the champion is empty but for rollouts."""
Summary = PaneSummary | PerformanceSummary | PairedEvidence


def horizon_ms(config: ModelConfig) -> int:
    """How far behind the watermark, in event time, a window may still read a feature pane:
    the longest window, the allowed lateness and one pane."""
    longest = max(w.size for w in config.windows)
    return (longest + config.allowed_lateness + config.pane) // _MS


class PaneSummaries:
    """The cached pane summaries of one partition, and which changed since the last drain.

    Parameters
    ----------
    store
        The partition's store, which keeps every summary written.
    profiles
        Looks up a version's reference profile (the registry); None while unknown.
    settings
        Per-model configuration (panes, windows, lateness).
    """

    def __init__(
        self,
        store: PartitionStore,
        profiles: Callable[[str, str], ReferenceProfile | None],
        settings: Settings,
    ) -> None:
        self._store = store
        self._profiles = profiles
        self._settings = settings
        self._cache: dict[PaneKey, Summary] = {}
        self._dirty: set[PaneKey] = set()

    def __len__(self) -> int:
        return len(self._cache)

    def _config(self, model: str, profile: ReferenceProfile) -> ModelConfig:
        return self._settings.model(model, profile.task)

    def summary(
        self, kind: Kind, profile: ReferenceProfile, config: ModelConfig, pane_start: int
    ) -> PaneSummary | PerformanceSummary:
        """A pane's feature or performance summary: cached, else as stored, else new."""
        key: PaneKey = (kind, profile.model, profile.model_version, pane_start, "")
        summary = self._cache.get(key)
        if not isinstance(summary, PaneSummary | PerformanceSummary):
            raw = self._store.get_partial(kind, profile.model, profile.model_version, pane_start)
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

    def evidence(
        self, model: str, challenger: str, champion: str, pane_start: int, metric: RolloutMetric
    ) -> PairedEvidence:
        """The rollout evidence of ``challenger`` against ``champion`` in a pane of the
        champion's predictions: cached, else as stored, else new (of ``metric``). Stored
        evidence keeps the metric it was folded with."""
        key: PaneKey = ("rollout", model, challenger, pane_start, champion)
        cached = self._cache.get(key)
        if isinstance(cached, PairedEvidence):
            return cached
        raw = self._store.get_partial("rollout", model, challenger, pane_start, champion)
        stored = None if raw is None else evidence_of_bytes(raw)
        evidence = stored if isinstance(stored, PairedEvidence) else PairedEvidence(metric)
        self._cache[key] = evidence
        return evidence

    @property
    def dirty(self) -> set[PaneKey]:
        """The panes changed since the last drain (the live set, not a copy)."""
        return self._dirty

    def changed(
        self, kind: Kind, model: str, version: str, pane_start: int, champion: str = ""
    ) -> None:
        """Emit this pane's partial at the next drain."""
        self._dirty.add((kind, model, version, pane_start, champion))

    def fold_features(
        self,
        profile: ReferenceProfile,
        config: ModelConfig,
        events: list[WirePrediction],
        times: NDArray[np.int64],
    ) -> None:
        """Fold accepted predictions of one version into their panes' feature summaries."""
        pane_ms = config.pane // _MS
        for pane_start, rows in _by_pane(times - times % pane_ms):
            summary = self.summary("features", profile, config, pane_start)
            assert isinstance(summary, PaneSummary)
            summary.fold_events(events if rows is None else [events[i] for i in rows])
            self._dirty.add(("features", profile.model, profile.model_version, pane_start, ""))

    def fold_pairs(
        self,
        profile: ReferenceProfile,
        config: ModelConfig,
        predictions: list[WirePrediction | StoredPrediction],
        labels: list[Any],
        guesses: list[Any],
        predicted_at: NDArray[np.int64],
        labelled_at: NDArray[np.int64],
    ) -> None:
        """Fold joined pairs of one version into the performance summaries of their
        predictions' panes."""
        pane_ms = config.pane // _MS
        given = [prediction.scores or _NO_SCORES for prediction in predictions]
        classes = sorted(set().union(*given))
        # None (no score for the class) becomes NaN in a float64 array.
        scores = (
            {c: np.array(list(map(dict.get, given, repeat(c))), dtype=np.float64) for c in classes}
            if classes
            else None
        )
        delays = np.maximum(labelled_at - predicted_at, 0)
        panes = predicted_at - predicted_at % pane_ms
        label_column, guess_column = _objects(labels), _objects(guesses)
        tracked = profile.segments
        tags = [prediction.segments for prediction in predictions] if tracked else []
        for pane_start, rows in _by_pane(panes):
            summary = self.summary("performance", profile, config, pane_start)
            assert isinstance(summary, PerformanceSummary)
            if rows is None:
                summary.fold(label_column, guess_column, scores, delays)
                summary.fold_segments(tracked, tags, label_column, guess_column, scores, delays)
            else:
                some = None if scores is None else {c: v[rows] for c, v in scores.items()}
                summary.fold(label_column[rows], guess_column[rows], some, delays[rows])
                summary.fold_segments(
                    tracked,
                    [tags[row] for row in rows.tolist()] if tags else [],
                    label_column[rows],
                    guess_column[rows],
                    some,
                    delays[rows],
                )
            self._dirty.add(("performance", profile.model, profile.model_version, pane_start, ""))

    def write(self, batch: StoreBatch) -> None:
        """Put every summary changed since the last drain into ``batch``."""
        for key in self._dirty:
            summary = self._cache.get(key)
            if summary is not None:
                batch.put_partial(*key[:4], _bytes(summary), key[4])

    def drain(
        self,
        partition: int,
        covered: int,
        watermark_ms: int,
        flagged: Callable[[str, str, int], bool],
    ) -> list[PanePartial]:
        """The partials changed since the last drain, of versions whose profile is known;
        ``flagged`` says whether the concept-drift detector fired in a performance pane."""
        partials = []
        for kind, model, version, pane_start, champion in sorted(self._dirty):
            profile = self._profiles(model, version)
            if profile is None:
                continue
            config = self._config(model, profile)
            if kind == "rollout":
                cached = self._cache.get((kind, model, version, pane_start, champion))
                raw = self._store.get_partial(kind, model, version, pane_start, champion)
                summary = raw if cached is None else _bytes(cached)
                if summary is None:
                    continue
            else:
                summary = self.summary(kind, profile, config, pane_start).to_bytes()
            partials.append(
                PanePartial(
                    model=model,
                    version=version,
                    pane_start_ms=pane_start,
                    pane_ms=config.pane // _MS,
                    source_partition=partition,
                    kind=kind,
                    covered=covered,
                    watermark_ms=watermark_ms,
                    summary=summary,
                    concept_drift=kind == "performance" and flagged(model, version, pane_start),
                    champion=champion,
                )
            )
        self._dirty.clear()
        return partials

    def mark_all_dirty(self) -> int:
        """Emit every stored partial again at the next drain; returns the newest pane start
        among them (-1 when there is none)."""
        newest = -1
        for kind, model, version, pane_start, champion, _ in self._store.partials():
            self._dirty.add((kind, model, version, pane_start, champion))
            newest = max(newest, pane_start)
        return newest

    def evict(self, batch: StoreBatch, watermark_ms: int, ttl_ms: int) -> None:
        """Drop summaries no window can need any more, from the cache and the store: feature
        panes past the horizon, performance and rollout panes past the join TTL (a label may
        still join a prediction of theirs until then)."""
        for kind, model, version, pane_start, champion, _ in list(self._store.partials()):
            key = (kind, model, version, pane_start, champion)
            profile = self._profiles(model, version)
            if profile is None:
                continue
            config = self._config(model, profile)
            keep_ms = horizon_ms(config) if kind == "features" else ttl_ms
            if pane_start < watermark_ms - keep_ms - config.pane // _MS and key not in (
                self._dirty
            ):
                self._cache.pop(key, None)
                batch.delete_partial(kind, model, version, pane_start, champion)

    def models(self) -> set[str]:
        """Models with cached summaries."""
        return {key[1] for key in self._cache}


def _bytes(summary: Summary) -> bytes:
    """A cached summary as its partial's bytes."""
    if isinstance(summary, PairedEvidence):
        return evidence_bytes(summary)
    return summary.to_bytes()


def _by_pane(panes: NDArray[np.int64]) -> list[tuple[int, NDArray[np.intp] | None]]:
    """(pane start, rows of that pane) for each pane present; rows None when all are in one."""
    first, last = int(panes.min()), int(panes.max())
    if first == last:
        return [(first, None)]
    return [(int(pane), np.flatnonzero(panes == pane)) for pane in np.unique(panes)]


def _objects(values: list[Any]) -> NDArray[np.object_]:
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column
