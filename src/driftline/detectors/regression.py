"""A regressor's realised performance as mergeable exact sums: MAE, RMSE, R² and bias.

:class:`RegressionSums` is the regression half of
:class:`~driftline.detectors.performance.PerformanceSummary`: the exact sums
(:mod:`driftline.detectors.exact`) of ``y``, ``y**2``, the error ``prediction - y``, its absolute
value and its square, so merging is exact and every metric is the same float however the labels
were split.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TypedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftline.detectors._checks import check_per_label
from driftline.detectors.exact import (
    UNIT,
    exact_square_sum,
    exact_sum,
    exact_value,
    int_from_bytes,
    int_to_bytes,
)
from driftline.detectors.values import FloatArray, to_numeric
from driftline.errors import StatisticsError

__all__ = ["LARGEST", "RegressionState", "RegressionSums", "check_magnitudes"]

_N_SUMS = 5  # y, y**2, error, |error|, error**2
LARGEST = 2.0**510
"""The largest magnitude of a regression label or prediction (about 3.4e153): the squares of
such values and of their differences stay finite, as the exact square sums need."""


def check_magnitudes(values: FloatArray, what: str) -> None:
    """Raise :class:`~driftline.errors.StatisticsError` if any value is beyond
    :data:`LARGEST` in magnitude (NaN passes: it means no value).

    >>> check_magnitudes(np.array([1e300]), "labels")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    driftline.errors.StatisticsError: regression labels must be at most 3.35e+153 in ...
    """
    largest = float(np.nanmax(np.abs(values), initial=0.0))
    if largest > LARGEST:
        raise StatisticsError(
            f"regression {what} must be at most {LARGEST:.3g} in magnitude "
            f"(got {largest:.3g}): their squares are summed"
        )


def check_numbers(labels: Sequence[object], predictions: Sequence[object]) -> None:
    """Raise :class:`~driftline.errors.StatisticsError` if a label or a prediction is not a
    number (a string or a boolean): :meth:`RegressionSums.fold` would skip such a pair, which
    then counts nowhere although it was joined.

    >>> check_numbers([1.5, "x"], [1.0, 2.0])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    driftline.errors.StatisticsError: regression labels must be numbers (got 'x'); ...
    """
    for what, values in (("labels", labels), ("predictions", predictions)):
        _, errors = to_numeric(values)
        if errors:
            bad = next((v for v in values if isinstance(v, str | bool)), "?")
            raise StatisticsError(
                f"regression {what} must be numbers (got {str(bad)[:40]!r}); such a pair "
                "cannot be counted in the model's performance"
            )


class RegressionState(TypedDict):
    """The fields :class:`RegressionSums` adds to a performance summary's encoding."""

    sums: list[bytes]


class RegressionSums:
    """Mergeable exact sums of a regressor's labelled predictions, and the metrics they give.

    Examples
    --------
    >>> sums = RegressionSums()
    >>> _ = sums.fold([1.0, 2.0, None], [1.5, 1.5, 3.0])
    >>> sums.n, sums.mae, sums.mean_error
    (2, 0.5, 0.0)
    """

    METRICS = ("mae", "rmse", "r2", "mean_error")
    """The metrics a regressor reports, by the names the configuration uses."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything folded so far (all state is created here)."""
        self._n = 0
        self._sums = [0] * _N_SUMS

    def fold(
        self,
        labels: ArrayLike | Iterable[object],
        predictions: ArrayLike | Iterable[object],
        scores: Mapping[str, ArrayLike] | None = None,
    ) -> NDArray[np.bool_]:
        """Add labelled predictions, skipping rows without a label or a prediction; returns
        the rows kept. ``scores`` are ignored: a regressor has no class probabilities."""
        truth, _ = to_numeric(labels)
        predicted, _ = to_numeric(predictions)
        check_per_label("predictions", predicted, truth.shape[0])
        keep = ~(np.isnan(truth) | np.isnan(predicted))
        self._fold_kept(truth[keep], predicted[keep])
        return keep

    def _fold_kept(self, truth: FloatArray, predicted: FloatArray) -> None:
        # Checked before any sum changes: a failed fold leaves the sums as they were.
        check_magnitudes(truth, "labels")
        check_magnitudes(predicted, "predictions")
        error = predicted - truth
        if not (np.isfinite(error).all() and np.isfinite(truth).all()):
            raise StatisticsError("labels and predictions must be finite numbers")
        self._sums[0] += exact_sum(truth)
        self._sums[1] += exact_square_sum(truth)
        self._sums[2] += exact_sum(error)
        self._sums[3] += exact_sum(np.abs(error))
        self._sums[4] += exact_square_sum(error)
        self._n += int(truth.shape[0])

    def merge(self, other: RegressionSums) -> RegressionSums:
        """New sums holding both; exact."""
        merged = RegressionSums()
        merged._n = self._n + other._n
        merged._sums = [a + b for a, b in zip(self._sums, other._sums, strict=True)]
        return merged

    # -- reading ----------------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Labelled predictions folded."""
        return self._n

    def _mean(self, index: int) -> float | None:
        if not self._n:
            return None
        return exact_value(self._sums[index]) / self._n

    @property
    def mae(self) -> float | None:
        """Mean absolute error."""
        return self._mean(3)

    @property
    def rmse(self) -> float | None:
        """Root mean squared error."""
        mse = self._mean(4)
        return None if mse is None else math.sqrt(mse)

    @property
    def mean_error(self) -> float | None:
        """Mean of ``prediction - label`` (the bias)."""
        return self._mean(2)

    @property
    def r2(self) -> float | None:
        """Coefficient of determination; None when the labels are constant."""
        if not self._n:
            return None
        s_y, s_yy, _, _, s_ee = self._sums
        # In units of 2**-1126: n * SSE / (n * Syy - Sy**2), all exact integers.
        scale = self._n * s_yy * UNIT
        total = scale - s_y * s_y
        # Syy sums squares rounded to float64 (each within 2**-53): a spread below that
        # rounding is no spread (one label, or labels equal up to rounding).
        if total <= scale >> 50:
            return None
        try:
            return 1.0 - (self._n * s_ee * UNIT) / total
        except OverflowError:  # labels that hardly vary, errors that do: R² below -1.8e308
            return -math.inf

    # -- state ------------------------------------------------------------------------------

    def state(self) -> RegressionState:
        """The sums (but ``n``) as plain fields of a performance summary's encoding."""
        return RegressionState(sums=[int_to_bytes(v) for v in self._sums])

    def restore(self, n: int, state: RegressionState) -> None:
        """Take over ``n`` and a :meth:`state`; raise if it does not hold the five sums."""
        if len(state["sums"]) != _N_SUMS:
            raise StatisticsError(f"{len(state['sums'])} sums encoded, expected {_N_SUMS}")
        self._n = n
        self._sums = [int_from_bytes(v) for v in state["sums"]]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegressionSums):
            return NotImplemented
        return (self._n, self._sums) == (other._n, other._sums)

    __hash__ = None  # type: ignore[assignment]
