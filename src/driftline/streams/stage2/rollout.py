"""Stage 2's rollout judge: looks at a challenger's evidence in, ``rollout`` points and one
decision out.

Pure (no Kafka, no clock). One :class:`RolloutJudge` per (model, champion, challenger) holds the
sequential :class:`~driftline.detectors.rollout.RolloutComparison`. Each look, at the end of a
window of the pair's series, is at *all* the evidence known then for predictions before that
end (shadow pairs, or the canary's and champion's scores), late labels included, each example
once: looks never go back in time (a look ending before the last one is refused), and the
evidence never shrinks (the comparison refuses it). Every look gives one ``rollout`` metric
point; the first decisive look gives the one
:class:`~driftline.schemas.outputs.RolloutDecision`, whose id is deterministic, so a stage 2
that judges the same windows again after a restart makes the same record and the
published-ids filter drops it.

:mod:`~driftline.streams.stage2.rollouts` feeds the judges of a model's pairs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from driftline.config.settings import RolloutSettings
from driftline.detectors.rollout import RolloutComparison, RolloutPolicy, RolloutResult
from driftline.detectors.rollout_evidence import Evidence, RolloutMetric
from driftline.errors import StatisticsError
from driftline.schemas.outputs import RolloutDecision
from driftline.sinks.points import Measurement, MetricPoint

__all__ = ["DECISION_CODES", "MEASUREMENT", "SCHEMA", "RolloutJudge", "policy_of"]

MEASUREMENT = "rollout"
DECISION_CODES = {"continue": 0, "promote": 1, "rollback": -1, "end": 2}
"""The ``decision`` field of a ``rollout`` point: continue 0, promote 1, roll back -1, end 2."""
SCHEMA = Measurement(
    MEASUREMENT,
    frozenset({"model", "champion", "challenger", "metric"}),
    frozenset({"estimate", "lower", "upper", "n", "decision", "prediction_js"}),
)
"""What a ``rollout`` point carries (``estimate`` and ``prediction_js`` only when known)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def policy_of(settings: RolloutSettings) -> RolloutPolicy:
    """The decision policy of a model's rollout settings.

    >>> policy_of(RolloutSettings(min_labels=10, max_labels=20)).max_labels
    20
    """
    return RolloutPolicy(
        alpha=settings.alpha,
        margin=settings.margin,
        min_labels=settings.min_labels,
        max_labels=settings.max_labels,
        on_end=settings.on_end,
    )


def _time(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


class RolloutJudge:
    """The running judgement of one challenger version against its champion.

    Examples
    --------
    >>> from driftline.detectors.rollout_evidence import PairedEvidence
    >>> metric = RolloutMetric("accuracy")
    >>> judge = RolloutJudge("m", "1", "2", metric, "shadow", RolloutPolicy(min_labels=100))
    >>> points, decision = judge.look(0, 60_000, PairedEvidence(metric).update_scores(
    ...     [0.0] * 150, [1.0] * 150))
    >>> dict(points[0].fields)["decision"], decision.action
    (1, 'promote')
    """

    def __init__(
        self,
        model: str,
        champion: str,
        challenger: str,
        metric: RolloutMetric,
        design: Literal["shadow", "canary"],
        policy: RolloutPolicy,
    ) -> None:
        self.model, self.champion, self.challenger = model, champion, challenger
        self.comparison = RolloutComparison(metric, design, policy)
        self.last_end_ms: int | None = None
        self.decision: RolloutDecision | None = None
        """The decision record, once a look decided."""

    def look(
        self,
        start_ms: int,
        end_ms: int,
        total: Evidence,
        prediction_js: float | None = None,
        *,
        out_of_time: bool = False,
    ) -> tuple[list[MetricPoint], RolloutDecision | None]:
        """Look at ``total``, all the evidence known now for predictions before ``end_ms``, at
        the close of the window ``[start_ms, end_ms)``: its ``rollout`` point, and the decision
        record when this look is the first decisive one (None otherwise).

        ``prediction_js`` (the Jensen-Shannon distance between the two versions' prediction
        distributions in this window) becomes the point's field of that name when given.
        ``out_of_time``: the rollout has run its maximum duration: a look that would continue
        ends (decision ``end``, the policy's ``on_end``)."""
        if end_ms <= start_ms:
            raise StatisticsError(f"window end {end_ms} is not after its start {start_ms}")
        if self.last_end_ms is not None and end_ms <= self.last_end_ms:
            raise StatisticsError(
                f"a look at {end_ms} after the look at {self.last_end_ms}: looks go forward"
            )
        had_decided = self.comparison.decided is not None
        result = self.comparison.look_at(total, out_of_time=out_of_time).result
        self.last_end_ms = end_ms
        points = [self._point(result, end_ms, prediction_js)]
        if had_decided or self.comparison.decided is None:
            return points, None
        self.decision = self._record(result, start_ms, end_ms)
        return points, self.decision

    def _point(
        self, result: RolloutResult, end_ms: int, prediction_js: float | None
    ) -> MetricPoint:
        tags = {
            "model": self.model,
            "champion": self.champion,
            "challenger": self.challenger,
            "metric": result.metric,
        }
        fields: dict[str, float | int] = {
            "lower": result.lower,
            "upper": result.upper,
            "n": result.n,
            "decision": DECISION_CODES[result.decision],
        }
        if result.estimate is not None:
            fields = {"estimate": result.estimate, **fields}
        if prediction_js is not None:
            fields["prediction_js"] = prediction_js
        return MetricPoint(MEASUREMENT, tuple(sorted(tags.items())), tuple(fields.items()), end_ms)

    def _record(self, result: RolloutResult, start_ms: int, end_ms: int) -> RolloutDecision:
        assert result.action is not None  # a decided look always has one
        return RolloutDecision.create(
            self.model,
            self.champion,
            self.challenger,
            _time(start_ms),
            _time(end_ms),
            design=result.design,
            decision=result.decision,
            action=result.action,
            metric=result.metric,
            estimate=0.0 if result.estimate is None else result.estimate,
            lower=result.lower,
            upper=result.upper,
            n=result.n,
            alpha=result.alpha,
            margin=result.margin,
            method=result.method,
        )

    def snapshot(self) -> dict[str, Any]:
        """The state as plain JSON data (the policy and identity are the caller's)."""
        return {"comparison": self.comparison.snapshot(), "last_end_ms": self.last_end_ms}

    def restore(self, snapshot: dict[str, Any]) -> RolloutJudge:
        """Take over a :meth:`snapshot` of a judge of the same pair, metric and design."""
        self.comparison.restore(snapshot["comparison"])
        self.last_end_ms = snapshot["last_end_ms"]
        return self
