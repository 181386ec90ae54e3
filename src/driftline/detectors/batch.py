"""A batch of prediction events as columns, typed after a reference profile.

Stage 1 decodes a Kafka batch into :class:`~driftline.schemas.wire.WirePrediction` structs and
turns them into one :class:`ColumnBatch` (:func:`columns_from_events`: one pass over the events
per column, then one array per column); a dataset or a replay builds one from columns of raw
values (:meth:`ColumnBatch.from_columns`). Either way the values are converted alike
(:mod:`driftline.detectors.values`), ready for
:meth:`~driftline.detectors.summary.PaneSummary.fold`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftline.detectors.values import (
    FloatArray,
    IntArray,
    ObjectArray,
    to_categorical,
    to_numeric,
)
from driftline.errors import StatisticsError
from driftline.schemas.reference import NumericProfile, ReferenceProfile
from driftline.schemas.wire import WirePrediction, event_time_ms

__all__ = ["ColumnBatch", "columns_from_events"]

_INTS = {int}
_NO_SCORES: dict[str, float] = {}


@dataclass(frozen=True, slots=True, eq=False)
class ColumnBatch:
    """A batch of prediction events as columns, typed after a reference profile.

    Numeric features are float64 arrays with NaN for missing values (and for values that were
    not numbers, counted in ``type_errors``); categorical features are object arrays of
    category keys (:func:`category_key`) with None for missing. ``prediction`` is numeric for
    regression and categorical for classifiers; ``scores`` holds one float64 array per class
    of the profile (NaN where an event gave no score for it).

    Examples
    --------
    >>> from driftline.detectors.profile import build_profile
    >>> ref = build_profile("m", "1", "regression", {"x": [1.0, 2.0, 3.0]}, [0.5, 0.7, 0.9])
    >>> batch = ColumnBatch.from_columns(ref, {"x": [2.5, None]}, [0.6, 0.8],
    ...                                  event_time_ms=[1000, 2000])
    >>> batch.n, batch.numeric["x"].tolist()
    (2, [2.5, nan])
    """

    n: int
    numeric: dict[str, FloatArray]
    categorical: dict[str, ObjectArray]
    prediction: FloatArray | ObjectArray
    scores: dict[str, FloatArray]
    event_time_ms: IntArray
    type_errors: dict[str, int] = field(default_factory=dict)
    prediction_type_errors: int = 0

    @classmethod
    def from_columns(
        cls,
        profile: ReferenceProfile,
        features: Mapping[str, ArrayLike | Iterable[object]],
        prediction: ArrayLike | Iterable[object],
        *,
        event_time_ms: ArrayLike,
        scores: Mapping[str, ArrayLike] | None = None,
    ) -> ColumnBatch:
        """A batch from columns of raw values (a dataset, a replay), converted like events.

        Features of the profile absent from ``features`` are missing in every row; columns
        that the profile does not know are ignored.
        """
        times = np.asarray(event_time_ms, dtype=np.int64).ravel()
        n = int(times.shape[0])
        numeric: dict[str, FloatArray] = {}
        categorical: dict[str, ObjectArray] = {}
        type_errors: dict[str, int] = {}
        for name, column in profile.features.items():
            raw = features.get(name)
            if isinstance(column, NumericProfile):
                if raw is None:
                    numeric[name] = np.full(n, np.nan)
                    continue
                numeric[name], type_errors[name] = to_numeric(raw)
                _check_length(name, numeric[name], n)
            else:
                categorical[name] = (
                    np.full(n, None, dtype=object) if raw is None else to_categorical(raw)
                )
                _check_length(name, categorical[name], n)
        pred: FloatArray | ObjectArray
        pred_errors = 0
        if isinstance(profile.prediction, NumericProfile):
            pred, pred_errors = to_numeric(prediction)
        else:
            pred = to_categorical(prediction)
        _check_length("prediction", pred, n)
        score_columns: dict[str, FloatArray] = {}
        given = scores or {}
        for cls_name in profile.scores:
            raw_scores = given.get(cls_name)
            values = (
                np.full(n, np.nan)
                if raw_scores is None
                else np.asarray(raw_scores, dtype=np.float64).ravel()
            )
            _check_length(f"scores[{cls_name!r}]", values, n)
            if not ((values >= 0.0) & (values <= 1.0) | np.isnan(values)).all():
                raise StatisticsError(
                    f"scores[{cls_name!r}] must be probabilities in [0, 1] or NaN"
                )
            score_columns[cls_name] = values
        return cls(n, numeric, categorical, pred, score_columns, times, type_errors, pred_errors)


def _check_length(name: str, column: NDArray[Any], n: int) -> None:
    if column.shape[0] != n:
        raise StatisticsError(
            f"column {name!r} has {column.shape[0]} values but event_time_ms has {n}; "
            "every column of a batch must have one value per event"
        )


def columns_from_events(
    events: Sequence[WirePrediction], profile: ReferenceProfile, *, numeric: bool = True
) -> ColumnBatch:
    """Turn decoded events into one :class:`ColumnBatch`, typed after ``profile``.

    One pass over the events per column gathers plain lists; each list becomes one array. A
    feature absent from an event is missing; a string or boolean in a numeric feature is a
    type error (counted, and missing for the histograms). Features that the profile does not
    know are ignored. ``numeric=False`` leaves the numeric features out (for
    :func:`fold_numeric`, which counts them straight from the events).

    >>> from driftline.detectors.profile import build_profile
    >>> from driftline.schemas import decode_prediction
    >>> ref = build_profile("m", "1", "binary", {"x": [1.0, 2.0]}, [0, 1])
    >>> ev = decode_prediction(b'{"event_id":"e","prediction_id":"p","model":"m",'
    ...     b'"model_version":"1","timestamp":5,"features":{"x":"oops"},"prediction":1}')
    >>> batch = columns_from_events([ev], ref)
    >>> batch.numeric["x"].tolist(), batch.type_errors["x"], batch.prediction.tolist()
    ([nan], 1, ['1'])
    """
    n = len(events)
    feature_dicts = [ev.features for ev in events]
    columns: dict[str, FloatArray] = {}
    categorical: dict[str, ObjectArray] = {}
    type_errors: dict[str, int] = {}
    for name, column in profile.features.items():
        if isinstance(column, NumericProfile):
            if numeric:
                values = list(map(dict.get, feature_dicts, repeat(name)))
                columns[name], type_errors[name] = to_numeric(values)
        else:
            categorical[name] = to_categorical(list(map(dict.get, feature_dicts, repeat(name))))
    predictions = [ev.prediction for ev in events]
    pred: FloatArray | ObjectArray
    pred_errors = 0
    if isinstance(profile.prediction, NumericProfile):
        pred, pred_errors = to_numeric(predictions)
    else:
        pred = to_categorical(predictions)
    scores: dict[str, FloatArray] = {}
    if profile.scores:
        score_dicts = [ev.scores or _NO_SCORES for ev in events]
        for cls_name in profile.scores:
            # None (no score for the class) becomes NaN in a float64 array.
            values = list(map(dict.get, score_dicts, repeat(cls_name)))
            scores[cls_name] = np.array(values, dtype=np.float64)
    stamps = [ev.timestamp for ev in events]
    if set(map(type, stamps)) <= _INTS:  # epoch milliseconds, the usual form
        times = np.array(stamps, dtype=np.int64)
    else:
        times = np.fromiter(map(event_time_ms, stamps), dtype=np.int64, count=n)
    return ColumnBatch(n, columns, categorical, pred, scores, times, type_errors, pred_errors)
