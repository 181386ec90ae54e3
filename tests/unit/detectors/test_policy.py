"""The decision policy: correction, persistence, hysteresis, cool-down, restatements."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.config.settings import ModelConfig
from driftline.detectors.correction import adjust_p_values
from driftline.detectors.decision import Decision, PerformanceObservation
from driftline.detectors.policy import DecisionPolicy
from driftline.detectors.result import ResultKind, TestResult
from driftline.errors import DecisionInputError
from driftline.schemas.outputs import DriftAlert, RetrainRequest

T0 = datetime(2026, 11, 22, tzinfo=UTC)
HOUR = timedelta(hours=1)


def window(i: int) -> tuple[datetime, datetime]:
    """The i-th hourly tumbling window."""
    return T0 + i * HOUR, T0 + (i + 1) * HOUR


def make_config(
    *,
    k: int = 2,
    n: int = 3,
    correction: str = "bh",
    fdr: float = 0.05,
    min_samples: int = 500,
    policy: str = "on_drift",
    cooldown: str = "6h",
    task: str = "binary",
    performance: dict[str, Any] | None = None,
) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "task": task,
            "drift": {
                "persistence_k": k,
                "persistence_n": n,
                "correction": correction,
                "fdr": fdr,
                "min_samples": min_samples,
            },
            "retrain": {"policy": policy, "cooldown": cooldown},
            "performance": performance or {},
        }
    )


def result(
    column: str,
    statistic: float = 0.3,
    p_value: float | None = 1e-9,
    *,
    threshold: float = 0.2,
    n_current: int = 5_000,
    kind: ResultKind = "feature_drift",
    test: str = "psi",
) -> TestResult:
    return TestResult(
        test,
        column,
        statistic,
        p_value,
        threshold,
        50_000,
        n_current,
        statistic >= threshold,
        kind,
    )


SHIFT = [result("amount", 0.3, 1e-9), result("age", 0.01, 0.7)]
CLEAN = [result("amount", 0.01, 0.6), result("age", 0.01, 0.7)]


def run(policy: DecisionPolicy, pattern: str, first: int = 0) -> list[Decision]:
    """Decide consecutive windows: ``D`` a shifted window, ``C`` a clean one."""
    return [
        policy.decide(*window(first + i), SHIFT if c == "D" else CLEAN)
        for i, c in enumerate(pattern)
    ]


# --- correction across features ------------------------------------------------------------


def test_feature_drifts_only_when_effect_reaches_floor_and_adjusted_p_passes() -> None:
    policy = DecisionPolicy(make_config(), "fraud", "3")
    verdicts = policy.judge(
        [
            result("a", 0.5, 0.001),  # large effect, significant: drifted
            result("b", 0.5, 0.04),  # raw 0.04 passes alone; BH-adjusted 0.04 * 4/3 does not
            result("c", 0.1, 1e-12),  # significant but below its floor: not drifted
            result("d", 0.01, 0.9),
        ]
    )
    assert [v.drifted for v in verdicts] == [True, False, False, False]
    assert all(v.judged for v in verdicts)
    assert verdicts[1].adjusted_p_value == pytest.approx(0.04 * 4 / 3)
    assert verdicts[0].effect_ratio == pytest.approx(2.5)


def test_bonferroni_correction_is_stricter_than_bh_on_the_same_window() -> None:
    results = [result("a", 0.5, 0.01), result("b", 0.5, 0.04)]
    bh = DecisionPolicy(make_config(correction="bh"), "m", "1").judge(results)
    bonferroni = DecisionPolicy(make_config(correction="bonferroni"), "m", "1").judge(results)
    assert [v.drifted for v in bh] == [True, True]  # adjusted 0.02, 0.04
    assert [v.drifted for v in bonferroni] == [True, False]  # adjusted 0.02, 0.08
    assert bonferroni[1].adjusted_p_value == pytest.approx(0.08)


def test_results_below_min_samples_are_not_judged_and_do_not_enlarge_the_family() -> None:
    policy = DecisionPolicy(make_config(min_samples=1000), "m", "1")
    verdicts = policy.judge(
        [
            result("a", 0.5, 0.01),
            result("b", 0.5, 0.04),
            result("small", 0.9, 0.9, n_current=999),  # would make b fail if counted (m=3)
        ]
    )
    assert [v.drifted for v in verdicts] == [True, True, False]
    assert verdicts[2].judged is False
    assert verdicts[2].skip_reason == "too_few_samples"
    assert verdicts[2].adjusted_p_value is None


def test_window_with_only_small_results_is_not_judged_for_persistence() -> None:
    policy = DecisionPolicy(make_config(k=2, n=2), "m", "1")
    small = [result("amount", 0.9, 1e-12, n_current=10)]
    policy.decide(*window(0), SHIFT)
    decision = policy.decide(*window(1), small)
    assert decision.drift_found is False
    assert decision.in_drift is False
    assert decision.verdicts[0].skip_reason == "too_few_samples"
    # The unjudged window neither counts nor breaks the run: the next shift completes 2 of 2.
    assert policy.decide(*window(2), SHIFT).in_drift is True


def test_result_without_p_value_is_judged_on_effect_size_alone() -> None:
    policy = DecisionPolicy(make_config(), "m", "1")
    verdicts = policy.judge(
        [result("w", 0.15, None, threshold=0.1, test="wasserstein"), result("x", 0.05, None)]
    )
    assert [(v.judged, v.drifted, v.adjusted_p_value) for v in verdicts] == [
        (True, True, None),
        (True, False, None),
    ]


def test_non_drift_results_pass_through_unjudged() -> None:
    policy = DecisionPolicy(make_config(), "m", "1")
    quality = result("amount", 0.9, 1e-12, threshold=0.05, kind="data_quality", test="missing")
    (verdict,) = policy.judge([quality])
    assert (verdict.judged, verdict.drifted, verdict.skip_reason) == (
        False,
        False,
        "not_a_drift_test",
    )


def test_prediction_drift_counts_as_drift_but_not_as_a_drifted_feature() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1), "m", "1")
    decision = policy.decide(*window(0), [result("prediction", 0.4, 1e-9, kind="prediction_drift")])
    assert decision.drift_found is True
    assert decision.drifted_features == []
    assert decision.alerts[0].reasons[0].kind == "prediction_drift"


def test_drifted_features_are_listed_largest_effect_ratio_first() -> None:
    policy = DecisionPolicy(make_config(), "m", "1")
    decision = policy.decide(
        *window(0),
        [result("small", 0.25), result("large", 0.9), result("mid", 0.4), result("no", 0.01)],
    )
    assert decision.drifted_features == ["large", "mid", "small"]


def test_global_null_finds_drift_in_at_most_the_fdr_share_of_windows() -> None:
    """Under the global null BH controls the chance of any false discovery per window at fdr."""
    rng = np.random.default_rng(20261122)
    policy = DecisionPolicy(make_config(fdr=0.05), "m", "1")
    windows, features = 2000, 20
    p = rng.uniform(size=(windows, features))
    found = sum(
        any(v.drifted for v in policy.judge([result(f"f{j}", 0.5, p[i, j]) for j in range(20)]))
        for i in range(windows)
    )
    # binomial(2000, 0.05): mean 100, sd ~9.7; BH under independence is at most fdr
    assert found <= 100 + 4 * 9.75


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda features: st.lists(
            st.lists(
                st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 0.999)),
                min_size=features,
                max_size=features,
            ),
            min_size=1,
            max_size=30,
        )
    ),
    st.sampled_from(["on_drift", "on_either"]),
    st.integers(1, 3),
)
def test_null_windows_never_emit_alerts_or_retrain_requests(
    windows: list[list[tuple[float, float]]], retrain_policy: str, k: int
) -> None:
    """Uniform p-values with effect sizes below their floors never look like drift."""
    policy = DecisionPolicy(make_config(k=k, n=3, policy=retrain_policy, cooldown="0s"), "m", "1")
    for i, columns in enumerate(windows):
        results = [
            result(f"f{j}", share * 0.2, p, threshold=0.2) for j, (p, share) in enumerate(columns)
        ]
        decision = policy.decide(*window(i), results)
        assert decision.retrain is None
        assert decision.alerts == []
        assert decision.drifted_features == []


# --- persistence ---------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(1, 1), (2, 3), (3, 5), (4, 4)])
def test_persistent_shift_fires_alert_after_exactly_k_windows(k: int, n: int) -> None:
    policy = DecisionPolicy(make_config(k=k, n=n), "fraud", "3")
    decisions = run(policy, "D" * (k + 2))
    first_alert = next(i for i, d in enumerate(decisions) if d.alerts)
    assert first_alert == k - 1
    assert all(d.drift_found for d in decisions)
    assert [d.in_drift for d in decisions] == [i >= k - 1 for i in range(k + 2)]
    assert decisions[k - 1].alerts[0].status == "firing"
    assert decisions[k - 1].retrain is not None


def test_drift_scattered_beyond_the_persistence_horizon_never_fires() -> None:
    policy = DecisionPolicy(make_config(k=2, n=3), "m", "1")
    decisions = run(policy, "DCCDCCDCC")
    assert not any(d.in_drift or d.alerts or d.retrain for d in decisions)


# --- severity ------------------------------------------------------------------------------


def test_severity_is_warning_for_one_feature_below_twice_its_threshold() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1), "m", "1")
    decision = policy.decide(*window(0), [result("a", 0.3)])  # 1.5x the floor
    assert decision.severity == "warning"
    assert decision.alerts[0].severity == "warning"


def test_severity_is_critical_for_an_effect_at_least_twice_its_threshold() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1), "m", "1")
    decision = policy.decide(*window(0), [result("a", 0.4)])
    assert decision.alerts[0].severity == "critical"


def test_severity_is_critical_for_three_drifted_features() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1), "m", "1")
    decision = policy.decide(*window(0), [result(c, 0.25) for c in "abc"])
    assert decision.alerts[0].severity == "critical"


# --- hysteresis ----------------------------------------------------------------------------


def test_alert_resolves_only_after_persistence_n_consecutive_clean_windows() -> None:
    policy = DecisionPolicy(make_config(k=2, n=3), "fraud", "3")
    decisions = run(policy, "DDCCCC")
    statuses = [[a.status for a in d.alerts] for d in decisions]
    assert statuses == [[], ["firing"], ["firing"], ["firing"], ["resolved"], []]
    # Still in drift (2 of 3) at the first clean window, held by hysteresis at the second.
    assert [d.severity for d in decisions[1:4]] == ["warning", "warning", "info"]
    resolved = decisions[4].alerts[0]
    digest = DriftAlert.evidence_digest(resolved.severity, resolved.reasons)
    assert resolved.alert_id == DriftAlert.make_id("fraud", "3", *window(4), "resolved", digest)
    assert resolved.severity == "info"
    assert decisions[4].firing is False


def test_a_drifted_window_during_resolution_restarts_the_clean_count() -> None:
    policy = DecisionPolicy(make_config(k=2, n=3), "m", "1")
    decisions = run(policy, "DDCCDCCCC")
    statuses = ["".join(a.status[0] for a in d.alerts) for d in decisions]
    # fires at 1; the lone drift at 4 is not persistent but resets the clean run
    assert statuses == ["", "f", "f", "f", "f", "f", "f", "r", ""]


def test_resolve_after_sets_the_hysteresis_length() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1), "m", "1", resolve_after=1)
    decisions = run(policy, "DCD")
    assert [[a.status for a in d.alerts] for d in decisions] == [
        ["firing"],
        ["resolved"],
        ["firing"],
    ]


# --- cool-down -----------------------------------------------------------------------------


def test_cooldown_blocks_a_second_request_within_cooldown_and_allows_one_after() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1, cooldown="3h"), "m", "1")
    decisions = run(policy, "DDDDDDD")
    requested = [i for i, d in enumerate(decisions) if d.retrain is not None]
    # window ends 1h, 4h, 7h: each exactly one cool-down after the previous request
    assert requested == [0, 3, 6]
    assert policy.last_request_end == window(6)[1]


def test_cooldown_is_measured_in_event_time_not_in_decisions() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1, cooldown="3h"), "m", "1")
    first = policy.decide(*window(0), SHIFT)
    second = policy.decide(*window(10), SHIFT)  # the very next decision, 10 h later
    assert first.retrain is not None
    assert second.retrain is not None


def test_cooldown_also_blocks_an_older_window_decided_late() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1, cooldown="3h"), "m", "1")
    assert policy.decide(*window(5), SHIFT).retrain is not None
    late = policy.decide(*window(4), SHIFT)  # an earlier window, first decided now
    assert late.in_drift is True
    assert late.retrain is None


# --- retrain policies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retrain_policy", "drift", "breach", "expected"),
    [
        ("never", True, True, False),
        ("on_drift", True, False, True),
        ("on_drift", False, True, False),
        ("on_performance", True, False, False),
        ("on_performance", False, True, True),
        ("on_either", True, False, True),
        ("on_either", False, True, True),
        ("on_either", False, False, False),
        ("on_both", True, False, False),
        ("on_both", False, True, False),
        ("on_both", True, True, True),
    ],
)
def test_retrain_policy_decides_which_evidence_asks_for_a_retrain(
    retrain_policy: str, drift: bool, breach: bool, expected: bool
) -> None:
    config = make_config(k=1, n=1, policy=retrain_policy, performance={"threshold": 0.8})
    policy = DecisionPolicy(config, "m", "1")
    observation = PerformanceObservation("accuracy", 0.7 if breach else 0.9, n_labels=1_000)
    decision = policy.decide(*window(0), SHIFT if drift else CLEAN, observation)
    assert (decision.retrain is not None) is expected
    if decision.retrain is not None:
        assert decision.retrain.rule == retrain_policy


def test_retrain_evidence_lists_top_features_by_effect_ratio_with_adjusted_p_values() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1), "m", "1", max_reasons=3)
    results = [
        result("low", 0.21, 1e-6),
        result("ks_high", 0.35, 1e-8, threshold=0.1, test="ks"),  # ratio 3.5
        result("psi_mid", 0.5, 1e-7),  # ratio 2.5
        result("psi_top", 0.9, 1e-5),  # ratio 4.5
        result("stable", 0.01, 0.5),
    ]
    request = policy.decide(*window(0), results).retrain
    assert request is not None
    assert [(r.feature, r.statistic) for r in request.reasons] == [
        ("psi_top", "psi"),
        ("ks_high", "ks"),
        ("psi_mid", "psi"),
    ]
    top = request.reasons[0]
    assert (top.value, top.threshold, top.kind) == (0.9, 0.2, "feature_drift")
    assert top.p_value == pytest.approx(adjust_p_values([1e-6, 1e-8, 1e-7, 1e-5, 0.5])[3])


def test_one_concept_flag_alone_neither_alerts_nor_retrains() -> None:
    """A sequential detector's single detection must persist (k of n) like feature drift."""
    policy = DecisionPolicy(make_config(k=2, n=3), "m", "1")
    decision = policy.decide(*window(0), CLEAN, concept_drift=True)
    assert decision.alerts == []
    assert decision.retrain is None
    assert decision.concept_drift


