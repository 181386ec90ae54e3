"""Rollout evidence (scores, merge laws, state) and the sequential decision on it."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.confidence import METHOD, difference_bounds, mean_bounds
from driftline.detectors.rollout import RolloutComparison, RolloutPolicy, decide
from driftline.detectors.rollout_evidence import (
    PairedEvidence,
    RolloutMetric,
    UnpairedEvidence,
    evidence_from_snapshot,
)
from driftline.detectors.rollout_sources import evidence_bytes
from driftline.errors import DecisionInputError, StatisticsError, SummaryMismatchError

ACCURACY = RolloutMetric("accuracy")
MAE = RolloutMetric("absolute_error", cap=4.0)

# --- scores --------------------------------------------------------------------------------


def test_metric_scores_by_hand() -> None:
    """Accuracy 0/1 (labels keyed like categories); log loss and errors negated and capped."""
    assert ACCURACY.scores([1, "a", True], ["1", "b", "true"]).tolist() == [1.0, 0.0, 1.0]
    log_loss = RolloutMetric("log_loss")
    assert log_loss.cap == 10.0
    got = log_loss.scores([1, 0, 1], [0.8, 0.8, 0.0]).tolist()
    assert got == pytest.approx([math.log(0.8), math.log(0.2), -10.0])
    squared = RolloutMetric("squared_error", cap=2.0)
    assert squared.scores([0.0, 0.0], [1.0, 3.0]).tolist() == [-1.0, -2.0]
    assert (squared.lower, squared.upper) == (-2.0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "auc"}, "metric must be one of"),
        ({"name": "absolute_error"}, "cap must be a positive number for absolute_error"),
        ({"name": "squared_error", "cap": -1.0}, "cap must be a positive number"),
        ({"name": "accuracy", "cap": 1.0}, "cap is not used by accuracy"),
    ],
)
def test_bad_metrics_are_refused_by_name(kwargs: dict[str, object], match: str) -> None:
    """A metric without the cap it needs, or an unknown one, names what is wrong."""
    with pytest.raises(StatisticsError, match=match):
        RolloutMetric(**kwargs)  # type: ignore[arg-type]


def test_out_of_range_scores_and_mismatched_lengths_are_refused() -> None:
    """Scores outside the metric's bounds would void the interval: refused, evidence unchanged."""
    evidence = PairedEvidence(ACCURACY)
    with pytest.raises(StatisticsError, match=r"within \[0.0, 1.0\]"):
        evidence.update_scores([0.0, 1.5], [1.0, 1.0])
    with pytest.raises(StatisticsError, match="2 predictions for 3 labels"):
        evidence.update_scores([0.0, 1.0, 1.0], [1.0, 1.0])
    with pytest.raises(StatisticsError, match="labels 0 or 1"):
        PairedEvidence(RolloutMetric("log_loss")).update([2], [0.5], [0.5])
    assert evidence.n == 0


# --- merge laws ----------------------------------------------------------------------------

pairs = st.lists(st.tuples(st.sampled_from([0.0, 1.0]), st.sampled_from([0.0, 1.0])), max_size=40)
errors = st.lists(st.tuples(st.floats(-4.0, 0.0), st.floats(-4.0, 0.0)), max_size=40)
Rows = list[tuple[float, float]]


def paired(rows: Rows, metric: RolloutMetric) -> PairedEvidence:
    champion = [r[0] for r in rows]
    challenger = [r[1] for r in rows]
    return PairedEvidence(metric).update_scores(champion, challenger)


