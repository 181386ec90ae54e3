"""Every category (issue 13, item 5): a category the reference never held is unseen, however
many categories the reference had; the reference's tail, its bound and old profiles."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.config import ModelConfig
from driftline.detectors.columns import CategoricalColumnSummary
from driftline.detectors.engine import ModelMonitor
from driftline.detectors.profile import build_profile, categorical_profile, share_tail_bytes
from driftline.detectors.values import to_categorical
from driftline.schemas.reference import CategoricalProfile, ReferenceProfile

HOUR = 3_600_000
K = 200  # categories of the long feature
NEW = "never-seen"


def _zipf(k: int, s: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** s
    return weights / weights.sum()


def _long_feature(rng: np.random.Generator, n: int) -> np.ndarray:
    names = np.array([f"v{i:03d}" for i in range(K)], dtype=object)
    return names[rng.choice(K, size=n, p=_zipf(K, 1.1))]


def _reference(rng: np.random.Generator, n: int = 50_000) -> ReferenceProfile:
    x = rng.normal(size=n)
    return build_profile(
        "m",
        "1",
        "binary",
        {"x": x, "cat_200": _long_feature(rng, n)},
        prediction=(x > 0).astype(int),
        feature_types={"x": "numeric", "cat_200": "categorical"},
    )


def _config() -> ModelConfig:
    return ModelConfig(
        task="binary",
        pane="1h",
        windows=[{"size": "1h"}],
        allowed_lateness="0s",
        drift={"min_samples": 100, "persistence_k": 1, "persistence_n": 1},
    )


def _unseen_result(monitor: ModelMonitor, rng: np.random.Generator, n: int, new: int) -> Any:
    """One window of ``n`` events of the long feature, ``new`` of them (exactly) a category
    the reference never held; the window's unseen-category result on that feature."""
    values = _long_feature(rng, n)
    values[rng.permutation(n)[:new]] = NEW
    x = rng.normal(size=n)
    monitor.fold_columns(
        np.linspace(0, HOUR - 1, n).astype(np.int64),
        {"x": x, "cat_200": values},
        (x > 0).astype(int),
    )
    [window] = monitor.due(HOUR)
    report = monitor.evaluate(window)
    [result] = [
        r for r in report.quality if r.column == "cat_200" and r.test == "unseen_category_rate"
    ]
    return result


# --- the case of the issue ----------------------------------------------------------------------


def test_a_new_category_at_5_percent_of_a_200_category_feature_is_flagged() -> None:
    """Reference: 50,000 rows, 200 Zipf-distributed categories (150 beyond the top 50 kept as
    bins); window: 10,000 events, exactly 500 of them a category the reference never held.
    Before the tail, the new category hid in ``other`` (the statistic was the other slot's
    change, about 0.05 x (1 - the tail's share), under the 0.05 floor) and was never named."""
    rng = np.random.default_rng(20261202)
    profile = _reference(rng)
    column = profile.features["cat_200"]
    assert isinstance(column, CategoricalProfile)
    assert len(column.categories) == 50
    assert column.other > 0.1  # the tail holds a real share of the reference

    monitor = ModelMonitor(profile, _config())
    result = _unseen_result(monitor, rng, 10_000, 500)

    assert result.statistic == pytest.approx(0.05, abs=1e-12)
    assert result.threshold == 0.05  # the default floor, quality.unseen_categories
    assert result.drifted
    assert result.p_value is not None
    assert result.p_value < 1e-12


def test_the_unseen_count_is_exactly_the_values_the_reference_never_held() -> None:
    rng = np.random.default_rng(7)
    profile = _reference(rng, 20_000)
    column = profile.features["cat_200"]
    assert isinstance(column, CategoricalProfile)
    known = set(column.categories) | set(column.tail)
    live = to_categorical([*_long_feature(rng, 3_000).tolist(), "a", "b", "b", None, NEW])
    summary = CategoricalColumnSummary(column).fold(live)
    oracle = Counter(v for v in live.tolist() if v is not None and v not in known)
    assert summary.unseen == dict(oracle)
    assert summary.unseen_total == sum(oracle.values())
    assert summary.counts[-1] == sum(1 for v in live.tolist() if v is not None) - sum(
        1 for v in live.tolist() if v in column.categories
    )