def test_persistent_concept_drift_fires_a_warning_and_counts_as_drift_for_retraining() -> None:
    policy = DecisionPolicy(make_config(k=2, n=3), "m", "1")
    policy.decide(*window(0), CLEAN, concept_drift=True)
    decision = policy.decide(*window(1), CLEAN, concept_drift=True)
    assert decision.alerts[0].severity == "warning"
    assert decision.retrain is not None
    assert [r.kind for r in decision.retrain.reasons] == ["concept_drift"]


def test_concept_flag_is_ignored_when_the_model_got_better() -> None:
    """Detectors such as ADWIN are two-sided: fewer errors is no reason to retrain."""
    policy = DecisionPolicy(make_config(k=1, n=1, policy="on_either"), "m", "1")
    better = PerformanceObservation("accuracy", 0.97, 1_000, baseline=0.95)
    decision = policy.decide(*window(0), CLEAN, better, concept_drift=True)
    assert not decision.concept_drift
    assert decision.alerts == []
    assert decision.retrain is None
    worse = PerformanceObservation("accuracy", 0.93, 1_000, baseline=0.95)
    decision = policy.decide(*window(1), CLEAN, worse, concept_drift=True)
    assert decision.concept_drift
    assert decision.retrain is not None


# --- performance ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "baseline", "breach"),
    [
        (0.85, 0.95, True),  # worse than baseline by 0.10 > max_drop 0.05
        (0.92, 0.95, False),  # within max_drop, above the absolute floor
        (0.99, 0.95, False),  # better than baseline
        (0.79, None, True),  # below the absolute floor 0.8
        (0.81, None, False),
    ],
)
def test_performance_breach_when_higher_is_better(
    value: float, baseline: float | None, breach: bool
) -> None:
    config = make_config(performance={"metric": "accuracy", "threshold": 0.8, "max_drop": 0.05})
    assert config.lower_is_better is False
    policy = DecisionPolicy(config, "m", "1")
    decision = policy.decide(
        *window(0), [], PerformanceObservation("accuracy", value, 1_000, baseline)
    )
    assert decision.performance_breach is breach


