"""The decision policy: from one window's test results to alerts and retrain requests.

One :class:`DecisionPolicy` per model version (and window size) turns the
:class:`~driftline.detectors.result.TestResult` of each window into a
:class:`~driftline.detectors.decision.Decision`. It
spends one false-alarm budget per model (DESIGN §4):

1. **Correction across features.** The drift tests of a window (``feature_drift`` and
   ``prediction_drift`` results with at least ``min_samples`` current rows) form one family;
   their p-values are adjusted with Benjamini-Hochberg (default) or Bonferroni at level
   ``fdr``. A column drifts only when its effect size reaches its threshold (the floor) *and*
   its adjusted p-value is at most ``fdr``: effect size decides, significance guards. A result
   without a p-value is judged on its effect size alone and does not enlarge the family.
2. **Persistence.** The model is *in drift* when drift was found in at least ``persistence_k``
   of its last ``persistence_n`` judged windows (windows ordered by event time).
3. **Performance.** A :class:`PerformanceObservation` with at least ``min_labels`` labels
   breaches when the metric is beyond the absolute ``threshold`` or worse than its baseline by
   more than ``max_drop`` (in the metric's own direction). A breach needs no persistence: the
   labels are the ground truth and ``min_labels`` guards them. A concept-drift flag from a
   sequential detector is judged by the window's realised performance when there is a
   baseline: ignored when it is no worse (the detectors are two-sided; an improving model is
   no problem), *confirmed* at once when it is worse by at least half of ``max_drop`` (a
   smaller loss than a breach), and otherwise drift evidence that must persist (k of n) like
   a drifted feature. The drift benchmark sees stray ADWIN detections on stationary
   predictions: unconfirmed, such a detection can no longer retrain on its own.
4. **Alerts, with hysteresis.** A problem (in drift, performance breach) makes
   the alert fire; every window decided while it fires emits a ``firing``
   :class:`~driftline.schemas.outputs.DriftAlert`. Once firing, it resolves only after
   ``resolve_after`` consecutive clean windows (default ``persistence_n``, so the whole
   persistence horizon is clean), emitting one ``resolved`` alert. A version whose traffic
   stopped has no more windows: stage 2 resolves its alert (``driftline.streams.stage2.silence``).
5. **Severity.** ``critical``: a performance breach, or the model is in drift and the latest
   drifted window had at least :data:`~driftline.detectors.evidence.CRITICAL_FEATURES` drifted
   columns or one column at least :data:`~driftline.detectors.evidence.CRITICAL_RATIO` times
   its threshold. ``warning``: any other drift or concept
   drift. ``info``: firing only because of hysteresis (the window itself shows no problem).
   Resolved alerts are ``info``.
6. **Retraining.** ``retrain.policy`` decides which evidence asks for a retrain: ``on_drift``
   (in drift, or concept drift), ``on_performance`` (breach), ``on_either``, ``on_both``,
   ``never``. A request is withheld while another request of this policy lies within
   ``cooldown`` of the window end (event time, both directions). Its ``rule`` is the policy name
   and its id hashes (model, version, rule, window), so deciding a window again yields the same
   request. The reasons are the top columns by effect size relative to threshold (with the
   *adjusted* p-value), then the performance and concept-drift evidence.

**Windows are keys, not ticks.** The policy keeps the evidence of the last ``history`` windows
keyed by (window start, window end) and folds it in event-time order. Deciding a window again
(late partials, late labels restating performance) *replaces* its evidence, so persistence never
counts a window twice, and a window older than the newest is folded into its place. A window
that ends no later than the last window evicted from the history is judged, but changes no
state and emits nothing (:attr:`Decision.outside_history`). Retrain requests already emitted
are remembered as facts, so a restatement never lifts a cool-down a real request started.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from driftline.config.settings import ModelConfig
from driftline.detectors.correction import adjust_p_values
from driftline.detectors.decision import (
    DRIFT_KINDS,
    Decision,
    PerformanceObservation,
    Verdict,
    by_ratio,
)
from driftline.detectors.evidence import AlertFold, AlertStep, WindowEvidence
from driftline.detectors.result import TestResult
from driftline.errors import DecisionInputError
from driftline.schemas.events import EPOCH, to_epoch_ms
from driftline.schemas.outputs import DriftAlert, Reason, RetrainRequest

CONCEPT_MARGIN: Final = 0.025
"""The performance loss that confirms a concept-drift flag when ``performance.max_drop`` is
unset; otherwise half of ``max_drop`` does."""

SNAPSHOT_FORMAT: Final = 1


class DecisionPolicy:
    """Turns each window's test results into alerts and retrain requests for one model version.

    Parameters
    ----------
    config
        How the model is watched: ``drift`` (correction, fdr, min_samples, persistence),
        ``performance`` (threshold, max_drop, min_labels) and ``retrain`` (policy, cooldown).
    model, version
        The model version decided on; they go into every record and its id.
    resolve_after
        Consecutive clean windows after which a firing alert resolves (the hysteresis);
        default ``config.drift.persistence_n``.
    history
        Windows whose evidence is kept, so that restating any of them refolds persistence and
        hysteresis; older restatements are judged but change nothing. Size it to the label
        delay divided by the window hop.
    max_reasons
        Drifted columns carried as reasons in alerts and retrain requests (largest first).

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> from driftline.config.settings import ModelConfig
    >>> config = ModelConfig.model_validate({
    ...     "task": "binary", "retrain": {"policy": "on_drift", "cooldown": "6h"},
    ...     "drift": {"persistence_k": 2, "persistence_n": 3, "min_samples": 500}})
    >>> policy = DecisionPolicy(config, "fraud", "3")
    >>> shifted = [TestResult("psi", "amount", 0.45, 1e-9, 0.2, 50_000, 5_000, True),
    ...            TestResult("psi", "age", 0.01, 0.8, 0.2, 50_000, 5_000, False)]
    >>> t0 = datetime(2026, 11, 22, tzinfo=UTC)
    >>> first = policy.decide(t0, t0 + timedelta(hours=1), shifted)
    >>> first.drifted_features, first.in_drift, first.alerts
    (['amount'], False, [])
    >>> second = policy.decide(t0 + timedelta(hours=1), t0 + timedelta(hours=2), shifted)
    >>> second.alerts[0].severity, second.retrain.rule, second.retrain.reasons[0].feature
    ('critical', 'on_drift', 'amount')
    >>> clone = DecisionPolicy(config, "fraud", "3")
    >>> clone.restore(policy.snapshot())
    >>> clone.snapshot() == policy.snapshot()
    True
    """

    def __init__(
        self,
        config: ModelConfig,
        model: str,
        version: str,
        *,
        resolve_after: int | None = None,
        history: int = 96,
        max_reasons: int = 10,
    ) -> None:
        if not model:
            raise DecisionInputError("model must be a non-empty string")
        if not version:
            raise DecisionInputError("version must be a non-empty string")
        if resolve_after is not None and resolve_after < 1:
            raise DecisionInputError(f"resolve_after must be at least 1, got {resolve_after}")
        if history < 1:
            raise DecisionInputError(f"history must be at least 1, got {history}")
        if max_reasons < 1:
            raise DecisionInputError(f"max_reasons must be at least 1, got {max_reasons}")
        self.config = config
        self.model = model
        self.version = version
        self.resolve_after = (
            resolve_after if resolve_after is not None else config.drift.persistence_n
        )
        self.history = history
        self.max_reasons = max_reasons
        self._cooldown_ms = config.retrain.cooldown // timedelta(milliseconds=1)
        self.reset()

    def reset(self) -> None:
        """Forget every window, alert and request, e.g. when the model is re-baselined."""
        self._windows: list[WindowEvidence] = []
        self._base = self._empty_fold()
        self._horizon_end: int | None = None
        self._requests: set[tuple[int, int]] = set()
        self._current = self._empty_fold()

    def _empty_fold(self) -> AlertFold:
        return AlertFold(deque(maxlen=self.config.drift.persistence_n))

    # --- read-only state -----------------------------------------------------------------

    @property
    def in_drift(self) -> bool:
        """Whether the model is in drift as of its newest window (k of the last n)."""
        return sum(self._current.recent) >= self.config.drift.persistence_k

    @property
    def firing(self) -> bool:
        """Whether the alert fires as of the newest window."""
        return self._current.firing

    @property
    def clean_streak(self) -> int:
        """Consecutive clean windows up to the newest one."""
        return self._current.clean

    @property
    def n_windows(self) -> int:
        """Windows whose evidence is retained for restatements."""
        return len(self._windows)

    @property
    def last_request_end(self) -> datetime | None:
        """The window end of the latest retrain request emitted (None: none remembered)."""
        if not self._requests:
            return None
        return EPOCH + timedelta(milliseconds=max(end for _, end in self._requests))

    # --- deciding --------------------------------------------------------------------------

    def judge(self, results: Sequence[TestResult]) -> tuple[Verdict, ...]:
        """Verdicts on one window's results: correction across the family, effect floors.

        Pure: no state is read or changed.

        >>> from driftline.config.settings import ModelConfig
        >>> policy = DecisionPolicy(ModelConfig(task="regression"), "m", "1")
        >>> verdicts = policy.judge([
        ...     TestResult("ks", "x", 0.30, 0.01, 0.1, 10_000, 2_000, True),
        ...     TestResult("ks", "y", 0.31, 0.04, 0.1, 10_000, 2_000, True),
        ...     TestResult("ks", "z", 0.50, 1e-9, 0.1, 10_000, 100, True)])
        >>> [(v.drifted, v.skip_reason) for v in verdicts]
        [(True, None), (True, None), (False, 'too_few_samples')]
        """
        drift = self.config.drift
        verdicts: list[Verdict | None] = [None] * len(results)
        family: list[tuple[int, float]] = []
        for i, r in enumerate(results):
            ratio = self._ratio(r)
            if r.kind in DRIFT_KINDS and not (math.isfinite(r.threshold) and r.threshold > 0):
                raise DecisionInputError(
                    f"{r.test} on {r.column!r}: threshold must be positive and finite, "
                    f"got {r.threshold!r}"
                )
            if r.kind not in DRIFT_KINDS:
                verdicts[i] = Verdict(r, False, False, None, ratio, "not_a_drift_test")
            elif r.n_current < drift.min_samples:
                verdicts[i] = Verdict(r, False, False, None, ratio, "too_few_samples")
            elif not math.isfinite(r.statistic) or (
                r.p_value is not None and not 0.0 <= r.p_value <= 1.0
            ):
                verdicts[i] = Verdict(r, False, False, None, ratio, "not_finite")
            elif r.p_value is None:
                verdicts[i] = Verdict(r, True, r.statistic >= r.threshold, None, ratio)
            else:
                family.append((i, r.p_value))
        if family:
            adjusted = adjust_p_values([p for _, p in family], drift.correction)
            for (i, _), p_adj in zip(family, adjusted.tolist(), strict=True):
                r = results[i]
                drifted = r.statistic >= r.threshold and p_adj <= drift.fdr
                verdicts[i] = Verdict(r, True, drifted, p_adj, self._ratio(r))
        return tuple(v for v in verdicts if v is not None)

    def decide(
        self,
        window_start: datetime,
        window_end: datetime,
        results: Sequence[TestResult],
        performance: PerformanceObservation | None = None,
        concept_drift: bool = False,
    ) -> Decision:
        """Judge one window, fold it into the policy's state and say what to emit.

        Deciding a window that was decided before replaces its evidence (a restatement).
        """
        start, end = self._window_ms(window_start, window_end)
        verdicts = self.judge(results)
        window = self._evidence(start, end, verdicts, performance, concept_drift)
        drifted_features = _unique(
            v.result.column
            for v in by_ratio(verdicts)
            if v.drifted and v.result.kind == "feature_drift"
        )
        position = next((i for i, w in enumerate(self._windows) if w.key == window.key), None)
        if position is None and self._horizon_end is not None and end <= self._horizon_end:
            return Decision(
                window_start,
                window_end,
                verdicts,
                drifted_features,
                alerts=[],
                retrain=None,
                drift_found=window.drift,
                performance_breach=window.breach,
                concept_drift=window.concept,
                outside_history=True,
            )

        if position is None:
            self._windows.append(window)
            self._windows.sort(key=lambda w: w.order)
        else:
            self._windows[position] = window
        step = self._refold(window.key)
        self._evict()

        alerts: list[DriftAlert] = []
        if step.resolved:
            alerts.append(
                DriftAlert.create(
                    self.model,
                    self.version,
                    window_start,
                    window_end,
                    severity="info",
                    reasons=[],
                    status="resolved",
                )
            )
        elif step.firing and step.severity is not None:
            alerts.append(
                DriftAlert.create(
                    self.model,
                    self.version,
                    window_start,
                    window_end,
                    severity=step.severity,
                    reasons=self._alert_reasons(window, step),
                )
            )
        return Decision(
            window_start,
            window_end,
            verdicts,
            drifted_features,
            alerts=alerts,
            retrain=self._retrain(window_start, window_end, window, step),
            drift_found=window.drift,
            in_drift=step.in_drift,
            performance_breach=window.breach,
            concept_drift=window.concept,
            firing=step.firing,
            severity=step.severity if step.firing else None,
            restated=position is not None,
        )

    # --- snapshot --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """All learned state as plain JSON-able data (for a stage-2 table)."""
        return {
            "format": SNAPSHOT_FORMAT,
            "model": self.model,
            "version": self.version,
            "windows": [w.dump() for w in self._windows],
            "base": {
                "recent": list(self._base.recent),
                "firing": self._base.firing,
                "clean": self._base.clean,
                "last_drift": (
                    None if self._base.last_drift is None else self._base.last_drift.dump()
                ),
                "horizon_end": self._horizon_end,
            },
            "requests": sorted([start, end] for start, end in self._requests),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace all state with a :meth:`snapshot` of a policy for the same model version."""
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise DecisionInputError(
                f"snapshot format must be {SNAPSHOT_FORMAT}, got {snapshot.get('format')!r}"
            )
        if (snapshot.get("model"), snapshot.get("version")) != (self.model, self.version):
            raise DecisionInputError(
                f"snapshot is of {snapshot.get('model')!r} version {snapshot.get('version')!r}, "
                f"this policy decides {self.model!r} version {self.version!r}"
            )
        self.reset()
        base = snapshot["base"]
        self._base = self._empty_fold()
        self._base.recent.extend(bool(x) for x in base["recent"])
        self._base.firing = bool(base["firing"])
        self._base.clean = int(base["clean"])
        last = base["last_drift"]
        self._base.last_drift = None if last is None else WindowEvidence.load(last)
        horizon = base["horizon_end"]
        self._horizon_end = None if horizon is None else int(horizon)
        self._windows = sorted(
            (WindowEvidence.load(w) for w in snapshot["windows"]), key=lambda w: w.order
        )
        self._requests = {(int(s), int(e)) for s, e in snapshot["requests"]}
        if self._windows:
            self._refold(self._windows[-1].key)
        else:
            self._current = self._base.copy()
        self._evict()

    # --- internals -------------------------------------------------------------------------

    @staticmethod
    def _ratio(r: TestResult) -> float:
        if not math.isfinite(r.statistic) or not r.threshold > 0:
            return math.nan
        return r.statistic / r.threshold

    @staticmethod
    def _window_ms(window_start: datetime, window_end: datetime) -> tuple[int, int]:
        for name, ts in (("window_start", window_start), ("window_end", window_end)):
            if ts.tzinfo is None or ts.utcoffset() is None:
                raise DecisionInputError(f"{name} must be timezone-aware, got {ts!r}")
        start, end = to_epoch_ms(window_start), to_epoch_ms(window_end)
        if end <= start:
            raise DecisionInputError(
                f"window_end must be after window_start, got {window_start} .. {window_end}"
            )
        return start, end

    def _evidence(
        self,
        start: int,
        end: int,
        verdicts: tuple[Verdict, ...],
        performance: PerformanceObservation | None,
        concept_drift: bool,
    ) -> WindowEvidence:
        drifted = [v for v in by_ratio(verdicts) if v.drifted]
        window = WindowEvidence(
            start=start,
            end=end,
            drift_judged=any(v.judged for v in verdicts),
            drift=bool(drifted),
            concept=concept_drift,
            n_drifted=len(drifted),
            max_ratio=max((v.effect_ratio for v in drifted), default=0.0),
            reasons=tuple(v.reason() for v in drifted[: self.max_reasons]),
        )
        if performance is not None:
            window.perf_judged, window.breach, window.perf_reason = performance.judge(self.config)
            if concept_drift and performance.baseline is not None:
                # Sequential detectors are two-sided, and err now and then on i.i.d.
                # errors: the window's realised performance decides. Better than baseline: no
                # problem. Worse by half the tolerated drop or more: confirmed at once.
                lower = self.config.lower_is_better
                worse_by = (
                    performance.value - performance.baseline
                    if lower
                    else performance.baseline - performance.value
                )
                window.concept = worse_by > 0
                margin = (self.config.performance.max_drop or 2 * CONCEPT_MARGIN) / 2
                window.concept_confirmed = worse_by >= margin
        return window

    def _advance(self, fold: AlertFold, w: WindowEvidence) -> AlertStep:
        return fold.advance(
            w, persistence_k=self.config.drift.persistence_k, resolve_after=self.resolve_after
        )

    def _refold(self, key: tuple[int, int]) -> AlertStep:
        fold = self._base.copy()
        target: AlertStep | None = None
        for w in self._windows:
            step = self._advance(fold, w)
            if w.key == key:
                target = step
        self._current = fold
        assert target is not None  # the caller put the window in
        return target

    def _evict(self) -> None:
        while len(self._windows) > self.history:
            oldest = self._windows.pop(0)
            self._advance(self._base, oldest)
            self._horizon_end = oldest.end
        if self._horizon_end is not None:
            # A request can only block windows that end after the horizon.
            floor = self._horizon_end - self._cooldown_ms
            self._requests = {k for k in self._requests if k[1] > floor}

    def _alert_reasons(self, w: WindowEvidence, step: AlertStep) -> list[Reason]:
        reasons: list[Reason] = []
        if step.evidence is not None:
            reasons.extend(step.evidence.reasons)
        if w.breach and w.perf_reason is not None:
            reasons.append(w.perf_reason)
        if w.concept:
            reasons.append(_CONCEPT_REASON)
        return reasons

    def _retrain(
        self, window_start: datetime, window_end: datetime, w: WindowEvidence, step: AlertStep
    ) -> RetrainRequest | None:
        policy = self.config.retrain.policy
        drift_side = step.in_drift or w.concept_confirmed
        perf_side = w.breach
        wanted = {
            "never": False,
            "on_drift": drift_side,
            "on_performance": perf_side,
            "on_either": drift_side or perf_side,
            "on_both": drift_side and perf_side,
        }[policy]
        if not wanted:
            return None
        own = w.key in self._requests
        blocked = any(
            abs(end - w.end) < self._cooldown_ms
            for start, end in self._requests
            if (start, end) != w.key
        )
        if blocked and not own:
            return None
        reasons: list[Reason] = []
        if drift_side and step.evidence is not None:
            reasons.extend(step.evidence.reasons)
        if perf_side and w.perf_reason is not None:
            reasons.append(w.perf_reason)
        if drift_side and w.concept:
            reasons.append(_CONCEPT_REASON)
        if not reasons:
            return None
        self._requests.add(w.key)
        return RetrainRequest.create(
            self.model, self.version, window_start, window_end, rule=policy, reasons=reasons
        )


_CONCEPT_REASON: Final = Reason(
    kind="concept_drift", statistic="concept_drift_detector", value=1.0, threshold=1.0
)


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)
