"""Reference profiles: quantile bins, categories, baselines, hashing, JSON."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.profile import build_profile, numeric_profile, quantile_levels
from driftline.schemas import CategoricalProfile, NumericProfile, ReferenceProfile


def inverted_cdf(values: list[float], q: Fraction) -> float:
    """The smallest value whose empirical CDF reaches q, by definition."""
    ordered = sorted(values)
    n = len(ordered)
    return next(v for i, v in enumerate(ordered) if Fraction(i + 1, n) >= q)


def numeric(p: ReferenceProfile, name: str) -> NumericProfile:
    column = p.features[name]
    assert isinstance(column, NumericProfile)
    return column


def categorical(p: ReferenceProfile, name: str) -> CategoricalProfile:
    column = p.features[name]
    assert isinstance(column, CategoricalProfile)
    return column


# --- numeric columns -------------------------------------------------------------------------


def test_fine_edges_are_inverted_cdf_quantiles_at_multiples_of_one_over_bins() -> None:
    values = np.random.default_rng(1).normal(size=997).tolist()
    column = numeric_profile(np.array(values), bins=50)
    expected = sorted({inverted_cdf(values, Fraction(k, 50)) for k in range(1, 50)})
    assert column.edges == expected
    assert len(column.edges) == 49  # continuous data: no edge collapses, 50 bins


def test_bin_probabilities_are_the_shares_of_values_in_each_bin() -> None:
    values = np.random.default_rng(2).exponential(size=1_000)
    column = numeric_profile(values, bins=20)
    bounds = [-math.inf, *column.edges, math.inf]
    shares = [
        float(np.mean((values >= lo) & (values < hi))) for lo, hi in itertools.pairwise(bounds)
    ]
    assert column.probabilities == pytest.approx(shares, abs=1e-15)
    assert max(column.probabilities) <= 1 / 20 + 1 / 1_000  # quantile bins are even


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6) | st.integers(-5, 5), min_size=1, max_size=300),
    st.integers(10, 250),
)
def test_decile_edges_are_deciles_and_a_subset_of_the_fine_edges(
    values: list[float], bins: int
) -> None:
    column = numeric_profile(np.array(values, dtype=np.float64), bins=bins)
    assert set(column.decile_edges) <= set(column.edges)
    floats = [float(v) for v in values]
    deciles = sorted({inverted_cdf(floats, Fraction(j, 10)) + 0.0 for j in range(1, 10)})
    assert column.decile_edges == deciles
    assert [str(q) for q in quantile_levels(bins)] == sorted(
        {str(q) for q in quantile_levels(bins)}, key=Fraction
    )


def test_every_bin_from_a_data_edge_holds_reference_mass() -> None:
    values = np.random.default_rng(3).integers(0, 5, size=500).astype(float)
    column = numeric_profile(values, bins=100)
    assert set(column.edges) <= set(values.tolist())  # edges are data values
    assert all(p > 0 for p in column.probabilities[1:])


def test_constant_feature_collapses_to_a_single_edge() -> None:
    column = numeric_profile(np.full(200, 7.5), bins=100)
    assert column.edges == [7.5]
    assert column.decile_edges == [7.5]
    assert column.probabilities == [0.0, 1.0]
    assert (column.minimum, column.maximum, column.count) == (7.5, 7.5, 200)


def test_missing_values_go_to_missing_rate_not_to_the_bins() -> None:
    p = build_profile("m", "1", "regression", {"x": [1.0, None, 2.0, float("nan"), 3.0]}, [0.0] * 5)
    x = numeric(p, "x")
    assert x.count == 3
    assert x.missing_rate == 2 / 5
    assert math.fsum(x.probabilities) == pytest.approx(1.0)


def test_all_missing_numeric_feature_has_no_edges_and_count_zero() -> None:
    p = build_profile(
        "m", "1", "regression", {"x": [None] * 4}, [1.0] * 4, feature_types={"x": "numeric"}
    )
    x = numeric(p, "x")
    assert (x.edges, x.probabilities, x.count, x.missing_rate) == ([], [1.0], 0, 1.0)
    assert (x.minimum, x.maximum) == (None, None)


def test_outer_bins_are_open_and_minimum_maximum_recorded() -> None:
    values = np.arange(1.0, 101.0)
    column = numeric_profile(values, bins=10)
    assert column.edges == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    assert column.probabilities[0] == 0.09  # (-inf, 10): 1..9
    assert column.probabilities[-1] == 0.11  # [90, inf): 90..100
    assert (column.minimum, column.maximum) == (1.0, 100.0)


def test_bins_that_are_not_a_multiple_of_ten_still_contain_the_deciles() -> None:
    values = np.random.default_rng(4).uniform(size=10_000)
    column = numeric_profile(values, bins=15)
    # k/15 and j/10 share 1/5, 2/5, 3/5 and 4/5: 14 + 9 - 4 levels, all distinct values here.
    assert len(column.edges) == len(quantile_levels(15)) == 14 + 9 - 4
    assert set(column.decile_edges) <= set(column.edges)


# --- categorical columns and types -----------------------------------------------------------


def test_categorical_keeps_top_k_by_frequency_then_name_and_the_rest_is_other() -> None:
    values = ["b"] * 3 + ["a"] * 3 + ["c"] * 2 + ["d"] + [None]
    p = build_profile("m", "1", "regression", {"c": values}, [0.0] * 10, top_k=3)
    c = categorical(p, "c")
    assert list(c.categories.items()) == [("a", 3 / 9), ("b", 3 / 9), ("c", 2 / 9)]
    assert (c.other, c.missing_rate, c.count) == (1 / 9, 0.1, 9)


def test_all_missing_categorical_feature_puts_its_empty_mass_in_other() -> None:
    p = build_profile("m", "1", "regression", {"c": [None, None]}, [0.0, 1.0])
    c = categorical(p, "c")
    assert (c.categories, c.other, c.count, c.missing_rate) == ({}, 1.0, 0, 1.0)


def test_types_are_inferred_numbers_numeric_strings_and_bools_categorical() -> None:
    p = build_profile(
        "m",
        "1",
        "regression",
        {
            "n": [1, 2.5, None],
            "s": ["a", "b", None],
            "b": [True, False, True],
            "a": np.array([1, 2, 3], dtype=np.int32),
            "z": ["x", 1, None],
        },
        [0.0, 1.0, 2.0],
    )
    kinds = {name: column.kind for name, column in p.features.items()}
    assert kinds == {
        "n": "numeric", "s": "categorical", "b": "categorical", "a": "numeric",
        "z": "categorical",
    }  # fmt: skip
    assert list(categorical(p, "b").categories) == ["true", "false"]


def test_declared_types_override_inference() -> None:
    p = build_profile(
        "m", "1", "regression", {"zip": [75001, 75002, 75001]}, [0.0] * 3,
        feature_types={"zip": "categorical"},
    )  # fmt: skip
    assert categorical(p, "zip").categories == {"75001": 2 / 3, "75002": 1 / 3}


def test_feature_order_is_kept_as_given() -> None:
    p = build_profile("m", "1", "regression", {"b": [1.0], "a": [2.0]}, [0.0])
    assert list(p.features) == ["b", "a"]


# --- prediction, scores, labels, baseline ----------------------------------------------------


def test_classifier_profile_has_prediction_classes_scores_labels_and_baseline() -> None:
    rng = np.random.default_rng(5)
    n = 2_000
    labels = rng.integers(0, 2, size=n)
    p1 = np.clip(labels * 0.3 + rng.uniform(size=n) * 0.7, 0, 1)
    pred = (p1 > 0.5).astype(int)
    p = build_profile(
        "m", "1", "binary", {"x": rng.normal(size=n)}, pred,
        scores={"0": 1 - p1, "1": p1}, labels=labels,
    )  # fmt: skip
    assert isinstance(p.prediction, CategoricalProfile)
    assert set(p.prediction.categories) == {"0", "1"}
    assert set(p.scores) == {"0", "1"}
    assert p.scores["1"].count == n
    assert isinstance(p.labels, CategoricalProfile)
    tp = int(np.sum((pred == 1) & (labels == 1)))
    fp = int(np.sum((pred == 1) & (labels == 0)))
    fn = int(np.sum((pred == 0) & (labels == 1)))
    assert p.performance["accuracy"] == float(np.mean(pred == labels))
    assert p.performance["precision"] == tp / (tp + fp)
    assert p.performance["recall"] == tp / (tp + fn)
    assert p.performance["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    clipped = np.clip(np.where(labels == 1, p1, 1 - p1), 1e-15, 1 - 1e-15)
    assert p.performance["log_loss"] == pytest.approx(float(-np.mean(np.log(clipped))))
    assert 0.5 < p.performance["roc_auc"] <= 1.0
    assert p.performance["roc_auc_bound"] < 0.01


def test_regression_profile_baseline_matches_numpy() -> None:
    rng = np.random.default_rng(6)
    y = rng.normal(10, 3, size=1_000)
    pred = y + rng.normal(0, 1, size=1_000)
    p = build_profile("m", "1", "regression", {"x": y}, pred, labels=y)
    err = pred - y
    assert isinstance(p.prediction, NumericProfile)
    assert isinstance(p.labels, NumericProfile)
    assert p.performance["mae"] == pytest.approx(float(np.mean(np.abs(err))), rel=1e-14)
    assert p.performance["rmse"] == pytest.approx(float(np.sqrt(np.mean(err**2))), rel=1e-14)
    r2 = 1 - np.sum(err**2) / np.sum((y - y.mean()) ** 2)
    assert p.performance["r2"] == pytest.approx(float(r2), rel=1e-12)
    assert p.scores == {}


def test_positive_class_selects_the_class_of_binary_precision_and_recall() -> None:
    labels = ["fraud", "legit", "legit", "fraud"]
    pred = ["fraud", "fraud", "legit", "legit"]
    default = build_profile("m", "1", "binary", {}, pred, labels=labels)
    chosen = build_profile("m", "1", "binary", {}, pred, labels=labels, positive_class="fraud")
    assert default.performance["recall"] == 0.5  # "legit": last in sorted order
    assert chosen.performance["precision"] == 0.5
    assert chosen.performance["recall"] == 0.5


def test_profile_without_labels_has_no_baseline() -> None:
    p = build_profile("m", "1", "multiclass", {"x": [1.0, 2.0, 3.0]}, ["a", "b", "c"])
    assert (p.labels, p.performance, p.n_rows) == (None, {}, 3)


# --- hashing and JSON ------------------------------------------------------------------------


def test_content_hash_depends_on_the_data_only() -> None:
    features = {"x": [1.0, 2.0, None], "c": ["a", "b", "a"]}
    a = build_profile("m", "1", "binary", features, [0, 1, 1])
    b = build_profile(
        "other", "9", "binary", {"c": np.array(["a", "b", "a"]), "x": (1, 2, np.nan)},
        np.array([0, 1, 1]), bins=30,
    )  # fmt: skip
    c = build_profile("m", "1", "binary", {**features, "x": [1.0, 2.5, None]}, [0, 1, 1])
    assert len(a.content_hash) == 64
    zero = build_profile("m", "1", "regression", {"x": [0.0, 1.0]}, [0.0, 1.0])
    negative_zero = build_profile("m", "1", "regression", {"x": [-0.0, 1]}, [0, 1.0])
    assert zero.content_hash == negative_zero.content_hash
    assert a.content_hash == b.content_hash  # same values, other containers, names, bins
    assert a.content_hash != c.content_hash


json_values = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(2**53), 2**53),
)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 30).flatmap(
        lambda n: st.tuples(
            st.lists(json_values, min_size=n, max_size=n),
            st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=n, max_size=n),
            st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n),
            st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n),
            st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n),
        )
    ),
    st.integers(10, 120),
    st.integers(1, 5),
)
def test_profile_round_trips_exactly_through_json(
    columns: tuple[list[Any], ...], bins: int, top_k: int
) -> None:
    num, text, pred, score, labels = columns
    p = build_profile(
        "m", "1", "multiclass", {"num": num, "text": text}, pred,
        scores={"a": score}, labels=labels, feature_types={"num": "numeric"},
        bins=bins, top_k=top_k,
    )  # fmt: skip
    again = ReferenceProfile.model_validate_json(p.model_dump_json())
    assert again == p
    assert again.model_dump_json() == p.model_dump_json()
    assert list(again.features["text"].model_dump()["categories"]) == list(
        categorical(p, "text").categories
    )


# --- bad parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, "task must be one of"),
        ({"bins": 0}, r"bins must be an integer in 1\.\."),
        ({"top_k": 0}, r"top_k must be an integer in 1\.\."),
        ({"feature_types": {"nope": "numeric"}}, "not in features: .'nope'."),
        ({"feature_types": {"x": "text"}}, "'numeric' or 'categorical'"),
        ({"features": {"x": [1.0, 2.0]}}, "has 3 rows, the columns before it 2"),
        ({"features": {"x": [1.0, "a", 2.0]}, "feature_types": {"x": "numeric"}}, "feature 'x'"),
        ({"features": {"x": [1.0, math.inf, 2.0]}}, "infinite"),
        ({"task": "regression", "scores": {"1": [0.1, 0.2, 0.3]}}, "for classifiers"),
        ({"scores": {"1": [0.1, 1.2, 0.3]}}, r"scores\['1'\] must be probabilities"),
        ({"prediction": [0, 1, 2]}, "task is 'binary' but the data has 3 classes"),
        ({"positive_class": "2", "labels": [0, 1, 1]}, "positive_class must be one of"),
        ({"features": {}, "prediction": []}, "at least one row"),
    ],
)
def test_bad_parameters_are_rejected_with_a_message_naming_them(
    kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {
        "task": "binary", "features": {"x": [1.0, 2.0, 3.0]}, "prediction": [0, 1, 1],
    }  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        build_profile("m", "1", args.pop("task"), args.pop("features"), args.pop("prediction"),
                      **args)  # fmt: skip