@pytest.mark.parametrize(
    ("value", "baseline", "breach"),
    [
        (1.6, 1.0, True),  # worse (higher) than baseline by 0.6 > max_drop 0.5
        (1.4, 1.0, False),
        (0.2, 1.0, False),  # much lower error: an improvement never breaches
        (2.1, None, True),  # above the absolute ceiling 2.0
        (1.9, None, False),
    ],
)
def test_performance_breach_when_lower_is_better(
    value: float, baseline: float | None, breach: bool
) -> None:
    config = make_config(
        task="regression", performance={"metric": "rmse", "threshold": 2.0, "max_drop": 0.5}
    )
    assert config.lower_is_better is True
    policy = DecisionPolicy(config, "m", "1")
    decision = policy.decide(*window(0), [], PerformanceObservation("rmse", value, 1_000, baseline))
    assert decision.performance_breach is breach


def test_performance_is_not_judged_below_min_labels() -> None:
    config = make_config(performance={"threshold": 0.8, "min_labels": 200})
    policy = DecisionPolicy(config, "m", "1")
    few = policy.decide(*window(0), [], PerformanceObservation("accuracy", 0.1, 199))
    enough = policy.decide(*window(1), [], PerformanceObservation("accuracy", 0.1, 200))
    assert few.performance_breach is False
    assert enough.performance_breach is True


