"""Raw values as typed columns: category keys and numeric conversion."""

from __future__ import annotations

import numpy as np

from driftline.detectors.values import category_key, to_numeric


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
