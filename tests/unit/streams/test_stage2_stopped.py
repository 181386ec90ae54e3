"""Stage 2's pure core when a version's traffic stops: its open alert resolves once, by the
stated rule, and its state goes once nothing can need it any more."""

from __future__ import annotations

from collections import Counter

from driftline.config import ModelConfig, Settings, TopicSettings
from driftline.schemas.outputs import DriftAlert
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.partials import PanePartial, Watermark
from driftline.streams.stage2.outputs import Output
from driftline.streams.stage2.state import Stage2State
from tests.unit.streams.stage2_helpers import (
    IDLE,
    LATENESS,
    MINUTE,
    WINDOW,
    feed,
    make_profile,
    model_config,
    pane_summary,
    partial,
    watermark,
)

PROFILES = {v: make_profile(v) for v in ("1", "2")}


def profile(version: str) -> ReferenceProfile:
    if version not in PROFILES:
        PROFILES[version] = make_profile(version)
    return PROFILES[version]


Messages = list[PanePartial | Watermark]


def versions_state(join_ttl: str = "7d") -> Stage2State:
    settings = Settings(
        models={"m": ModelConfig(**model_config())},
        topics=TopicSettings(input_partitions=2),
        monitor={"join_ttl": join_ttl},
    )
    return Stage2State(lambda model, version: profile(version), settings)


def panes(version: str, first: int, last: int, *, shift: float = 0.0, covered: int = 1) -> Messages:
    """Partials of ``version`` for panes ``first..last`` (minutes), on both partitions."""
    return [
        partial(
            pane_summary(p * MINUTE, 200, shift=shift, seed=p, profile=profile(version)),
            p * MINUTE,
            s,
            covered,
            version=version,
        )
        for p in range(first, last + 1)
        for s in (0, 1)
    ]


def to(minute: int) -> Messages:
    return [watermark(0, minute * MINUTE), watermark(1, minute * MINUTE)]


def alerts(outputs: list[Output]) -> list[DriftAlert]:
    return [DriftAlert.model_validate_json(o.value) for o in outputs if o.role == "alerts"]


def v1_fires_then_v2_serves() -> list[Messages]:
    """v1 drifts in minutes 0-4 and fires; from minute 5 v2 alone carries the traffic.

    One batch per minute of watermark, from 6 (v1's window [0, 5m) closes) to 14.
    """
    batches = [[*panes("1", 0, 4, shift=2.0), *panes("2", 5, 5), *to(6)]]
    batches += [[*panes("2", m - 1, m - 1), *to(m)] for m in range(7, 15)]
    return batches


# The rule: v1's newest pane is [4m, 5m), the latest window holding it ends at 5m; the alert
# resolves once the model's watermark reaches 5m + lateness (1m) + the longest window (5m).
STOPPED_AT = 5 * MINUTE + LATENESS + WINDOW