def test_performance_breach_fires_a_critical_alert_at_once_with_its_evidence() -> None:
    config = make_config(k=3, n=3, policy="on_performance", performance={"threshold": 0.8})
    policy = DecisionPolicy(config, "m", "1")
    decision = policy.decide(*window(0), CLEAN, PerformanceObservation("accuracy", 0.7, 1_000))
    assert decision.alerts[0].severity == "critical"
    assert decision.retrain is not None
    (reason,) = decision.retrain.reasons
    assert (reason.kind, reason.statistic, reason.value, reason.threshold) == (
        "performance",
        "accuracy",
        0.7,
        0.8,
    )


def test_performance_of_another_metric_is_rejected() -> None:
    policy = DecisionPolicy(make_config(), "m", "1")
    with pytest.raises(DecisionInputError, match="accuracy"):
        policy.decide(*window(0), [], PerformanceObservation("rmse", 1.0, 1_000))


# --- restatements and deterministic ids ----------------------------------------------------


def test_restating_the_same_window_does_not_count_twice_for_persistence() -> None:
    policy = DecisionPolicy(make_config(k=2, n=3), "m", "1")
    first = policy.decide(*window(0), SHIFT)
    again = policy.decide(*window(0), SHIFT)
    assert (first.restated, again.restated) == (False, True)
    assert again.in_drift is False
    assert again.alerts == []
    assert policy.n_windows == 1
    assert policy.decide(*window(1), SHIFT).in_drift is True


