"""Stage 2's pure core: partials merged by replacement, windows closed on watermarks and idle
timeouts, restatements, and the core's account of what it did (for telemetry)."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest

from driftline.config import ModelConfig, Settings, TopicSettings
from driftline.detectors.engine import ModelMonitor, Window, WindowReport
from driftline.detectors.performance import PerformanceSummary
from driftline.errors import DecodeError
from driftline.schemas.outputs import DriftAlert, RetrainRequest
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.partials import PanePartial, Watermark
from driftline.streams.stage2.state import Activity, Holding, Stage2State
from tests.unit.streams.stage2_helpers import (
    IDLE,
    LATENESS,
    MINUTE,
    PROFILE,
    WINDOW,
    close_first_window,
    feed,
    labels_summary,
    make_profile,
    make_settings,
    metrics,
    model_config,
    n_predictions,
    new_state,
    pane_summary,
    partial,
    points,
    watermark,
)

# --- the pure core --------------------------------------------------------------------------


def test_a_partial_sent_twice_counts_once() -> None:
    state = new_state()
    a, b = pane_summary(0, 300, seed=1), pane_summary(0, 200, seed=2)
    outputs = feed(
        state,
        [partial(a, 0, 0, 10), partial(a, 0, 0, 10), partial(b, 0, 1, 7), *close_first_window()],
    )
    (record,) = metrics(outputs)
    assert n_predictions(record) == 500


def test_an_older_partial_after_a_newer_one_changes_nothing() -> None:
    state = new_state()
    newer, older = pane_summary(0, 400, seed=1), pane_summary(0, 100, seed=1)
    feed(state, [partial(newer, 0, 0, 20), partial(older, 0, 0, 10)])
    (record,) = metrics(feed(state, close_first_window()))
    assert n_predictions(record) == 400
    assert feed(state, [partial(older, 0, 0, 15)]) == []  # still older: no restatement


def test_merging_partials_of_every_source_partition_equals_one_summary_of_everything() -> None:
    parts = [
        pane_summary(pane * MINUTE, 150, seed=10 * pane + p) for pane in range(5) for p in range(3)
    ]
    split = new_state(make_settings(input_partitions=3))
    messages: list[PanePartial | Watermark] = [
        partial(parts[3 * pane + p], pane * MINUTE, p, pane + 1)
        for pane in range(5)
        for p in range(3)
    ]
    split_outputs = feed(split, [*messages, *close_first_window(3)])

    whole = new_state(make_settings(input_partitions=1))
    merged = []
    for pane in range(5):
        summary = parts[3 * pane]
        for other in parts[3 * pane + 1 : 3 * pane + 3]:
            summary = summary.merge(other)
        merged.append(partial(summary, pane * MINUTE, 0, pane + 1))
    whole_outputs = feed(whole, [*merged, *close_first_window(1)])

    assert metrics(split_outputs) == metrics(whole_outputs)
    assert n_predictions(metrics(split_outputs)[0]) == 5 * 3 * 150


def test_performance_partials_merge_across_source_partitions() -> None:
    state = new_state()
    outputs = feed(
        state,
        [
            partial(pane_summary(0, 300), 0, 0, 5),
            partial(labels_summary(0, 120, seed=1), 0, 0, 6),
            partial(labels_summary(0, 80, seed=2), 0, 1, 3),
            *close_first_window(),
        ],
    )
    (record,) = metrics(outputs)
    accuracy = [f for (head, _), f in points(record).items() if "metric=accuracy" in head]
    assert accuracy[0]["n_labels"] == "200i"


def test_a_concept_flag_on_any_source_partition_reaches_the_window_report() -> None:
    state = new_state()
    flagged = msgspec.structs.replace(
        partial(labels_summary(0, 80, seed=2), 0, 1, 3), concept_drift=True
    )
    outputs = feed(
        state,
        [
            partial(pane_summary(0, 300), 0, 0, 5),
            partial(labels_summary(0, 120, seed=1), 0, 0, 6),
            flagged,
            *close_first_window(),
        ],
    )
    (record,) = metrics(outputs)
    concept = [f for (head, _), f in points(record).items() if head.startswith("concept_drift")]
    assert concept == [{"drift": "true"}]


def test_a_drain_is_judged_whole_after_its_watermark_not_on_its_first_partial() -> None:
    """Stage 1 sends a drain's partials one by one, each stamped with the drain's watermark,
    then a Watermark: the window must wait for that, so it is judged once, complete."""
    state = new_state(make_settings(input_partitions=1))
    drain = [
        partial(
            pane_summary(start, 100, seed=start // MINUTE),
            start,
            0,
            7,
            watermark_ms=WINDOW + LATENESS + MINUTE,
        )
        for start in range(0, WINDOW, MINUTE)
    ]
    assert metrics(feed(state, drain)) == []
    (record,) = metrics(feed(state, [watermark(0, WINDOW + LATENESS + MINUTE, 1)]))
    assert n_predictions(record) == 100 * len(drain)


def test_a_window_closes_only_when_every_partition_passed_its_end_plus_lateness() -> None:
    state = new_state()
    feed(state, [partial(pane_summary(0, 300), 0, 0, 1), partial(pane_summary(0, 300), 0, 1, 1)])
    assert feed(state, [watermark(0, WINDOW + LATENESS)]) == []
    assert feed(state, [watermark(1, WINDOW + LATENESS - 1)]) == []
    assert len(metrics(feed(state, [watermark(1, WINDOW + LATENESS)]))) == 1


def test_an_idle_partition_is_not_waited_for_after_idle_timeout() -> None:
    state = new_state()
    feed(state, [partial(pane_summary(0, 300), 0, 1, 1, watermark_ms=30_000)], now_ms=0)
    assert feed(state, [watermark(0, WINDOW + LATENESS)], now_ms=1_000) == []
    assert state.tick(IDLE - 1) == []  # partition 1 last advanced at 0
    assert len(metrics(state.tick(IDLE))) == 1


def test_a_partition_that_never_reported_blocks_only_until_idle_timeout() -> None:
    state = new_state()
    outputs = feed(
        state, [partial(pane_summary(0, 300), 0, 0, 1), watermark(0, WINDOW + LATENESS)], now_ms=0
    )
    assert outputs == []  # partition 1 may still report: not closed at once
    assert state.tick(IDLE - 1) == []
    assert len(metrics(state.tick(IDLE))) == 1


def test_a_late_partial_restates_the_window_with_the_same_point_identities() -> None:
    state = new_state()
    feed(
        state,
        [
            partial(pane_summary(0, 300, seed=1), 0, 0, 10),
            partial(pane_summary(0, 200, seed=2), 0, 1, 4),
        ],
    )
    (first,) = metrics(feed(state, close_first_window()))
    grown = pane_summary(0, 300, seed=1).merge(pane_summary(0, 250, seed=3))
    assert feed(state, [partial(grown, 0, 0, 12)]) == []  # judged at the sender's watermark
    (second,) = metrics(feed(state, [watermark(0, WINDOW + LATENESS)]))
    assert points(first).keys() == points(second).keys()
    assert (n_predictions(first), n_predictions(second)) == (500, 750)


def test_a_burst_of_late_partials_restates_a_window_once_per_flush() -> None:
    """Late labels reach every pane of a window in one stage-1 flush: one re-judgement at
    the flush's watermark, not one per partial (each would write an in-between value)."""
    state = new_state()
    panes = [p * MINUTE for p in range(5)]
    feed(state, [partial(pane_summary(p, 100, seed=p), p, 0, 10) for p in panes])
    feed(state, [partial(pane_summary(0, 100, seed=9), 0, 1, 10)])
    (first,) = metrics(feed(state, close_first_window()))
    late = [partial(pane_summary(p, 150, seed=p), p, 0, 20) for p in panes]
    assert feed(state, late) == []
    (restated,) = metrics(feed(state, [watermark(0, WINDOW + LATENESS)]))
    assert (n_predictions(first), n_predictions(restated)) == (600, 850)
    assert metrics(feed(state, [watermark(1, WINDOW + LATENESS)])) == []  # nothing changed


