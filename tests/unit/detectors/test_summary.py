"""Column batches and pane summaries: counts against direct oracles, exact merges, bytes."""

from __future__ import annotations

import hashlib
import itertools
import math
import zlib
from fractions import Fraction
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.profile import build_profile
from driftline.detectors.summary import (
    CategoricalColumnSummary,
    ColumnBatch,
    NumericColumnSummary,
    PaneSummary,
    category_key,
    columns_from_events,
    exact_sum,
    exact_value,
    to_categorical,
    to_numeric,
)
from driftline.errors import DecodeError
from driftline.schemas import ReferenceProfile, decode_prediction
from driftline.schemas.reference import CategoricalProfile, NumericProfile

RNG_SEED = 20261122


def make_reference(n: int = 2_000, seed: int = RNG_SEED) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    p1 = rng.uniform(size=n)
    return {
        "features": {
            "amount": rng.lognormal(3.0, 1.0, size=n),
            "age": rng.integers(18, 90, size=n),
            "country": rng.choice(["FR", "DE", "IT", "ES"], p=[0.4, 0.3, 0.2, 0.1], size=n),
        },
        "prediction": (p1 > 0.5).astype(int),
        "scores": {"0": 1.0 - p1, "1": p1},
    }


REF_DATA = make_reference()
PROFILE = build_profile(
    "fraud",
    "3",
    "binary",
    REF_DATA["features"],
    REF_DATA["prediction"],
    scores=REF_DATA["scores"],
    feature_types={"age": "numeric"},
    bins=20,
    top_k=3,  # ES becomes "other" in the reference
)


def batch_of(rows: list[dict[str, Any]], profile: ReferenceProfile = PROFILE) -> ColumnBatch:
    """A batch from row dicts: feature values, prediction, scores and time."""
    names = list(profile.features)
    return ColumnBatch.from_columns(
        profile,
        {name: [r.get(name) for r in rows] for name in names},
        [r["prediction"] for r in rows],
        scores={c: [r.get("scores", {}).get(c) for r in rows] for c in profile.scores},
        event_time_ms=[r["t"] for r in rows],
    )


def event_bytes(i: int, features: dict[str, Any], prediction: Any, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{i}",
            "prediction_id": f"p{i}",
            "model": "fraud",
            "model_version": "3",
            "timestamp": 1_700_000_000_000 + i,
            "features": features,
            "prediction": prediction,
            **extra,
        }
    )


def bin_counts_oracle(edges: list[float], values: list[float]) -> list[int]:
    """Counts over (-inf, e0), [e0, e1), ..., [e_last, inf) by direct comparison."""
    bounds = [-math.inf, *edges, math.inf]
    return [sum(1 for v in values if lo <= v < hi) for lo, hi in itertools.pairwise(bounds)]


# --- oracles ---------------------------------------------------------------------------------


def test_folding_the_reference_sample_reproduces_the_profile_probabilities_exactly() -> None:
    batch = ColumnBatch.from_columns(
        PROFILE,
        REF_DATA["features"],
        REF_DATA["prediction"],
        scores=REF_DATA["scores"],
        event_time_ms=np.zeros(len(REF_DATA["prediction"]), dtype=np.int64),
    )
    summary = PaneSummary(PROFILE).fold(batch)
    for name, column in PROFILE.features.items():
        counts = summary.counts(name)
        if isinstance(column, NumericProfile):
            assert (counts / counts.sum()).tolist() == column.probabilities
            assert summary.features[name].below_range == summary.features[name].above_range == 0
        else:
            assert isinstance(column, CategoricalProfile)
            assert (counts / counts.sum()).tolist() == [*column.categories.values(), column.other]
    for cls, column in PROFILE.scores.items():
        counts = summary.scores[cls].counts
        assert (counts / counts.sum()).tolist() == column.probabilities


def test_numeric_counts_equal_direct_comparisons_against_the_edges() -> None:
    rng = np.random.default_rng(1)
    values = rng.lognormal(3.2, 1.3, size=3_000)  # shifted: outer bins and out-of-range in use
    edges = PROFILE.features["amount"].edges  # type: ignore[union-attr]
    column = NumericColumnSummary(PROFILE.features["amount"])  # type: ignore[arg-type]
    column.fold(values)
    assert column.counts.tolist() == bin_counts_oracle(edges, values.tolist())
    assert column.counts.shape == (len(edges) + 1,)
    assert column.counts.dtype == np.int64


