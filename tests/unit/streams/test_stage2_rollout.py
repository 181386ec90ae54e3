"""Stage 2's rollout judge: points per window, one decision record with a stable id, no
overlapping windows, and a restored judge that goes on where it was."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.config.settings import RolloutSettings
from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric
from driftline.errors import StatisticsError
from driftline.streams.stage2.rollout import DECISION_CODES, RolloutJudge, policy_of

METRIC = RolloutMetric("accuracy")
MINUTE = 60_000


def _window(n: int, champion_acc: float, challenger_acc: float, seed: int) -> PairedEvidence:
    rng = np.random.default_rng(seed)
    champion = (rng.random(n) < champion_acc).astype(float)
    challenger = (rng.random(n) < challenger_acc).astype(float)
    return PairedEvidence(METRIC).update_scores(champion, challenger)


def _judge(**settings: object) -> RolloutJudge:
    policy = policy_of(RolloutSettings(mode="shadow", **settings))  # type: ignore[arg-type]
    return RolloutJudge("fraud", "3", "4", METRIC, "shadow", policy)


def test_a_better_challenger_is_promoted_once_with_a_stable_id() -> None:
    judge, again = _judge(min_labels=300), _judge(min_labels=300)
    decisions = []
    for i in range(20):
        window = _window(200, 0.7, 0.85, seed=i)
        points, decision = judge.window(i * MINUTE, (i + 1) * MINUTE, window)
        _, repeat = again.window(i * MINUTE, (i + 1) * MINUTE, window)
        assert [p.measurement for p in points] == ["rollout"]
        assert dict(points[0].tags) == {
            "model": "fraud",
            "champion": "3",
            "challenger": "4",
            "metric": "accuracy",
        }
        if decision is not None:
            assert repeat is not None
            assert repeat.decision_id == decision.decision_id  # a replay makes the same record
            decisions.append(decision)
    assert len(decisions) == 1
    [decision] = decisions
    assert (decision.decision, decision.action, decision.model_version) == (
        "promote",
        "promote",
        "4",
    )
    assert decision.lower > 0
    assert dict(points[0].fields)["decision"] == DECISION_CODES["promote"]


def test_an_equal_challenger_ends_with_on_end_at_max_labels() -> None:
    judge = _judge(min_labels=100, max_labels=1000, on_end="rollback")
    decided = [
        d
        for i in range(10)
        if (d := judge.window(i * MINUTE, (i + 1) * MINUTE, _window(200, 0.8, 0.8, i))[1])
    ]
    assert [(d.decision, d.action) for d in decided] == [("end", "rollback")]


def test_overlapping_windows_are_refused() -> None:
    judge = _judge()
    judge.window(0, 10 * MINUTE, _window(10, 0.5, 0.5, 0))
    with pytest.raises(StatisticsError, match="overlaps"):
        judge.window(5 * MINUTE, 15 * MINUTE, _window(10, 0.5, 0.5, 1))


def test_a_restored_judge_goes_on_where_it_was() -> None:
    judge = _judge(min_labels=300)
    judge.window(0, MINUTE, _window(200, 0.7, 0.85, 0))
    restored = _judge(min_labels=300).restore(judge.snapshot())
    assert restored.last_end_ms == MINUTE
    a = judge.window(MINUTE, 2 * MINUTE, _window(200, 0.7, 0.85, 1))
    b = restored.window(MINUTE, 2 * MINUTE, _window(200, 0.7, 0.85, 1))
    assert a[0] == b[0]
    assert a[1] == b[1]