def test_a_late_partial_without_a_watermark_is_judged_at_the_next_tick() -> None:
    state = new_state()
    feed(state, [partial(pane_summary(0, 300, seed=1), 0, 0, 10)])
    feed(state, [partial(pane_summary(0, 200, seed=2), 0, 1, 4)])
    feed(state, close_first_window())
    grown = pane_summary(0, 300, seed=1).merge(pane_summary(0, 250, seed=3))
    feed(state, [partial(grown, 0, 0, 12)])
    (restated,) = metrics(state.tick(0))
    assert n_predictions(restated) == 750


def test_partials_wait_for_a_profile_that_arrives_later() -> None:
    known: dict[tuple[str, str], ReferenceProfile] = {}
    state = Stage2State(lambda model, version: known.get((model, version)), make_settings())
    messages = [
        partial(pane_summary(0, 300), 0, 0, 1),
        partial(pane_summary(0, 100, seed=4), 0, 1, 1),
    ]
    assert feed(state, [*messages, *close_first_window()]) == []
    assert state.pending_versions("m") == ["1"]
    known[("m", "1")] = PROFILE
    (record,) = metrics(state.tick(0))
    assert n_predictions(record) == 400
    assert state.pending_versions("m") == []


def test_a_drifted_feature_raises_an_alert_and_a_retrain_request() -> None:
    state = new_state()
    messages: list[PanePartial | Watermark] = [
        partial(pane_summary(pane * MINUTE, 200, shift=2.0, seed=pane), pane * MINUTE, pane % 2, 1)
        for pane in range(5)
    ]
    outputs = feed(state, [*messages, *close_first_window()])
    alerts = [DriftAlert.model_validate_json(o.value) for o in outputs if o.role == "alerts"]
    requests = [RetrainRequest.model_validate_json(o.value) for o in outputs if o.role == "retrain"]
    assert [a.status for a in alerts] == ["firing"]
    assert "x" in {r.feature for r in alerts[0].reasons}
    assert len(requests) == 1
    assert requests[0].rule == "on_drift"
    assert {o.key for o in outputs} == {b"m"}