def test_values_equal_to_an_edge_fall_in_the_bin_that_starts_there() -> None:
    profile = NumericProfile(
        edges=[1.0, 2.0], probabilities=[0.2, 0.5, 0.3], minimum=0.0, maximum=3.0, count=10
    )
    column = NumericColumnSummary(profile).fold(np.array([1.0, 2.0, 0.0, 3.0]))
    assert column.counts.tolist() == [1, 1, 2]
    assert (column.below_range, column.above_range) == (0, 0)


def test_out_of_range_counts_values_strictly_below_minimum_and_above_maximum() -> None:
    column_profile = PROFILE.features["amount"]
    assert isinstance(column_profile, NumericProfile)
    assert column_profile.minimum is not None
    assert column_profile.maximum is not None
    low, high = column_profile.minimum, column_profile.maximum
    values = np.array(
        [low, high, math.nextafter(low, -math.inf), math.nextafter(high, math.inf), -1e9, 1e9]
    )
    column = NumericColumnSummary(column_profile).fold(values)
    assert (column.below_range, column.above_range) == (2, 2)
    assert column.counts.sum() == 6  # out-of-range values still count in the outer bins
    assert column.counts[0] >= 3
    assert column.counts[-1] >= 3


def test_missing_values_and_type_errors_are_counted_apart_from_the_bins() -> None:
    messages = [
        event_bytes(0, {"amount": 10.0, "age": 30, "country": "FR"}, 1),
        event_bytes(1, {"amount": None, "age": "thirty", "country": None}, 0),
        event_bytes(2, {"age": True}, 0),  # amount and country absent, age a boolean
        event_bytes(3, {"amount": "12.5", "age": 40.0, "country": "DE"}, 1),
    ]
    events = [decode_prediction(m) for m in messages]
    summary = PaneSummary(PROFILE).fold_events(events)
    amount, age, country = (summary.features[n] for n in ("amount", "age", "country"))
    assert (amount.n, amount.nulls, amount.type_errors) == (1, 2, 1)
    assert (age.n, age.nulls, age.type_errors) == (2, 0, 2)
    assert (country.n, country.nulls, country.type_errors) == (2, 2, 0)
    assert summary.missing_rate("amount") == 3 / 4
    assert summary.n == 4


def test_categorical_counts_follow_the_profile_order_then_the_other_slot() -> None:
    country = PROFILE.features["country"]
    assert isinstance(country, CategoricalProfile)
    assert list(country.categories) == ["FR", "DE", "IT"]
    values = ["IT", "FR", "FR", "ES", "PT", "PT", None, "DE"]
    column = CategoricalColumnSummary(country).fold(to_categorical(values))
    assert column.counts.tolist() == [2, 1, 1, 3]
    assert column.categories == ("FR", "DE", "IT")
    assert column.unseen == {"ES": 1, "PT": 2}
    assert (column.unseen_total, column.nulls, column.n) == (3, 1, 7)


def test_unseen_names_beyond_the_cap_keep_the_smallest_crc32_with_exact_counts() -> None:
    names = [f"new-{i}" for i in range(40)]
    values = [name for i, name in enumerate(names) for _ in range(i % 3 + 1)]
    column = CategoricalColumnSummary(
        CategoricalProfile(categories={"a": 1.0}, count=1), unseen_cap=5
    ).fold(to_categorical(values))
    expected = sorted(names, key=lambda n: (zlib.crc32(n.encode()), n))[:5]
    assert sorted(column.unseen) == sorted(expected)
    assert all(column.unseen[n] == values.count(n) for n in expected)
    assert column.unseen_total == len(values)


def test_prediction_of_a_classifier_is_counted_over_its_classes() -> None:
    rows = [{"prediction": p, "t": 0} for p in (1, 0, 1, "maybe", True)]
    summary = PaneSummary(PROFILE).fold(batch_of(rows))
    assert isinstance(summary.prediction, CategoricalColumnSummary)
    order = summary.prediction.categories
    assert set(order) == {"0", "1"}
    expected = {"0": 1, "1": 2}
    assert summary.prediction.counts.tolist() == [*(expected[c] for c in order), 2]
    assert summary.prediction.unseen == {"maybe": 1, "true": 1}


def test_prediction_of_a_regressor_is_counted_over_its_quantile_bins() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=500)
    profile = build_profile("r", "1", "regression", {"x": y}, y * 2, bins=10)
    current = rng.normal(0.5, 1.0, size=200) * 2
    batch = ColumnBatch.from_columns(profile, {"x": current}, current, event_time_ms=np.arange(200))
    summary = PaneSummary(profile).fold(batch)
    edges = profile.prediction.edges  # type: ignore[union-attr]
    assert summary.prediction.counts.tolist() == bin_counts_oracle(edges, current.tolist())


