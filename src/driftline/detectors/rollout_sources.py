"""Rollout evidence from what stage 1 folds: a model's rollout metric, shadow pairs, canaries.

Stage 1 scores a shadow prediction and its champion's with the one label they share
(:func:`fold_shadow_pairs` into :class:`~driftline.detectors.rollout_evidence.PairedEvidence`);
a canary needs nothing new for accuracy: the two versions' performance summaries already hold
each one's count of correct predictions (:func:`canary_evidence`). Evidence travels between the
stages as bytes (:func:`evidence_bytes`, :func:`evidence_of_bytes`), its snapshot as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson

from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.rollout_evidence import (
    Evidence,
    PairedEvidence,
    RolloutMetric,
    UnpairedEvidence,
    evidence_from_snapshot,
)
from driftline.errors import StatisticsError

__all__ = [
    "canary_evidence",
    "evidence_bytes",
    "evidence_of_bytes",
    "fold_shadow_pairs",
    "rollout_metric",
]


def rollout_metric(task: str, metric: str | None, cap: float | None = None) -> RolloutMetric | None:
    """The per-example score a rollout of this model compares: accuracy for classifiers, log
    loss for a binary model judged on it (each loss capped at ``cap``, default 10), and for
    regression the absolute error (``mae``) or squared error (``rmse``, ``r2``, and the
    default) capped at ``cap``; None for regression without a cap (its scores would be
    unbounded).

    >>> rollout_metric("binary", None).name, rollout_metric("binary", "log_loss").name
    ('accuracy', 'log_loss')
    >>> rollout_metric("regression", "mae") is None
    True
    >>> rollout_metric("regression", "mae", cap=5.0), rollout_metric("regression", None, 9.0).name
    (RolloutMetric(name='absolute_error', cap=5.0), 'squared_error')
    """
    if task == "regression":
        if cap is None:
            return None
        return RolloutMetric("absolute_error" if metric == "mae" else "squared_error", cap=cap)
    if metric == "log_loss" and task == "binary":
        return RolloutMetric("log_loss", cap=cap)
    return RolloutMetric("accuracy")


def fold_shadow_pairs(
    evidence: PairedEvidence,
    labels: Sequence[object],
    champion: Sequence[object],
    challenger: Sequence[object],
) -> PairedEvidence:
    """Fold joined shadow pairs: each label with the champion's and the shadow's prediction of
    the same request (for log loss, each one's probability of class 1); returns the evidence.

    >>> e = fold_shadow_pairs(PairedEvidence(RolloutMetric("accuracy")), [1, 0], [0, 0], [1, 0])
    >>> e.n, e.estimate
    (2, 0.5)
    """
    if not len(labels) == len(champion) == len(challenger):
        raise StatisticsError(
            f"{len(champion)} champion and {len(challenger)} shadow predictions "
            f"for {len(labels)} labels"
        )
    if not labels:
        return evidence
    return evidence.update(labels, champion, challenger)


def canary_evidence(
    champion: PerformanceSummary, challenger: PerformanceSummary
) -> UnpairedEvidence:
    """The canary evidence on accuracy of two versions' performance summaries (of the same
    window): each one's correct predictions and count are its score sums, exactly.

    >>> a = PerformanceSummary("binary", ("0", "1")).fold(labels=[1, 0, 1], predictions=[1, 1, 1])
    >>> b = PerformanceSummary("binary", ("0", "1")).fold(labels=[1, 0], predictions=[1, 0])
    >>> e = canary_evidence(a, b)
    >>> e.n_champion, e.n_challenger, round(e.estimate, 4)
    (3, 2, 0.3333)
    """
    evidence = UnpairedEvidence(RolloutMetric("accuracy"))
    for role, summary in (("champion", champion), ("challenger", challenger)):
        if summary.task == "regression":
            raise StatisticsError("canary accuracy needs classifiers' performance summaries")
        n = summary.n
        correct = round((summary.accuracy or 0.0) * n)
        scores = np.zeros(n, dtype=np.float64)
        scores[:correct] = 1.0
        evidence.update_scores(role, scores)  # type: ignore[arg-type]
    return evidence


def evidence_bytes(evidence: Evidence) -> bytes:
    """The evidence as bytes: its snapshot as JSON (exact sums as hex)."""
    return orjson.dumps(evidence.snapshot(), option=orjson.OPT_SORT_KEYS)


def evidence_of_bytes(data: bytes) -> Evidence:
    """Evidence read back from :func:`evidence_bytes`; other bytes raise
    :class:`~driftline.errors.StatisticsError`."""
    try:
        snapshot = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise StatisticsError(f"not rollout evidence bytes ({error})") from None
    if not isinstance(snapshot, dict):
        raise StatisticsError("not rollout evidence bytes (not an object)")
    return evidence_from_snapshot(snapshot)