def test_restating_a_window_replaces_its_evidence() -> None:
    policy = DecisionPolicy(make_config(k=2, n=3), "m", "1")
    policy.decide(*window(0), SHIFT)
    policy.decide(*window(0), CLEAN)  # late data: the shift was an artefact
    assert policy.decide(*window(1), SHIFT).in_drift is False


def test_restating_an_older_window_refolds_the_current_state() -> None:
    policy = DecisionPolicy(make_config(k=2, n=3), "m", "1")
    run(policy, "CDC")
    assert policy.in_drift is False
    restated = policy.decide(*window(0), SHIFT)
    assert restated.restated is True
    assert policy.in_drift is True  # windows 0..2 now hold two drifted of three


def test_late_labels_restating_a_window_complete_an_on_both_request() -> None:
    config = make_config(k=2, n=3, policy="on_both", performance={"threshold": 0.8})
    policy = DecisionPolicy(config, "m", "1")
    decisions = run(policy, "DDD")
    assert all(d.retrain is None for d in decisions)
    late = policy.decide(*window(1), SHIFT, PerformanceObservation("accuracy", 0.6, 1_000))
    assert late.retrain is not None
    assert late.retrain.request_id == RetrainRequest.make_id("m", "1", "on_both", *window(1))


def test_replayed_window_gives_the_same_alert_and_request_ids() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1), "m", "1")
    first = policy.decide(*window(0), SHIFT)
    replay = policy.decide(*window(0), SHIFT)
    assert first.retrain is not None
    assert replay.retrain is not None
    assert replay.retrain.request_id == first.retrain.request_id
    assert replay.alerts[0].alert_id == first.alerts[0].alert_id