def test_stationary_partials_raise_no_alert_and_no_retrain_request() -> None:
    state = new_state()
    messages: list[PanePartial | Watermark] = [
        partial(
            pane_summary(pane * MINUTE, 200, seed=100 + pane), pane * MINUTE, pane % 2, pane + 1
        )
        for pane in range(20)
    ]
    outputs = feed(state, [*messages, watermark(0, 21 * MINUTE), watermark(1, 21 * MINUTE)])
    assert len(metrics(outputs)) == 4
    assert [o.role for o in outputs if o.role != "metrics"] == []


def test_a_summary_of_another_profile_is_rejected_and_changes_nothing() -> None:
    state = new_state()
    other = make_profile(seed=9)
    with pytest.raises(DecodeError, match="does not match the profile"):
        state.apply(partial(pane_summary(0, 50, profile=other), 0, 0, 99), 0)
    feed(state, [partial(pane_summary(0, 300), 0, 0, 1)])
    (record,) = metrics(feed(state, close_first_window()))
    assert n_predictions(record) == 300


def test_a_partial_of_another_pane_length_is_rejected() -> None:
    state = new_state()
    wrong = PanePartial("m", "1", 0, 30_000, 0, "features", 1, 0, pane_summary(0, 10).to_bytes())
    with pytest.raises(DecodeError, match="pane"):
        state.apply(wrong, 0)


def test_a_performance_partial_that_does_not_fit_the_profile_is_rejected() -> None:
    state = new_state()
    other_positive = PerformanceSummary.from_profile(PROFILE, positive_class="0")
    with pytest.raises(DecodeError, match="performance summary does not fit the profile") as err:
        state.apply(partial(other_positive, 0, 0, 1), 0)
    assert err.value.kind == "invalid_summary"
    assert state.holdings()["m"].partials == 0


def test_partials_of_one_pane_that_do_not_merge_are_rejected_and_the_held_one_stays() -> None:
    """Each fits the profile alone (another unseen-value cap), but not with the other."""
    state = new_state()
    feed(state, [partial(pane_summary(0, 300), 0, 0, 1)])
    capped = pane_summary(0, 100, seed=2, unseen_cap=5)
    with pytest.raises(DecodeError, match="partials of one pane do not merge") as err:
        state.apply(partial(capped, 0, 1, 1), 0)
    assert err.value.kind == "invalid_summary"
    (record,) = metrics(feed(state, close_first_window()))
    assert n_predictions(record) == 300


def test_held_partials_that_do_not_merge_are_dropped_when_the_profile_comes() -> None:
    known: dict[tuple[str, str], ReferenceProfile] = {}
    state = Stage2State(lambda model, version: known.get((model, version)), make_settings())
    capped = pane_summary(0, 100, seed=2, unseen_cap=5)
    feed(state, [partial(pane_summary(0, 300), 0, 0, 1), partial(capped, 0, 1, 1)])
    known[("m", "1")] = PROFILE
    state.tick(0)
    assert [d.identity[3:5] for d in state.dropped] == [(0, "features"), (1, "features")]
    assert all("do not merge" in d.reason for d in state.dropped)
    assert state.take_activity().dropped == 2