def test_score_sums_and_expected_accuracy_match_direct_sums() -> None:
    rng = np.random.default_rng(4)
    p1 = rng.uniform(size=1_000)
    p1[::7] = np.nan  # events without scores
    p0 = 1.0 - p1
    p0[::11] = np.nan  # events that scored only class 1
    rows = [{"prediction": 1, "t": i} for i in range(1_000)]
    batch = batch_of(rows)
    batch = ColumnBatch(
        batch.n,
        batch.numeric,
        batch.categorical,
        batch.prediction,
        {"0": p0, "1": p1},
        batch.event_time_ms,
    )
    summary = PaneSummary(PROFILE).fold(batch)
    assert summary.score_total("1") == math.fsum(p1[~np.isnan(p1)].tolist())
    assert summary.score_mean("0") == math.fsum(p0[~np.isnan(p0)].tolist()) / np.sum(~np.isnan(p0))
    top = np.fmax(p0, p1)
    scored = top[~np.isnan(top)]
    assert summary.n_scored == scored.size
    assert summary.max_score_total == math.fsum(scored.tolist())
    assert summary.expected_accuracy == pytest.approx(float(scored.mean()), rel=1e-12)


def test_event_time_range_is_the_min_and_max_folded() -> None:
    rows = [{"prediction": 0, "t": t} for t in (50, 10, 99, 20)]
    summary = (
        PaneSummary(PROFILE)
        .fold(batch_of(rows[:2]))
        .merge(PaneSummary(PROFILE).fold(batch_of(rows[2:])))
    )
    assert (summary.event_time_min, summary.event_time_max) == (10, 99)


def test_columns_from_events_agree_with_columns_from_arrays() -> None:
    rng = np.random.default_rng(5)
    rows = []
    messages = []
    for i in range(300):
        amount = float(rng.lognormal(3, 1)) if i % 9 else None
        country = str(rng.choice(["FR", "DE", "IT", "ES", "PT"]))
        p = float(rng.uniform())
        features = {"amount": amount, "age": int(rng.integers(10, 99)), "country": country}
        scores = {"0": 1.0 - p, "1": p}
        rows.append({**features, "prediction": int(p > 0.5), "scores": scores, "t": i})
        messages.append(event_bytes(i, features, int(p > 0.5), scores=scores, timestamp=i))
    events = [decode_prediction(m) for m in messages]
    from_events = PaneSummary(PROFILE).fold(columns_from_events(events, PROFILE))
    assert from_events == PaneSummary(PROFILE).fold(batch_of(rows))
    assert from_events.to_bytes() == PaneSummary(PROFILE).fold(batch_of(rows)).to_bytes()


# --- edge cases ------------------------------------------------------------------------------


def test_empty_batch_changes_nothing() -> None:
    summary = PaneSummary(PROFILE).fold(columns_from_events([], PROFILE))
    assert summary == PaneSummary(PROFILE)
    assert (summary.n, summary.event_time_min, summary.expected_accuracy) == (0, None, None)
    assert summary.missing_rate("amount") is None
    assert all(c.counts.sum() == 0 for c in summary.features.values())


def test_all_missing_reference_feature_counts_live_values_in_its_single_bin() -> None:
    profile = build_profile(
        "m", "1", "regression", {"x": [None, None, None]}, [1.0, 2.0, 3.0],
        feature_types={"x": "numeric"},
    )  # fmt: skip
    column = profile.features["x"]
    assert isinstance(column, NumericProfile)
    assert column.count == 0
    batch = ColumnBatch.from_columns(
        profile, {"x": [5.0, None, 7.0]}, [1.0, 2.0, 3.0], event_time_ms=[1, 2, 3]
    )
    summary = PaneSummary(profile).fold(batch)
    x = summary.features["x"]
    assert (x.counts.tolist(), x.nulls, x.below_range, x.above_range) == ([2], 1, 0, 0)


def test_all_missing_live_feature_counts_only_nulls() -> None:
    rows = [{"prediction": 0, "t": 0} for _ in range(5)]
    summary = PaneSummary(PROFILE).fold(batch_of(rows))
    assert summary.features["amount"].nulls == 5
    assert summary.counts("amount").sum() == 0
    assert summary.missing_rate("country") == 1.0


def test_constant_reference_feature_splits_live_values_at_its_one_edge() -> None:
    profile = build_profile("m", "1", "regression", {"x": [4.0] * 50}, [1.0] * 50)
    column = NumericColumnSummary(profile.features["x"])  # type: ignore[arg-type]
    column.fold(np.array([3.0, 4.0, 4.0, 5.0]))
    assert column.counts.tolist() == [1, 3]
    assert (column.below_range, column.above_range) == (1, 1)


