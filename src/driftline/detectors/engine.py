"""Windows over panes, for one model version: pane partials in, window reports out.

A *pane* is a short event-time slice (``ModelConfig.pane``, aligned to the epoch); a window of
any configured length is the union of its panes, merged by exact addition (DESIGN §1). The
:class:`ModelMonitor` keeps the panes of one model version, tells which windows are due at a
watermark (closed ones, and ones whose panes changed after they were judged: late data, late
labels), and judges a window: drift tests per feature and on the prediction and labels, data
quality, realised performance and its label-free estimate, and the decision policy.

It is the same pure code for the offline ``replay`` command and for stage 2; neither a clock
nor Kafka is in here: time is event time, given by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from driftline.config.settings import ModelConfig, WindowSpec, format_duration
from driftline.detectors.columns import CategoricalColumnSummary
from driftline.detectors.decision import Decision, PerformanceObservation
from driftline.detectors.multivariate import multivariate_results
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.policy import DecisionPolicy
from driftline.detectors.quality import (
    missing_rate_test,
    out_of_range_test,
    unseen_category_test,
)
from driftline.detectors.registry import run_test
from driftline.detectors.result import TestResult
from driftline.detectors.summary import PaneSummary
from driftline.detectors.thresholds import threshold_for
from driftline.schemas.events import EPOCH
from driftline.schemas.reference import CategoricalProfile, ReferenceProfile
from driftline.schemas.wire import WirePrediction, event_time_ms

_MS = timedelta(milliseconds=1)


def _ms(value: timedelta) -> int:
    return value // _MS


def window_label(spec: WindowSpec) -> str:
    """The tag that names a window series: ``1h`` (tumbling) or ``1d/1h`` (size/hop).

    >>> window_label(WindowSpec(size="1d", hop="1h")), window_label(WindowSpec(size="1h"))
    ('1d/1h', '1h')
    """
    size = format_duration(spec.size)
    return size if spec.hop is None else f"{size}/{format_duration(spec.hop)}"


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """One window: ``[start_ms, end_ms)`` in epoch milliseconds, of the series ``label``."""

    end_ms: int
    start_ms: int
    label: str

    @property
    def start(self) -> datetime:
        """The window's start as an aware datetime."""
        return EPOCH + self.start_ms * _MS

    @property
    def end(self) -> datetime:
        """The window's end (exclusive) as an aware datetime."""
        return EPOCH + self.end_ms * _MS


@dataclass(frozen=True, slots=True)
class _Series:
    label: str
    size_ms: int
    hop_ms: int

    def windows_of(self, pane_start: int) -> list[Window]:
        """Every window of this series that contains the pane starting at ``pane_start``."""
        first = (pane_start - self.size_ms) // self.hop_ms + 1
        last = pane_start // self.hop_ms
        return [
            Window(k * self.hop_ms + self.size_ms, k * self.hop_ms, self.label)
            for k in range(first, last + 1)
        ]


@dataclass(frozen=True, slots=True)
class SegmentPerformance:
    """The realised performance of one segment's slice in a window (report-only: it feeds
    points and the report, not the decision)."""

    segment_key: str
    segment: str
    n_events: int
    """The slice's predictions in the window."""
    n_labels: int
    """Its predictions that have their label so far."""
    metrics: Mapping[str, float]
    """Every defined metric of the task, as :attr:`WindowReport.performance`."""
    mean_label_delay_ms: float | None
    breach: bool
    """Whether the model's metric breaches its performance rule (threshold, or tolerated drop
    from the whole-model baseline) in this slice, judged as the whole model's is (at least
    ``min_labels`` labels)."""

    @property
    def label_coverage(self) -> float | None:
        """Share of the slice's predictions that have their label so far."""
        return None if self.n_events == 0 else self.n_labels / self.n_events


@dataclass(frozen=True)
class WindowReport:
    """Everything driftline says about one window of one model version."""

    model: str
    version: str
    window: Window
    n_events: int
    n_labels: int
    drift: tuple[TestResult, ...]
    quality: tuple[TestResult, ...]
    performance: Mapping[str, float]
    baseline: Mapping[str, float]
    estimate: Mapping[str, float]
    mean_label_delay_ms: float | None
    concept_drift: bool
    decision: Decision
    segment_performance: tuple[SegmentPerformance, ...] = ()
    """Realised performance per segment slice with labels or predictions (empty without
    segments), by key then value."""

    @property
    def label_coverage(self) -> float | None:
        """Share of the window's predictions that have their label so far."""
        return None if self.n_events == 0 else self.n_labels / self.n_events