def test_a_partial_older_than_the_retention_horizon_is_ignored() -> None:
    settings = Settings(
        models={"m": ModelConfig(**model_config())},
        topics=TopicSettings(input_partitions=2),
        monitor={"join_ttl": "0s"},
    )
    state = new_state(settings)
    first = [
        partial(pane_summary(0, 300, seed=1), 0, 0, 1),
        partial(pane_summary(0, 300, seed=2), 0, 1, 1),
    ]
    assert len(metrics(feed(state, [*first, *close_first_window()]))) == 1
    feed(state, [watermark(0, 60 * MINUTE), watermark(1, 60 * MINUTE)])
    # Alone, partition 0's re-emission would restate the window with half of its events.
    assert feed(state, [partial(pane_summary(0, 400, seed=1), 0, 0, 2)]) == []


def test_forgotten_models_are_dropped() -> None:
    state = new_state()
    feed(state, [partial(pane_summary(0, 10), 0, 0, 1)])
    state.forget(["m"])
    assert state.models == []
    assert state.holdings() == {}


# --- the pure core's account of what it did (for telemetry) ----------------------------------


def test_the_core_counts_partials_added_replaced_stale_and_expired_by_kind() -> None:
    settings = Settings(
        models={"m": ModelConfig(**model_config())},
        topics=TopicSettings(input_partitions=2),
        monitor={"join_ttl": "0s"},
    )
    state = new_state(settings)
    first = partial(pane_summary(0, 300, seed=1), 0, 0, 10)
    feed(
        state,
        [
            first,
            first,  # the same covered count again: stale
            partial(pane_summary(0, 350, seed=1), 0, 0, 12),  # covers more: replaces
            partial(labels_summary(0, 100), 0, 1, 3),
        ],
    )
    assert state.take_activity().partials == Counter(
        {
            ("features", "added"): 1,
            ("features", "stale"): 1,
            ("features", "replaced"): 1,
            ("performance", "added"): 1,
        }
    )
    feed(state, [watermark(0, 60 * MINUTE), watermark(1, 60 * MINUTE)])
    assert len(state.take_activity().windows) == 1
    feed(state, [partial(pane_summary(0, 400, seed=1), 0, 0, 20)])  # past the horizon
    assert state.take_activity() == Activity(partials=Counter({("features", "expired"): 1}))


def test_the_core_reports_a_window_finalised_then_restated_with_the_time_it_became_due() -> None:
    state = new_state()
    drifted = [
        partial(pane_summary(p * MINUTE, 200, shift=2.0, seed=p), p * MINUTE, p % 2, 1)
        for p in range(5)
    ]
    feed(state, drifted, now_ms=1_000)
    assert state.take_activity().windows == []
    outputs = feed(state, close_first_window(), now_ms=5_000)
    (closed,) = state.take_activity().windows
    assert (closed.model, closed.version, closed.window.end_ms) == ("m", "1", WINDOW)
    assert (closed.restated, closed.due_ms) == (False, 5_000)
    (record,) = metrics(outputs)
    assert closed.points == len(record.value.splitlines())
    assert (closed.alerts, closed.retrain) == (1, True)
    assert [o.role for o in outputs].count("alerts") == closed.alerts

    grown = pane_summary(0, 200, shift=2.0, seed=0).merge(pane_summary(0, 50, seed=7))
    feed(state, [partial(grown, 0, 0, 2), watermark(0, WINDOW + LATENESS)], now_ms=9_000)
    (again,) = state.take_activity().windows
    assert (again.window, again.restated, again.due_ms) == (closed.window, True, 9_000)
    assert state.take_activity() == Activity()  # taking it starts a new record


def test_a_window_closed_by_an_idle_timeout_is_due_at_that_tick() -> None:
    state = new_state()
    feed(state, [partial(pane_summary(0, 300), 0, 0, 1), watermark(0, WINDOW + LATENESS)])
    assert state.tick(IDLE - 1) == []
    assert len(metrics(state.tick(IDLE))) == 1
    (closed,) = state.take_activity().windows
    assert (closed.due_ms, closed.restated) == (IDLE, False)


