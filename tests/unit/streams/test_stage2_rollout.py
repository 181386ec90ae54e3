"""Stage 2's rollout judge: a point per look at all the evidence so far, one decision record
with a stable id, looks that only go forward on evidence that only grows, and a restored judge
that goes on where it was."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.config.settings import RolloutSettings
from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric
from driftline.errors import StatisticsError
from driftline.streams.stage2.rollout import DECISION_CODES, SCHEMA, RolloutJudge, policy_of

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
    total = PairedEvidence(METRIC)
    for i in range(20):
        total = total.merge(_window(200, 0.7, 0.85, seed=i))
        points, decision = judge.look(i * MINUTE, (i + 1) * MINUTE, total)
        _, repeat = again.look(i * MINUTE, (i + 1) * MINUTE, total)
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
    total = PairedEvidence(METRIC)
    decided = []
    for i in range(10):
        total = total.merge(_window(200, 0.8, 0.8, i))
        if (d := judge.look(i * MINUTE, (i + 1) * MINUTE, total)[1]) is not None:
            decided.append(d)
    assert [(d.decision, d.action) for d in decided] == [("end", "rollback")]


def test_looks_go_forward_on_evidence_that_grows() -> None:
    """A look at or before the last one, or at less evidence than it saw, is refused: either
    would let an example count twice or a look be taken back."""
    judge = _judge()
    first = _window(10, 0.5, 0.5, 0)
    judge.look(0, 10 * MINUTE, first)
    with pytest.raises(StatisticsError, match="looks go forward"):
        judge.look(0, 10 * MINUTE, first.merge(_window(10, 0.5, 0.5, 1)))
    with pytest.raises(StatisticsError, match="shrank"):
        judge.look(10 * MINUTE, 20 * MINUTE, _window(5, 0.5, 0.5, 2))


def test_late_labels_of_a_window_looked_at_count_at_the_next_look() -> None:
    """The second look sees the first window's late labels too: its n is everything known."""
    judge = _judge(min_labels=10_000)
    on_time, late, next_window = (_window(100, 0.8, 0.8, s) for s in range(3))
    (point,), _ = judge.look(0, MINUTE, on_time)
    assert dict(point.fields)["n"] == 100
    (point,), _ = judge.look(MINUTE, 2 * MINUTE, on_time.merge(late).merge(next_window))
    assert dict(point.fields)["n"] == 300


def test_a_restored_judge_goes_on_where_it_was() -> None:
    judge = _judge(min_labels=300)
    first = _window(200, 0.7, 0.85, 0)
    judge.look(0, MINUTE, first)
    restored = _judge(min_labels=300).restore(judge.snapshot())
    assert restored.last_end_ms == MINUTE
    both = first.merge(_window(200, 0.7, 0.85, 1))
    a = judge.look(MINUTE, 2 * MINUTE, both)
    b = restored.look(MINUTE, 2 * MINUTE, both)
    assert a[0] == b[0]
    assert a[1] == b[1]


def test_a_rollout_point_carries_what_its_schema_names() -> None:
    """SCHEMA (what the dashboard's queries are checked against) is what a look writes."""
    judge = _judge(min_labels=300)
    [point], _ = judge.look(0, MINUTE, _window(200, 0.7, 0.8, seed=1), prediction_js=0.1)
    assert point.measurement == SCHEMA.name
    assert {k for k, _ in point.tags} == SCHEMA.tags
    assert {k for k, _ in point.fields} == SCHEMA.fields