def unpaired(rows: Rows, metric: RolloutMetric) -> UnpairedEvidence:
    evidence = UnpairedEvidence(metric)
    evidence.update_scores("champion", [r[0] for r in rows])
    return evidence.update_scores("challenger", [r[1] for r in rows[: len(rows) // 2]])


@settings(max_examples=60, deadline=None)
@given(a=pairs, b=pairs, c=pairs, x=errors, y=errors, z=errors)
def test_shadow_merge_of_parts_equals_the_fold_of_the_whole(
    a: Rows, b: Rows, c: Rows, x: Rows, y: Rows, z: Rows
) -> None:
    """Any split, merged, is the evidence of the whole; merge is associative and commutative
    and the empty evidence is its identity (bit for bit: exact sums), for 0/1 accuracy and
    real-valued errors."""
    for metric, (r, s, t) in ((ACCURACY, (a, b, c)), (MAE, (x, y, z))):
        first, second, third = paired(r, metric), paired(s, metric), paired(t, metric)
        assert first.merge(second).merge(third) == first.merge(second.merge(third))
        assert first.merge(second).merge(third) == paired(r + s + t, metric)
        assert first.merge(second) == second.merge(first)
        assert first.merge(PairedEvidence(metric)) == first


@settings(max_examples=60, deadline=None)
@given(x=errors, y=errors, z=errors)
def test_canary_merge_is_associative_and_commutative(x: Rows, y: Rows, z: Rows) -> None:
    """Canary evidence merges like the shadow's: associative, commutative, empty identity."""
    first, second, third = unpaired(x, MAE), unpaired(y, MAE), unpaired(z, MAE)
    assert first.merge(second).merge(third) == first.merge(second.merge(third))
    assert first.merge(second) == second.merge(first)
    assert first.merge(UnpairedEvidence(MAE)) == first


def test_canary_merge_equals_folding_each_version_at_once() -> None:
    """Canary: windows of each version merged = all of each version's scores folded at once."""
    rng = np.random.default_rng(3)
    champion, challenger = -4 * rng.random(300), -4 * rng.random(100)
    whole = (
        UnpairedEvidence(MAE)
        .update_scores("champion", champion)
        .update_scores("challenger", challenger)
    )
    parts = [
        UnpairedEvidence(MAE)
        .update_scores("champion", champion[i : i + 100])
        .update_scores("challenger", challenger[i // 3 : (i + 100) // 3])
        for i in range(0, 300, 100)
    ]
    assert parts[0].merge(parts[1]).merge(parts[2]) == whole


def test_merging_different_metrics_or_designs_is_refused() -> None:
    """Evidence of another metric, cap or design cannot be merged."""
    with pytest.raises(SummaryMismatchError):
        PairedEvidence(MAE).merge(PairedEvidence(RolloutMetric("absolute_error", cap=5.0)))
    with pytest.raises(SummaryMismatchError):
        PairedEvidence(ACCURACY).merge(UnpairedEvidence(ACCURACY))  # type: ignore[arg-type]


def test_constant_differences_have_exactly_no_spread() -> None:
    """The centred sum of squares comes from exact integers: 0.1 a thousand times is no spread,
    so the interval is as narrow as for any zero-variance stream."""
    evidence = PairedEvidence(MAE).update_scores([-0.3] * 1000, [-0.2] * 1000)
    assert evidence._sums.m2 == 0.0
    assert evidence.estimate == pytest.approx(0.1, rel=1e-15)


def test_evidence_snapshot_round_trips_through_json() -> None:
    """snapshot -> JSON -> evidence_from_snapshot gives equal evidence, both designs."""
    shadow = paired([(0.0, 1.0), (1.0, 1.0)], ACCURACY)
    canary = unpaired([(-1.0, -0.5), (-2.0, -0.25)], MAE)
    for evidence in (shadow, canary, PairedEvidence(ACCURACY)):
        text = json.dumps(evidence.snapshot(), allow_nan=False)
        assert evidence_from_snapshot(json.loads(text)) == evidence


def test_evidence_snapshots_keep_their_exact_bytes() -> None:
    """Stage-1 stores and Kafka messages carry snapshots: their keys, order and values are
    pinned (the empty ones in full, the others by their digest)."""
    empty_shadow = PairedEvidence(ACCURACY).snapshot()
    assert json.dumps(empty_shadow) == (
        '{"design": "shadow", "metric": "accuracy", "cap": null, "n": 0, "sum": "0x0", '
        '"squares": "0x0", "min": null, "max": null}'
    )
    sums = '{"n": 0, "sum": "0x0", "squares": "0x0", "min": null, "max": null}'
    assert json.dumps(UnpairedEvidence(ACCURACY).snapshot()) == (
        '{"design": "canary", "metric": "accuracy", "cap": null, '
        f'"champion": {sums}, "challenger": {sums}}}'
    )
    shadow = PairedEvidence(RolloutMetric("absolute_error", cap=5.0)).update(
        [1.0, 2.0, 3.0], [1.5, 9.0, 3.0], [1.0, 2.5, 2.0]
    )
    canary = UnpairedEvidence(RolloutMetric("log_loss"))
    canary.update("champion", [1, 0], [0.9, 0.2]).update("challenger", [1], [0.7])
    digests = [
        (
            hashlib.sha256(json.dumps(e.snapshot()).encode()).hexdigest(),
            hashlib.sha256(evidence_bytes(e)).hexdigest(),
        )
        for e in (shadow, canary)
    ]
    assert digests == [
        (
            "6f179dd9c1e9b6085940877839e1020add51ce2ed901ee450013ebccc6268c71",
            "1458439185ce1b4dd38495ab441cde57b63a57228531186a25ea31e50ade93a2",
        ),
        (
            "e9b16abf21924e986bf65895dc8cdd0f6140e170663b39316e923200c5f89c71",
            "d8b50de9f233cc52286007720740988f96771787de6d321d46922f74e1870098",
        ),
    ]


# --- the interval --------------------------------------------------------------------------


def test_interval_is_the_confidence_sequence_of_the_sums() -> None:
    """Shadow: the sequence on the mean difference over [-1, 1]; canary: the difference of the
    two sequences at alpha/2 over the metric's range."""
    shadow = PairedEvidence(ACCURACY).update_scores([1, 0, 1, 1] * 50, [1, 1, 1, 0] * 50)
    # d: 0, 1, 0, -1 repeated: mean 0, m2 = 100
    assert shadow.bounds(0.05) == tuple(float(b) for b in mean_bounds(200, 0.0, 100.0, -1, 1, 0.05))
    canary = UnpairedEvidence(ACCURACY)
    canary.update_scores("champion", [1.0, 0.0] * 100).update_scores("challenger", [1.0] * 50)
    expected = difference_bounds((50, 1.0, 0.0), (200, 0.5, 50.0), 0.0, 1.0, 0.05)
    assert canary.bounds(0.05) == tuple(float(b) for b in expected)
    assert canary.estimate == 0.5


# --- decisions -----------------------------------------------------------------------------


def shadow_windows(
    seed: int, gain: float, disagree: float = 0.2, size: int = 100
) -> Iterator[PairedEvidence]:
    """Paired accuracy windows: the challenger right where the champion is wrong with
    probability disagree/2 + gain/2, the reverse with disagree/2 - gain/2."""
    rng = np.random.default_rng(seed)
    up, down = disagree / 2 + gain / 2, disagree / 2 - gain / 2
    while True:
        u = rng.random(size)
        champion = np.where(u < up, 0.0, 1.0)
        challenger = np.where(u < up, 1.0, np.where(u < up + down, 0.0, 1.0))
        yield PairedEvidence(ACCURACY).update_scores(champion, challenger)


def run(
    comparison: RolloutComparison, windows: Iterator[PairedEvidence], limit: int
) -> RolloutComparison:
    while comparison.decided is None and comparison.evidence.n_challenger < limit:
        comparison.update(next(windows))
    return comparison


@pytest.mark.parametrize("seed", range(20))
def test_a_clearly_better_shadow_is_promoted_and_a_worse_one_rolled_back(seed: int) -> None:
    """Paired accuracy, 20 % disagreement, +-5 points: decided the right way within 6,000
    labels (a simulation of 200 streams needed 4,200 at most, 1,300 at the median)."""
    policy = RolloutPolicy(alpha=0.05, min_labels=500, max_labels=50_000)
    better = run(RolloutComparison(ACCURACY, "shadow", policy), shadow_windows(seed, 0.05), 6000)
    worse = run(RolloutComparison(ACCURACY, "shadow", policy), shadow_windows(seed, -0.05), 6000)
    assert better.result.decision == "promote"
    assert better.result.action == "promote"
    assert better.result.lower > 0
    assert worse.result.decision == "rollback"
    assert worse.result.upper < 0
    assert better.result.method == METHOD


@pytest.mark.parametrize("seed", range(10))
def test_a_clearly_better_canary_is_promoted_and_a_worse_one_rolled_back(seed: int) -> None:
    """Unpaired accuracy 0.9 against 0.8, both ways, 100 labels per version per window:
    decided the right way within 3,000 labels of the challenger."""
    rng = np.random.default_rng(seed)
    for challenger_rate, champion_rate, expected in ((0.9, 0.8, "promote"), (0.8, 0.9, "rollback")):
        comparison = RolloutComparison(ACCURACY, "canary", RolloutPolicy(min_labels=500))
        while comparison.decided is None and comparison.evidence.n_challenger < 3000:
            window = UnpairedEvidence(ACCURACY)
            window.update_scores("champion", (rng.random(100) < champion_rate).astype(float))
            window.update_scores("challenger", (rng.random(100) < challenger_rate).astype(float))
            comparison.update(window)
        assert comparison.result.decision == expected


def test_an_equal_challenger_continues_then_ends_as_configured() -> None:
    """No true difference: continue at every look, then end with the configured action."""
    policy = RolloutPolicy(min_labels=500, max_labels=5000, on_end="promote")
    comparison = RolloutComparison(ACCURACY, "shadow", policy)
    windows = shadow_windows(1, 0.0)
    decisions = []
    for _ in range(50):
        decisions.append(comparison.update(next(windows)).result.decision)
    assert decisions[:-1] == ["continue"] * 49
    assert (decisions[-1], comparison.result.action, comparison.result.n) == (
        "end",
        "promote",
        5000,
    )


def test_nothing_is_decided_before_min_labels() -> None:
    """A challenger right on every example is still 'continue' below min_labels."""
    policy = RolloutPolicy(min_labels=300)
    evidence = PairedEvidence(ACCURACY).update_scores([0.0] * 299, [1.0] * 299)
    result = decide(evidence, policy)
    assert result.decision == "continue"
    assert result.lower > 0.5
    assert decide(evidence.update_scores([0.0], [1.0]), policy).decision == "promote"


def test_margin_moves_both_thresholds() -> None:
    """With a margin, the interval must clear +margin to promote and -margin to roll back."""
    evidence = PairedEvidence(ACCURACY).update_scores([0.0] * 200 + [1.0] * 800, [1.0] * 1000)
    lower = decide(evidence, RolloutPolicy()).lower
    assert decide(evidence, RolloutPolicy(margin=lower * 0.99)).decision == "promote"
    assert decide(evidence, RolloutPolicy(margin=lower)).decision == "continue"


def test_result_is_frozen_and_reports_its_evidence() -> None:
    """The result carries estimate, interval, counts, method and alpha; it cannot change."""
    evidence = unpaired([(-1.0, -0.5), (-2.0, -0.25)], MAE)
    result = decide(evidence, RolloutPolicy(alpha=0.1))
    assert (result.design, result.metric, result.method, result.alpha) == (
        "canary",
        "absolute_error",
        METHOD,
        0.1,
    )
    assert (result.n, result.n_champion, result.n_challenger) == (3, 2, 1)
    assert result.estimate is not None
    assert result.estimate == pytest.approx(-0.5 + 1.5)
    assert result.lower <= result.estimate <= result.upper
    with pytest.raises(AttributeError):
        result.decision = "promote"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, "alpha must be in"),
        ({"margin": -0.1}, "margin must be"),
        ({"min_labels": 0}, "min_labels must be"),
        ({"min_labels": 10, "max_labels": 5}, "max_labels \\(5\\) must be at least"),
        ({"on_end": "keep"}, "on_end must be"),
    ],
)
def test_bad_policies_are_refused_by_name(kwargs: dict[str, object], match: str) -> None:
    """Every policy parameter is checked when the policy is built."""
    with pytest.raises(DecisionInputError, match=match):
        RolloutPolicy(**kwargs)  # type: ignore[arg-type]


# --- the incremental unit ------------------------------------------------------------------


def test_update_returns_the_comparison_and_reset_clears_it() -> None:
    """update() chains; reset() gives a comparison that behaves like a new one."""
    policy = RolloutPolicy(min_labels=100)
    comparison = RolloutComparison(ACCURACY, "shadow", policy)
    windows = list(zip(range(30), shadow_windows(2, 0.3), strict=False))
    assert comparison.update(windows[0][1]) is comparison
    for _, window in windows[1:]:
        comparison.update(window)
    assert comparison.decided is not None
    comparison.reset()
    fresh = RolloutComparison(ACCURACY, "shadow", policy)
    assert comparison.result == fresh.result
    assert comparison.decided is None
    for _, window in windows:
        assert comparison.update(window).result == fresh.update(window).result


def test_first_decision_sticks_while_evidence_keeps_coming() -> None:
    """After a promote, windows of a worse challenger change the interval, not the decision."""
    comparison = RolloutComparison(ACCURACY, "shadow", RolloutPolicy(min_labels=100))
    comparison.update(PairedEvidence(ACCURACY).update_scores([0.0] * 200, [1.0] * 200))
    assert comparison.result.decision == "promote"
    comparison.update(PairedEvidence(ACCURACY).update_scores([1.0] * 2000, [0.0] * 2000))
    assert comparison.result.upper < 0
    assert (comparison.result.decision, comparison.result.action) == ("promote", "promote")
    assert comparison.decided is not None
    assert comparison.decided.n == 200


def test_snapshot_round_trip_gives_identical_subsequent_behaviour() -> None:
    """Snapshot mid-stream, through JSON, restore: both continue exactly alike."""
    policy = RolloutPolicy(min_labels=100)
    windows = [w for _, w in zip(range(40), shadow_windows(5, 0.1), strict=False)]
    original = RolloutComparison(ACCURACY, "shadow", policy)
    for window in windows[:20]:
        original.update(window)
    text = json.dumps(original.snapshot(), allow_nan=False)
    restored = RolloutComparison(ACCURACY, "shadow", policy).restore(json.loads(text))
    assert restored.result == original.result
    for window in windows[20:]:
        assert restored.update(window).result == original.update(window).result
    with pytest.raises(SummaryMismatchError):
        RolloutComparison(ACCURACY, "canary", policy).restore(json.loads(text))


@pytest.mark.parametrize(
    "snapshot",
    [
        {"design": "shadow"},
        {"design": "pilot", "metric": "accuracy", "cap": None},
        {"design": "shadow", "metric": "accuracy", "cap": None, "n": 1, "sum": "zz"},
        {"design": "canary", "metric": "mae", "cap": None},
    ],
)
def test_a_snapshot_that_is_not_one_is_a_statistics_error(snapshot: dict[str, object]) -> None:
    """Missing fields, an unknown design or metric, bad sums: one error type, saying so."""
    with pytest.raises(StatisticsError, match=r"rollout evidence|design must be"):
        evidence_from_snapshot(snapshot)


def test_errors_beyond_float64_count_as_the_cap() -> None:
    """A squared error that overflows is capped like any other large one, without a warning."""
    scores = RolloutMetric("squared_error", cap=3.0).scores([-1e200, 0.0], [1e200, 1.0])
    assert scores.tolist() == [-3.0, -1.0]
    with pytest.raises(StatisticsError, match="cap must be a positive number"):
        RolloutMetric("absolute_error", cap="5")  # type: ignore[arg-type]


def test_out_of_time_ends_a_look_that_would_continue_but_not_one_that_decides() -> None:
    policy = RolloutPolicy(min_labels=300, on_end="rollback")
    undecided = PairedEvidence(ACCURACY).update_scores([1.0, 0.0] * 200, [0.0, 1.0] * 200)
    assert decide(undecided, policy).decision == "continue"
    ended = decide(undecided, policy, out_of_time=True)
    assert (ended.decision, ended.action) == ("end", "rollback")
    better = PairedEvidence(ACCURACY).update_scores([0.0] * 400, [1.0] * 400)
    assert decide(better, policy, out_of_time=True).decision == "promote"
