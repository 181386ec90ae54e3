"""Stage 2's rollouts in the pure core: shadow partials and canary performance partials judged
per closed window, each example once, one decision per pair, replays changing nothing, bad
rollout partials dropped with a reason."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from driftline.detectors.distance import jensen_shannon
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.rollout import RolloutComparison
from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric
from driftline.detectors.rollout_sources import evidence_bytes
from driftline.schemas.outputs import RolloutDecision
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.partials import PanePartial, Watermark
from driftline.streams.stage2.outputs import Output
from driftline.streams.stage2.rollout import policy_of
from driftline.streams.stage2.state import Stage2State
from tests.unit.streams.stage2_helpers import (
    LATENESS,
    MINUTE,
    PROFILE,
    WINDOW,
    feed,
    make_settings,
    metrics,
    pane_summary,
    partial,
    points,
    watermark,
)

METRIC = RolloutMetric("accuracy")
PANES = 5  # per window of 5 minutes


def shadow_evidence(pane: int, partition: int, n: int = 60, better: float = 0.2) -> PairedEvidence:
    rng = np.random.default_rng(1000 * pane + partition)
    champion = (rng.random(n) < 0.6).astype(float)
    challenger = (rng.random(n) < 0.6 + better).astype(float)
    return PairedEvidence(METRIC).update_scores(champion, challenger)


def rollout_partial(
    evidence: PairedEvidence, pane: int, partition: int, covered: int, **changes: Any
) -> PanePartial:
    fields: dict[str, Any] = {
        "model": "m",
        "version": "2",
        "pane_start_ms": pane * MINUTE,
        "pane_ms": MINUTE,
        "source_partition": partition,
        "kind": "rollout",
        "covered": covered,
        "watermark_ms": pane * MINUTE + MINUTE - 1,
        "summary": evidence_bytes(evidence),
        "champion": "1",
        **changes,
    }
    return PanePartial(**fields)


def close(window: int) -> list[Watermark]:
    """Both partitions past the end of window ``window`` (0-based) plus the lateness."""
    return [watermark(p, (window + 1) * WINDOW + LATENESS) for p in range(2)]


def shadow_state(**rollout: Any) -> Stage2State:
    settings = make_settings(rollout={"mode": "shadow", **rollout})
    return Stage2State(lambda model, version: PROFILE, settings)


def decisions(outputs: list[Output]) -> list[RolloutDecision]:
    return [RolloutDecision.model_validate_json(o.value) for o in outputs if o.role == "rollout"]


def rollout_points(outputs: list[Output]) -> list[tuple[str, str, dict[str, str]]]:
    found = []
    for output in metrics(outputs):
        for (head, time), fields in points(output).items():
            if head.startswith("rollout,"):
                found.append((head, time, fields))
    return found


def shadow_messages(windows: int, better: float = 0.2) -> list[PanePartial | Watermark]:
    messages: list[PanePartial | Watermark] = []
    for w in range(windows):
        for pane in range(w * PANES, (w + 1) * PANES):
            for partition in (0, 1):
                # a first, smaller emission, then the cumulative one that replaces it
                small = shadow_evidence(pane, partition, n=10, better=better)
                messages.append(rollout_partial(small, pane, partition, covered=pane * 10 + 1))
                whole = shadow_evidence(pane, partition, better=better)
                messages.append(rollout_partial(whole, pane, partition, covered=pane * 10 + 5))
        messages += close(w)
    return messages


def test_shadow_partials_of_two_partitions_promote_once_with_a_direct_comparisons_figures() -> None:
    state = shadow_state(min_labels=300, alpha=0.05)
    outputs = feed(state, shadow_messages(8))
    (decision,) = decisions(outputs)
    assert (decision.model, decision.champion_version, decision.challenger_version) == (
        "m",
        "1",
        "2",
    )
    assert (decision.design, decision.decision, decision.action) == ("shadow", "promote", "promote")

    policy = policy_of(
        make_settings(rollout={"mode": "shadow", "min_labels": 300}).models["m"].rollout
    )
    direct = RolloutComparison(METRIC, "shadow", policy)
    decided_at = None
    for w in range(8):
        window = PairedEvidence(METRIC)
        for pane in range(w * PANES, (w + 1) * PANES):
            for partition in (0, 1):
                window = window.merge(shadow_evidence(pane, partition))
        direct.update(window)
        if direct.decided is not None:
            decided_at = w
            break
    assert decided_at is not None
    result = direct.result
    assert (decision.n, decision.estimate) == (result.n, result.estimate)
    assert (decision.lower, decision.upper) == (result.lower, result.upper)
    assert decision.window_end == decision.window_start + (WINDOW / 1000) * _SECOND
    assert int(decision.window_end.timestamp() * 1000) == (decided_at + 1) * WINDOW

    looks = rollout_points(outputs)
    assert len(looks) == decided_at + 1  # a point per window until the decision, then none
    head, _time, fields = looks[-1]
    assert head == "rollout,challenger=2,champion=1,metric=accuracy,model=m"
    assert fields["decision"] == "1i"
    assert set(fields) == {"estimate", "lower", "upper", "n", "decision"}


_SECOND = __import__("datetime").timedelta(seconds=1)


def test_after_a_restart_the_same_messages_give_the_same_decision_and_points() -> None:
    messages = shadow_messages(8)
    first = feed(shadow_state(min_labels=300), messages)
    again = feed(shadow_state(min_labels=300), messages)  # stage 2 rebuilt by re-reading
    assert decisions(first)
    assert decisions(first) == decisions(again)
    assert rollout_points(first) == rollout_points(again)


def test_a_replayed_partial_changes_nothing() -> None:
    messages = shadow_messages(8)
    replayed: list[PanePartial | Watermark] = []
    for message in messages:
        replayed.append(message)
        if isinstance(message, PanePartial):
            replayed.append(message)  # re-emitted after a stage-1 restart
    state = shadow_state(min_labels=300)
    outputs = feed(state, replayed)
    assert decisions(outputs) == decisions(feed(shadow_state(min_labels=300), messages))
    assert rollout_points(outputs) == rollout_points(feed(shadow_state(min_labels=300), messages))
    ignored = state.take_activity().partials
    replays = len(replayed) - len(messages)
    assert ignored["rollout", "stale"] + ignored["rollout", "expired"] >= replays


def test_hopping_windows_add_each_example_once() -> None:
    # 5-minute windows every minute: each pane is in five of them; the rollout is judged on
    # tumbling 5-minute windows, so its n is the number of pairs, not five times that.
    state = Stage2State(
        lambda model, version: PROFILE,
        make_settings(
            windows=[{"size": "5m", "hop": "1m"}],
            rollout={"mode": "shadow", "min_labels": 10**6, "max_labels": 10**6},
        ),
    )
    outputs = feed(state, shadow_messages(3, better=0.0))
    looks = rollout_points(outputs)
    assert [int(t) for _, t, _ in looks] == [WINDOW, 2 * WINDOW, 3 * WINDOW]
    assert [f["n"] for _, _, f in looks] == ["600i", "1200i", "1800i"]  # 2 x 5 x 60 per window
    assert decisions(outputs) == []


def test_a_malformed_rollout_partial_is_dropped_with_a_reason() -> None:
    state = shadow_state(min_labels=300)
    bad = rollout_partial(shadow_evidence(0, 0), 0, 0, 1, summary=b"not evidence")
    no_champion = rollout_partial(shadow_evidence(0, 1), 0, 1, 1, champion="")
    log_loss = PairedEvidence(RolloutMetric("log_loss")).update_scores([-0.5], [-0.4])
    other_metric = rollout_partial(log_loss, 1, 0, 2)
    assert feed(state, [bad, no_champion, other_metric]) == []
    dropped = [bad.identity, no_champion.identity, other_metric.identity]
    assert [d.identity for d in state.dropped] == dropped
    assert "not rollout evidence" in state.dropped[0].reason
    assert "champion" in state.dropped[1].reason
    assert "evidence of log_loss" in state.dropped[2].reason
    assert state.take_activity().dropped == 3
    assert state.holdings()["m"].partials == 0


def test_held_rollout_partials_count_in_the_holdings() -> None:
    state = shadow_state(min_labels=300)
    feed(state, [rollout_partial(shadow_evidence(p, 0), p, 0, 1) for p in range(3)])
    assert (state.holdings()["m"].panes, state.holdings()["m"].partials) == (3, 3)


def test_rollout_partials_of_a_model_not_in_shadow_mode_are_dropped_with_a_reason() -> None:
    state = Stage2State(lambda model, version: PROFILE, make_settings())
    feed(state, [rollout_partial(shadow_evidence(0, 0), 0, 0, 1), *close(0)])
    (dropped,) = state.dropped
    assert "rollout mode is 'none'" in dropped.reason


# --- canary ---------------------------------------------------------------------------------


def performance(pane: int, partition: int, accuracy: float, n: int = 80) -> PerformanceSummary:
    rng = np.random.default_rng(7 * pane + partition)
    labels = rng.integers(0, 2, n)
    right = rng.random(n) < accuracy
    predictions = np.where(right, labels, 1 - labels)
    return PerformanceSummary.from_profile(PROFILE).fold(labels, predictions)


SHIFT = {"1": 0.0, "2": 1.0, "3": 0.0}  # the canary predicts class 1 more often


def canary_messages(
    windows: int, profiles: dict[str, ReferenceProfile] | None = None
) -> list[PanePartial | Watermark]:
    """Performance and features partials of versions 1 (the champion), 2 (its worse canary)
    and 3 (no parent version: no canary), from two source partitions; the features folded on
    ``profiles[version]`` (PROFILE by default)."""
    messages: list[PanePartial | Watermark] = []
    for w in range(windows):
        for pane in range(w * PANES, (w + 1) * PANES):
            for partition in (0, 1):
                for version, accuracy in (("1", 0.85), ("2", 0.55), ("3", 0.3)):
                    summary = performance(pane, partition, accuracy)
                    messages.append(
                        partial(summary, pane * MINUTE, partition, pane + 1, version=version)
                    )
                    features = pane_summary(
                        pane * MINUTE,
                        50,
                        seed=pane + partition,
                        shift=SHIFT[version],
                        profile=(profiles or {}).get(version, PROFILE),
                    )
                    messages.append(
                        partial(features, pane * MINUTE, partition, pane + 1, version=version)
                    )
        messages += close(w)
    return messages


def test_a_worse_canary_is_rolled_back_against_its_parent_version() -> None:
    settings = make_settings(rollout={"mode": "canary", "min_labels": 200})
    parents = {("m", "2"): "1"}
    state = Stage2State(lambda model, version: PROFILE, settings, lambda m, v: parents.get((m, v)))
    outputs = feed(state, canary_messages(10))
    (decision,) = decisions(outputs)
    assert (decision.champion_version, decision.challenger_version) == ("1", "2")
    assert (decision.design, decision.decision, decision.metric) == (
        "canary",
        "rollback",
        "accuracy",
    )
    assert decision.upper < 0
    looks = rollout_points(outputs)
    assert looks
    assert all("challenger=2,champion=1," in head for head, _, _ in looks)
    # The first window's prediction drift: both versions' class counts, compared directly.
    counts = []
    for version in ("1", "2"):
        merged = pane_summary(0, 50, seed=0, shift=SHIFT[version])
        for pane in range(PANES):
            for partition in (0, 1):
                if (pane, partition) != (0, 0):
                    other = pane_summary(
                        pane * MINUTE, 50, seed=pane + partition, shift=SHIFT[version]
                    )
                    merged = merged.merge(other)
        counts.append(merged.prediction.counts)
    expected = jensen_shannon(counts[0], counts[1])
    assert expected > 0.1
    assert float(looks[0][2]["prediction_js"]) == pytest.approx(expected, rel=1e-12)


def test_a_version_whose_parent_has_no_traffic_is_not_judged_as_a_canary() -> None:
    # Version 1 was retrained from version 0, which serves no more: version 1 is the
    # champion, not a canary of 0; judged against nothing it would end at max_labels and
    # be rolled back.
    settings = make_settings(rollout={"mode": "canary", "min_labels": 100, "max_labels": 200})
    state = Stage2State(lambda m, v: PROFILE, settings, lambda m, v: "0" if v == "1" else None)
    messages: list[PanePartial | Watermark] = []
    for w in range(3):
        for pane in range(w * PANES, (w + 1) * PANES):
            for p in (0, 1):
                summary = performance(pane, p, 0.8)
                messages.append(partial(summary, pane * MINUTE, p, pane + 1, version="1"))
        messages += close(w)
    outputs = feed(state, messages)
    assert rollout_points(outputs) == []
    assert decisions(outputs) == []


def test_a_regression_model_is_judged_on_its_capped_error() -> None:
    settings = make_settings(
        task="regression",
        performance={"min_labels": 100},
        rollout={"mode": "shadow", "cap": 4.0, "min_labels": 50},
    )
    state = Stage2State(lambda model, version: None, settings)
    metric = RolloutMetric("squared_error", cap=4.0)  # rmse, the regression default
    evidence = PairedEvidence(metric).update_scores([-1.0] * 200, [-0.2] * 200)
    outputs = feed(state, [rollout_partial(evidence, 0, 0, 1), *close(0)])
    (decision,) = decisions(outputs)
    assert (decision.metric, decision.decision, decision.n) == ("squared_error", "promote", 200)
    assert decision.estimate == pytest.approx(0.8)
    accuracy = rollout_partial(PairedEvidence(METRIC).update_scores([1.0], [1.0]), 1, 0, 2)
    feed(state, [accuracy])
    (dropped,) = state.dropped  # evidence of another metric than the model's
    assert "evidence of accuracy" in dropped.reason


def test_decision_json_is_the_published_value() -> None:
    outputs = feed(shadow_state(min_labels=300), shadow_messages(8))
    (record,) = [o for o in outputs if o.role == "rollout"]
    assert record.key == b"m"
    assert orjson.loads(record.value)["decision_id"] == decisions(outputs)[0].decision_id


def test_late_shadow_evidence_of_a_window_looked_at_counts_at_the_next_look() -> None:
    """Labels later than the allowed lateness restate a window's rollout partials after its
    look: the next look counts them (before, they were expired and lost to the rollout)."""
    state = shadow_state(min_labels=10**6, max_labels=10**6)
    messages: list[PanePartial | Watermark] = []
    for pane in range(PANES):  # window 0, on time: 10 pairs per pane
        messages.append(rollout_partial(shadow_evidence(pane, 0, n=10), pane, 0, 1))
    messages += close(0)
    for pane in range(PANES):  # window 0 restated by late labels: 60 pairs each
        messages.append(rollout_partial(shadow_evidence(pane, 0), pane, 0, 2))
    for pane in range(PANES, 2 * PANES):  # window 1
        messages.append(rollout_partial(shadow_evidence(pane, 0), pane, 0, 1))
    messages += close(1)
    looks = rollout_points(feed(state, messages))
    assert [f["n"] for _, _, f in looks] == ["50i", "600i"]  # 5 x 10 on time; 5 x 60 + 5 x 60
    assert state.take_activity().partials["rollout", "expired"] == 0


def _settings_with_ttl(ttl: str, **rollout: Any) -> Stage2State:
    settings = make_settings(rollout={"mode": "shadow", **rollout})
    settings = settings.model_copy(
        update={"monitor": settings.monitor.model_copy(update={"join_ttl": ttl})}
    )
    return Stage2State(lambda model, version: PROFILE, settings)


def test_a_long_rollout_settles_old_panes_keeps_counting_them_and_holds_few() -> None:
    """Panes past stage 2's label horizon are folded into the pair's settled evidence and let
    go: every look still counts every pair since the start, and what is held stays bounded."""
    from datetime import timedelta

    state = _settings_with_ttl(timedelta(minutes=10), min_labels=10**6, max_labels=10**6)
    windows = 12
    held = []
    outputs: list[Output] = []
    for w in range(windows):
        batch: list[PanePartial | Watermark] = [
            rollout_partial(shadow_evidence(pane, partition, n=20), pane, partition, 1)
            for pane in range(w * PANES, (w + 1) * PANES)
            for partition in (0, 1)
        ]
        outputs += feed(state, [*batch, *close(w)])
        held.append(state.holdings()["m"].partials)
    looks = rollout_points(outputs)
    assert [f["n"] for _, _, f in looks] == [f"{(w + 1) * PANES * 2 * 20}i" for w in range(windows)]
    assert max(held[4:]) == held[-1] <= 2 * 6 * PANES  # bounded: the horizon's panes, not all
    assert held[-1] < windows * PANES * 2
    late = rollout_partial(shadow_evidence(0, 0, n=50), 0, 0, 9)  # for a settled pane
    feed(state, [late])
    assert state.take_activity().partials["rollout", "expired"] == 1


def test_late_canary_labels_of_a_window_looked_at_count_at_the_next_look() -> None:
    """A canary's and its champion's performance partials restated after the window's look
    count at the next look: n is every label of both versions known then."""
    settings = make_settings(rollout={"mode": "canary", "min_labels": 10**6, "max_labels": 10**6})
    state = Stage2State(lambda m, v: PROFILE, settings, lambda m, v: "1" if v == "2" else None)
    messages: list[PanePartial | Watermark] = []
    for version in ("1", "2"):  # window 0 on time: 20 labels per pane and version
        for pane in range(PANES):
            summary = performance(pane, 0, 0.8, n=20)
            messages.append(partial(summary, pane * MINUTE, 0, 1, version=version))
    messages += close(0)
    for version in ("1", "2"):  # window 0 restated (80 labels per pane), then window 1
        for pane in range(2 * PANES):
            summary = performance(pane, 0, 0.8)
            messages.append(partial(summary, pane * MINUTE, 0, 2, version=version))
    messages += close(1)
    looks = rollout_points(feed(state, messages))
    assert [f["n"] for _, _, f in looks] == [f"{2 * PANES * 20}i", f"{2 * 2 * PANES * 80}i"]


def test_an_undecided_rollout_ends_at_its_maximum_duration_with_on_end() -> None:
    """``max_duration`` 10m on 5-minute windows: the second look, undecided, ends the rollout
    with ``on_end``; without it the same evidence goes on."""
    messages = shadow_messages(4, better=0.0)
    timed = shadow_state(min_labels=300, max_duration="10m", on_end="promote")
    outputs = feed(timed, messages)
    (decision,) = decisions(outputs)
    assert (decision.decision, decision.action) == ("end", "promote")
    assert int(decision.window_end.timestamp() * 1000) == 2 * WINDOW
    assert [f["decision"] for _, _, f in rollout_points(outputs)] == ["0i", "2i"]
    assert decisions(feed(shadow_state(min_labels=300), messages)) == []