def test_holdings_count_panes_partials_and_the_watermark_per_model() -> None:
    state = new_state()
    feed(
        state,
        [
            partial(pane_summary(0, 100, seed=1), 0, 0, 1),
            partial(pane_summary(0, 100, seed=2), 0, 1, 1),
            partial(labels_summary(0, 50), 0, 0, 2),  # the same pane, another kind
            partial(pane_summary(MINUTE, 100), MINUTE, 0, 1),
        ],
    )
    assert state.holdings() == {"m": Holding(panes=2, partials=4, watermark_ms=None)}
    feed(state, close_first_window())
    assert state.holdings() == {"m": Holding(panes=2, partials=4, watermark_ms=WINDOW + LATENESS)}


# --- containment: one model's failure stops no other (issue 15) ------------------------------

BAD = make_profile().model_copy(update={"model": "bad"})


def two_models() -> tuple[Stage2State, list[PanePartial | Watermark]]:
    """A core watching models "m" and "bad", and each one's first window, closed by partition
    0 (partition 1 is waited for until it is idle)."""
    profiles = {"m": PROFILE, "bad": BAD}
    settings = Settings(
        models={name: ModelConfig(**model_config()) for name in profiles},
        topics=TopicSettings(input_partitions=2),
    )
    state = Stage2State(lambda model, version: profiles[model], settings)
    messages: list[PanePartial | Watermark] = []
    for name, profile in profiles.items():
        for p in range(5):
            summary = pane_summary(p * MINUTE, 200, seed=p, profile=profile)
            messages.append(msgspec.structs.replace(partial(summary, p * MINUTE, 0, 1), model=name))
        messages.append(Watermark(name, 0, WINDOW + LATENESS, 2))  # partition 1 says nothing
    return state, messages


def break_judging_of_bad(monkeypatch: pytest.MonkeyPatch) -> None:
    """Model "bad"'s windows raise when judged, as a bug or an unforeseen input would."""
    evaluate = ModelMonitor.evaluate

    def failing(self: ModelMonitor, window: Window) -> WindowReport:
        if self.profile.model == "bad":
            raise ArithmeticError("the engine broke on this window")
        return evaluate(self, window)

    monkeypatch.setattr(ModelMonitor, "evaluate", failing)


def test_a_model_whose_window_breaks_when_judged_at_a_tick_stops_no_other_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the exception left tick(), and no model after "bad" (in name order) was ever
    judged again."""
    break_judging_of_bad(monkeypatch)
    state, messages = two_models()
    for message in messages:
        state.apply(message, 0)
    outputs = state.tick(IDLE)  # every partition idle: both windows due
    assert {o.key for o in metrics(outputs)} == {b"m"}
    (failure,) = state.take_failures()
    assert (failure.model, failure.version, failure.window.end_ms) == ("bad", "1", WINDOW)
    assert "ArithmeticError: the engine broke on this window" in failure.describe()
    assert state.take_failures() == []


def test_a_window_that_breaks_when_judged_at_a_watermark_is_recorded_and_others_published(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    break_judging_of_bad(monkeypatch)
    state, messages = two_models()
    for message in messages:
        state.apply(message, 0)
    closing = [Watermark(model, 1, WINDOW + LATENESS, 2) for model in ("bad", "m")]
    outputs = [o for w in closing for o in state.apply(w, 0)]
    assert {o.key for o in metrics(outputs)} == {b"m"}
    assert [f.model for f in state.take_failures()] == ["bad"]


def test_a_new_partitions_partial_added_to_its_pane_equals_merging_all_its_partials() -> None:
    """add_to_pane (a new source's partial) and set_pane (a replaced one) keep the pane equal
    to the merge of the latest partial of every source; one that does not merge changes
    nothing."""
    state = new_state(make_settings(input_partitions=3))
    s0, s0_later = pane_summary(0, 300, seed=1), pane_summary(0, 500, seed=4)
    s1, s2 = pane_summary(0, 200, seed=2), pane_summary(0, 100, seed=3)
    feed(state, [partial(s0, 0, 0, 300), partial(s1, 0, 1, 200)])
    feed(state, [partial(s0_later, 0, 0, 500), partial(s2, 0, 2, 100)])
    monitor = state._models["m"].monitors["1"]
    held = monitor.pane_summary(0)
    assert held is not None
    assert held.to_bytes() == s0_later.merge(s1).merge(s2).to_bytes()
    foreign = pane_summary(0, 100, seed=5, unseen_cap=7)
    with pytest.raises(DecodeError, match="do not merge"):
        state.apply(partial(foreign, 0, 3, 100), now_ms=0)
    after = monitor.pane_summary(0)
    assert after is not None
    assert after.to_bytes() == held.to_bytes()
