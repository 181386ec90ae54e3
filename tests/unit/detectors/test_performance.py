"""Realised performance: metrics against direct formulas, AUC bound, exact merges, bytes."""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.classification import default_positive_class
from driftline.detectors.performance import LABEL_DELAY_EDGES_MS, PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.errors import DecodeError, SummaryMismatchError

CLASSES = ("a", "b", "c")


def exact_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Mann-Whitney U / (P N): ties count one half."""
    u = scipy.stats.mannwhitneyu(positives, negatives).statistic
    return float(u) / (positives.size * negatives.size)


def per_class_oracle(
    labels: list[str], preds: list[str], classes: tuple[str, ...]
) -> dict[str, tuple[float, float, float]]:
    """Precision, recall and F1 per class present in labels or predictions, by counting."""
    out = {}
    for c in classes:
        tp = sum(1 for y, p in zip(labels, preds, strict=True) if y == c and p == c)
        predicted = sum(1 for p in preds if p == c)
        actual = sum(1 for y in labels if y == c)
        if predicted + actual == 0:
            continue
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[c] = (precision, recall, f1)
    return out


def multiclass_sample(n: int, seed: int) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    labels = rng.choice(CLASSES, p=[0.5, 0.3, 0.2], size=n)
    logits = rng.normal(size=(n, 3)) + 1.5 * (labels[:, None] == np.array(CLASSES))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    preds = np.array(CLASSES)[probs.argmax(axis=1)]
    return labels.tolist(), preds.tolist(), {c: probs[:, i] for i, c in enumerate(CLASSES)}


# --- classification oracles ------------------------------------------------------------------


def test_accuracy_precision_recall_f1_match_direct_counts() -> None:
    labels, preds, _ = multiclass_sample(3_000, 1)
    perf = PerformanceSummary("multiclass", CLASSES).fold(labels, preds)
    oracle = per_class_oracle(labels, preds, CLASSES)
    assert perf.accuracy == sum(y == p for y, p in zip(labels, preds, strict=True)) / 3_000
    assert perf.precision_macro == pytest.approx(np.mean([v[0] for v in oracle.values()]))
    assert perf.recall_macro == pytest.approx(np.mean([v[1] for v in oracle.values()]))
    assert perf.f1_macro == pytest.approx(np.mean([v[2] for v in oracle.values()]))
    assert perf.precision == perf.precision_macro  # multiclass headline = macro
    assert perf.confusion.sum() == perf.n == 3_000


def test_binary_metrics_are_those_of_the_positive_class() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, size=1_000)
    preds = np.where(rng.uniform(size=1_000) < 0.8, labels, 1 - labels)
    perf = PerformanceSummary("binary", ("0", "1")).fold(labels, preds)
    oracle = per_class_oracle([str(v) for v in labels], [str(v) for v in preds], ("0", "1"))["1"]
    assert perf.positive_class == "1"
    assert (perf.precision, perf.recall) == pytest.approx(oracle[:2])
    assert perf.f1 == pytest.approx(oracle[2])


def test_log_loss_matches_the_direct_formula_with_clipping() -> None:
    labels, preds, scores = multiclass_sample(2_000, 3)
    scores["b"][:10] = 0.0  # clipped to 1e-15, not -log(0)
    perf = PerformanceSummary("multiclass", CLASSES).fold(labels, preds, scores)
    p_true = np.array([scores[y][i] for i, y in enumerate(labels)])
    expected = -np.mean(np.log(np.clip(p_true, 1e-15, 1 - 1e-15)))
    assert perf.log_loss == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_binary_roc_auc_is_within_its_bound_of_the_exact_mann_whitney_auc(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=800)
    scores = np.clip(rng.normal(0.45 + 0.1 * labels, 0.15), 0, 1).round(rng.integers(2, 6))
    perf = PerformanceSummary("binary", ("0", "1")).fold(labels, labels, {"1": scores})
    exact = exact_auc(scores[labels == 1], scores[labels == 0])
    assert perf.roc_auc is not None
    assert perf.roc_auc_bound is not None
    assert abs(perf.roc_auc - exact) <= perf.roc_auc_bound + 1e-12
    assert perf.roc_auc_bound < 0.02


def test_auc_bound_is_attained_when_every_pair_ties_in_one_bin() -> None:
    perf = PerformanceSummary("binary", ("0", "1")).fold(
        [1, 1, 0, 0], [1, 1, 0, 0], {"1": [0.505, 0.509, 0.501, 0.502]}
    )
    assert (perf.roc_auc, perf.roc_auc_bound) == (0.5, 0.5)  # exact AUC is 1.0: error = bound


def test_auc_is_exact_when_positives_and_negatives_never_share_a_bin() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, size=200)
    scores = (rng.integers(0, 100, size=200) + 0.5) / 100  # bin centres, one value per bin
    perf = PerformanceSummary("binary", ("0", "1"), score_bins=100).fold(
        labels, labels, {"1": scores}
    )
    exact = exact_auc(scores[labels == 1], scores[labels == 0])
    ties_within_value = perf.roc_auc_bound
    assert perf.roc_auc == pytest.approx(exact, abs=1e-15)
    assert ties_within_value is not None
    assert ties_within_value > 0


def test_multiclass_roc_auc_is_the_macro_one_vs_rest_within_its_bound() -> None:
    labels, preds, scores = multiclass_sample(1_500, 4)
    perf = PerformanceSummary("multiclass", CLASSES).fold(labels, preds, scores)
    y = np.array(labels)
    exact = np.mean([exact_auc(scores[c][y == c], scores[c][y != c]) for c in CLASSES])
    assert perf.roc_auc is not None
    assert perf.roc_auc_bound is not None
    assert abs(perf.roc_auc - exact) <= perf.roc_auc_bound + 1e-12
    for c in CLASSES:
        one = perf.class_roc_auc(c)
        assert one is not None
        assert abs(one[0] - exact_auc(scores[c][y == c], scores[c][y != c])) <= one[1] + 1e-12


def test_binary_score_of_one_class_implies_the_other() -> None:
    labels, scores = [0, 1, 1, 0], [0.2, 0.7, 0.9, 0.4]
    one = PerformanceSummary("binary", ("0", "1")).fold(labels, labels, {"1": scores})
    both = PerformanceSummary("binary", ("0", "1")).fold(
        labels, labels, {"0": [1 - s for s in scores], "1": scores}
    )
    assert one.log_loss == pytest.approx(both.log_loss)
    assert one.class_roc_auc("0") == both.class_roc_auc("0")


def test_unknown_classes_go_to_the_other_slot_and_are_correct_only_when_equal() -> None:
    perf = PerformanceSummary("multiclass", CLASSES).fold(
        ["a", "z", "z", "y", None], ["a", "z", "y", "a", "b"]
    )
    assert perf.n == 4  # the unlabelled row is skipped
    assert perf.accuracy == 2 / 4  # a==a, z==z; z!=y although both are "other"
    assert perf.confusion[3].tolist() == [1, 0, 0, 2]
    assert perf.confusion.shape == (4, 4)


# --- regression oracles ----------------------------------------------------------------------


def test_regression_metrics_match_numpy() -> None:
    rng = np.random.default_rng(8)
    y = rng.normal(100, 20, size=5_000)
    pred = y + rng.normal(2, 5, size=5_000)
    perf = PerformanceSummary("regression").fold(y, pred)
    err = pred - y
    assert perf.mae == pytest.approx(float(np.mean(np.abs(err))), rel=1e-14)
    assert perf.rmse == pytest.approx(float(np.sqrt(np.mean(err**2))), rel=1e-14)
    assert perf.mean_error == pytest.approx(float(np.mean(err)), rel=1e-12)
    r2 = 1 - np.sum(err**2) / np.sum((y - y.mean()) ** 2)
    assert perf.r2 == pytest.approx(float(r2), rel=1e-12)
    assert perf.accuracy is None
    assert perf.roc_auc is None


def test_r2_is_undefined_for_constant_labels_however_they_round() -> None:
    perf = PerformanceSummary("regression").fold([0.1] * 7, [0.2, 0.1, 0.0, 0.3, 0.1, 0.1, 0.1])
    assert perf.r2 is None
    assert perf.mae == pytest.approx(0.4 / 7)


def test_r2_of_hardly_varying_labels_and_large_errors_is_minus_infinity() -> None:
    """R² below the float range is -inf (dropped from points), not an OverflowError."""
    perf = PerformanceSummary("regression").fold([0.0, 1e-155], [1.0, 1.0])
    assert perf.r2 == -math.inf  # 1 - 2 / 0.5e-310
    assert PerformanceSummary.from_bytes(perf.to_bytes()).metrics() == perf.metrics()
    # One tiny label has no spread at all (its rounded square once made R² overflow).
    assert PerformanceSummary("regression").fold([1.98e-148], [1.0]).r2 is None


def test_rows_missing_a_label_or_prediction_are_skipped_in_regression() -> None:
    perf = PerformanceSummary("regression").fold([1.0, None, 3.0, 4.0], [1.5, 2.0, None, 5.0])
    assert perf.n == 2
    assert perf.mae == 0.75


# --- label delay -----------------------------------------------------------------------------


def test_label_delay_histogram_uses_log_spaced_bins() -> None:
    delays = [0, 999, 1_000, 4_999, 3_600_000, 10**10, None]
    perf = PerformanceSummary("binary", ("0", "1")).fold(
        [1] * 7, [1] * 7, label_delay_ms=[d if d is not None else math.nan for d in delays]
    )
    counts = perf.label_delay_counts
    assert counts.shape == (len(LABEL_DELAY_EDGES_MS) + 1,)
    assert LABEL_DELAY_EDGES_MS[:4] == (1_000, 2_000, 5_000, 10_000)
    bounds = [-math.inf, *LABEL_DELAY_EDGES_MS, math.inf]
    expected = [
        sum(1 for d in delays if d is not None and lo <= d < hi)
        for lo, hi in itertools.pairwise(bounds)
    ]
    assert counts.tolist() == expected
    assert perf.n_label_delay == 6
    assert perf.mean_label_delay_ms == sum(d for d in delays if d is not None) / 6


# --- empty, parameters, profile --------------------------------------------------------------


def test_empty_summary_has_no_metrics() -> None:
    for perf in (PerformanceSummary("binary", ("0", "1")), PerformanceSummary("regression")):
        assert perf.n == 0
        assert perf.metrics() == {}
        assert perf.fold([], []).metrics() == {}
        assert perf.mean_label_delay_ms is None


def test_undefined_binary_precision_is_none_not_zero() -> None:
    perf = PerformanceSummary("binary", ("0", "1")).fold([1, 0], [0, 0])
    assert (perf.precision, perf.recall, perf.f1) == (None, 0.0, 0.0)
    assert "precision" not in perf.metrics()


def test_from_profile_takes_the_class_set_of_the_profile() -> None:
    p = build_profile("m", "1", "multiclass", {}, ["b", "a"], scores={"c": [0.1, 0.2]})
    perf = PerformanceSummary.from_profile(p)
    assert perf.classes == ("a", "b", "c")
    assert perf.task == "multiclass"


def test_default_positive_class_prefers_one_and_true() -> None:
    assert default_positive_class(("0", "1")) == "1"
    assert default_positive_class(("false", "true")) == "true"
    assert default_positive_class(("neg", "pos")) == "pos"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("ranking",), {}, "task must be one of"),
        (("multiclass", ("a", "a")), {}, "classes must be distinct"),
        (("regression", ("a",)), {}, "classes must be empty"),
        (("binary", ("a", "b", "c")), {}, "at most 2 classes"),
        (("binary", ("a", "b")), {"positive_class": "c"}, r"positive_class must be one of \['a'"),
        (("multiclass", ("a", "b")), {"positive_class": "a"}, "only binary tasks"),
        (("binary", ("a", "b")), {"score_bins": 0}, r"score_bins must be an integer in 1\.\."),
    ],
)
def test_bad_parameters_are_rejected_with_a_message_naming_them(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PerformanceSummary(*args, **kwargs)


def test_columns_of_different_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="predictions has 1 entries, labels have 2"):
        PerformanceSummary("binary", ("0", "1")).fold([0, 1], [0])


def test_merge_and_from_bytes_reject_mismatches() -> None:
    with pytest.raises(SummaryMismatchError, match="cannot merge"):
        PerformanceSummary("binary", ("0", "1")).merge(PerformanceSummary("regression"))
    with pytest.raises(DecodeError, match="not a performance summary"):
        PerformanceSummary.from_bytes(b"\x00garbage")


# --- merging and bytes -----------------------------------------------------------------------

classification_rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["a", "b", "c", "z"])),
        st.sampled_from(["a", "b", "c", "y"]),
        st.one_of(st.just(math.nan), st.floats(0.0, 1.0)),
        st.one_of(st.just(math.nan), st.floats(0.0, 1.0)),
        st.one_of(st.none(), st.integers(-10, 10**11)),
    ),
    max_size=30,
)
regression_rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.floats(-1e6, 1e6)),
        st.floats(-1e6, 1e6),
        st.one_of(st.none(), st.integers(0, 10**9)),
    ),
    max_size=30,
)


def columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


def fold_classification(rows: list[tuple[Any, ...]]) -> PerformanceSummary:
    labels, preds, sa, sb, delays = columns(rows, 5)
    return PerformanceSummary("multiclass", CLASSES, score_bins=10).fold(
        labels,
        preds,
        {"a": np.array(sa, dtype=float), "b": np.array(sb, dtype=float)},
        [math.nan if d is None else d for d in delays],
    )


def fold_regression(rows: list[tuple[Any, ...]]) -> PerformanceSummary:
    labels, preds, delays = columns(rows, 3)
    return PerformanceSummary("regression").fold(
        labels, preds, label_delay_ms=[math.nan if d is None else d for d in delays]
    )


@settings(max_examples=40, deadline=None)
@given(classification_rows, classification_rows, classification_rows, st.data())
def test_classification_merge_is_exact_associative_commutative_and_equals_one_fold(
    a: list[tuple[Any, ...]],
    b: list[tuple[Any, ...]],
    c: list[tuple[Any, ...]],
    data: st.DataObject,
) -> None:
    x, y, z = fold_classification(a), fold_classification(b), fold_classification(c)
    assert x.merge(y) == y.merge(x)
    assert x.merge(y).merge(z) == x.merge(y.merge(z))
    assert x.merge(y).merge(z) == fold_classification(a + b + c)
    assert x.merge(y).merge(z).to_bytes() == fold_classification(a + b + c).to_bytes()
    cut = data.draw(st.integers(0, len(a)))
    assert fold_classification(a[:cut]).merge(fold_classification(a[cut:])) == x


@settings(max_examples=40, deadline=None)
@given(regression_rows, regression_rows, regression_rows)
def test_regression_merge_is_exact_associative_commutative_and_equals_one_fold(
    a: list[tuple[Any, ...]], b: list[tuple[Any, ...]], c: list[tuple[Any, ...]]
) -> None:
    x, y, z = fold_regression(a), fold_regression(b), fold_regression(c)
    assert x.merge(y) == y.merge(x)
    assert x.merge(y).merge(z) == x.merge(y.merge(z))
    whole = fold_regression(a + b + c)
    assert x.merge(y).merge(z) == whole
    assert x.merge(y).merge(z).rmse == whole.rmse  # exact sums: the very same float


@settings(max_examples=40, deadline=None)
@given(classification_rows, regression_rows)
def test_to_bytes_round_trips_exactly(
    cls_rows: list[tuple[Any, ...]], reg_rows: list[tuple[Any, ...]]
) -> None:
    for perf in (fold_classification(cls_rows), fold_regression(reg_rows)):
        restored = PerformanceSummary.from_bytes(perf.to_bytes())
        assert restored == perf
        assert restored.metrics() == perf.metrics()
        assert restored.to_bytes() == perf.to_bytes()


def test_calibration_of_the_positive_class_comes_from_the_score_histograms() -> None:
    """Well-calibrated scores give a small ECE; scores pushed towards 1 give a large one."""
    rng = np.random.default_rng(3)
    p = rng.random(20_000)
    labels = (rng.random(20_000) < p).astype(int)
    calibrated = PerformanceSummary("binary", ("0", "1"), score_bins=10)
    calibrated.fold(labels, (p > 0.5).astype(int), {"0": 1 - p, "1": p})
    report = calibrated.calibration()
    assert report is not None
    assert report.n == 20_000
    assert report.ece < 0.06  # half a bin width of score spread, plus sampling noise
    skewed = PerformanceSummary("binary", ("0", "1"), score_bins=10)
    q = np.sqrt(p)  # overconfident: larger than the true probability everywhere
    skewed.fold(labels, (q > 0.5).astype(int), {"0": 1 - q, "1": q})
    worse = skewed.calibration()
    assert worse is not None
    # Hand computation: E|sqrt(p) - p| over p ~ U(0,1) = 1/6, within the binning error.
    assert abs(worse.ece - 1 / 6) < 0.03


def test_calibration_is_undefined_for_regression_and_without_labels() -> None:
    assert PerformanceSummary("regression").calibration() is None
    assert PerformanceSummary("binary", ("0", "1")).calibration() is None


# --- the encoding, pinned ---------------------------------------------------------------------
# Stage 1 writes these bytes and stage 2 reads them, possibly from another release: a change to
# the code that changes a single byte of a fixed example is a change of the wire format.


def pinned_binary() -> PerformanceSummary:
    return PerformanceSummary("binary", ("0", "1"), score_bins=4).fold(
        [1, 0, 1, 1, None],
        [1, 0, 0, 1, 1],
        {"1": [0.9, 0.2, 0.4, 0.8, 0.5]},
        [1500, 800, 60_000, 0, 5],
    )


def pinned_multiclass() -> PerformanceSummary:
    return PerformanceSummary("multiclass", ("a", "b", "c"), score_bins=3).fold(
        ["a", "b", "c", "z"],
        ["a", "c", "c", "a"],
        {"a": [0.7, 0.1, 0.2, 0.5], "b": [0.2, 0.6, 0.1, 0.3], "c": [0.1, 0.3, 0.7, 0.2]},
    )


def pinned_regression() -> PerformanceSummary:
    return PerformanceSummary("regression").fold(
        [1.5, 2.0, None, -3.25], [1.0, 2.5, 4.0, -3.0], label_delay_ms=[10, 2e6, 5, 3e9]
    )


@pytest.mark.parametrize(
    ("build", "size", "digest"),
    [
        (pinned_binary, 380, "2b0ad3aef86b843d48c582816d43535ad8641da9632e42e40d7fca9dc916c6a3"),
        (
            pinned_multiclass,
            254,
            "25f4d9f3b46b3251afbb27e49507245406e4ddecbee504a869fbf311b01195da",
        ),
        (
            pinned_regression,
            918,
            "2f0d834aa6939e5d3623cf644040cbb002889de7e584b3334157c19dff1bcf93",
        ),
    ],
)
def test_encoded_bytes_of_fixed_examples_never_change(
    build: Callable[[], PerformanceSummary], size: int, digest: str
) -> None:
    data = build().to_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest)
    assert PerformanceSummary.from_bytes(data).to_bytes() == data
