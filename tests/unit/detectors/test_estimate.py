"""Label-free performance estimates and the calibration check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.estimate import (
    BinaryScoreSums,
    ScoreSum,
    calibration_report,
    expected_accuracy,
)

score_batches = st.lists(
    st.lists(st.floats(0.0, 1.0), min_size=0, max_size=30), min_size=1, max_size=5
)


@settings(max_examples=60, deadline=None)
@given(batches=score_batches)
def test_score_sums_merged_pane_by_pane_equal_folding_everything_at_once(
    batches: list[list[float]],
) -> None:
    """Merge equals one fold, for both summaries."""
    merged = ScoreSum()
    for batch in batches:
        merged = merged + ScoreSum.from_scores(batch)
    everything = [s for batch in batches for s in batch]
    once = ScoreSum.from_scores(everything)
    assert merged.count == once.count
    assert merged.total == pytest.approx(once.total, abs=1e-9)

    binary = [BinaryScoreSums.from_scores(batch, 0.3) for batch in batches]
    total = binary[0]
    for part in binary[1:]:
        total = total + part
    whole = BinaryScoreSums.from_scores(everything, 0.3)
    assert (total.n_positive, total.n_negative) == (whole.n_positive, whole.n_negative)
    assert total.score_positive == pytest.approx(whole.score_positive, abs=1e-9)
    assert total.score_negative == pytest.approx(whole.score_negative, abs=1e-9)


def test_expected_accuracy_is_the_mean_top_class_score() -> None:
    """Rows' maxima for class probabilities; max(s, 1 - s) for binary positive scores."""
    multi = ScoreSum.from_scores([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    assert multi.expected_accuracy == pytest.approx((0.7 + 0.4) / 2)
    assert ScoreSum.from_scores([0.9, 0.2]).expected_accuracy == pytest.approx((0.9 + 0.8) / 2)
    assert expected_accuracy(3.0, 4) == 0.75
    assert math.isnan(ScoreSum().expected_accuracy)


def test_calibrated_scores_predict_the_realised_binary_metrics() -> None:
    """Labels drawn with P(y=1) = score: realised accuracy, precision, recall, F1 match."""
    rng = np.random.default_rng(21)
    scores = rng.beta(2.0, 3.0, size=200_000)
    labels = rng.random(scores.size) < scores
    predicted = scores >= 0.5
    tp = np.sum(predicted & labels)
    fp = np.sum(predicted & ~labels)
    fn = np.sum(~predicted & labels)
    tn = np.sum(~predicted & ~labels)

    estimate = BinaryScoreSums.from_scores(scores, 0.5)

    assert estimate.expected_accuracy == pytest.approx((tp + tn) / scores.size, abs=0.005)
    assert estimate.expected_precision == pytest.approx(tp / (tp + fp), abs=0.005)
    assert estimate.expected_recall == pytest.approx(tp / (tp + fn), abs=0.005)
    assert estimate.expected_f1 == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=0.005)
    top = ScoreSum.from_scores(scores)
    assert top.expected_accuracy == pytest.approx(estimate.expected_accuracy, abs=1e-9)


def test_expected_confusion_is_the_sum_of_scores_split_by_prediction() -> None:
    """tp = sum of s over predicted positives, fp = their count minus that, and so on."""
    sums = BinaryScoreSums.from_scores([0.9, 0.6, 0.4, 0.1], threshold=0.5)
    tp, fp, fn, tn = sums.expected_confusion
    assert (tp, fp, fn, tn) == pytest.approx((1.5, 0.5, 0.5, 1.5))
    assert sums.count == 4


def test_histogram_with_score_sums_gives_exactly_the_per_score_result() -> None:
    """Bins split at the threshold plus per-bin score sums lose nothing."""
    rng = np.random.default_rng(22)
    scores = rng.random(5000)
    edges = np.linspace(0.1, 0.9, 9)
    index = np.searchsorted(edges, scores, side="right")
    counts = np.bincount(index, minlength=10)
    sums = np.bincount(index, weights=scores, minlength=10)

    from_hist = BinaryScoreSums.from_histogram(edges, counts, float(edges[4]), score_sums=sums)
    direct = BinaryScoreSums.from_scores(scores, float(edges[4]))

    assert from_hist.n_positive == direct.n_positive
    assert from_hist.score_positive == pytest.approx(direct.score_positive)
    assert from_hist.score_negative == pytest.approx(direct.score_negative)


def test_histogram_without_score_sums_is_within_half_a_bin_width_per_prediction() -> None:
    """Midpoints stand in for the scores: each sum is off by at most count * width / 2."""
    rng = np.random.default_rng(23)
    scores = rng.random(5000)
    edges = np.linspace(0.1, 0.9, 9)
    counts = np.bincount(np.searchsorted(edges, scores, side="right"), minlength=10)

    approx = BinaryScoreSums.from_histogram(edges, counts, 0.5)
    direct = BinaryScoreSums.from_scores(scores, 0.5)

    assert abs(approx.score_positive - direct.score_positive) <= approx.n_positive * 0.05
    assert abs(approx.score_negative - direct.score_negative) <= approx.n_negative * 0.05


def test_histogram_threshold_must_be_an_edge_and_merges_need_one_threshold() -> None:
    """A threshold inside a bin cannot split it; sums at different thresholds do not add."""
    with pytest.raises(ValueError, match="one of the histogram's edges"):
        BinaryScoreSums.from_histogram([0.4, 0.6], [1, 2, 3], 0.5)
    with pytest.raises(ValueError, match="thresholds"):
        BinaryScoreSums.from_scores([0.2], 0.5) + BinaryScoreSums.from_scores([0.2], 0.6)


def test_metrics_without_predictions_on_a_side_are_nan() -> None:
    """Nothing predicted positive: precision undefined."""
    sums = BinaryScoreSums.from_scores([0.1, 0.2], threshold=0.5)
    assert math.isnan(sums.expected_precision)
    assert sums.expected_recall == 0.0


# --- calibration ---------------------------------------------------------------------------


def _calibration_inputs(
    scores: np.ndarray, labels: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = np.searchsorted(edges, scores, side="right")
    size = edges.size + 1
    counts = np.bincount(index, minlength=size)
    positives = np.bincount(index, weights=labels, minlength=size).astype(np.int64)
    sums = np.bincount(index, weights=scores, minlength=size)
    return counts, positives, sums


def test_calibrated_scores_have_small_ece_and_pass_hosmer_lemeshow() -> None:
    """Labels drawn with P(y=1) = score: ECE near 0, p-value not small."""
    rng = np.random.default_rng(24)
    scores = rng.random(20_000)
    labels = rng.random(scores.size) < scores
    edges = np.linspace(0.1, 0.9, 9)
    counts, positives, sums = _calibration_inputs(scores, labels, edges)

    report = calibration_report(edges, counts, positives, score_sums=sums)

    assert report.ece < 0.02
    assert report.p_value is not None
    assert report.p_value > 0.001
    assert not report.to_result(threshold=0.05).drifted


def test_overconfident_scores_have_large_ece_and_fail_hosmer_lemeshow() -> None:
    """True P(y=1) = 0.5 + (s - 0.5)/2: scores twice as extreme as they should be."""
    rng = np.random.default_rng(25)
    scores = rng.random(20_000)
    labels = rng.random(scores.size) < 0.5 + (scores - 0.5) / 2
    edges = np.linspace(0.1, 0.9, 9)
    counts, positives, sums = _calibration_inputs(scores, labels, edges)

    report = calibration_report(edges, counts, positives, score_sums=sums)
    result = report.to_result(threshold=0.05, column="score")

    assert report.ece == pytest.approx(0.125, abs=0.01)  # E|s - 0.5| / 2 for uniform scores
    assert report.p_value is not None
    assert report.p_value < 1e-10
    assert result.drifted
    assert (result.test, result.kind, result.n_current) == ("ece", "performance", 20_000)


def test_ece_mce_and_hosmer_lemeshow_match_a_hand_computed_case() -> None:
    """Bins [0,.5) and [.5,1]: 100 at mean .25 with 20 positives, 100 at .85 with 90.

    Gaps .05 and .05: ECE = MCE = .05. HL = 5^2/(25*.75) + 5^2/(85*.15) = 1.33333 + 1.96078.
    """
    report = calibration_report([0.5], [100, 100], [20, 90], score_sums=[25.0, 85.0])
    assert report.ece == pytest.approx(0.05)
    assert report.mce == pytest.approx(0.05)
    assert report.hosmer_lemeshow == pytest.approx(25 / 18.75 + 25 / 12.75)
    assert [(b.lower, b.upper, b.count) for b in report.bins] == [(0.0, 0.5, 100), (0.5, 1.0, 100)]


def test_calibration_of_an_empty_window_has_no_verdict() -> None:
    """No labelled predictions: NaN ECE, no p-value, not drifted; empty bins are skipped."""
    report = calibration_report([0.5], [0, 0], [0, 0])
    assert math.isnan(report.ece)
    assert report.p_value is None
    assert not report.to_result(threshold=0.05).drifted
    assert calibration_report([0.5], [0, 10], [0, 5]).bins[0].lower == 0.5


def test_calibration_rejects_more_positives_than_predictions() -> None:
    """positives <= counts in every bin."""
    with pytest.raises(ValueError, match="cannot exceed"):
        calibration_report([0.5], [10, 10], [11, 0])
