"""The RolloutDecision record (issue 16): a deterministic id, the challenger as its version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from driftline.schemas import RolloutDecision

START = datetime(2026, 11, 22, 9, tzinfo=UTC)
END = START + timedelta(hours=1)
EVIDENCE: dict[str, Any] = {
    "design": "shadow",
    "decision": "promote",
    "action": "promote",
    "metric": "accuracy",
    "estimate": 0.04,
    "lower": 0.01,
    "upper": 0.07,
    "n": 1200,
    "alpha": 0.05,
    "margin": 0.0,
    "method": "betting confidence sequence",
}


def test_the_same_decision_has_the_same_id_and_round_trips() -> None:
    one = RolloutDecision.create("fraud", "3", "4", START, END, **EVIDENCE)
    again = RolloutDecision.create("fraud", "3", "4", START, END, **{**EVIDENCE, "n": 1300})
    assert one.decision_id == again.decision_id
    assert one.model_version == one.challenger_version == "4"
    assert RolloutDecision.model_validate_json(one.to_json()) == one


def test_another_decision_pair_or_window_has_another_id() -> None:
    one = RolloutDecision.create("fraud", "3", "4", START, END, **EVIDENCE)
    ids = {
        RolloutDecision.create("fraud", "3", "5", START, END, **EVIDENCE).decision_id,
        RolloutDecision.create("fraud", "2", "4", START, END, **EVIDENCE).decision_id,
        RolloutDecision.create(
            "fraud", "3", "4", START, END, **{**EVIDENCE, "decision": "rollback"}
        ).decision_id,
        RolloutDecision.create(
            "fraud", "3", "4", END, END + timedelta(hours=1), **EVIDENCE
        ).decision_id,
    }
    assert one.decision_id not in ids
    assert len(ids) == 4


@pytest.mark.parametrize(
    "change", [{"decision": "continue"}, {"action": "end"}, {"alpha": 1.0}, {"n": -1}]
)
def test_an_impossible_decision_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RolloutDecision.create("fraud", "3", "4", START, END, **{**EVIDENCE, **change})
