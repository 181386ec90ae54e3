"""Column summaries: counts over the reference's bins and categories against direct oracles."""

from __future__ import annotations

import math
import zlib

import numpy as np

from driftline.detectors.columns import CategoricalColumnSummary, NumericColumnSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.values import to_categorical
from driftline.schemas.reference import CategoricalProfile, NumericProfile
from tests.unit.detectors.summary_helpers import PROFILE, bin_counts_oracle


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


def test_categorical_counts_follow_the_profile_order_then_the_other_slot() -> None:
    """The other slot holds the tail and the unseen values; only the unseen are named."""
    country = PROFILE.features["country"]
    assert isinstance(country, CategoricalProfile)
    assert list(country.categories) == ["FR", "DE", "IT"]
    values = ["IT", "FR", "FR", "ES", "PT", "PT", None, "DE"]
    column = CategoricalColumnSummary(country).fold(to_categorical(values))
    assert column.counts.tolist() == [2, 1, 1, 3]
    assert column.categories == ("FR", "DE", "IT")
    # ES is in the reference's tail (beyond its top 3): in the other slot, but not unseen.
    assert country.tail == ["ES"]
    assert column.unseen == {"PT": 2}
    assert (column.unseen_total, column.nulls, column.n) == (2, 1, 7)


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


def test_constant_reference_feature_splits_live_values_at_its_one_edge() -> None:
    profile = build_profile("m", "1", "regression", {"x": [4.0] * 50}, [1.0] * 50)
    column = NumericColumnSummary(profile.features["x"])  # type: ignore[arg-type]
    column.fold(np.array([3.0, 4.0, 4.0, 5.0]))
    assert column.counts.tolist() == [1, 3]
    assert (column.below_range, column.above_range) == (1, 1)
