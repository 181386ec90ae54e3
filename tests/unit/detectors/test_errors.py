"""The pure package's errors all belong to driftline's one exception tree."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import driftline.detectors
from driftline.detectors.concept import make_detector
from driftline.detectors.exact import exact_sum
from driftline.errors import DriftlineError, StatisticsError

PACKAGE = Path(driftline.detectors.__file__).parent


def test_no_module_of_the_pure_package_raises_a_plain_value_error() -> None:
    """A caller that catches StatisticsError must see every bad-input error of detectors/."""
    plain = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = node.exc.func
                if isinstance(name, ast.Name) and name.id == "ValueError":
                    plain.append(f"{path.name}:{node.lineno}")
    assert plain == []


def test_statistics_errors_are_driftline_errors_and_value_errors() -> None:
    with pytest.raises(StatisticsError, match="finite") as info:
        exact_sum(np.array([np.inf]))
    assert isinstance(info.value, DriftlineError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(StatisticsError, match="unknown detector"):
        make_detector("cusum")
