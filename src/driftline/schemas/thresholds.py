"""Calibrated drift thresholds cached in a reference profile: per column, test, rate and size.

``drift.thresholds: calibrated`` judges each drift test against the effect size that a window of
the live size exceeds, under no drift, with the configured false-positive rate
(:mod:`driftline.detectors.thresholds` computes them by resampling the reference and picks one
for a window). They are computed once, when the profile is built, and travel with it on the
models topic; a profile without them (built before they existed, or not calibrated) is judged
with the fixed floors, as before.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

TestThresholds = dict[str, list[list[float]]]
"""Test name to one row per rate in ``levels``, each with one threshold per size in ``sizes``."""


class CalibratedThresholds(BaseModel):
    """Thresholds on a grid of window sizes and false-positive rates, per column and test.

    ``features[name][test][i][j]`` is the threshold of ``test`` on feature ``name`` at the rate
    ``levels[i]`` for a window of ``sizes[j]`` values; ``prediction`` likewise for the
    prediction column. Between grid sizes the threshold is interpolated linearly in
    ``log(size)`` and ``log(threshold)``; between rates (and below the smallest) the threshold,
    or its square for the distances and Cramér's V, linearly in ``log(rate)``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    sizes: list[int] = Field(min_length=1, description="Window sizes of the grid, increasing.")
    levels: list[float] = Field(
        min_length=1, description="Per-test, per-window false-positive rates, decreasing."
    )
    draws: int = Field(ge=1, description="Resampled windows per size.")
    seed: int = Field(ge=0, description="Seed of the resampling: equal data, equal thresholds.")
    features: dict[str, TestThresholds] = Field(default_factory=dict)
    prediction: TestThresholds = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if any(b <= a for a, b in zip(self.sizes, self.sizes[1:], strict=False)):
            raise ValueError("sizes must be strictly increasing")
        if any(b >= a for a, b in zip(self.levels, self.levels[1:], strict=False)):
            raise ValueError("levels must be strictly decreasing")
        if not all(0.0 < level < 1.0 for level in self.levels):
            raise ValueError("levels must be in (0, 1)")
        for tests in (*self.features.values(), self.prediction):
            for test, rows in tests.items():
                if len(rows) != len(self.levels) or any(len(r) != len(self.sizes) for r in rows):
                    raise ValueError(f"{test}: one row per level, one value per size")
                if any(v <= 0.0 for r in rows for v in r):
                    raise ValueError(f"{test}: thresholds must be positive")
        return self
