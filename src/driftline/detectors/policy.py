"""The decision policy: from one window's test results to alerts and retrain requests.

One :class:`DecisionPolicy` per model version (and window size) turns the
:class:`~driftline.detectors.result.TestResult` of each window into a :class:`Decision`. It
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
   persistence horizon is clean), emitting one ``resolved`` alert.
5. **Severity.** ``critical``: a performance breach, or the model is in drift and the latest
   drifted window had at least :data:`CRITICAL_FEATURES` drifted columns or one column at
   least :data:`CRITICAL_RATIO` times its threshold. ``warning``: any other drift or concept
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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from driftline.config.settings import ModelConfig
from driftline.detectors.result import TestResult
from driftline.errors import DecisionInputError
from driftline.schemas.events import EPOCH, to_epoch_ms
from driftline.schemas.outputs import DriftAlert, Reason, RetrainRequest, Severity

CRITICAL_FEATURES: Final = 3
"""Drifted columns in one window that make persistent drift ``critical``."""

CONCEPT_MARGIN: Final = 0.025
"""The performance loss that confirms a concept-drift flag when ``performance.max_drop`` is
unset; otherwise half of ``max_drop`` does."""

CRITICAL_RATIO: Final = 2.0
"""Effect size, as a multiple of its threshold, that makes persistent drift ``critical``."""

SNAPSHOT_FORMAT: Final = 1

DRIFT_KINDS: Final = frozenset({"feature_drift", "prediction_drift"})
"""Result kinds the policy corrects and judges; other kinds pass through unjudged."""

Correction = Literal["bh", "bonferroni"]
SkipReason = Literal["too_few_samples", "not_finite", "not_a_drift_test"]


def adjust_p_values(p_values: ArrayLike, method: Correction = "bh") -> NDArray[np.float64]:
    """Multiplicity-adjusted p-values, in the order given.

    ``bh``: Benjamini-Hochberg step-up, ``min(1, min_{j >= i} p_(j) m / j)`` for the i-th
    smallest (:func:`scipy.stats.false_discovery_control`); rejecting adjusted p <= q controls
    the false-discovery rate at q (independent or positively dependent tests). ``bonferroni``:
    ``min(1, p m)``, controlling the family-wise error rate.

    >>> adjust_p_values([0.01, 0.04, 0.03, 0.20]).round(4).tolist()
    [0.04, 0.0533, 0.0533, 0.2]
    >>> adjust_p_values([0.01, 0.04], "bonferroni").tolist()
    [0.02, 0.08]
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise DecisionInputError(f"p_values must be one-dimensional, got shape {p.shape}")
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise DecisionInputError("p_values must lie in [0, 1] (and not be NaN)")
    if method not in ("bh", "bonferroni"):
        raise DecisionInputError(f"method must be 'bh' or 'bonferroni', got {method!r}")
    m = p.size
    if m == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    adjusted: NDArray[np.float64] = stats.false_discovery_control(p, method="bh")
    return adjusted


@dataclass(frozen=True, slots=True)
class PerformanceObservation:
    """The realised performance of a model in one window.

    ``baseline`` is the same metric on the reference (``None``: judge the absolute threshold
    only).

    >>> PerformanceObservation("accuracy", 0.91, n_labels=1200, baseline=0.95).n_labels
    1200
    """

    metric: str
    value: float
    n_labels: int
    baseline: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The policy's verdict on one test result, after correction across features.

    ``judged`` is False for results the policy does not decide on (``skip_reason`` says why);
    ``adjusted_p_value`` is None when the result has no p-value or was not judged;
    ``effect_ratio`` is the statistic divided by its threshold (NaN when not finite).

    >>> r = TestResult("psi", "amount", 0.3, 1e-6, 0.2, 50_000, 900, True)
    >>> Verdict(r, judged=True, drifted=True, adjusted_p_value=2e-6, effect_ratio=1.5).drifted
    True
    """

    result: TestResult
    judged: bool
    drifted: bool
    adjusted_p_value: float | None
    effect_ratio: float
    skip_reason: SkipReason | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one window.

    ``verdicts`` follow the order of the results given; ``drifted_features`` lists the drifted
    ``feature_drift`` columns, largest effect ratio first. ``drift_found`` is this window's own
    finding, ``in_drift`` the persistent one (k of n). ``firing`` is the alert state after this
    window, ``severity`` that of the firing alert (None when not firing). ``restated`` is True
    when this window had been decided before; ``outside_history`` when it is older than the
    retained history, so it changed no state and emitted nothing.

    >>> from datetime import UTC, datetime
    >>> d = Decision(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC),
    ...              verdicts=(), drifted_features=[], alerts=[], retrain=None)
    >>> d.firing, d.alerts
    (False, [])
    """

    window_start: datetime
    window_end: datetime
    verdicts: tuple[Verdict, ...]
    drifted_features: list[str]
    alerts: list[DriftAlert]
    retrain: RetrainRequest | None
    drift_found: bool = False
    in_drift: bool = False
    performance_breach: bool = False
    concept_drift: bool = False
    firing: bool = False
    severity: Severity | None = None
    restated: bool = False
    outside_history: bool = False


