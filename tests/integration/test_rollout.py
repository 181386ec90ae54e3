"""Safe rollout end to end (issue 16): a challenger judged on live traffic beside the
champion, then promoted, rolled back or ended, by real ``driftline`` processes.

Each test (the rig: :mod:`tests.integration.rollout_rig`) sets up a registry whose champion is
version 1 and whose challenger is version 2 (in shadow or canary mode), starts ``driftline
monitor run --with-trainer`` on Tansu and VictoriaMetrics and serves river's SEA stream
through a :class:`~driftline.serving.ChampionFollower`, publishing what it served with
:func:`~driftline.serving.publish_served` and each request's label. Stage 2 judges the pair
per closed one-minute window and publishes one ``RolloutDecision`` on ``driftline.rollout``;
the trainer's rollout agent applies it to the registry and the follower switches.

- (a) shadow, a better challenger (fitted on correct labels, the champion on shuffled ones):
  promoted, version 1 retired, the follower serves version 2 alone;
- (b) canary with share 0.1, a worse challenger: rolled back (``rejected``), the follower
  serves only the champion afterwards, and the canary answered no more than its share of the
  requests while it served (every request has its own key, so under the hash the count is
  binomial: at most ``share * n + 3 sd``, one-sided) and only requests whose key the hash
  routes to it; the count on the predictions topic is the same;
- (c) an equal challenger (version 1's artifact registered again), shadow: no decision until
  ``max_labels``, then ``end`` with the configured ``on_end`` (both values).

None promotes a worse version. Each prints its decision(s), the labels and the interval.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from driftline.schemas import decode_prediction
from driftline.schemas.outputs import RolloutDecision
from driftline.serving import routes_to_challenger
from tests.integration.rollout_rig import MODEL, Rig, good, poor, rollout_rig
from tests.streams.kafka_helpers import consume_all

AFTER = 600  # requests served after the switch, to check what serves them
DECIDE_S = 90.0  # the decision, from the first request


def _shown(decisions: list[RolloutDecision]) -> str:
    return "; ".join(
        f"{d.decision}/{d.action} v{d.challenger_version} vs v{d.champion_version}"
        f" ({d.design}, {d.metric}) n={d.n} estimate={d.estimate:+.4f}"
        f" interval=[{d.lower:+.4f}, {d.upper:+.4f}] window_end={d.window_end.isoformat()}"
        for d in decisions
    )


def _finish(rig: Rig, after: int) -> list[tuple[tuple[str, str], ...]]:
    """End the stream ``after`` requests from now (the follower has switched); returns what
    served those requests."""
    rig.followed_at = time.monotonic() - rig.started
    first = rig.traffic.stop_after(after)
    rig.wait("the end of the stream", rig.traffic.done.is_set, 60)
    assert rig.traffic.error is None, f"{rig.traffic.error!r}\n{rig.context()}"
    rig.linger(3.0)  # a second decision, were there one, would be on the topic by now
    return rig.traffic.served[first:]


def _looks(rig: Rig, decision: RolloutDecision) -> dict[int, dict[str, float]]:
    """The ``rollout`` points up to the decision's window (waiting for that one's)."""
    end = int(decision.window_end.timestamp() * 1000)
    rig.wait("the decision's rollout point", lambda: end in rig.points(), 30)
    return {ms: fields for ms, fields in sorted(rig.points().items()) if ms <= end}


def _report(name: str, rig: Rig, extra: str = "") -> None:
    print(
        f"\n[{name}] {time.monotonic() - rig.started:.1f} s from the first request (decision"
        f" read at {rig.decided_at:.1f} s, the follower switched by {rig.followed_at:.1f} s),"
        f" {len(rig.traffic.served)} requests, {rig.traffic.predictions} predictions;"
        f" decisions: {_shown(rig.decisions)}{extra}"
    )


def test_a_a_better_shadow_is_promoted_and_the_champion_retired(tmp_path: Path) -> None:
    rollout = {"mode": "shadow", "min_labels": 300, "max_labels": 20_000, "alpha": 0.05}
    with rollout_rig(tmp_path, rollout, champion=poor(), challenger=good()) as rig:
        rig.wait("a rollout decision", lambda: bool(rig.decisions), DECIDE_S)
        rig.wait("the promotion", lambda: rig.status("2") == "champion", 30)
        assert rig.follower.wait_for("2", 30), rig.context()
        assert rig.follower.wait_for_challenger(None, 30), rig.context()
        after = _finish(rig, AFTER)
        looks = _looks(rig, rig.decisions[0])
        _report("a: shadow, better", rig)

    (decision,) = rig.decisions
    assert (decision.decision, decision.action) == ("promote", "promote"), _shown(rig.decisions)
    assert (decision.champion_version, decision.challenger_version) == ("1", "2")
    assert decision.design == "shadow"
    assert decision.metric == "accuracy"
    assert decision.n >= rollout["min_labels"]
    assert decision.alpha == 0.05
    assert 0.0 < decision.lower <= decision.estimate <= decision.upper  # better, not worse
    assert [f["decision"] for f in looks.values()] == [0] * (len(looks) - 1) + [1], looks
    assert list(looks.values())[-1]["n"] == decision.n
    assert rig.status("1") == "retired"
    crowned = rig.registry.metadata(MODEL, "2").history[-1]
    assert (crowned.by, crowned.action) == ("trainer", "promote")
    assert decision.decision_id in crowned.reason
    # Announced for the monitor twice: by the rig as the challenger, by the trainer crowned.
    assert [v.model_version for v in rig.versions].count("2") >= 2, rig.versions
    assert len(after) == AFTER
    assert set(after) == {(("2", "champion"),)}  # version 2 answers, and nothing shadows it


def test_b_a_worse_canary_is_rolled_back_having_served_at_most_its_share(
    tmp_path: Path,
) -> None:
    share, salt = 0.1, f"{MODEL}/2"
    rollout = {
        "mode": "canary",
        "canary_share": share,
        "min_labels": 300,
        "max_labels": 20_000,
        "alpha": 0.05,
    }
    with rollout_rig(tmp_path, rollout, champion=good(), challenger=poor()) as rig:
        rig.wait("a rollout decision", lambda: bool(rig.decisions), DECIDE_S)
        rig.wait("the rollback", lambda: rig.status("2") == "rejected", 30)
        assert rig.follower.wait_for_challenger(None, 30), rig.context()
        during = len(rig.traffic.served) + 1  # requests the canary may have answered
        after = _finish(rig, AFTER)
        served = rig.traffic.served
        canary = sum(1 for s in served if s == (("2", "canary"),))
        # Exactly the keys the hash routes: none other ever reached the canary.
        routed = {i for i in range(len(served)) if routes_to_challenger(f"user-{i}", share, salt)}
        assert {i for i, s in enumerate(served) if s[0][1] == "canary"} <= routed
        # The canary's requests are those whose key hashes below the share: with distinct
        # keys, a binomial count. Three standard deviations above the mean, one-sided. These
        # keys are fixed: over every prefix of 500 to 60,000 requests the routed count is at
        # most 2.23 sd above the mean, so when the rollback lands cannot make this flaky.
        bound = share * during + 3 * math.sqrt(during * share * (1 - share))
        on_topic = consume_all(
            rig.settings.kafka, rig.settings.topics.predictions, rig.traffic.predictions
        )
        roles = [decode_prediction(m.value(), key=m.key()).role for m in on_topic]
        looks = _looks(rig, rig.decisions[0])
        _report(
            "b: canary, worse",
            rig,
            f"; canary answered {canary} of the {during} requests served during the rollout"
            f" ({canary / during:.4f}; bound {bound:.0f} = share + 3 sd), {len(served)} in all"
            f" ({canary / len(served):.4f})",
        )

    (decision,) = rig.decisions
    assert (decision.decision, decision.action) == ("rollback", "rollback"), _shown(rig.decisions)
    assert (decision.champion_version, decision.challenger_version) == ("1", "2")
    assert decision.design == "canary"
    assert decision.lower <= decision.estimate <= decision.upper < 0.0  # worse
    assert [f["decision"] for f in looks.values()] == [0] * (len(looks) - 1) + [-1], looks
    assert rig.status("1") == "champion"
    history = rig.registry.metadata(MODEL, "2").history
    assert "champion" not in {h.status for h in history}  # never promoted
    assert (history[-1].by, history[-1].previous) == ("trainer", "challenger")
    assert set(after) == {(("1", "champion"),)}  # only the champion afterwards
    assert 0 < canary <= bound
    assert len(roles) == rig.traffic.predictions
    assert roles.count("canary") == canary  # what the monitor saw is what was served


@pytest.mark.parametrize("on_end", ["rollback", "promote"])
def test_c_an_equal_shadow_ends_at_max_labels_as_configured(tmp_path: Path, on_end: str) -> None:
    rollout = {
        "mode": "shadow",
        "min_labels": 300,
        "max_labels": 2_400,
        "alpha": 0.05,
        "on_end": on_end,
    }
    same = good()
    with rollout_rig(tmp_path, rollout, champion=same, challenger=same) as rig:
        rig.wait("a rollout decision", lambda: bool(rig.decisions), DECIDE_S)
        served = "2" if on_end == "promote" else "1"
        rig.wait(f"the {on_end}", lambda: rig.status("2") != "challenger", 30)
        assert rig.follower.wait_for(served, 30), rig.context()
        assert rig.follower.wait_for_challenger(None, 30), rig.context()
        after = _finish(rig, AFTER)
        looks = _looks(rig, rig.decisions[0])
        _report(f"c: shadow, equal, on_end {on_end}", rig)

    (decision,) = rig.decisions  # nothing before the end
    assert (decision.decision, decision.action) == ("end", on_end), _shown(rig.decisions)
    assert decision.n >= rollout["max_labels"]
    assert decision.lower <= 0.0 <= decision.upper  # no difference shown either way
    assert decision.estimate == 0.0  # the same model: every pair agrees
    # Every look before the end continued, short of max_labels; the last one ended.
    assert [f["decision"] for f in looks.values()] == [0] * (len(looks) - 1) + [2], looks
    assert all(f["n"] < rollout["max_labels"] for f in list(looks.values())[:-1]), looks
    if on_end == "promote":
        assert (rig.status("1"), rig.status("2")) == ("retired", "champion")
    else:
        assert (rig.status("1"), rig.status("2")) == ("champion", "rejected")
    assert set(after) == {((served, "champion"),)}
