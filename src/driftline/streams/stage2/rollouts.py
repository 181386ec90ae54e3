"""Stage 2's rollouts of one model: rollout partials held, each pair's windows judged once.

:class:`ModelRollouts` is part of :class:`~driftline.streams.stage2.state.Stage2State`'s state
of one model. It keeps the ``kind == "rollout"`` pane partials (shadow evidence, replaced by
identity like every partial, never handed to the model's monitor) and one
:class:`~driftline.streams.stage2.rollout.RolloutJudge` per (champion, challenger) pair, and
when the model's closing watermark advances it feeds every pair its closed windows, in order,
each window once:

- **window series**: the model's first configured window when it does not hop, else tumbling
  windows of its size (both aligned to the epoch); a pair's series starts at the window of
  the first pane it has evidence for. At the close of each window of the series the pair's
  judge looks at *all* its evidence for predictions before that window's end, late labels
  included (labels of a window already looked at count at the next look), each example once.
  Panes older than stage 2's label horizon (the one its partials are pruned at) are folded
  into the pair's *settled* evidence and let go, so memory stays bounded however long a
  rollout lasts; a partial that arrives for a settled pane is ``expired``.
- **shadow** (``models.<m>.rollout.mode == "shadow"``): the pair's rollout partials of the
  window's panes, summed over panes and source partitions.
- **canary** (``mode == "canary"``): :func:`~driftline.detectors.rollout_sources.
  canary_evidence` of the two versions' performance partials of the window, the champion
  being the canary version's ``parent_version`` (:data:`ParentLookup`) when that version has
  labelled traffic too; on accuracy whatever the model's metric (the performance summaries
  hold no other per-example sums).

Each look gives a ``rollout`` point (with ``prediction_js``, the Jensen-Shannon distance
between the two versions' prediction distributions in the window, when both are known), and
the first decisive one the pair's :class:`~driftline.schemas.outputs.RolloutDecision`; the pair
is then done: no further looks, no further points. Regression models have no rollout metric
yet and are skipped (one log line per model). Pure: no Kafka, no clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

import numpy as np

from driftline.config.settings import ModelConfig
from driftline.detectors.columns import CategoricalColumnSummary, NumericColumnSummary
from driftline.detectors.distance import jensen_shannon
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.rollout_evidence import Evidence, PairedEvidence, RolloutMetric
from driftline.detectors.rollout_sources import canary_evidence, evidence_of_bytes, rollout_metric
from driftline.detectors.summary import PaneSummary
from driftline.errors import DecodeError, DriftlineError
from driftline.schemas.outputs import RolloutDecision
from driftline.schemas.reference import ReferenceProfile
from driftline.sinks.outbox import encode_messages
from driftline.sinks.points import MetricPoint
from driftline.streams.partials import PanePartial
from driftline.streams.stage2.outputs import Output, record_size
from driftline.streams.stage2.panes import Slot
from driftline.streams.stage2.rollout import RolloutJudge, policy_of

__all__ = [
    "ModelRollouts",
    "ParentLookup",
    "PartialsOf",
    "RolloutLook",
    "prediction_distance",
    "series_size_ms",
]

logger = logging.getLogger(__name__)

ParentLookup = Callable[[str, str], str | None]
"""``(model, version) -> parent_version`` from the version's ModelVersionRegistered record
on the models topic, or None (unknown version, or no parent)."""

PartialsOf = Callable[[str, int, str], Mapping[int, PanePartial]]
"""``(version, pane start, kind) -> {source partition: partial}`` of the model's held
features and performance partials."""

_MS = timedelta(milliseconds=1)


def series_size_ms(config: ModelConfig) -> int:
    """The size of the tumbling windows a model's rollouts are judged on: its first configured
    window's (a hopping one's size: overlapping windows would add examples twice).

    >>> from driftline.config.settings import ModelConfig
    >>> series_size_ms(ModelConfig(task="binary", windows=[{"size": "10m", "hop": "5m"}]))
    600000
    """
    return config.windows[0].size // _MS


def prediction_distance(
    champion: PaneSummary, challenger: PaneSummary, *, same_bins: bool = False
) -> float | None:
    """Jensen-Shannon distance (base 2) between two versions' prediction distributions, or
    None when it cannot be had: a version without predictions, or numeric predictions not
    folded on the same bins (``same_bins``: both profiles' prediction edges are equal; each
    version's own reference deciles usually differ).

    Classes are matched by name (each profile's categories, plus the unseen names counted).
    """
    a, b = champion.prediction, challenger.prediction
    if isinstance(a, CategoricalColumnSummary) and isinstance(b, CategoricalColumnSummary):
        names = sorted(_class_counts(a).keys() | _class_counts(b).keys())
        counts_a = np.array([_class_counts(a).get(n, 0) for n in names], dtype=np.float64)
        counts_b = np.array([_class_counts(b).get(n, 0) for n in names], dtype=np.float64)
    elif isinstance(a, NumericColumnSummary) and isinstance(b, NumericColumnSummary):
        if not same_bins:
            return None
        counts_a = a.counts.astype(np.float64)
        counts_b = b.counts.astype(np.float64)
    else:
        return None
    if counts_a.sum() <= 0 or counts_b.sum() <= 0:
        return None
    return jensen_shannon(counts_a, counts_b)


def _class_counts(column: CategoricalColumnSummary) -> dict[str, int]:
    counts = {name: int(c) for name, c in zip(column.categories, column.counts, strict=False)}
    for name, count in column.unseen.items():
        counts[name] = counts.get(name, 0) + count
    return {name: c for name, c in counts.items() if c}


@dataclass(frozen=True, slots=True)
class RolloutLook:
    """What one close of the model's windows made: points, decisions, and the pairs whose
    window could not be judged (pair and why)."""

    points: list[MetricPoint] = field(default_factory=list)
    decisions: list[RolloutDecision] = field(default_factory=list)
    failures: list[tuple[tuple[str, str], str]] = field(default_factory=list)

    def outputs(self, model: str, max_bytes: int) -> list[Output]:
        """The records to publish: the points in metrics-outbox records of at most
        ``max_bytes``, then each decision as a ``rollout`` record; all keyed by the model."""
        key = model.encode()
        budget = max_bytes - record_size(key, b"")
        values = encode_messages(self.points, budget) if self.points else []
        made = [Output("metrics", key, value) for value in values]
        return made + [Output("rollout", key, d.to_json()) for d in self.decisions]


@dataclass
class _Pair:
    judge: RolloutJudge
    start_ms: int
    """The start of the pair's series (its first evidence's window)."""
    next_start_ms: int
    """The start of the next window of the pair's series to look at."""
    settled_before_ms: int
    """Panes before this are folded into ``settled`` and let go."""
    settled: PairedEvidence | None = None
    """Shadow: the evidence of the settled panes."""
    settled_performance: dict[str, PerformanceSummary] = field(default_factory=dict)
    """Canary: each version's performance in the settled panes."""


class ModelRollouts:
    """The rollout partials and judges of one model (see the module docstring)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.partials: dict[tuple[str, str, int], dict[int, PanePartial]] = {}
        """(champion, challenger, pane start) -> source partition -> partial."""
        self.pairs: dict[tuple[str, str], _Pair] = {}
        self._skipped = False

    # --- partials in --------------------------------------------------------------------

    def take(self, partial: PanePartial, config: ModelConfig) -> str:
        """Hold a rollout partial: ``added``, ``replaced``, ``stale`` (one covering as much is
        held), ``expired`` (its pair decided, or its pane's window was judged); raises
        :class:`~driftline.errors.DecodeError` (kind ``invalid_summary``) naming why a partial
        cannot be used, before anything is held."""
        mode = config.rollout.mode
        if mode != "shadow":
            raise DecodeError(
                f"rollout partial of model {self.model!r}, whose rollout mode is {mode!r} "
                "(shadow evidence is used only in mode 'shadow')",
                kind="invalid_summary",
            )
        if not partial.champion or partial.champion == partial.version:
            raise DecodeError(
                f"rollout partial of version {partial.version!r} names no other champion "
                f"({partial.champion!r})",
                kind="invalid_summary",
            )
        pane_ms = config.pane // _MS
        if partial.pane_ms != pane_ms or partial.pane_start_ms % pane_ms:
            raise DecodeError(
                f"rollout partial of pane [{partial.pane_start_ms}, +{partial.pane_ms} ms) does "
                f"not fit the model's pane of {pane_ms} ms",
                kind="invalid_summary",
            )
        metric = self.metric(config)
        if metric is None:  # held, it would never be judged nor let go
            raise DecodeError(
                f"rollout partial of model {self.model!r}: a {config.task} model's rollouts "
                "are not judged yet",
                kind="invalid_summary",
            )
        try:
            evidence = evidence_of_bytes(partial.summary)
        except DriftlineError as exc:
            raise DecodeError(str(exc), kind="invalid_summary") from None
        if not isinstance(evidence, PairedEvidence):
            raise DecodeError("rollout partial holds no paired evidence", kind="invalid_summary")
        if evidence.metric != metric:
            raise DecodeError(
                f"rollout partial holds evidence of {evidence.metric.name}, the model's rollout "
                f"metric is {metric.name}",
                kind="invalid_summary",
            )
        key = (partial.champion, partial.version)
        pair = self.pairs.get(key)
        if pair is not None and (
            pair.judge.decision is not None or partial.pane_start_ms < pair.settled_before_ms
        ):
            return "expired"
        held = self.partials.setdefault((*key, partial.pane_start_ms), {})
        current = held.get(partial.source_partition)
        if current is not None and current.covered >= partial.covered:
            return "stale"
        held[partial.source_partition] = partial
        return "added" if current is None else "replaced"

    def metric(self, config: ModelConfig) -> RolloutMetric | None:
        """The metric the model's rollouts are judged on (None: regression without
        ``rollout.cap``, which the settings refuse; skipped)."""
        metric = rollout_metric(config.task, config.performance.metric, config.rollout.cap)
        if metric is None and not self._skipped:
            self._skipped = True
            logger.info(
                "model %.200r: rollouts of a regression model are not judged without "
                "rollout.cap (the largest %s loss one prediction counts)",
                self.model,
                config.metric,
            )
        return metric

    # --- windows out --------------------------------------------------------------------

    def close(
        self,
        config: ModelConfig,
        closed_before_ms: int,
        held: Mapping[Slot, Mapping[int, PanePartial]],
        parents: ParentLookup,
        profiles: Callable[[str], ReferenceProfile | None],
        settle_before_ms: int | None = None,
    ) -> RolloutLook:
        """Look, for every pair, at the close of each window of its series that ends at or
        before ``closed_before_ms`` (the closing watermark minus the allowed lateness), in
        order; then settle the panes that end at or before ``settle_before_ms`` (stage 2's
        pruning horizon: ``held`` forgets them next).

        ``held`` are the model's features and performance partials (canary pairs are found
        among the versions with performance partials); ``profiles`` gives a version's
        profile, for the prediction distance.
        """
        look = RolloutLook()

        def partials_of(version: str, pane: int, kind: str) -> Mapping[int, PanePartial]:
            return held.get((version, pane, kind), {})

        mode = config.rollout.mode
        if mode == "none":
            return look
        performance_panes: dict[str, list[int]] = {}
        for version, pane, kind in held:
            if kind == "performance":
                performance_panes.setdefault(version, []).append(pane)
        size = series_size_ms(config)
        if mode == "shadow":
            metric = self.metric(config)
            for champion, challenger, pane in sorted(self.partials):
                self._pair(config, metric, "shadow", champion, challenger, pane - pane % size)
        else:
            metric = None if self.metric(config) is None else RolloutMetric("accuracy")
            for version in sorted(performance_panes):
                parent = parents(self.model, version)
                panes = performance_panes[version]
                # A parent without labelled traffic is no champion serving beside a canary
                # (the champion's own retired parent, say): judging against nothing would
                # end at max_labels and roll the version back.
                if parent is not None and parent != version and parent in performance_panes:
                    first = min(panes)
                    self._pair(config, metric, "canary", parent, version, first - first % size)
        pane_ms = config.pane // _MS
        duration = config.rollout.max_duration
        limit = None if duration is None else duration // _MS
        for key in sorted(self.pairs):
            pair = self.pairs[key]
            while pair.judge.decision is None and pair.next_start_ms + size <= closed_before_ms:
                start, end = pair.next_start_ms, pair.next_start_ms + size
                pair.next_start_ms = end
                try:
                    total = self._total(key, pair, end, held)
                    distance = _distance(key, start, end, pane_ms, partials_of, profiles)
                    out_of_time = limit is not None and end - pair.start_ms >= limit
                    points, decision = pair.judge.look(
                        start, end, total, distance, out_of_time=out_of_time
                    )
                except DriftlineError as exc:  # this look of this pair; the others go on
                    look.failures.append((key, f"{type(exc).__name__}: {exc}"))
                    continue
                look.points.extend(points)
                if decision is not None:
                    look.decisions.append(decision)
            if pair.judge.decision is not None:
                for slot in [s for s in self.partials if s[:2] == key]:
                    del self.partials[slot]  # decided: no look needs it any more
            elif settle_before_ms is not None:
                self._settle(key, pair, min(settle_before_ms, pair.next_start_ms), pane_ms, held)
        return look

    def _settle(
        self,
        key: tuple[str, str],
        pair: _Pair,
        before_ms: int,
        pane_ms: int,
        held: Mapping[Slot, Mapping[int, PanePartial]],
    ) -> None:
        """Fold the pair's panes that end at or before ``before_ms`` into its settled
        evidence (they can change no more: stage 2 forgets their partials)."""
        bound = before_ms - before_ms % pane_ms
        if bound <= pair.settled_before_ms:
            return
        low = pair.settled_before_ms
        if pair.judge.comparison.design == "shadow":
            panes = [s for s in self.partials if s[:2] == key and s[2] < bound]
            evidence = pair.settled or PairedEvidence(pair.judge.comparison.metric)
            for slot in sorted(panes):
                evidence = _merge_paired(evidence, self.partials.pop(slot))
            pair.settled = evidence
        else:
            for version in key:
                merged = _performance(held, version, low, bound)
                if merged is None:
                    continue
                settled = pair.settled_performance.get(version)
                pair.settled_performance[version] = (
                    merged if settled is None else settled.merge(merged)
                )
        pair.settled_before_ms = bound

    def _pair(
        self,
        config: ModelConfig,
        metric: RolloutMetric | None,
        design: str,
        champion: str,
        challenger: str,
        start_ms: int,
    ) -> None:
        if metric is None or (champion, challenger) in self.pairs:
            return
        judge = RolloutJudge(
            self.model,
            champion,
            challenger,
            metric,
            "shadow" if design == "shadow" else "canary",
            policy_of(config.rollout),
        )
        self.pairs[champion, challenger] = _Pair(judge, start_ms, start_ms, start_ms)

    def _total(
        self,
        key: tuple[str, str],
        pair: _Pair,
        end: int,
        held: Mapping[Slot, Mapping[int, PanePartial]],
    ) -> Evidence:
        """All the pair's evidence known now for predictions before ``end``: the settled
        panes' and the held ones'."""
        low = pair.settled_before_ms
        if pair.judge.comparison.design == "shadow":
            evidence = pair.settled or PairedEvidence(pair.judge.comparison.metric)
            panes = sorted(s for s in self.partials if s[:2] == key and low <= s[2] < end)
            for slot in panes:
                evidence = _merge_paired(evidence, self.partials[slot])
            return evidence
        summaries: list[PerformanceSummary | None] = []
        for version in key:
            live = _performance(held, version, max(low, pair.start_ms), end)
            settled = pair.settled_performance.get(version)
            summaries.append(
                settled if live is None else live if settled is None else settled.merge(live)
            )
        champion_perf, canary_perf = summaries
        base = champion_perf if champion_perf is not None else canary_perf
        empty = PerformanceSummary(
            "binary" if base is None else base.task, () if base is None else base.classes
        )
        return canary_evidence(
            empty if champion_perf is None else champion_perf,
            empty if canary_perf is None else canary_perf,
        )


def _merge_paired(evidence: PairedEvidence, held: Mapping[int, PanePartial]) -> PairedEvidence:
    for partition in sorted(held):
        part = evidence_of_bytes(held[partition].summary)
        evidence = evidence.merge(cast(PairedEvidence, part))  # take() checked its kind
    return evidence


def _performance(
    held: Mapping[Slot, Mapping[int, PanePartial]], version: str, start: int, end: int
) -> PerformanceSummary | None:
    """A version's performance partials of the panes in ``[start, end)``, merged."""
    merged: PerformanceSummary | None = None
    for slot in sorted(s for s in held if s[0] == version and s[2] == "performance"):
        if not start <= slot[1] < end:
            continue
        for partition in sorted(held[slot]):
            summary = PerformanceSummary.from_bytes(held[slot][partition].summary)
            merged = summary if merged is None else merged.merge(summary)
    return merged


def _distance(
    key: tuple[str, str],
    start: int,
    end: int,
    pane_ms: int,
    partials_of: PartialsOf,
    profiles: Callable[[str], ReferenceProfile | None],
) -> float | None:
    summaries: list[PaneSummary] = []
    known = [profiles(version) for version in key]
    for version, profile in zip(key, known, strict=True):
        if profile is None:
            return None
        merged: PaneSummary | None = None
        for pane in range(start, end, pane_ms):
            held = partials_of(version, pane, "features")
            for partition in sorted(held):
                summary = PaneSummary.from_bytes(held[partition].summary, profile)
                merged = summary if merged is None else merged.merge(summary)
        if merged is None:
            return None
        summaries.append(merged)
    a, b = (p.prediction if p is not None else None for p in known)
    return prediction_distance(summaries[0], summaries[1], same_bins=a == b)