# --- internal state ------------------------------------------------------------------------


@dataclass(slots=True)
class _Window:
    """The evidence of one window, as the fold needs it (JSON-able through ``dump``)."""

    start: int
    end: int
    drift_judged: bool = False
    drift: bool = False
    perf_judged: bool = False
    breach: bool = False
    concept: bool = False
    concept_confirmed: bool = False
    n_drifted: int = 0
    max_ratio: float = 0.0
    reasons: tuple[Reason, ...] = ()
    perf_reason: Reason | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.start, self.end)

    @property
    def order(self) -> tuple[int, int]:
        return (self.end, self.start)

    def dump(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "drift_judged": self.drift_judged,
            "drift": self.drift,
            "perf_judged": self.perf_judged,
            "breach": self.breach,
            "concept": self.concept,
            "concept_confirmed": self.concept_confirmed,
            "n_drifted": self.n_drifted,
            "max_ratio": self.max_ratio,
            "reasons": [r.model_dump(mode="json") for r in self.reasons],
            "perf_reason": (
                None if self.perf_reason is None else self.perf_reason.model_dump(mode="json")
            ),
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> _Window:
        perf = data["perf_reason"]
        return cls(
            start=int(data["start"]),
            end=int(data["end"]),
            drift_judged=bool(data["drift_judged"]),
            drift=bool(data["drift"]),
            perf_judged=bool(data["perf_judged"]),
            breach=bool(data["breach"]),
            concept=bool(data["concept"]),
            concept_confirmed=bool(data.get("concept_confirmed", False)),
            n_drifted=int(data["n_drifted"]),
            max_ratio=float(data["max_ratio"]),
            reasons=tuple(Reason.model_validate(r) for r in data["reasons"]),
            perf_reason=None if perf is None else Reason.model_validate(perf),
        )


@dataclass(slots=True)
class _Fold:
    """The alert state machine, advanced one window at a time in event-time order."""

    recent: deque[bool]
    firing: bool = False
    clean: int = 0
    last_drift: _Window | None = None

    def copy(self) -> _Fold:
        recent = deque(self.recent, maxlen=self.recent.maxlen)
        return _Fold(recent, self.firing, self.clean, self.last_drift)


@dataclass(frozen=True, slots=True)
class _Step:
    in_drift: bool
    firing: bool
    resolved: bool
    severity: Severity | None
    evidence: _Window | None


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
        self._windows: list[_Window] = []
        self._base = self._empty_fold()
        self._horizon_end: int | None = None
        self._requests: set[tuple[int, int]] = set()
        self._current = self._empty_fold()

    def _empty_fold(self) -> _Fold:
        return _Fold(deque(maxlen=self.config.drift.persistence_n))

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
            for v in _by_ratio(verdicts)
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
        self._base.last_drift = None if last is None else _Window.load(last)
        horizon = base["horizon_end"]
        self._horizon_end = None if horizon is None else int(horizon)
        self._windows = sorted(
            (_Window.load(w) for w in snapshot["windows"]), key=lambda w: w.order
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
    ) -> _Window:
        drifted = [v for v in _by_ratio(verdicts) if v.drifted]
        window = _Window(
            start=start,
            end=end,
            drift_judged=any(v.judged for v in verdicts),
            drift=bool(drifted),
            concept=concept_drift,
            n_drifted=len(drifted),
            max_ratio=max((v.effect_ratio for v in drifted), default=0.0),
            reasons=tuple(_drift_reason(v) for v in drifted[: self.max_reasons]),
        )
        if performance is not None:
            window.perf_judged, window.breach, window.perf_reason = self._judge_performance(
                performance
            )
            if concept_drift and performance.baseline is not None:
                # Sequential detectors are two-sided, and err about once per 10 M i.i.d.
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

    def _judge_performance(self, obs: PerformanceObservation) -> tuple[bool, bool, Reason | None]:
        if obs.metric != self.config.metric:
            raise DecisionInputError(
                f"performance.metric is {obs.metric!r}, but this model is judged on "
                f"{self.config.metric!r}"
            )
        settings = self.config.performance
        if obs.n_labels < settings.min_labels or not math.isfinite(obs.value):
            return False, False, None
        lower = self.config.lower_is_better
        limits: list[float] = []
        if settings.threshold is not None:
            limits.append(settings.threshold)
        if (
            settings.max_drop is not None
            and obs.baseline is not None
            and math.isfinite(obs.baseline)
        ):
            limits.append(
                obs.baseline + settings.max_drop if lower else obs.baseline - settings.max_drop
            )
        for limit in limits:
            if (obs.value > limit) if lower else (obs.value < limit):
                reason = Reason(
                    kind="performance", statistic=obs.metric, value=obs.value, threshold=limit
                )
                return True, True, reason
        return True, False, None

    def _step(self, fold: _Fold, w: _Window) -> _Step:
        if w.drift_judged or w.concept:
            # A concept-drift flag is drift evidence like a drifted feature: it must persist
            # (k of n windows) before it alerts, so one stray detection cannot retrain.
            fold.recent.append(w.drift or w.concept)
        if w.drift:
            fold.last_drift = w
        in_drift = sum(fold.recent) >= self.config.drift.persistence_k
        if w.drift or w.breach or w.concept:
            fold.clean = 0
        elif w.drift_judged or w.perf_judged:
            fold.clean += 1
        problem = in_drift or w.breach or w.concept_confirmed
        resolved = False
        if problem:
            fold.firing = True
        elif fold.firing and fold.clean >= self.resolve_after:
            fold.firing = False
            resolved = True
        evidence = fold.last_drift if in_drift else None
        severity: Severity | None = None
        if w.breach or (
            evidence is not None
            and (evidence.n_drifted >= CRITICAL_FEATURES or evidence.max_ratio >= CRITICAL_RATIO)
        ):
            severity = "critical"
        elif in_drift or w.concept:
            severity = "warning"
        elif fold.firing:
            severity = "info"
        return _Step(in_drift, fold.firing, resolved, severity, evidence)

    def _refold(self, key: tuple[int, int]) -> _Step:
        fold = self._base.copy()
        target: _Step | None = None
        for w in self._windows:
            step = self._step(fold, w)
            if w.key == key:
                target = step
        self._current = fold
        assert target is not None  # the caller put the window in
        return target

    def _evict(self) -> None:
        while len(self._windows) > self.history:
            oldest = self._windows.pop(0)
            self._step(self._base, oldest)
            self._horizon_end = oldest.end
        if self._horizon_end is not None:
            # A request can only block windows that end after the horizon.
            floor = self._horizon_end - self._cooldown_ms
            self._requests = {k for k in self._requests if k[1] > floor}

    def _alert_reasons(self, w: _Window, step: _Step) -> list[Reason]:
        reasons: list[Reason] = []
        if step.evidence is not None:
            reasons.extend(step.evidence.reasons)
        if w.breach and w.perf_reason is not None:
            reasons.append(w.perf_reason)
        if w.concept:
            reasons.append(_CONCEPT_REASON)
        return reasons

    def _retrain(
        self, window_start: datetime, window_end: datetime, w: _Window, step: _Step
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


def _by_ratio(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """Largest effect ratio first; ties by column then test name, so the order is stable."""
    return sorted(
        verdicts,
        key=lambda v: (
            -(v.effect_ratio if math.isfinite(v.effect_ratio) else -math.inf),
            v.result.column,
            v.result.test,
        ),
    )


def _drift_reason(v: Verdict) -> Reason:
    r = v.result
    kind: Literal["feature_drift", "prediction_drift"] = (
        "prediction_drift" if r.kind == "prediction_drift" else "feature_drift"
    )
    return Reason(
        kind=kind,
        feature=r.column,
        statistic=r.test,
        value=r.statistic,
        threshold=r.threshold,
        p_value=v.adjusted_p_value,
    )


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)
