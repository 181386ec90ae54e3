"""Rollout evidence from stage 1's folds: shadow pairs split anyhow merge to the whole, canary
accuracy from performance summaries equals folding the scores, bytes round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.rollout import RolloutPolicy, decide
from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric, UnpairedEvidence
from driftline.detectors.rollout_sources import (
    canary_evidence,
    evidence_bytes,
    evidence_of_bytes,
    fold_shadow_pairs,
    rollout_metric,
)
from driftline.errors import StatisticsError

ACCURACY = RolloutMetric("accuracy")


def _stream(
    n: int, champion_acc: float, challenger_acc: float, seed: int = 7
) -> tuple[list[int], list[int], list[int]]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    champion = np.where(rng.random(n) < champion_acc, labels, 1 - labels)
    challenger = np.where(rng.random(n) < challenger_acc, labels, 1 - labels)
    return labels.tolist(), champion.tolist(), challenger.tolist()


def test_shadow_pairs_folded_in_parts_equal_one_fold() -> None:
    labels, champion, challenger = _stream(1000, 0.7, 0.8)
    whole = fold_shadow_pairs(PairedEvidence(ACCURACY), labels, champion, challenger)
    first = fold_shadow_pairs(
        PairedEvidence(ACCURACY), labels[:313], champion[:313], challenger[:313]
    )
    rest = fold_shadow_pairs(
        PairedEvidence(ACCURACY), labels[313:], champion[313:], challenger[313:]
    )
    assert first.merge(rest) == whole
    assert evidence_of_bytes(evidence_bytes(whole)) == whole


def test_a_better_shadow_is_promoted_from_its_folded_pairs() -> None:
    labels, champion, challenger = _stream(4000, 0.7, 0.85)
    evidence = fold_shadow_pairs(PairedEvidence(ACCURACY), labels, champion, challenger)
    assert decide(evidence, RolloutPolicy(min_labels=500)).decision == "promote"


def test_unequal_pair_columns_are_refused() -> None:
    with pytest.raises(StatisticsError, match="labels"):
        fold_shadow_pairs(PairedEvidence(ACCURACY), [1, 0], [1], [1, 0])


def test_canary_evidence_from_performance_equals_folding_the_scores() -> None:
    labels, champion, challenger = _stream(900, 0.7, 0.6)
    a = PerformanceSummary("binary", ("0", "1")).fold(
        labels=labels[:600], predictions=champion[:600]
    )
    b = PerformanceSummary("binary", ("0", "1")).fold(
        labels=labels[600:], predictions=challenger[600:]
    )
    direct = (
        UnpairedEvidence(ACCURACY)
        .update("champion", labels[:600], champion[:600])
        .update("challenger", labels[600:], challenger[600:])
    )
    from_summaries = canary_evidence(a, b)
    assert from_summaries.n_champion == direct.n_champion == 600
    assert from_summaries.estimate == pytest.approx(direct.estimate, abs=1e-12)
    assert from_summaries.bounds(0.05) == pytest.approx(direct.bounds(0.05), abs=1e-9)


def test_the_rollout_metric_follows_the_model() -> None:
    assert rollout_metric("multiclass", "f1") == ACCURACY
    assert rollout_metric("binary", "log_loss") == RolloutMetric("log_loss")
    assert rollout_metric("regression", "rmse") is None


def test_bytes_that_are_not_evidence_are_refused() -> None:
    with pytest.raises(StatisticsError):
        evidence_of_bytes(b"[1, 2]")
    with pytest.raises(StatisticsError):
        evidence_of_bytes(b"\xff")
