"""The sequential rollout decision: promote the challenger, roll it back, or keep looking.

:func:`decide` turns the evidence so far (:mod:`driftline.detectors.rollout_evidence`: shadow
pairs or canary samples) into a :class:`RolloutResult` through an anytime-valid confidence
sequence (:mod:`driftline.detectors.confidence`; paired: on the mean score difference;
unpaired: the difference of two sequences at ``alpha / 2`` each), so looking after every
window, and stopping at the first decision, keeps the chance of a wrong promotion or roll back
below ``alpha``. :class:`RolloutComparison` is the incremental unit that folds windows and
keeps the first decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from driftline.detectors.confidence import METHOD
from driftline.detectors.rollout_evidence import (
    Evidence,
    PairedEvidence,
    RolloutMetric,
    UnpairedEvidence,
    evidence_from_snapshot,
)
from driftline.errors import DecisionInputError, StatisticsError, SummaryMismatchError

__all__ = ["Decision", "RolloutComparison", "RolloutPolicy", "RolloutResult", "decide"]

Decision = Literal["promote", "rollback", "continue", "end"]


@dataclass(frozen=True)
class RolloutPolicy:
    """When a comparison decides.

    ``promote`` once the whole interval for challenger minus champion (good direction) is above
    ``margin``; ``rollback`` once it is entirely below ``-margin``; neither before each version
    has ``min_labels`` labels. When the challenger reaches ``max_labels`` labels undecided, the
    result is ``end`` with the action ``on_end`` (by default roll back: a challenger that has
    not shown it is better is not promoted). ``alpha`` bounds the chance of any wrong decision
    (a promotion of a version no better by ``margin``, or a roll back of one no worse by it)
    over every look.

    >>> RolloutPolicy(alpha=0.05, margin=0.01).on_end
    'rollback'
    """

    alpha: float = 0.05
    margin: float = 0.0
    min_labels: int = 500
    max_labels: int = 100_000
    on_end: Literal["promote", "rollback"] = "rollback"

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise DecisionInputError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise DecisionInputError(f"margin must be a number >= 0, got {self.margin!r}")
        for name in ("min_labels", "max_labels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DecisionInputError(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_labels < self.min_labels:
            raise DecisionInputError(
                f"max_labels ({self.max_labels}) must be at least min_labels ({self.min_labels})"
            )
        if self.on_end not in ("promote", "rollback"):
            raise DecisionInputError(f"on_end must be 'promote' or 'rollback', got {self.on_end!r}")


@dataclass(frozen=True)
class RolloutResult:
    """One look at a comparison: the difference (challenger minus champion, higher is
    better), its anytime-valid interval, the labels behind it and the decision.

    ``action`` is what to do: ``promote`` or ``rollback`` for those decisions, the policy's
    ``on_end`` for ``end``, None to continue.
    """

    design: Literal["shadow", "canary"]
    metric: str
    estimate: float | None
    lower: float
    upper: float
    n: int
    n_champion: int
    n_challenger: int
    decision: Decision
    action: Literal["promote", "rollback"] | None
    method: str
    alpha: float
    margin: float


def decide(
    evidence: Evidence, policy: RolloutPolicy, *, out_of_time: bool = False
) -> RolloutResult:
    """The decision on the evidence so far; ``out_of_time``: the rollout has run its maximum
    duration, so a look that would continue ends instead (like reaching ``max_labels``).

    >>> from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric
    >>> evidence = PairedEvidence(RolloutMetric("accuracy")).update_scores([0] * 800, [1] * 800)
    >>> result = decide(evidence, RolloutPolicy())
    >>> result.decision, result.lower > 0.9
    ('promote', True)
    """
    lower, upper = evidence.bounds(policy.alpha)
    decision: Decision = "continue"
    if min(evidence.n_champion, evidence.n_challenger) >= policy.min_labels:
        if lower > policy.margin:
            decision = "promote"
        elif upper < -policy.margin:
            decision = "rollback"
    if decision == "continue" and (out_of_time or evidence.n_challenger >= policy.max_labels):
        decision = "end"
    action = {"promote": "promote", "rollback": "rollback", "end": policy.on_end}.get(decision)
    return RolloutResult(
        design=evidence.design,  # type: ignore[arg-type]
        metric=evidence.metric.name,
        estimate=evidence.estimate,
        lower=lower,
        upper=upper,
        n=evidence.n,
        n_champion=evidence.n_champion,
        n_challenger=evidence.n_challenger,
        decision=decision,
        action=action,  # type: ignore[arg-type]
        method=METHOD,
        alpha=policy.alpha,
        margin=policy.margin,
    )


class RolloutComparison:
    """The running comparison of one challenger with the champion: windows of evidence in,
    the latest look out, the first terminal decision kept.

    Once a look decides (promote, roll back or end), later windows still add to the evidence
    and the interval, but the decision and action stay the first ones: stopping at the first
    decision is what the error rate covers.

    Examples
    --------
    >>> from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric
    >>> metric = RolloutMetric("accuracy")
    >>> comparison = RolloutComparison(metric, "shadow", RolloutPolicy(min_labels=100))
    >>> window = PairedEvidence(metric).update_scores([0.0] * 200, [1.0] * 200)
    >>> comparison.update(window).result.decision
    'promote'
    """

    def __init__(
        self,
        metric: RolloutMetric,
        design: Literal["shadow", "canary"],
        policy: RolloutPolicy,
    ) -> None:
        if design not in ("shadow", "canary"):
            raise StatisticsError(f"design must be 'shadow' or 'canary', got {design!r}")
        self.metric = metric
        self.design = design
        self.policy = policy
        self.reset()

    def reset(self) -> None:
        """Forget everything folded so far (all state is created here)."""
        self._evidence: Evidence = (
            PairedEvidence(self.metric)
            if self.design == "shadow"
            else UnpairedEvidence(self.metric)
        )
        self._decided: RolloutResult | None = None
        self._result = decide(self._evidence, self.policy)

    def update(self, window: Evidence) -> Self:
        """Merge one window's evidence (of this design and metric) and look; returns the
        comparison."""
        self._evidence = self._evidence.merge(window)  # type: ignore[arg-type]
        self._look()
        return self

    def look_at(self, total: Evidence, *, out_of_time: bool = False) -> Self:
        """Look at ``total``, all the evidence known now (of this design and metric), which
        replaces the evidence held; returns the comparison. ``out_of_time``: see
        :func:`decide`.

        For evidence that is restated as late labels arrive: each look sees every example
        known so far, once. ``total`` must hold at least what the last look saw (the
        examples seen are a growing set, a prefix of their arrival order, which is what the
        confidence sequence's guarantee is about); less raises
        :class:`~driftline.errors.StatisticsError`.

        >>> from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric
        >>> metric = RolloutMetric("accuracy")
        >>> comparison = RolloutComparison(metric, "shadow", RolloutPolicy(min_labels=100))
        >>> def total(n: int) -> PairedEvidence:
        ...     return PairedEvidence(metric).update_scores([0.0] * n, [1.0] * n)
        >>> comparison.look_at(total(50)).result.n, comparison.decided
        (50, None)
        >>> comparison.look_at(total(200)).decided.n
        200
        """
        if total.design != self.design or total.metric != self.metric:
            raise SummaryMismatchError(
                f"evidence of {total.design} on {total.metric} for a {self.design} comparison "
                f"on {self.metric}"
            )
        held = self._evidence
        if total.n_champion < held.n_champion or total.n_challenger < held.n_challenger:
            raise StatisticsError(
                f"the evidence shrank: {total.n_champion}/{total.n_challenger} labels "
                f"(champion/challenger) after {held.n_champion}/{held.n_challenger}"
            )
        self._evidence = total
        self._look(out_of_time=out_of_time)
        return self

    def _look(self, *, out_of_time: bool = False) -> None:
        result = decide(self._evidence, self.policy, out_of_time=out_of_time)
        if self._decided is None and result.decision != "continue":
            self._decided = result
        if self._decided is not None:
            fields = {**result.__dict__}
            fields.update(decision=self._decided.decision, action=self._decided.action)
            result = RolloutResult(**fields)
        self._result = result

    @property
    def evidence(self) -> Evidence:
        """All evidence folded so far."""
        return self._evidence

    @property
    def result(self) -> RolloutResult:
        """The latest look (its decision is the first terminal one, once there is one)."""
        return self._result

    @property
    def decided(self) -> RolloutResult | None:
        """The look that decided, or None while the comparison continues."""
        return self._decided

    def snapshot(self) -> dict[str, Any]:
        """The state as plain JSON data (the policy is the caller's to keep)."""
        decided = None if self._decided is None else dict(self._decided.__dict__)
        return {"evidence": self._evidence.snapshot(), "decided": decided}

    def restore(self, snapshot: Mapping[str, Any]) -> Self:
        """Take over a :meth:`snapshot` of a comparison of the same metric and design."""
        evidence = evidence_from_snapshot(snapshot["evidence"])
        if evidence.metric != self.metric or evidence.design != self.design:
            raise SummaryMismatchError(
                f"snapshot holds {evidence.design} evidence of {evidence.metric}, "
                f"expected {self.design} evidence of {self.metric}"
            )
        decided = snapshot.get("decided")
        self._evidence = evidence
        self._decided = None if decided is None else RolloutResult(**decided)
        self._look()
        return self