@dataclass
class _Pane:
    summary: PaneSummary
    performance: PerformanceSummary
    concept_drift: bool = False


@dataclass
class _State:
    panes: dict[int, _Pane] = field(default_factory=dict)
    judged: dict[Window, int] = field(default_factory=dict)  # window -> revision judged
    revision: dict[int, int] = field(default_factory=dict)  # pane -> times it changed
    # Windows with a pane changed since they were last judged: what ``due`` looks at, so its
    # cost follows the panes that changed, not every pane held for the label horizon.
    pending: set[Window] = field(default_factory=set)


class ModelMonitor:
    """The panes and windows of one model version, judged against its reference.

    Parameters
    ----------
    profile
        The version's reference profile; it freezes the bins every pane counts over.
    config
        How the model is watched: pane, windows, lateness, tests, thresholds, policy.
    label_horizon
        How long panes are kept after their windows closed, so late labels can restate their
        windows' performance (DESIGN §4). Default: 7 days, the join's default TTL.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import build_profile
    >>> rng = np.random.default_rng(0)
    >>> profile = build_profile("m", "1", "binary", {"x": rng.normal(size=5000)},
    ...                         prediction=rng.integers(0, 2, 5000).astype(str))
    >>> config = ModelConfig(task="binary", pane="1m", windows=[{"size": "10m"}],
    ...                      allowed_lateness="0s", drift={"min_samples": 100})
    >>> monitor = ModelMonitor(profile, config)
    >>> monitor.fold_columns(np.arange(0, 600_000, 600),
    ...                      {"x": rng.normal(loc=1.0, size=1000)}, ["1"] * 1000)
    >>> [w.end_ms for w in monitor.due(watermark_ms=600_000)]
    [600000]
    >>> report = monitor.evaluate(monitor.due(600_000)[0])
    >>> report.n_events, report.drift[0].column, report.drift[0].drifted
    (1000, 'x', True)
    """

    def __init__(
        self,
        profile: ReferenceProfile,
        config: ModelConfig,
        *,
        label_horizon: timedelta = timedelta(days=7),
    ) -> None:
        self.profile = profile
        self.config = config
        self.model = profile.model
        self.version = profile.model_version
        self.pane_ms = _ms(config.pane)
        self.lateness_ms = _ms(config.allowed_lateness)
        self.horizon_ms = _ms(label_horizon)
        self._series = [
            _Series(window_label(spec), _ms(spec.size), _ms(spec.hop or spec.size))
            for spec in config.windows
        ]
        self._longest_ms = max(s.size_ms for s in self._series)
        self.reset()

    def reset(self) -> None:
        """Forget every pane, judged window and policy state."""
        self._state = _State()
        self.reset_policies()

    def reset_policies(self) -> None:
        """Forget the decision policies' state (alerts, persistence, requests) but keep the
        panes: the version is judged afresh from its next decided window."""
        self._policies = {
            s.label: DecisionPolicy(self.config, self.model, self.version) for s in self._series
        }

    @property
    def firing(self) -> bool:
        """Whether an alert of this version fires (in any window series)."""
        return any(policy.firing for policy in self._policies.values())

    @property
    def longest_ms(self) -> int:
        """The longest configured window, in milliseconds."""
        return self._longest_ms

    def last_window_end(self, pane_start: int) -> int:
        """The end of the latest window (of any series) that holds the pane at
        ``pane_start``: once the watermark passes it plus the lateness, every window with
        that pane in it is closed.

        >>> import numpy as np
        >>> from driftline.detectors.profile import build_profile
        >>> profile = build_profile("m", "1", "regression", {"x": np.arange(100.0)},
        ...                         prediction=np.arange(100.0))
        >>> config = ModelConfig(task="regression", pane="1m",
        ...                      windows=[{"size": "5m"}, {"size": "10m", "hop": "2m"}])
        >>> ModelMonitor(profile, config).last_window_end(4 * 60_000) // 60_000
        14
        """
        return max(w.end_ms for s in self._series for w in s.windows_of(pane_start))

    # --- panes in --------------------------------------------------------------------------

    def pane_of(self, event_ms: int) -> int:
        """The start of the pane holding an event time."""
        return event_ms - event_ms % self.pane_ms

    def _pane(self, pane_start: int) -> _Pane:
        pane = self._state.panes.get(pane_start)
        if pane is None:
            pane = _Pane(
                PaneSummary(self.profile),
                PerformanceSummary.from_profile(
                    self.profile, positive_class=self.config.positive_class
                ),
            )
            self._state.panes[pane_start] = pane
        return pane

    def _touched(self, pane_start: int) -> None:
        self._state.revision[pane_start] = self._state.revision.get(pane_start, 0) + 1
        for series in self._series:
            self._state.pending.update(series.windows_of(pane_start))

    def set_pane(
        self,
        pane_start: int,
        summary: PaneSummary | None = None,
        performance: PerformanceSummary | None = None,
        concept_drift: bool | None = None,
    ) -> None:
        """Replace a pane's partials (stage 2 merges its partials by identity first) and,
        when given, whether a concept-drift detector fired in it."""
        pane = self._pane(pane_start)
        if summary is not None:
            pane.summary = summary
        if performance is not None:
            pane.performance = performance
        if concept_drift is not None:
            pane.concept_drift = concept_drift
        self._touched(pane_start)

    def fold_events(self, events: Sequence[WirePrediction]) -> None:
        """Fold decoded prediction events into their panes by event time."""
        by_pane: dict[int, list[WirePrediction]] = {}
        for event in events:
            by_pane.setdefault(self.pane_of(event_time_ms(event.timestamp)), []).append(event)
        for pane_start, group in by_pane.items():
            self._pane(pane_start).summary.fold_events(group)
            self._touched(pane_start)

    def fold_columns(
        self,
        event_ms: Sequence[int] | np.ndarray,
        features: Mapping[str, Sequence[object] | np.ndarray],
        prediction: Sequence[object] | np.ndarray,
        scores: Mapping[str, Sequence[float] | np.ndarray] | None = None,
    ) -> None:
        """Fold columns (one array per feature) into their panes by event time."""
        from driftline.detectors.batch import ColumnBatch

        times = np.asarray(event_ms, dtype=np.int64)
        panes = times - times % self.pane_ms
        for pane_start in np.unique(panes).tolist():
            rows = np.flatnonzero(panes == pane_start)
            batch = ColumnBatch.from_columns(
                self.profile,
                {name: np.asarray(values)[rows] for name, values in features.items()},
                np.asarray(prediction, dtype=object)[rows],
                event_time_ms=times[rows],
                scores=None
                if scores is None
                else {c: np.asarray(v, dtype=np.float64)[rows] for c, v in scores.items()},
            )
            self._pane(int(pane_start)).summary.fold(batch)
            self._touched(int(pane_start))

    def fold_labels(
        self,
        prediction_ms: Sequence[int] | np.ndarray,
        labels: Sequence[object] | np.ndarray,
        predictions: Sequence[object] | np.ndarray,
        scores: Mapping[str, Sequence[float] | np.ndarray] | None = None,
        label_delay_ms: Sequence[int] | np.ndarray | None = None,
        segments: Sequence[Mapping[str, str] | None] | None = None,
    ) -> None:
        """Fold joined labels into the panes of their *predictions* (so windows restate);
        with the predictions' ``segments`` (their tags), into their slices too when the
        profile tracks segments."""
        times = np.asarray(prediction_ms, dtype=np.int64)
        panes = times - times % self.pane_ms
        label_arr = np.asarray(labels, dtype=object)
        pred_arr = np.asarray(predictions, dtype=object)
        delays = None if label_delay_ms is None else np.asarray(label_delay_ms, dtype=np.int64)
        for pane_start in np.unique(panes).tolist():
            rows = np.flatnonzero(panes == pane_start)
            self._pane(int(pane_start)).performance.fold(
                label_arr[rows],
                pred_arr[rows],
                None
                if scores is None
                else {c: np.asarray(v, dtype=np.float64)[rows] for c, v in scores.items()},
                None if delays is None else delays[rows],
            )
            if segments is not None and self.profile.segments:
                self._pane(int(pane_start)).performance.fold_segments(
                    self.profile.segments,
                    [segments[row] for row in rows.tolist()],
                    label_arr[rows],
                    pred_arr[rows],
                    None
                    if scores is None
                    else {c: np.asarray(v, dtype=np.float64)[rows] for c, v in scores.items()},
                    None if delays is None else delays[rows],
                )
            self._touched(int(pane_start))

    def flag_concept_drift(self, event_ms: Iterable[int]) -> None:
        """Record that a sequential detector fired at these (prediction) event times."""
        for ms in event_ms:
            self._pane(self.pane_of(int(ms))).concept_drift = True
            self._touched(self.pane_of(int(ms)))

    # --- windows out -----------------------------------------------------------------------

    def _revision(self, window: Window) -> int:
        revision = self._state.revision
        return sum(revision.get(p, 0) for p in range(window.start_ms, window.end_ms, self.pane_ms))

    def due(self, watermark_ms: int) -> list[Window]:
        """Windows to judge now, by end time: closed at ``watermark_ms`` (end plus allowed
        lateness passed) and never judged, or judged before their panes changed again."""
        closed_before = watermark_ms - self.lateness_ms
        state = self._state
        closed = [w for w in state.pending if w.end_ms <= closed_before]
        due = []
        for window in closed:
            if state.judged.get(window) != self._revision(window):
                due.append(window)
            else:
                state.pending.discard(window)
        return sorted(due)

    def _merged(self, window: Window) -> tuple[PaneSummary, PerformanceSummary, bool]:
        summary = PaneSummary(self.profile)
        performance = PerformanceSummary.from_profile(
            self.profile, positive_class=self.config.positive_class
        )
        concept = False
        for pane_start in range(window.start_ms, window.end_ms, self.pane_ms):
            pane = self._state.panes.get(pane_start)
            if pane is not None:
                summary = summary.merge(pane.summary)
                performance = performance.merge(pane.performance)
                concept = concept or pane.concept_drift
        return summary, performance, concept

    def _drift_results(
        self, summary: PaneSummary, performance: PerformanceSummary
    ) -> list[TestResult]:
        drift = self.config.drift
        results = []
        columns = [
            (name, p, summary.features[name], "feature_drift")
            for name, p in self.profile.features.items()
        ]
        columns.append(
            ("prediction", self.profile.prediction, summary.prediction, "prediction_drift")
        )
        for name, column_profile, column, kind in columns:
            test = (
                drift.categorical_test
                if isinstance(column_profile, CategoricalProfile)
                else drift.numeric_test
            )
            results.append(
                run_test(
                    test,
                    column_profile,
                    column.counts,
                    column_profile.count,
                    threshold_for(
                        self.profile,
                        drift,
                        test,
                        int(column.counts.sum()),
                        None if kind == "prediction_drift" else name,
                    ),
                    name,
                    kind=kind,  # type: ignore[arg-type]
                )
            )
        label_profile = self.profile.labels
        if isinstance(label_profile, CategoricalProfile) and performance.n:
            results.append(
                run_test(
                    drift.categorical_test,
                    label_profile,
                    self._label_counts(label_profile, performance),
                    label_profile.count,
                    drift.thresholds.get(drift.categorical_test, 0.1),
                    "label",
                    kind="label_drift",
                )
            )
        return results

    @staticmethod
    def _label_counts(profile: CategoricalProfile, performance: PerformanceSummary) -> np.ndarray:
        """True-class counts aligned with the label profile's categories, then "other"."""
        per_class = performance.confusion.sum(axis=1)
        names = [*performance.classes, None]
        counts = np.zeros(len(profile.categories) + 1, dtype=np.int64)
        slot = {c: i for i, c in enumerate(profile.categories)}
        for name, count in zip(names, per_class.tolist(), strict=True):
            counts[slot.get(name, len(profile.categories)) if name is not None else -1] += count
        return counts

    def _quality_results(self, summary: PaneSummary) -> list[TestResult]:
        limits = self.config.quality
        n_ref = self.profile.n_rows
        results = []
        for name, column_profile in self.profile.features.items():
            column = summary.features[name]
            missing = column.nulls + column.type_errors
            results.append(
                missing_rate_test(
                    missing,
                    summary.n,
                    column_profile.missing_rate,
                    n_ref,
                    threshold=limits.missing_rate,
                    column=name,
                )
            )
            if isinstance(column, CategoricalColumnSummary):
                assert isinstance(column_profile, CategoricalProfile)
                results.append(
                    unseen_category_test(
                        column.unseen_total,
                        column.n,
                        column_profile.expected_unseen_rate,
                        column_profile.count,
                        threshold=limits.unseen_categories,
                        column=name,
                    )
                )
            else:
                results.append(
                    out_of_range_test(
                        column.below_range + column.above_range,
                        column.n,
                        column_profile.count,
                        threshold=limits.out_of_range,
                        column=name,
                    )
                )
        return results

    def _segment_results(self, summary: PaneSummary) -> tuple[list[TestResult], ...]:
        """Drift and quality results of each segment's slice, tagged with the segment."""
        drift: list[TestResult] = []
        quality: list[TestResult] = []
        no_labels = PerformanceSummary.from_profile(
            self.profile, positive_class=self.config.positive_class
        )
        for (key, value), part in sorted(summary.segments.items()):
            drift.extend(
                replace(r, segment_key=key, segment=value)
                for r in self._drift_results(part, no_labels)
            )
            quality.extend(
                replace(r, segment_key=key, segment=value) for r in self._quality_results(part)
            )
        return drift, quality

    def _segment_performance(
        self, summary: PaneSummary, performance: PerformanceSummary
    ) -> tuple[SegmentPerformance, ...]:
        """Realised performance of each segment slice seen, with its label coverage."""
        slices = sorted(summary.segments.keys() | performance.segments.keys())
        found = []
        for key, value in slices:
            events = summary.segments.get((key, value))
            part = performance.segments.get((key, value))
            metrics = part.metrics() if part is not None and part.n else {}
            breach = False
            if self.config.metric in metrics:
                assert part is not None
                observation = PerformanceObservation(
                    self.config.metric,
                    metrics[self.config.metric],
                    part.n,
                    self.profile.performance.get(self.config.metric),
                )
                breach = observation.judge(self.config)[1]
            found.append(
                SegmentPerformance(
                    segment_key=key,
                    segment=value,
                    n_events=0 if events is None else events.n,
                    n_labels=0 if part is None else part.n,
                    metrics=metrics,
                    mean_label_delay_ms=None if part is None else part.mean_label_delay_ms,
                    breach=breach,
                )
            )
        return tuple(found)

    def evaluate(self, window: Window) -> WindowReport:
        """Judge one window (again, when it was restated) and fold it into the policy."""
        summary, performance, concept = self._merged(window)
        drift = self._drift_results(summary, performance)
        quality = self._quality_results(summary)
        if summary.multivariate is not None:  # a column of its own: __multivariate__
            judged, mean_error = multivariate_results(summary.multivariate, self.config)
            drift.append(judged)
            quality.append(mean_error)
        segment_drift, segment_quality = self._segment_results(summary)
        drift.extend(segment_drift)
        quality.extend(segment_quality)
        observation = None
        metrics = performance.metrics() if performance.n else {}
        calibration = performance.calibration() if performance.n else None
        if calibration is not None:
            metrics["expected_calibration_error"] = calibration.ece
        metric = self.config.metric
        if metric in metrics:
            observation = PerformanceObservation(
                metric, metrics[metric], performance.n, self.profile.performance.get(metric)
            )
        estimate = {}
        if summary.expected_accuracy is not None:
            estimate["expected_accuracy"] = summary.expected_accuracy
        decision = self._policies[window.label].decide(
            window.start, window.end, drift, observation, concept
        )
        self._state.judged[window] = self._revision(window)
        self._state.pending.discard(window)
        return WindowReport(
            model=self.model,
            version=self.version,
            window=window,
            n_events=summary.n,
            n_labels=performance.n,
            drift=tuple(drift),
            quality=tuple(quality),
            performance=metrics,
            baseline=self.profile.performance,
            estimate=estimate,
            mean_label_delay_ms=performance.mean_label_delay_ms,
            concept_drift=concept,
            decision=decision,
            segment_performance=self._segment_performance(summary, performance),
        )

    def prune(self, watermark_ms: int) -> int:
        """Drop panes no window can need any more (older than the longest window plus the
        lateness and the label horizon); returns how many were dropped."""
        oldest = watermark_ms - self.lateness_ms - self._longest_ms - self.horizon_ms
        stale = [p for p in self._state.panes if p + self.pane_ms <= oldest]
        for pane_start in stale:
            del self._state.panes[pane_start]
            self._state.revision.pop(pane_start, None)
        self._state.judged = {w: r for w, r in self._state.judged.items() if w.end_ms > oldest}
        # Dropping a straddling window's old panes is no change to judge: it is due again
        # only when one of its held panes changes.
        self._state.pending = {w for w in self._state.pending if w.end_ms > oldest}
        return len(stale)

    @property
    def n_panes(self) -> int:
        """Panes held."""
        return len(self._state.panes)

    def pane_summary(self, pane_start: int) -> PaneSummary | None:
        """The features summary of the pane at ``pane_start``, or None when none is held."""
        pane = self._state.panes.get(pane_start)
        return None if pane is None else pane.summary