def test_a_stationary_window_of_the_200_category_feature_is_not_flagged() -> None:
    rng = np.random.default_rng(11)
    profile = _reference(rng)
    result = _unseen_result(ModelMonitor(profile, _config()), rng, 10_000, 0)
    assert result.statistic == 0.0
    assert not result.drifted


# --- hand-computed counts and merges -------------------------------------------------------------

TAILED = CategoricalProfile(
    categories={"a": 0.5, "b": 0.25}, other=0.25, tail=["c", "d"], unseen_rate=0.0, count=8
)


def test_hand_computed_slots_tail_unseen_and_missing() -> None:
    values = ["a", "c", "x", None, "d", "x", "b", "y", "a"]
    column = CategoricalColumnSummary(TAILED).fold(to_categorical(values))
    # a a | b | other: c d x x y ; missing: 1
    assert column.counts.tolist() == [2, 1, 5]
    assert (column.unseen_total, column.unseen, column.nulls, column.n) == (
        3,
        {"x": 2, "y": 1},
        1,
        8,
    )


def test_an_old_profile_without_a_tail_counts_its_whole_other_slot_as_unseen() -> None:
    old = CategoricalProfile(categories={"a": 0.5, "b": 0.25}, other=0.25, count=8)
    assert old.expected_unseen_rate == 0.25
    column = CategoricalColumnSummary(old).fold(to_categorical(["a", "c", "x", None]))
    assert column.counts.tolist() == [1, 0, 2]
    assert (column.unseen_total, column.unseen) == (2, {"c": 1, "x": 1})


values_strategy = st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "x", "y"])))


@settings(max_examples=80, deadline=None)
@given(values_strategy, st.data(), st.integers(0, 2))
def test_merging_the_column_summaries_of_a_split_equals_folding_the_whole(
    values: list[str | None], data: st.DataObject, cap: int
) -> None:
    cut = data.draw(st.integers(0, len(values)))
    keys = to_categorical(values)

    def fold(part: np.ndarray) -> CategoricalColumnSummary:
        return CategoricalColumnSummary(TAILED, unseen_cap=cap).fold(part)

    parts, whole = fold(keys[:cut]).merge(fold(keys[cut:])), fold(keys)
    assert parts == whole
    assert parts.state() == whole.state()
    assert whole.unseen_total == sum(1 for v in values if v in ("x", "y"))


# --- the profile's tail and its bounds -----------------------------------------------------------


