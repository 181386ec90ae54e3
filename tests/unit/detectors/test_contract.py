"""The contract every detector and every registered drift test keeps, checked one by one.

Detectors: parametrised over :data:`~driftline.detectors.concept.DETECTORS` x check. Drift
tests: parametrised over the registry's (test, column kind) pairs x check. A new detector or
test joins these suites by being registered.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from driftline.detectors.concept import DETECTORS, ConceptDriftDetector, detector_from_snapshot
from driftline.detectors.concept import make_detector as make
from driftline.detectors.registry import CATEGORICAL_TESTS, NUMERIC_TESTS, TESTS, run_test
from driftline.detectors.result import TestResult
from driftline.schemas.reference import CategoricalProfile, NumericProfile
from tests.unit.detectors.drift_helpers import counts_over, numeric_profile_from

IntArray = NDArray[np.int64]

# --- concept-drift detectors ---------------------------------------------------------------

# Drifts tolerated on 1000 stationary Bernoulli(0.2) errors. EDDM with its published thresholds
# (alpha 0.95, beta 0.90) fires every few hundred values on such a stream (measured over 20
# seeds: 6.5 per 2000 on average, at most 12), so its budget is the loose one.
FALSE_ALARM_BUDGET = {"eddm": 10}
DEFAULT_BUDGET = 1


def stationary(seed: int, n: int = 1000, rate: float = 0.2) -> IntArray:
    """0/1 errors at a constant rate."""
    return (np.random.default_rng(seed).random(n) < rate).astype(np.int64)


def shifted(seed: int) -> IntArray:
    """500 errors at rate 0.1, then 500 at rate 0.6."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(500) < 0.1, rng.random(500) < 0.6]).astype(np.int64)


def run_in_chunks(detector: ConceptDriftDetector, values: IntArray, size: int) -> list[object]:
    """Feed ``values`` in chunks; what the detector reports after each."""
    trace: list[object] = []
    for start in range(0, values.size, size):
        detector.update(values[start : start + size])
        trace.append((detector.drift_positions, detector.warning_detected, detector.n_drifts))
    return trace


@pytest.fixture(params=DETECTORS)
def make_detector(request: pytest.FixtureRequest) -> Callable[[], ConceptDriftDetector]:
    """A factory of fresh detectors of one kind, with a non-default seed where there is one."""
    name: str = request.param
    params = {"seed": 42} if name == "kswin" else {}
    return lambda: make(name, **params)


def test_update_returns_the_detector(make_detector: Callable[[], ConceptDriftDetector]) -> None:
    """update() returns the detector itself, so calls chain."""
    detector = make_detector()
    assert detector.update([0, 1, 0]) is detector
    assert detector.update([]) is detector
    assert detector.n_seen == 3


def test_reset_clears_all_learned_state(
    make_detector: Callable[[], ConceptDriftDetector],
) -> None:
    """After reset() the detector reports nothing and behaves exactly like a new one."""
    detector = make_detector().update(shifted(0))
    assert detector.n_drifts > 0
    detector.reset()
    assert (detector.n_seen, detector.n_drifts) == (0, 0)
    assert not detector.drift_detected
    assert not detector.warning_detected
    stream = shifted(1)
    assert run_in_chunks(detector, stream, 100) == run_in_chunks(make_detector(), stream, 100)


def test_same_parameters_and_stream_give_the_same_run(
    make_detector: Callable[[], ConceptDriftDetector],
) -> None:
    """Seeded determinism: two detectors built alike agree value for value and in state."""
    a, b = make_detector(), make_detector()
    stream = shifted(2)
    assert run_in_chunks(a, stream, 50) == run_in_chunks(b, stream, 50)
    assert a.snapshot() == b.snapshot()


def test_snapshot_round_trip_gives_identical_subsequent_behaviour(
    make_detector: Callable[[], ConceptDriftDetector],
) -> None:
    """Snapshot mid-stream, through JSON, restore: both continue exactly alike."""
    stream = shifted(3)
    original = make_detector().update(stream[:550])
    snapshot = json.loads(json.dumps(original.snapshot(), allow_nan=False))
    restored = detector_from_snapshot(snapshot)
    assert restored.snapshot() == original.snapshot()
    assert run_in_chunks(restored, stream[550:], 30) == run_in_chunks(original, stream[550:], 30)
    assert restored.snapshot() == original.snapshot()


def test_obvious_increase_of_the_error_rate_is_detected(
    make_detector: Callable[[], ConceptDriftDetector],
) -> None:
    """Error rate 0.1 -> 0.6: a drift within 500 values of the change."""
    stream = shifted(4)
    detector = make_detector().update(stream[:500])
    detector.update(stream[500:])
    assert detector.drift_detected


@pytest.mark.parametrize("seed", [10, 11])
def test_stationary_stream_raises_no_more_than_the_false_alarm_budget(
    make_detector: Callable[[], ConceptDriftDetector], seed: int
) -> None:
    """1000 errors at a constant rate: at most the detector's budget of drifts."""
    detector = make_detector().update(stationary(seed))
    assert detector.n_drifts <= FALSE_ALARM_BUDGET.get(detector.name, DEFAULT_BUDGET)