def test_ids_are_deterministic_across_policy_instances() -> None:
    decisions = [
        DecisionPolicy(make_config(k=1, n=1), "fraud", "3").decide(*window(7), SHIFT)
        for _ in range(2)
    ]
    a, b = decisions
    assert a.retrain is not None
    assert b.retrain is not None
    assert a.retrain.request_id == b.retrain.request_id
    assert a.retrain.request_id == RetrainRequest.make_id("fraud", "3", "on_drift", *window(7))
    digest = DriftAlert.evidence_digest(a.alerts[0].severity, a.alerts[0].reasons)
    assert a.alerts[0].alert_id == DriftAlert.make_id("fraud", "3", *window(7), "firing", digest)
    assert a.alerts == b.alerts


def test_window_older_than_the_history_is_judged_but_changes_nothing() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1), "m", "1", history=3)
    run(policy, "CCCCC")
    before = policy.snapshot()
    stale = policy.decide(*window(0), SHIFT)
    assert stale.outside_history is True
    assert stale.drift_found is True
    assert (stale.alerts, stale.retrain) == ([], None)
    assert policy.snapshot() == before


# --- state ---------------------------------------------------------------------------------


def _random_inputs(seed: int, count: int) -> list[tuple[list[TestResult], Any]]:
    rng = np.random.default_rng(seed)
    inputs = []
    for _ in range(count):
        shifted = rng.uniform() < 0.5
        results = [
            result(f"f{j}", float(rng.uniform(0.2, 0.6)) if shifted else 0.01, 1e-6)
            for j in range(int(rng.integers(1, 5)))
        ]
        accuracy = float(rng.uniform(0.7, 0.95))
        inputs.append((results, PerformanceObservation("accuracy", accuracy, 1_000, 0.9)))
    return inputs