def test_an_alert_of_a_version_whose_traffic_moved_to_another_resolves_once() -> None:
    """v1 fires, v2 takes the traffic: v1's alert resolves exactly once, at the stated
    watermark and not before, saying that its traffic stopped."""
    state = versions_state()
    by_minute = {}
    for batch in v1_fires_then_v2_serves():
        by_minute[batch[-1].watermark_ms // MINUTE] = alerts(feed(state, batch))
    assert [(a.model_version, a.status) for a in by_minute[6]] == [("1", "firing")]
    resolved = {m: a for m, got in by_minute.items() for a in got if a.status == "resolved"}
    assert list(resolved) == [STOPPED_AT // MINUTE]
    alert = resolved[STOPPED_AT // MINUTE]
    assert alert.model_version == "1"
    assert alert.severity == "info"
    assert [(r.kind, r.statistic) for r in alert.reasons] == [("traffic_stopped", "silent_ms")]
    (reason,) = alert.reasons
    assert reason.threshold == WINDOW
    assert reason.value >= reason.threshold
    # The silence it reports: from the end of v1's last pane to the end of the silent window.
    assert (alert.window_start.timestamp() * 1000, alert.window_end.timestamp() * 1000) == (
        5 * MINUTE,
        5 * MINUTE + WINDOW,
    )
    after = [(m, a.status) for m, got in by_minute.items() if m > 6 for a in got]
    assert after == [(STOPPED_AT // MINUTE, "resolved")]  # once; v2 (stationary) raises none
    assert state.take_activity().stopped == Counter({"m": 1})  # for the alerts counter


def test_the_alert_resolves_at_the_stated_watermark_to_the_millisecond() -> None:
    state = versions_state()
    feed(state, [*panes("1", 0, 4, shift=2.0), *panes("2", 5, 10), *to(6)])
    just_before = [watermark(0, STOPPED_AT - 1), watermark(1, STOPPED_AT - 1)]
    assert [a.status for a in alerts(feed(state, just_before))] == []
    at = [watermark(0, STOPPED_AT), watermark(1, STOPPED_AT)]
    assert [a.status for a in alerts(feed(state, at))] == ["resolved"]
    assert [a for a in alerts(feed(state, to(30))) if a.model_version == "1"] == []


def test_a_restart_that_re_reads_the_summaries_gives_the_same_resolved_alert_id() -> None:
    """Re-judging the same summaries, in one jump or minute by minute, gives the same id."""
    first, again, jump = versions_state(), versions_state(), versions_state()
    batches = v1_fires_then_v2_serves()
    ids = [a.alert_id for b in batches for a in alerts(feed(first, b)) if a.status == "resolved"]
    replayed = [a for b in batches for a in alerts(feed(again, b)) if a.status == "resolved"]
    everything = [m for b in batches for m in b if isinstance(m, PanePartial)]
    jumped = alerts(feed(jump, [*everything, *to(14)]))
    assert len(ids) == 1
    assert [a.alert_id for a in replayed] == ids
    assert [a.alert_id for a in jumped if a.status == "resolved"] == ids
    assert [a.status for a in jumped if a.model_version == "1"] == ["firing", "resolved"]


def test_a_version_is_not_resolved_while_the_whole_model_is_idle() -> None:
    """Every version silent: the watermark stays, and so does the alert, however long."""
    state = versions_state()
    fired = alerts(feed(state, [*panes("1", 0, 4, shift=2.0), *panes("2", 0, 4), *to(6)]))
    assert [(a.model_version, a.status) for a in fired] == [("1", "firing")]
    later = [*feed(state, to(6), now_ms=10 * IDLE), *state.tick(1000 * IDLE)]
    assert alerts(later) == []
    # Traffic of both resumes much later: v1 was only paused, its alert still fires.
    back = alerts(feed(state, [*panes("1", 60, 64, shift=2.0), *panes("2", 60, 64), *to(66)]))
    assert [(a.model_version, a.status) for a in back] == [("1", "firing")]


def test_a_version_that_comes_back_after_being_resolved_is_judged_afresh() -> None:
    """After the silence resolved it, v1's late data for its old panes raises nothing; its
    return with new traffic is judged by a fresh alert state."""
    state = versions_state()
    for batch in v1_fires_then_v2_serves():
        feed(state, batch)
    # A late, larger emission of an old v1 pane restates [0, 5m): metrics, no alert.
    late = partial(
        pane_summary(3 * MINUTE, 400, shift=2.0, seed=3, profile=PROFILES["1"]),
        3 * MINUTE,
        0,
        2,
        version="1",
    )
    restated = feed(state, [late, *to(15)])
    assert alerts(restated) == []
    assert any(o.role == "metrics" for o in restated)
    # v1 returns, drifting: a new firing alert for its new window, not a repeat of the old.
    back = feed(state, [*panes("1", 15, 19, shift=2.0), *panes("2", 15, 19), *to(21)])
    fired = [a for a in alerts(back) if a.model_version == "1"]
    assert [(a.status, a.window_start.timestamp() * 1000) for a in fired] == [
        ("firing", 15 * MINUTE)
    ]


def test_state_of_a_version_gone_quiet_is_forgotten_once_nothing_can_need_it() -> None:
    """A model with one version after another keeps the monitors of the recent ones only."""
    state = versions_state(join_ttl="0s")
    for n in range(1, 21):
        start = 10 * (n - 1)
        feed(state, [*panes(str(n), start, start + 4, shift=2.0 if n % 2 else 0.0), *to(start + 6)])
    assert len(state.versions("m")) <= 3
    assert "20" in state.versions("m")