# --- registered drift tests ----------------------------------------------------------------

THRESHOLDS = {"psi": 0.2, "ks": 0.1, "jensen_shannon": 0.1, "wasserstein": 0.1, "chi2": 0.1}
CASES = [(name, "numeric") for name in sorted(NUMERIC_TESTS)] + [
    (name, "categorical") for name in sorted(CATEGORICAL_TESTS)
]


class Column:
    """A reference profile with an unchanged, an obviously shifted and an empty window."""

    def __init__(self, kind: str) -> None:
        rng = np.random.default_rng(30)
        self.profile: NumericProfile | CategoricalProfile
        if kind == "numeric":
            reference = rng.normal(size=5000)
            self.profile = numeric_profile_from(reference)
            self.n_reference = 5000
            self.same = counts_over(self.profile.edges, reference)
            self.shifted = counts_over(self.profile.edges, rng.normal(2.0, 1.0, size=2000))
        else:
            shares = {"a": 0.4, "b": 0.3, "c": 0.2, "d": 0.05}
            self.profile = CategoricalProfile(categories=shares, other=0.05, count=5000)
            self.n_reference = 5000
            self.same = np.array([2000, 1500, 1000, 250, 250])
            self.shifted = np.array([100, 100, 100, 1500, 200])
        self.empty = np.zeros_like(self.same)

    def run(self, name: str, counts: IntArray, threshold: float | None = None) -> TestResult:
        return run_test(
            name,
            self.profile,
            counts,
            self.n_reference,
            THRESHOLDS[name] if threshold is None else threshold,
            "col",
        )


@pytest.fixture(params=CASES, ids=[f"{name}-{kind}" for name, kind in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, Column]:
    """A registered test and a column of a kind it is defined for."""
    name, kind = request.param
    return name, Column(kind)


def test_result_echoes_the_test_column_threshold_and_sizes(case: tuple[str, Column]) -> None:
    """The result names what was tested, with which threshold, on how many values."""
    name, column = case
    result = run_test(
        name, column.profile, column.shifted, 5000, 0.15, "amount", kind="prediction_drift"
    )
    assert isinstance(result, TestResult)
    assert (result.test, result.column, result.threshold) == (name, "amount", 0.15)
    assert (result.n_reference, result.n_current) == (5000, int(column.shifted.sum()))
    assert result.kind == "prediction_drift"
    assert result.p_value is None or 0.0 <= result.p_value <= 1.0
    assert type(result.statistic) is float  # plain Python values, ready for JSON
    assert type(result.drifted) is bool


def test_verdict_is_statistic_at_or_above_threshold(case: tuple[str, Column]) -> None:
    """drifted == (statistic >= threshold), inclusive at the threshold itself."""
    name, column = case
    statistic = column.run(name, column.shifted).statistic
    assert column.run(name, column.shifted, threshold=statistic).drifted
    assert not column.run(name, column.shifted, threshold=np.nextafter(statistic, np.inf)).drifted


def test_unchanged_window_is_not_drifted(case: tuple[str, Column]) -> None:
    """The reference's own counts as the window: well below the default threshold."""
    name, column = case
    result = column.run(name, column.same)
    assert result.statistic < THRESHOLDS[name] / 4
    assert not result.drifted


def test_obviously_shifted_window_is_drifted(case: tuple[str, Column]) -> None:
    """A two-standard-deviation move (numeric) or reshuffled categories: drifted."""
    name, column = case
    result = column.run(name, column.shifted)
    assert result.drifted
    assert result.p_value is None or result.p_value < 1e-6


def test_empty_window_has_no_statistic_and_no_verdict(case: tuple[str, Column]) -> None:
    """Zero counts: NaN statistic, no p-value, not drifted."""
    name, column = case
    result = column.run(name, column.empty)
    assert math.isnan(result.statistic)
    assert result.p_value is None
    assert not result.drifted


@pytest.mark.parametrize(
    ("name", "kind"),
    [("ks", "categorical"), ("wasserstein", "categorical"), ("chi2", "numeric")],
)
def test_registry_refuses_a_test_on_a_column_kind_it_is_not_defined_for(
    name: str, kind: str
) -> None:
    """The error names the tests allowed for that kind of column."""
    column = Column(kind)
    with pytest.raises(ValueError, match=f"not defined for {kind} columns; allowed"):
        column.run(name, column.same)


def test_registry_names_every_test_for_an_unknown_name() -> None:
    """The error lists the registered names."""
    column = Column("numeric")
    with pytest.raises(ValueError, match="allowed: \\['chi2', 'jensen_shannon', 'ks', 'psi'"):
        run_test("anderson", column.profile, column.same, 5000, 0.1, "x")
    assert set(TESTS) == NUMERIC_TESTS | CATEGORICAL_TESTS
