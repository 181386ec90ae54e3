"""Multiplicity correction: Benjamini-Hochberg and Bonferroni against hand computations and
scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.correction import adjust_p_values
from driftline.errors import DecisionInputError


def test_bh_adjusted_p_values_match_a_hand_computed_case() -> None:
    # sorted: 0.01, 0.03, 0.04, 0.20 -> 0.04, 0.06, 0.0533, 0.20 -> step-up min from the top
    adjusted = adjust_p_values([0.01, 0.04, 0.03, 0.20], "bh")
    np.testing.assert_allclose(adjusted, [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.20])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60))
def test_bh_adjusted_p_values_equal_scipy_false_discovery_control(p: list[float]) -> None:
    expected = scipy.stats.false_discovery_control(np.array(p), method="bh")
    np.testing.assert_allclose(adjust_p_values(p, "bh"), expected, rtol=1e-12, atol=1e-15)


def test_bonferroni_multiplies_by_family_size_and_caps_at_one() -> None:
    np.testing.assert_allclose(
        adjust_p_values([0.01, 0.2, 0.004], "bonferroni"), [0.03, 0.6, 0.012]
    )
    assert adjust_p_values([0.6, 0.7], "bonferroni").tolist() == [1.0, 1.0]


def test_adjusting_no_p_values_gives_an_empty_array() -> None:
    assert adjust_p_values([], "bh").size == 0


def test_adjust_rejects_p_values_outside_unit_interval() -> None:
    with pytest.raises(DecisionInputError, match="p_values"):
        adjust_p_values([0.1, 1.5])