def test_counts_are_read_only_views() -> None:
    summary = PaneSummary(PROFILE).fold(batch_of([{"amount": 5.0, "prediction": 1, "t": 0}]))
    with pytest.raises(ValueError, match="read-only"):
        summary.counts("amount")[0] = 7


def test_reset_forgets_everything_folded() -> None:
    summary = PaneSummary(PROFILE).fold(batch_of([{"amount": 5.0, "prediction": 1, "t": 0}]))
    summary.reset()
    assert summary == PaneSummary(PROFILE)


def test_batch_without_the_profiles_columns_is_rejected() -> None:
    other = build_profile("m", "1", "regression", {"y": [1.0, 2.0]}, [1.0, 2.0])
    batch = ColumnBatch.from_columns(other, {"y": [1.0]}, [1.0], event_time_ms=[0])
    with pytest.raises(ValueError, match="amount"):
        PaneSummary(PROFILE).fold(batch)


def test_batch_columns_of_unequal_length_are_rejected() -> None:
    with pytest.raises(ValueError, match="'amount' has 2 values"):
        ColumnBatch.from_columns(PROFILE, {"amount": [1.0, 2.0]}, [1], event_time_ms=[0])


def test_unseen_cap_must_be_a_non_negative_integer() -> None:
    with pytest.raises(ValueError, match="unseen_cap must be an integer >= 0"):
        PaneSummary(PROFILE, unseen_cap=-1)


# --- merging and bytes -----------------------------------------------------------------------


def test_merge_rejects_summaries_of_another_profile() -> None:
    other = build_profile("fraud", "4", "binary", {"amount": [1.0, 2.0]}, [0, 1])
    with pytest.raises(ValueError, match="different reference profiles"):
        PaneSummary(PROFILE).merge(PaneSummary(other))


def test_from_bytes_rejects_garbage_and_summaries_of_another_profile() -> None:
    other = build_profile("fraud", "4", "binary", {"amount": [1.0, 2.0]}, [0, 1])
    with pytest.raises(DecodeError, match="not a pane summary") as info:
        PaneSummary.from_bytes(b"\x93garbage", PROFILE)
    assert info.value.kind == "invalid_summary"
    with pytest.raises(DecodeError, match="does not match the profile"):
        PaneSummary.from_bytes(PaneSummary(other).to_bytes(), PROFILE)


def test_merge_returns_a_new_summary_and_leaves_its_operands_alone() -> None:
    a = PaneSummary(PROFILE).fold(batch_of([{"amount": 5.0, "prediction": 1, "t": 0}]))
    b = PaneSummary(PROFILE).fold(batch_of([{"amount": 50.0, "prediction": 0, "t": 1}]))
    before = a.to_bytes(), b.to_bytes()
    merged = a.merge(b)
    assert merged.n == 2
    assert (a.to_bytes(), b.to_bytes()) == before


def test_a_summary_is_far_smaller_than_the_events_it_counts() -> None:
    rng = np.random.default_rng(6)
    n = 20_000
    batch = ColumnBatch.from_columns(
        PROFILE,
        {"amount": rng.lognormal(3, 1, n), "age": rng.integers(18, 90, n), "country": ["FR"] * n},
        rng.integers(0, 2, n),
        scores={"1": rng.uniform(size=n)},
        event_time_ms=np.arange(n),
    )
    assert len(PaneSummary(PROFILE).fold(batch).to_bytes()) < 2_000


amounts = st.one_of(
    st.none(),
    st.floats(0.0, 2_000.0),
    st.sampled_from([-5.0, 1e12, "oops"]),  # out of range, and a type error
)
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "amount": amounts,
            "age": st.one_of(st.none(), st.integers(0, 120)),
            "country": st.one_of(st.none(), st.sampled_from(["FR", "DE", "IT", "ES", "PT", "x"])),
            "prediction": st.sampled_from([0, 1, 2]),
            "scores": st.fixed_dictionaries(
                {}, optional={"0": st.floats(0.0, 1.0), "1": st.floats(0.0, 1.0)}
            ),
            "t": st.integers(0, 10**13),
        }
    ),
    max_size=40,
)


def folded(rows: list[dict[str, Any]], cap: int = 2) -> PaneSummary:
    return PaneSummary(PROFILE, unseen_cap=cap).fold(batch_of(rows))