def test_snapshot_restore_gives_identical_later_decisions() -> None:
    config = make_config(k=2, n=3, policy="on_either", cooldown="2h")
    original = DecisionPolicy(config, "m", "1", history=5)
    inputs = _random_inputs(seed=3, count=30)
    for i, (results, perf) in enumerate(inputs[:15]):
        original.decide(*window(i), results, perf)
    stored = json.loads(json.dumps(original.snapshot(), allow_nan=False))
    clone = DecisionPolicy(config, "m", "1", history=5)
    clone.restore(stored)
    assert clone.snapshot() == original.snapshot()
    assert (clone.in_drift, clone.firing, clone.clean_streak) == (
        original.in_drift,
        original.firing,
        original.clean_streak,
    )
    for i, (results, perf) in enumerate(inputs[15:], start=15):
        assert clone.decide(*window(i), results, perf) == original.decide(*window(i), results, perf)
    # a restatement within the history decides the same way too
    assert clone.decide(*window(27), *inputs[0]) == original.decide(*window(27), *inputs[0])


def test_restore_rejects_a_snapshot_of_another_model_version() -> None:
    snapshot = DecisionPolicy(make_config(), "m", "1").snapshot()
    with pytest.raises(DecisionInputError, match="version"):
        DecisionPolicy(make_config(), "m", "2").restore(snapshot)


def test_reset_clears_windows_alerts_and_cooldown() -> None:
    policy = DecisionPolicy(make_config(k=1, n=1), "m", "1")
    run(policy, "DD")
    assert policy.firing is True
    policy.reset()
    assert (policy.firing, policy.in_drift, policy.n_windows, policy.last_request_end) == (
        False,
        False,
        0,
        None,
    )
    assert policy.decide(*window(2), SHIFT).retrain is not None


# --- validation ----------------------------------------------------------------------------


def test_decide_rejects_naive_and_empty_windows() -> None:
    policy = DecisionPolicy(make_config(), "m", "1")
    with pytest.raises(DecisionInputError, match="window_start"):
        policy.decide(datetime(2026, 1, 1), T0, SHIFT)
    with pytest.raises(DecisionInputError, match="window_end"):
        policy.decide(T0, T0, SHIFT)


def test_drift_result_with_non_positive_threshold_is_rejected() -> None:
    policy = DecisionPolicy(make_config(), "m", "1")
    with pytest.raises(DecisionInputError, match="threshold"):
        policy.judge([result("a", 0.3, 1e-3, threshold=0.0)])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"resolve_after": 0}, "resolve_after"),
        ({"history": 0}, "history"),
        ({"max_reasons": 0}, "max_reasons"),
    ],
)
def test_constructor_rejects_bad_parameters_by_name(kwargs: dict[str, int], name: str) -> None:
    with pytest.raises(DecisionInputError, match=name):
        DecisionPolicy(make_config(), "m", "1", **kwargs)


@pytest.mark.parametrize(
    ("accuracy", "fires"),
    [
        (0.92, True),  # 0.03 below the 0.95 baseline: at least half of max_drop 0.05
        (0.94, False),  # 0.01 below: a single flag must persist first
    ],
)
def test_a_concept_flag_confirmed_by_a_performance_loss_fires_at_once(
    accuracy: float, fires: bool
) -> None:
    policy = DecisionPolicy(make_config(k=2, n=3, policy="on_drift"), "m", "1")
    observation = PerformanceObservation("accuracy", accuracy, 1_000, baseline=0.95)
    decision = policy.decide(*window(0), CLEAN, observation, concept_drift=True)
    assert decision.firing is fires
    assert (decision.retrain is not None) is fires
    assert not decision.performance_breach  # below max_drop: the flag alone confirmed it
