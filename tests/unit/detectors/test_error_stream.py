"""The error stream of joined pairs: which error a pair makes and which panes a batch flags."""

from __future__ import annotations

import numpy as np

from driftline.detectors.concept import make_detector
from driftline.detectors.error_stream import pair_errors, watch_errors

MINUTE = 60_000


def test_a_classifier_error_compares_label_and_prediction_as_categories() -> None:
    """1 and "1", True and "true", 2 and 2.0 are one category each: no error."""
    errors, rows = pair_errors("multiclass", [1, True, "a", 2], ["1", "true", "b", 2.0])
    assert errors.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert rows is None


def test_a_regression_error_is_the_absolute_residual_and_non_numbers_make_none() -> None:
    errors, rows = pair_errors("regression", [1.0, 3, "3", 2.0, True], [0.5, 5.0, 1.0, 2.0, 1.0])
    assert errors.tolist() == [0.5, 2.0, 0.0]
    assert rows is not None
    assert rows.tolist() == [0, 1, 3]  # "3" and True are no numbers here


def test_a_jump_in_the_error_rate_flags_the_pane_where_it_starts() -> None:
    at = np.arange(3000, dtype=np.int64) * 1000
    labels = [0] * 3000
    guesses = [0] * 1500 + [1] * 1500  # errors start at 1,500 s: pane 25
    detector = make_detector("adwin")
    flagged = watch_errors(detector, "binary", labels, guesses, at, MINUTE)
    assert flagged
    assert all(start % MINUTE == 0 for start in flagged)
    assert 25 * MINUTE <= flagged[0] <= 27 * MINUTE
    assert len(flagged) == detector.n_drifts == len(detector.drift_positions)


def test_pairs_without_an_error_are_skipped_yet_the_flag_lands_on_the_right_prediction() -> None:
    """Watching a stream with non-number pairs flags what watching it without them does."""
    rng = np.random.default_rng(3)
    n = 2000
    truth = rng.normal(size=n)
    guess = truth + np.where(np.arange(n) < 1000, 0.01, 5.0) * rng.normal(size=n)
    at = np.arange(n, dtype=np.int64) * 1000 + 17
    labels: list[object] = truth.tolist()
    for i in range(0, n, 7):
        labels[i] = "not a number"
    keep = [i for i in range(n) if i % 7]
    full = watch_errors(make_detector("adwin"), "regression", labels, guess.tolist(), at, MINUTE)
    clean = watch_errors(
        make_detector("adwin"),
        "regression",
        [labels[i] for i in keep],
        guess[keep].tolist(),
        at[keep],
        MINUTE,
    )
    assert full
    assert full == clean


def test_a_binary_only_detector_on_residuals_reads_nothing() -> None:
    detector = make_detector("ddm")
    at = np.array([0, 1000], dtype=np.int64)
    assert watch_errors(detector, "regression", [1.0, 2.0], [3.5, 2.0], at, MINUTE) is None
    assert detector.n_seen == 0
    assert watch_errors(detector, "binary", [1, 0], [1, 1], at, MINUTE) == []
    assert detector.n_seen == 2