@settings(max_examples=60, deadline=None)
@given(rows_strategy, rows_strategy, rows_strategy)
def test_merge_is_associative_and_commutative(
    a: list[dict[str, Any]], b: list[dict[str, Any]], c: list[dict[str, Any]]
) -> None:
    x, y, z = folded(a), folded(b), folded(c)
    assert x.merge(y) == y.merge(x)
    assert x.merge(y).merge(z) == x.merge(y.merge(z))
    assert x.merge(y).merge(z).to_bytes() == z.merge(x).merge(y).to_bytes()


@settings(max_examples=60, deadline=None)
@given(rows_strategy, st.data())
def test_merging_the_summaries_of_a_split_equals_folding_the_whole(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(rows)))
    parts = folded(rows[:cut]).merge(folded(rows[cut:]))
    whole = folded(rows)
    assert parts == whole
    assert parts.to_bytes() == whole.to_bytes()


@settings(max_examples=60, deadline=None)
@given(rows_strategy, st.integers(0, 3))
def test_to_bytes_round_trips_exactly(rows: list[dict[str, Any]], cap: int) -> None:
    summary = folded(rows, cap)
    restored = PaneSummary.from_bytes(summary.to_bytes(), PROFILE)
    assert restored == summary
    assert restored.to_bytes() == summary.to_bytes()
    assert restored.score_total("1") == summary.score_total("1")


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, max_size=30))
def test_exact_sum_equals_the_rational_sum_and_rounds_correctly(values: list[float]) -> None:
    total = exact_sum(np.array(values, dtype=np.float64))
    rational = sum((Fraction(v) for v in values), Fraction(0))
    assert Fraction(total, 2**1126) == rational
    if abs(rational) < Fraction(2**1023):
        assert exact_value(total) == float(rational)  # correctly rounded, like math.fsum
        try:
            reference = math.fsum(values)
        except OverflowError:  # fsum's partial sums overflow where ours (integers) cannot
            return
        assert exact_value(total) == reference


def test_exact_sum_is_exact_for_subnormals() -> None:
    tiny = np.array([5e-324, 5e-324, -1.5e-323, 2.2250738585072014e-308])
    assert Fraction(exact_sum(tiny), 2**1126) == sum(map(Fraction, tiny.tolist()))


def test_exact_sum_rejects_non_finite_values() -> None:
    with pytest.raises(ValueError, match="finite"):
        exact_sum(np.array([1.0, math.inf]))


def test_scores_outside_zero_to_one_are_rejected_at_the_batch_edge() -> None:
    with pytest.raises(ValueError, match=r"scores\['1'\] must be probabilities"):
        ColumnBatch.from_columns(PROFILE, {}, [1], scores={"1": [1.5]}, event_time_ms=[0])


def test_category_keys_agree_between_json_and_python_spellings() -> None:
    assert [category_key(v) for v in (1, 1.0, np.int64(1), np.float32(1.0))] == ["1"] * 4
    assert [category_key(v) for v in (True, np.bool_(False), "true")] == ["true", "false", "true"]
    assert category_key(0.1) == "0.1"
    assert category_key(1e300) == "1e+300"


def test_to_numeric_never_coerces_strings_or_booleans() -> None:
    values, errors = to_numeric(["1.5", True, 2, None, float("nan")])
    assert np.isnan(values[[0, 1, 3, 4]]).all()
    assert values[2] == 2.0
    assert errors == 2


# --- the encoding, pinned ---------------------------------------------------------------------


def test_encoded_bytes_of_a_fixed_example_never_change() -> None:
    """Stage 1 writes these bytes and stage 2 reads them: one changed byte is a format change."""
    ref = build_profile(
        "m",
        "1",
        "binary",
        {"x": [0.5, 1.5, 2.5, 3.5], "c": ["FR", "DE", "FR", "IT"]},
        [0, 1, 1, 0],
        scores={"1": [0.1, 0.7, 0.8, 0.3]},
        bins=4,
        top_k=2,
    )
    batch = ColumnBatch.from_columns(
        ref,
        {"x": [0.1, 2.0, None, 9.0, "a"], "c": ["FR", "ES", None, "IT", "PT"]},
        [1, 0, 1, 2, None],
        scores={"1": [0.25, 0.5, np.nan, 0.9, 1.0]},
        event_time_ms=[30, 10, 20, 50, 40],
    )
    data = PaneSummary(ref, unseen_cap=1).fold(batch).to_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (
        425,
        "fe830eeafa80b728a7ca7b09d3750b3a7fc2ff01cb00a8f8027b8cfb88aa203b",
    )
    assert PaneSummary.from_bytes(data, ref).to_bytes() == data
