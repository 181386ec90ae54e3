"""Pane summaries: counts against direct oracles, exact merges, bytes."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.batch import ColumnBatch, columns_from_events
from driftline.detectors.columns import CategoricalColumnSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.errors import DecodeError, SummaryMismatchError
from driftline.schemas import decode_prediction
from driftline.schemas.reference import CategoricalProfile, NumericProfile
from tests.unit.detectors.summary_helpers import (
    PROFILE,
    REF_DATA,
    batch_of,
    bin_counts_oracle,
    event_bytes,
)

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


def test_unseen_cap_must_be_a_non_negative_integer() -> None:
    with pytest.raises(ValueError, match="unseen_cap must be an integer >= 0"):
        PaneSummary(PROFILE, unseen_cap=-1)


# --- merging and bytes -----------------------------------------------------------------------


def test_merge_rejects_summaries_of_another_profile() -> None:
    other = build_profile("fraud", "4", "binary", {"amount": [1.0, 2.0]}, [0, 1])
    with pytest.raises(SummaryMismatchError, match="different reference profiles"):
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
    # 427 bytes since each categorical column carries its unseen_total (issue 13): an added
    # trailing field, read as absent by the decoders before it, so the format stays 1.
    assert (len(data), hashlib.sha256(data).hexdigest()) == (
        427,
        "75e9717f739a2b1f56802e5e110628886cfd340a6ec6ac425b63d103288ee5a0",
    )
    assert PaneSummary.from_bytes(data, ref).to_bytes() == data


def _without_unseen_totals(state: Any) -> Any:
    """A decoded pane state as stage 1 encoded it before categorical columns had
    ``unseen_total`` (tagged ``"c"`` arrays one element shorter)."""
    if isinstance(state, list):
        if state and state[0] == "c" and len(state) == 5:
            return state[:4]
        return [_without_unseen_totals(item) for item in state]
    if isinstance(state, dict):
        return {key: _without_unseen_totals(value) for key, value in state.items()}
    return state


def test_a_partial_encoded_before_unseen_totals_decodes_with_its_other_slot_unseen() -> None:
    """Old profiles have no tail, so their other slot was all unseen: a partial from a stage 1
    of before still decodes, with the same unseen count as it had then."""
    old_profile = PROFILE.model_copy(
        update={
            "features": {
                name: column.model_copy(update={"tail": [], "unseen_rate": None})
                if isinstance(column, CategoricalProfile)
                else column
                for name, column in PROFILE.features.items()
            }
        }
    )
    rows = [{"country": c, "prediction": 1, "t": i} for i, c in enumerate(["FR", "ES", "PT", "PT"])]
    summary = PaneSummary(old_profile).fold(batch_of(rows, old_profile))
    old_bytes = msgspec.msgpack.encode(
        _without_unseen_totals(msgspec.msgpack.decode(summary.to_bytes()))
    )
    assert len(old_bytes) == len(summary.to_bytes()) - 2  # country and prediction
    restored = PaneSummary.from_bytes(old_bytes, old_profile)
    assert restored == summary
    assert restored.features["country"].unseen_total == 3  # type: ignore[union-attr]