def test_the_tail_lists_the_rest_by_frequency_and_good_turing_gives_the_unseen_rate() -> None:
    keys = to_categorical(["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["e", "d", None])
    p = categorical_profile(keys, top_k=2)
    assert list(p.categories) == ["a", "b"]
    assert p.tail == ["c", "d", "e"]  # by count, ties by name
    assert (p.tail_dropped, p.count, p.other) == (0, 12, 4 / 12)
    # two categories seen once in twelve values: m0 = 2/12; nothing dropped
    assert p.unseen_rate == pytest.approx(2 / 12)


def test_categories_beyond_max_categories_are_dropped_and_their_mass_expected_unseen() -> None:
    keys = to_categorical(["a"] * 6 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + ["e"] * 2)
    p = categorical_profile(keys, top_k=1, max_categories=3)
    assert (list(p.categories), p.tail, p.tail_dropped) == (["a"], ["b", "c"], 2)
    # No singletons; d and e, seen twice each, are beyond the bound: Good-Turing gives each
    # r* = 3 N_3 / N_2 = 3 * 1 / 2 of the 17 values.
    assert p.unseen_rate == pytest.approx(3 / 17)
    column = CategoricalColumnSummary(p).fold(to_categorical(["b", "d", "z"]))
    assert (column.counts.tolist(), column.unseen_total) == ([0, 3], 2)


def test_the_tail_bytes_bound_the_json_of_the_tail() -> None:
    names = [f"category-{i:04d}" for i in range(500)]
    keys = to_categorical(["top"] * 1_000 + [n for n in names for _ in range(3)])
    p = categorical_profile(keys, top_k=1, tail_bytes=1_000)
    assert len(orjson.dumps(p.tail)) <= 1_000
    assert len(p.tail) + p.tail_dropped == 500
    assert p.tail == names[: len(p.tail)]
    assert p.unseen_rate == pytest.approx(3 * p.tail_dropped / 2_500)


def test_the_unseen_rate_of_a_truncated_long_tail_is_what_stationary_windows_show() -> None:
    """Zipf over 100,000 categories, a reference of 50,000 rows: its 10,000 names keep most of
    the mass but drop thousands of categories seen once, and live windows keep meeting
    categories the sample never held. The reference's Good-Turing rate matches what stationary
    windows show (the raw frequencies of the dropped categories would overstate it by 0.04)."""
    rng = np.random.default_rng(1)
    k = 100_000
    p = _zipf(k, 1.0)

    def draw(n: int) -> np.ndarray:
        return to_categorical([f"c{i}" for i in rng.choice(k, n, p=p)])

    column = categorical_profile(draw(50_000))
    assert len(column.categories) + len(column.tail) == 10_000
    assert column.tail_dropped > 1_000
    for _ in range(3):
        window = CategoricalColumnSummary(column).fold(draw(10_000))
        assert abs(window.unseen_total / window.n - column.expected_unseen_rate) < 0.015


def test_share_tail_bytes_meets_small_needs_and_splits_the_rest() -> None:
    assert share_tail_bytes([], 10) == []
    assert share_tail_bytes([5, 1_000, 1_000], 305) == [5, 150, 150]
    assert share_tail_bytes([0, 7], 0) == [0, 0]
    assert sum(share_tail_bytes([400, 400, 400], 1_000)) <= 1_000


def test_a_profile_stays_within_its_tail_budget_with_many_long_categorical_features() -> None:
    rng = np.random.default_rng(5)
    n = 5_000
    features = {
        f"id_{j}": [f"{'x' * 200}-{v}" for v in rng.integers(0, 4_000, n)] for j in range(8)
    }
    y = rng.normal(size=n)
    small = build_profile("m", "1", "regression", features, y, tail_bytes=0)
    full = build_profile("m", "1", "regression", features, y)
    assert len(full.model_dump_json()) - len(small.model_dump_json()) <= 131_072
    assert small.content_hash == full.content_hash  # the tail bounds are not the data
    for column in full.features.values():
        assert isinstance(column, CategoricalProfile)
        assert column.tail_dropped > 0
        assert 0.0 < column.expected_unseen_rate <= 1.0


def test_a_profile_written_before_the_tail_existed_still_reads_and_judges_as_before() -> None:
    profile = _reference(np.random.default_rng(3), 5_000)
    data = orjson.loads(profile.model_dump_json())
    for column in data["features"].values():
        for field in ("tail", "tail_dropped", "unseen_rate"):
            column.pop(field, None)
    for field in ("tail", "tail_dropped", "unseen_rate"):
        data["prediction"].pop(field)
    old = ReferenceProfile.model_validate_json(orjson.dumps(data))
    column = old.features["cat_200"]
    assert isinstance(column, CategoricalProfile)
    assert (column.tail, column.unseen_rate, column.expected_unseen_rate) == (
        [],
        None,
        column.other,
    )
    result = _unseen_result(ModelMonitor(old, _config()), np.random.default_rng(4), 2_000, 0)
    assert result.statistic == pytest.approx(result.statistic)  # computed, not NaN
    assert abs(result.statistic) < 0.05
    assert not result.drifted


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tail": ["a"]}, "tail must not repeat one of categories"),
        ({"tail": ["c", "c"], "unseen_rate": 0.0}, "tail must not repeat a category"),
        ({"tail": ["c"]}, "must give its unseen_rate"),
    ],
)
def test_inconsistent_tails_are_rejected(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CategoricalProfile(categories={"a": 0.5}, other=0.5, count=2, **changes)
