"""What the decision policy takes and gives besides test results: observations, verdicts,
decisions.

Plain frozen values: a window's realised :class:`PerformanceObservation`, the policy's
:class:`Verdict` on each test result (after correction across features), and the
:class:`Decision` on one window with the alerts and retrain request to emit
(:class:`~driftline.detectors.policy.DecisionPolicy` makes them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from driftline.config.settings import ModelConfig
from driftline.detectors.result import TestResult
from driftline.errors import DecisionInputError
from driftline.schemas.outputs import DriftAlert, Reason, RetrainRequest, Severity

__all__ = [
    "DRIFT_KINDS",
    "Decision",
    "PerformanceObservation",
    "SkipReason",
    "Verdict",
    "by_ratio",
]

DRIFT_KINDS: Final = frozenset({"feature_drift", "prediction_drift"})
"""Result kinds the policy corrects and judges; other kinds pass through unjudged."""

SkipReason = Literal["too_few_samples", "not_finite", "not_a_drift_test"]
"""Why the policy did not judge a result."""


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

    def judge(self, config: ModelConfig) -> tuple[bool, bool, Reason | None]:
        """Whether it was judged (enough labels, a finite value), whether it breaches the
        model's absolute threshold or its tolerated drop from the baseline, and the breach as
        a reason."""
        if self.metric != config.metric:
            raise DecisionInputError(
                f"performance.metric is {self.metric!r}, but this model is judged on "
                f"{config.metric!r}"
            )
        settings = config.performance
        if self.n_labels < settings.min_labels or not math.isfinite(self.value):
            return False, False, None
        lower = config.lower_is_better
        limits: list[float] = []
        if settings.threshold is not None:
            limits.append(settings.threshold)
        if (
            settings.max_drop is not None
            and self.baseline is not None
            and math.isfinite(self.baseline)
        ):
            limits.append(
                self.baseline + settings.max_drop if lower else self.baseline - settings.max_drop
            )
        for limit in limits:
            if (self.value > limit) if lower else (self.value < limit):
                reason = Reason(
                    kind="performance", statistic=self.metric, value=self.value, threshold=limit
                )
                return True, True, reason
        return True, False, None


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

    def reason(self) -> Reason:
        """The result as a drift reason of an alert or retrain request (adjusted p-value)."""
        r = self.result
        kind: Literal["feature_drift", "prediction_drift"] = (
            "prediction_drift" if r.kind == "prediction_drift" else "feature_drift"
        )
        return Reason(
            kind=kind,
            feature=r.column,
            statistic=r.test,
            value=r.statistic,
            threshold=r.threshold,
            p_value=self.adjusted_p_value,
            segment_key=r.segment_key,
            segment=r.segment,
        )


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


def by_ratio(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """Largest effect ratio first; ties by column then test name, so the order is stable."""
    return sorted(
        verdicts,
        key=lambda v: (
            -(v.effect_ratio if math.isfinite(v.effect_ratio) else -math.inf),
            v.result.column,
            v.result.test,
        ),
    )
