"""Columnar batches and the mergeable pane summary that stage 1 folds them into.

Stage 1 decodes a Kafka batch into :class:`~driftline.schemas.wire.WirePrediction` structs,
turns them into one :class:`ColumnBatch` (one pass over the events, then one array per column)
and folds that into a :class:`PaneSummary`: counts over the reference profile's frozen bins, so
the summary's size never grows with traffic and two summaries merge exactly by addition
(DESIGN §1, §4). Folding is vectorised: one ``np.searchsorted`` and one ``np.bincount`` per
numeric column per batch; categorical columns replace the ``searchsorted`` by one C-level dict
look-up per value (``map(dict.get, ...)``), measured twice as fast as converting strings to a
NumPy string array first. No Python bytecode runs per value in a fold.

Stage 1 goes one step further for numeric features (:meth:`PaneSummary.fold_events`): the
optional C extension ``driftline.detectors._fold`` reads each value out of the events' feature
dicts and counts it in its bin in one pass, without building columns (:func:`fold_numeric`;
measured about 5x faster on 20 features). Without a C compiler at install time the same
function runs on NumPy, with the same counts.

Sums of real numbers (scores, and the error sums in :mod:`driftline.detectors.performance`)
are kept *exactly*, as integers in units of ``2**-1126`` (every finite float64 is a whole
multiple of that unit), so merging is associative and commutative bit for bit, and the
merge of a split equals the fold of the whole, not just approximately.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import msgspec
import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftline.errors import DecodeError
from driftline.schemas.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from driftline.schemas.wire import WirePrediction, event_time_ms

_compiled_fold_numeric: Callable[..., list[tuple[int, int]] | None] | None
try:
    from driftline.detectors._fold import fold_numeric as _compiled_fold_numeric
except ImportError:  # built without a C compiler: fold_numeric runs on NumPy
    _compiled_fold_numeric = None

__all__ = [
    "CategoricalColumnSummary",
    "ColumnBatch",
    "ColumnSummary",
    "NumericColumnSummary",
    "PaneSummary",
    "category_codes",
    "category_index",
    "category_key",
    "columns_from_events",
    "exact_sum",
    "exact_value",
    "fold_numeric",
    "infer_kind",
    "missing_mask",
    "to_categorical",
    "to_numeric",
]

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]
ObjectArray: TypeAlias = NDArray[np.object_]
ColumnKind = Literal["numeric", "categorical"]

_NONE = type(None)
_PLAIN_NUMBERS = frozenset({int, float, _NONE})
_PLAIN_CATEGORIES = frozenset({str, _NONE})
_INTS = {int}
_NO_SCORES: dict[str, float] = {}
_MAX_EXACT_INT = 2.0**53


# --- values ---------------------------------------------------------------------------------


def category_key(value: object) -> str | None:
    """The category a value counts as, or None when it is missing.

    Categories are strings on the wire and in the reference profile, so every value is keyed
    the same way wherever it comes from (a Kafka event, a CSV cell, a NumPy array): strings as
    they are, booleans in JSON spelling, integral numbers without a fraction (JSON does not
    distinguish ``1`` from ``1.0``), other numbers by their shortest repr, NaN as missing.

    >>> [category_key(v) for v in ("FR", True, 3, 3.0, 0.25, None, float("nan"))]
    ['FR', 'true', '3', '3', '0.25', None, None]
    """
    if value is None:
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        if number.is_integer() and abs(number) < _MAX_EXACT_INT:
            return str(int(number))
        return repr(number)
    return str(value)


_NONE_ARRAY = np.array(None, dtype=object)


def missing_mask(keys: ObjectArray) -> NDArray[np.bool_]:
    """Where an object column of category keys holds None.

    >>> missing_mask(np.array(["a", None], dtype=object)).tolist()
    [False, True]
    """
    mask: NDArray[np.bool_] = np.equal(keys, _NONE_ARRAY)
    return mask


def category_index(categories: Sequence[str]) -> dict[str | None, int]:
    """Category to its slot: ``0..k-1`` in order, ``k`` for None (missing).

    Look-ups of anything else default to ``k`` too in :func:`category_codes`, which adds one
    for missing values, so ``k`` is the other/unseen slot and ``k + 1`` the missing one.
    """
    index: dict[str | None, int] = {name: i for i, name in enumerate(categories)}
    index[None] = len(categories) + 1
    return index


def category_codes(index: Mapping[str | None, int], values: ObjectArray) -> IntArray:
    """Slot of each value: its category's, ``k`` if unlisted, ``k + 1`` if missing.

    One C-level dict look-up per value (``map`` over ``dict.get``), no Python bytecode per
    value: for strings this is about twice as fast as converting to a NumPy string array for
    ``searchsorted``.

    >>> category_codes(category_index(["FR", "DE"]), np.array(["DE", "IT", None], dtype=object))
    array([1, 2, 3])
    """
    k = len(index) - 1
    return np.fromiter(map(index.get, values, repeat(k)), dtype=np.int64, count=values.shape[0])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _as_list_or_array(values: ArrayLike | Iterable[object]) -> list[Any] | NDArray[Any]:
    if isinstance(values, np.ndarray):
        return values.ravel() if values.ndim != 1 else values
    if isinstance(values, list):
        return values
    return list(values)  # type: ignore[arg-type]


def infer_kind(values: ArrayLike | Iterable[object]) -> ColumnKind:
    """Numbers are numeric; strings, booleans and anything else categorical.

    A column with no value at all (every entry missing) is categorical: every value that may
    turn up later can be counted as a category, while a string in a numeric column is an error.

    >>> infer_kind([1, 2.5, None]), infer_kind(["a", None]), infer_kind([True, False])
    ('numeric', 'categorical', 'categorical')
    """
    col = _as_list_or_array(values)
    if isinstance(col, np.ndarray) and col.dtype.kind in "fiu":
        return "numeric"
    if isinstance(col, np.ndarray) and col.dtype.kind != "O":
        return "categorical"
    present = [v for v in col if v is not None]
    if present and all(_is_number(v) for v in present):
        return "numeric"
    return "categorical"


def to_numeric(values: ArrayLike | Iterable[object]) -> tuple[FloatArray, int]:
    """A float64 column with NaN for missing values, and how many values were not numbers.

    None and NaN are missing; strings and booleans are type errors and become NaN too (they
    are counted, never coerced: ``"1.5"`` is not a number here).

    >>> x, errors = to_numeric([1, None, "1.5", 2.5])
    >>> x.tolist(), errors
    ([1.0, nan, nan, 2.5], 1)
    """
    col = _as_list_or_array(values)
    if isinstance(col, np.ndarray):
        if col.dtype.kind in "fiu":
            return np.asarray(col, dtype=np.float64), 0
        if col.dtype.kind != "O":
            return np.full(col.shape[0], np.nan), int(col.shape[0])
        col = col.tolist()
    if set(map(type, col)) <= _PLAIN_NUMBERS:
        return np.array(col, dtype=np.float64), 0
    clean = [v if _is_number(v) else None for v in col]
    errors = sum(1 for v in col if v is not None and not _is_number(v))
    return np.array(clean, dtype=np.float64), errors


def to_categorical(values: ArrayLike | Iterable[object]) -> ObjectArray:
    """An object column of category keys (see :func:`category_key`), None for missing.

    >>> to_categorical(["a", 1, None, False]).tolist()
    ['a', '1', None, 'false']
    """
    col = _as_list_or_array(values)
    if isinstance(col, np.ndarray):
        col = col.tolist()
    out = np.empty(len(col), dtype=object)
    types = set(map(type, col))
    if types <= _PLAIN_CATEGORIES:
        out[:] = col
    elif types == _INTS:  # class labels are mostly integers: str() is their key
        out[:] = list(map(str, col))
    else:
        out[:] = [category_key(v) for v in col]
    return out


# --- exact sums -----------------------------------------------------------------------------

# 2**-1126 is the weight of the last mantissa bit of the smallest subnormal float64 once
# np.frexp has normalised it to a 53-bit integer mantissa, so every finite float64 is a whole
# number of these units and sums of them are exact Python integers.
_UNIT_EXPONENT = 1126
_UNIT = 1 << _UNIT_EXPONENT
_HALF_BITS = 26
_LOW_MASK = (1 << _HALF_BITS) - 1
# Per-bin float64 sums of 27-bit halves stay exact below 2**26 values; larger arrays are chunked.
_EXACT_CHUNK = 1 << 25


def exact_sum(values: FloatArray) -> int:
    """The exact sum of finite float64 values, in units of ``2**-1126``.

    Vectorised: the mantissas are split into halves and summed per binary exponent with two
    ``np.bincount`` calls; only the few distinct exponents are combined in Python.

    >>> exact_value(exact_sum(np.array([0.1] * 10))) == math.fsum([0.1] * 10)
    True
    """
    if values.size > _EXACT_CHUNK:
        return sum(
            exact_sum(values[i : i + _EXACT_CHUNK]) for i in range(0, values.size, _EXACT_CHUNK)
        )
    if values.size == 0:
        return 0
    if not np.isfinite(values).all():
        raise ValueError("exact_sum takes finite values only (got inf or NaN)")
    mantissa, exponent = np.frexp(values)
    whole = (mantissa * 2.0**53).astype(np.int64)
    shift = exponent.astype(np.int64) + (_UNIT_EXPONENT - 53)
    high = np.bincount(shift, weights=(whole >> _HALF_BITS).astype(np.float64))
    low = np.bincount(shift, weights=(whole & _LOW_MASK).astype(np.float64))
    total = 0
    for s in np.flatnonzero((high != 0) | (low != 0)).tolist():
        total += ((int(high[s]) << _HALF_BITS) + int(low[s])) << s
    return total


def exact_value(total: int) -> float:
    """The float64 nearest to an exact sum from :func:`exact_sum` (correctly rounded).

    >>> exact_value(exact_sum(np.array([1e100, 1.0, -1e100])))
    1.0
    """
    try:
        return total / _UNIT
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def _int_to_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)


def _int_from_bytes(data: bytes) -> int:
    return int.from_bytes(data, "little", signed=True)


# --- batches --------------------------------------------------------------------------------


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
                raise ValueError(f"scores[{cls_name!r}] must be probabilities in [0, 1] or NaN")
            score_columns[cls_name] = values
        return cls(n, numeric, categorical, pred, score_columns, times, type_errors, pred_errors)


def _check_length(name: str, column: NDArray[Any], n: int) -> None:
    if column.shape[0] != n:
        raise ValueError(
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


def fold_numeric(
    dicts: list[dict[str, Any]],
    names: tuple[str, ...],
    edges: tuple[FloatArray, ...],
    counts: tuple[IntArray, ...],
) -> list[tuple[int, int]]:
    """Count the values of numeric features straight from the events' feature dicts.

    For each ``names[i]``, the value of each dict lands in ``counts[i][k]`` (added in place),
    ``k`` the number of ``edges[i]`` at or below it, as ``np.searchsorted(side="right")``
    places it; a missing value (None, absent, NaN) or one that is no number (a string, a
    boolean) is not counted. Returns (missing, of which type errors) per name. The compiled
    kernel does this in one pass without building columns; it declines what it does not know
    (NumPy scalars, containers), and NumPy then does it the general way.

    >>> counts = (np.zeros(3, dtype=np.int64),)
    >>> fold_numeric([{"x": 0.5}, {"x": 2}, {"x": None}, {"x": "a"}, {}], ("x",),
    ...              (np.array([1.0, 2.0]),), counts)
    [(3, 1)]
    >>> counts[0].tolist()
    [1, 0, 1]
    """
    if _compiled_fold_numeric is not None:
        tallies = _compiled_fold_numeric(dicts, names, edges, counts)
        if tallies is not None:
            return tallies
    return _fold_numeric_numpy(dicts, names, edges, counts)


def _fold_numeric_numpy(
    dicts: list[dict[str, Any]],
    names: tuple[str, ...],
    edges: tuple[FloatArray, ...],
    counts: tuple[IntArray, ...],
) -> list[tuple[int, int]]:
    """:func:`fold_numeric` on NumPy (the reference the compiled kernel is tested against)."""
    tallies = []
    for name, bin_edges, bin_counts in zip(names, edges, counts, strict=True):
        values, errors = to_numeric(list(map(dict.get, dicts, repeat(name))))
        missing = int(np.count_nonzero(np.isnan(values)))
        binned = np.bincount(
            np.searchsorted(bin_edges, values, side="right"), minlength=bin_counts.shape[0]
        )
        binned[-1] -= missing  # NaN sorts after everything
        bin_counts += binned
        tallies.append((missing, errors))
    return tallies


# --- column summaries ---------------------------------------------------------------------


def _readonly(array: NDArray[Any]) -> NDArray[Any]:
    view = array.view()
    view.flags.writeable = False
    return view


class NumericColumnSummary:
    """Counts of one numeric column over the reference's frozen bins.

    ``counts`` has ``len(edges) + 1`` entries, bin ``i`` being ``[edges[i-1], edges[i])`` with
    open outer bins, exactly as :class:`~driftline.schemas.reference.NumericProfile` defines
    them, so drift tests consume it against the profile's ``probabilities`` directly. Missing
    values are counted in ``nulls`` (and values that were not numbers in ``type_errors``),
    never in the bins; ``below_range`` / ``above_range`` count values outside the reference's
    ``[minimum, maximum]`` (they are also in the outer bins).

    Examples
    --------
    >>> from driftline.schemas import NumericProfile
    >>> col = NumericColumnSummary(NumericProfile(edges=[1.0, 2.0], probabilities=[0.25, 0.5,
    ...     0.25], minimum=0.5, maximum=2.5, count=4))
    >>> col.fold(np.array([0.0, 1.0, 1.5, 3.0, np.nan])).counts.tolist()
    [1, 2, 1]
    >>> col.nulls, col.below_range, col.above_range
    (1, 1, 1)
    """

    __slots__ = ("_counts", "_edges", "_nulls", "_ranged", "_type_errors")

    kind: Literal["numeric"] = "numeric"

    def __init__(self, profile: NumericProfile) -> None:
        edges = np.asarray(profile.edges, dtype=np.float64)
        low, high = profile.minimum, profile.maximum
        self._ranged = False
        if low is not None and high is not None:
            self._ranged = edges.shape[0] == 0 or bool(low <= edges[0] <= edges[-1] <= high)
        if self._ranged and low is not None and high is not None:
            # Values below the minimum land before it and values above the maximum after its
            # successor, so the one searchsorted also yields the out-of-range counts.
            top = math.nextafter(high, math.inf)
            edges = np.concatenate((np.array([low]), edges, np.array([top])))
        self._edges = edges
        self.reset()

    def reset(self) -> None:
        """Forget everything folded so far."""
        self._counts = np.zeros(self._edges.shape[0] + 1, dtype=np.int64)
        self._nulls = 0
        self._type_errors = 0

    def fold(self, values: FloatArray, type_errors: int = 0) -> NumericColumnSummary:
        """Count a float64 column (NaN = missing, ``type_errors`` of them not numbers)."""
        missing = int(np.count_nonzero(np.isnan(values)))
        counts = np.bincount(
            np.searchsorted(self._edges, values, side="right"), minlength=self._counts.shape[0]
        )
        counts[-1] -= missing  # NaN sorts after everything
        self._counts += counts
        self._nulls += missing - type_errors
        self._type_errors += type_errors
        return self

    def _merge_in(self, other: NumericColumnSummary) -> None:
        self._counts += other._counts
        self._nulls += other._nulls
        self._type_errors += other._type_errors

    def _copy(self) -> NumericColumnSummary:
        new = object.__new__(NumericColumnSummary)
        new._edges = self._edges
        new._ranged = self._ranged
        new._counts = self._counts.copy()
        new._nulls, new._type_errors = self._nulls, self._type_errors
        return new

    @property
    def counts(self) -> IntArray:
        """Values per reference bin, int64, length ``len(edges) + 1`` (read-only)."""
        if not self._ranged:
            return _readonly(self._counts)
        inner = self._counts[1:-1].copy()
        inner[0] += self._counts[0]
        inner[-1] += self._counts[-1]
        return _readonly(inner)

    @property
    def n(self) -> int:
        """Non-missing numeric values counted."""
        return int(self._counts.sum())

    @property
    def nulls(self) -> int:
        """Missing values (None, NaN, or the feature absent from the event)."""
        return self._nulls

    @property
    def type_errors(self) -> int:
        """Values that were not numbers (strings, booleans)."""
        return self._type_errors

    @property
    def below_range(self) -> int:
        """Values below the reference minimum."""
        return int(self._counts[0]) if self._ranged else 0

    @property
    def above_range(self) -> int:
        """Values above the reference maximum."""
        return int(self._counts[-1]) if self._ranged else 0

    def _state(self) -> _NumericState:
        return _NumericState(self._counts.tolist(), self._nulls, self._type_errors)

    def _load(self, state: _NumericState) -> None:
        if len(state.counts) != self._counts.shape[0]:
            raise ValueError(
                f"{len(state.counts)} bins encoded, the profile has {self._counts.shape[0]}"
            )
        self._counts = np.array(state.counts, dtype=np.int64)
        self._nulls, self._type_errors = state.nulls, state.type_errors

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericColumnSummary):
            return NotImplemented
        return (
            np.array_equal(self._edges, other._edges)
            and np.array_equal(self._counts, other._counts)
            and (self._nulls, self._type_errors) == (other._nulls, other._type_errors)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NumericColumnSummary(n={self.n}, bins={self.counts.shape[0]}, nulls={self.nulls})"


def _unseen_order(name: str) -> tuple[int, str]:
    # A stable hash (not Python's salted hash()): every worker must keep the same names.
    return zlib.crc32(name.encode("utf-8", "surrogatepass")), name


class CategoricalColumnSummary:
    """Counts of one categorical column, aligned with the profile's category order.

    ``counts`` has ``len(categories) + 1`` entries: the profile's categories in their order,
    then one slot for everything else (the profile's ``other``: values outside its top-K,
    including categories never seen in the reference). ``unseen`` names the values of that
    last slot with their counts; when more than ``unseen_cap`` distinct names turn up it keeps
    the ``unseen_cap`` names with the smallest CRC-32, a deterministic sample that merges
    exactly (every kept name's count is exact), while ``unseen_total`` always counts all.

    Examples
    --------
    >>> from driftline.schemas import CategoricalProfile
    >>> col = CategoricalColumnSummary(CategoricalProfile(categories={"FR": 0.75, "DE": 0.25},
    ...                                                   count=4))
    >>> col.fold(np.array(["DE", "FR", "IT", None, "IT"], dtype=object)).counts.tolist()
    [1, 1, 2]
    >>> col.unseen, col.nulls
    ({'IT': 2}, 1)
    """

    __slots__ = ("_cap", "_categories", "_counts", "_index", "_nulls", "_unseen")

    kind: Literal["categorical"] = "categorical"

    def __init__(self, profile: CategoricalProfile, unseen_cap: int = 100) -> None:
        self._categories = tuple(profile.categories)
        self._index = category_index(self._categories)
        self._cap = unseen_cap
        self.reset()

    def reset(self) -> None:
        """Forget everything folded so far."""
        self._counts = np.zeros(len(self._categories) + 1, dtype=np.int64)
        self._nulls = 0
        self._unseen: dict[str, int] = {}

    def fold(self, values: ObjectArray) -> CategoricalColumnSummary:
        """Count an object column of category keys (None = missing)."""
        k = len(self._categories)
        codes = category_codes(self._index, values)
        counts = np.bincount(codes, minlength=k + 2)
        self._counts += counts[: k + 1]
        self._nulls += int(counts[k + 1])
        if counts[k]:
            self._add_unseen(Counter(values[codes == k].tolist()).items())
        return self

    def _add_unseen(self, items: Iterable[tuple[str, int]]) -> None:
        unseen = self._unseen
        for name, count in items:
            unseen[name] = unseen.get(name, 0) + count
        if len(unseen) > self._cap:
            keep = heapq.nsmallest(self._cap, unseen, key=_unseen_order)
            self._unseen = {name: unseen[name] for name in keep}

    def _merge_in(self, other: CategoricalColumnSummary) -> None:
        self._counts += other._counts
        self._nulls += other._nulls
        self._add_unseen(other._unseen.items())

    def _copy(self) -> CategoricalColumnSummary:
        new = object.__new__(CategoricalColumnSummary)
        new._categories, new._index = self._categories, self._index
        new._cap = self._cap
        new._counts = self._counts.copy()
        new._nulls = self._nulls
        new._unseen = dict(self._unseen)
        return new

    @property
    def categories(self) -> tuple[str, ...]:
        """The profile's categories, in the order of ``counts``."""
        return self._categories

    @property
    def counts(self) -> IntArray:
        """Values per profile category, then the other/unseen slot (int64, read-only)."""
        return _readonly(self._counts)

    @property
    def n(self) -> int:
        """Non-missing values counted."""
        return int(self._counts.sum())

    @property
    def nulls(self) -> int:
        """Missing values (None, NaN, or the feature absent from the event)."""
        return self._nulls

    @property
    def type_errors(self) -> int:
        """Always 0: any value can be counted as a category."""
        return 0

    @property
    def unseen(self) -> dict[str, int]:
        """Values outside the profile's categories, by name (at most ``unseen_cap`` names)."""
        return dict(self._unseen)

    @property
    def unseen_total(self) -> int:
        """All values outside the profile's categories."""
        return int(self._counts[-1])

    def _state(self) -> _CategoricalState:
        # Sorted, so equal summaries encode to equal bytes whatever order names arrived in.
        return _CategoricalState(
            self._counts.tolist(), self._nulls, dict(sorted(self._unseen.items()))
        )

    def _load(self, state: _CategoricalState) -> None:
        if len(state.counts) != self._counts.shape[0]:
            raise ValueError(
                f"{len(state.counts)} category slots encoded, the profile has "
                f"{self._counts.shape[0]}"
            )
        self._counts = np.array(state.counts, dtype=np.int64)
        self._nulls = state.nulls
        self._unseen = dict(state.unseen)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalColumnSummary):
            return NotImplemented
        return (
            self._categories == other._categories
            and np.array_equal(self._counts, other._counts)
            and self._nulls == other._nulls
            and self._unseen == other._unseen
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"CategoricalColumnSummary(n={self.n}, categories={len(self._categories)}, "
            f"unseen_total={self.unseen_total}, nulls={self.nulls})"
        )


ColumnSummary: TypeAlias = NumericColumnSummary | CategoricalColumnSummary


def _column_summary(profile: NumericProfile | CategoricalProfile, unseen_cap: int) -> ColumnSummary:
    if isinstance(profile, NumericProfile):
        return NumericColumnSummary(profile)
    return CategoricalColumnSummary(profile, unseen_cap)


# --- encoding -------------------------------------------------------------------------------


class _NumericState(msgspec.Struct, array_like=True, frozen=True, tag="n"):
    counts: list[int]
    nulls: int
    type_errors: int


class _CategoricalState(msgspec.Struct, array_like=True, frozen=True, tag="c"):
    counts: list[int]
    nulls: int
    unseen: dict[str, int]


_ColumnState: TypeAlias = _NumericState | _CategoricalState


class _ScoreState(msgspec.Struct, array_like=True, frozen=True):
    column: _NumericState
    total: bytes


class _PaneState(msgspec.Struct, array_like=True, frozen=True):
    format: int
    model: str
    model_version: str
    content_hash: str
    unseen_cap: int
    n: int
    event_time_min: int | None
    event_time_max: int | None
    features: dict[str, _ColumnState]
    prediction: _ColumnState
    scores: dict[str, _ScoreState]
    max_score_total: bytes
    n_scored: int


_FORMAT = 1
_pane_encoder = msgspec.msgpack.Encoder()
_pane_decoder = msgspec.msgpack.Decoder(_PaneState)


# --- the pane summary -----------------------------------------------------------------------


class PaneSummary:
    """A fixed-size, mergeable summary of one pane of prediction traffic.

    Built from the model version's :class:`~driftline.schemas.reference.ReferenceProfile`;
    :meth:`fold` adds a :class:`ColumnBatch` (vectorised, one ``searchsorted`` + ``bincount``
    per column); :meth:`merge` adds two summaries exactly, so merging the summaries of any
    split of the events equals folding them all at once, bit for bit, in any order.
    :meth:`to_bytes` / :meth:`from_bytes` carry it between stage 1 and stage 2.

    Per feature it holds the counts over the reference bins (numeric) or the profile's
    categories plus an other/unseen slot (categorical), with nulls, type errors and
    out-of-range counts; the same for the prediction; per class of the profile's scores a
    histogram over the score profile's bins and the exact sum of the scores; and the exact sum
    of each event's largest score, for a label-free expected accuracy.

    Parameters
    ----------
    profile
        The reference the bins and categories come from.
    unseen_cap
        Most names of unseen categories kept per column (their total is always counted).

    Examples
    --------
    >>> from driftline.detectors.profile import build_profile
    >>> ref = build_profile("m", "1", "binary", {"x": [0.1, 0.2, 0.3, 0.4]}, [0, 0, 1, 1],
    ...                     scores={"1": [0.2, 0.4, 0.6, 0.8]}, bins=10)
    >>> a = PaneSummary(ref).fold(ColumnBatch.from_columns(
    ...     ref, {"x": [0.15, 0.35]}, [0, 1], scores={"1": [0.3, 0.9]}, event_time_ms=[5, 9]))
    >>> b = PaneSummary(ref).fold(ColumnBatch.from_columns(
    ...     ref, {"x": [9.0]}, [1], scores={"1": [0.7]}, event_time_ms=[7]))
    >>> both = a.merge(b)
    >>> both.n, both.features["x"].above_range, both.prediction.counts.tolist()
    (3, 1, [1, 2, 0])
    >>> round(both.score_mean("1"), 6), (both.event_time_min, both.event_time_max)
    (0.633333, (5, 9))
    >>> PaneSummary.from_bytes(both.to_bytes(), ref) == both
    True
    """

    def __init__(self, profile: ReferenceProfile, *, unseen_cap: int = 100) -> None:
        if isinstance(unseen_cap, bool) or not isinstance(unseen_cap, int) or unseen_cap < 0:
            raise ValueError(f"unseen_cap must be an integer >= 0, got {unseen_cap!r}")
        self._profile = profile
        self._unseen_cap = unseen_cap
        self.reset()

    def reset(self) -> None:
        """Forget everything folded so far (all state is created here)."""
        profile, cap = self._profile, self._unseen_cap
        self._n = 0
        self._t_min: int | None = None
        self._t_max: int | None = None
        self._features: dict[str, ColumnSummary] = {
            name: _column_summary(col, cap) for name, col in profile.features.items()
        }
        self._prediction: ColumnSummary = _column_summary(profile.prediction, cap)
        self._scores: dict[str, NumericColumnSummary] = {
            name: NumericColumnSummary(col) for name, col in profile.scores.items()
        }
        self._score_totals: dict[str, int] = dict.fromkeys(profile.scores, 0)
        self._max_score_total = 0
        self._n_scored = 0

    # -- updating ---------------------------------------------------------------------------

    def fold(self, batch: ColumnBatch) -> PaneSummary:
        """Add a batch of events; returns ``self``."""
        return self._fold(batch, numeric=True)

    def _fold(self, batch: ColumnBatch, *, numeric: bool) -> PaneSummary:
        """:meth:`fold`; with ``numeric=False`` the numeric features were counted already."""
        self._check_batch(batch, numeric=numeric)
        if batch.n == 0:
            return self
        for name, column in self._features.items():
            if isinstance(column, NumericColumnSummary):
                if numeric:
                    column.fold(batch.numeric[name], batch.type_errors.get(name, 0))
            else:
                column.fold(batch.categorical[name])
        if isinstance(self._prediction, NumericColumnSummary):
            self._prediction.fold(batch.prediction, batch.prediction_type_errors)  # type: ignore[arg-type]
        else:
            self._prediction.fold(batch.prediction)  # type: ignore[arg-type]
        if self._scores:
            top = np.full(batch.n, np.nan)
            for name, column in self._scores.items():
                values = batch.scores[name]
                column.fold(values)
                self._score_totals[name] += exact_sum(values[~np.isnan(values)])
                np.fmax(top, values, out=top)  # fmax ignores NaN, and warns about nothing
            scored = top[~np.isnan(top)]
            self._max_score_total += exact_sum(scored)
            self._n_scored += int(scored.shape[0])
        self._n += batch.n
        t_min, t_max = int(batch.event_time_ms.min()), int(batch.event_time_ms.max())
        self._t_min = t_min if self._t_min is None else min(self._t_min, t_min)
        self._t_max = t_max if self._t_max is None else max(self._t_max, t_max)
        return self

    def fold_events(self, events: Sequence[WirePrediction]) -> PaneSummary:
        """The same as ``fold(columns_from_events(events, profile))``, faster: numeric
        features are counted straight from the events (:func:`fold_numeric`)."""
        numeric = [
            (name, column)
            for name, column in self._features.items()
            if isinstance(column, NumericColumnSummary)
        ]
        batch = columns_from_events(events, self._profile, numeric=not numeric)
        if numeric and events:
            tallies = fold_numeric(
                [ev.features for ev in events],
                tuple(name for name, _ in numeric),
                tuple(column._edges for _, column in numeric),
                tuple(column._counts for _, column in numeric),
            )
            for (_, column), (missing, errors) in zip(numeric, tallies, strict=True):
                column._nulls += missing - errors
                column._type_errors += errors
        return self._fold(batch, numeric=not numeric)

    def _check_batch(self, batch: ColumnBatch, *, numeric: bool = True) -> None:
        numeric_names = {n for n, c in self._features.items() if c.kind == "numeric"}
        categorical = set(self._features) - numeric_names
        numeric_names = numeric_names if numeric else set()
        if not (numeric_names <= batch.numeric.keys() and categorical <= batch.categorical.keys()):
            raise ValueError(
                "batch does not have the profile's columns (numeric: "
                f"{sorted(numeric_names - batch.numeric.keys())} missing, categorical: "
                f"{sorted(categorical - batch.categorical.keys())} missing); build it with "
                "columns_from_events or ColumnBatch.from_columns and the same profile"
            )
        if not self._scores.keys() <= batch.scores.keys():
            raise ValueError(
                f"batch lacks score columns {sorted(self._scores.keys() - batch.scores.keys())}"
            )

    def merge(self, other: PaneSummary) -> PaneSummary:
        """A new summary holding both; exact, associative and commutative."""
        if not self._same_reference(other):
            raise ValueError(
                "other: cannot merge summaries of different reference profiles or unseen caps "
                f"({self._identity()} vs {other._identity()})"
            )
        merged = self._copy()
        merged._n += other._n
        if other._t_min is not None and other._t_max is not None:
            if merged._t_min is None or merged._t_max is None:
                merged._t_min, merged._t_max = other._t_min, other._t_max
            else:
                merged._t_min = min(merged._t_min, other._t_min)
                merged._t_max = max(merged._t_max, other._t_max)
        for name, column in merged._features.items():
            column._merge_in(other._features[name])  # type: ignore[arg-type]
        merged._prediction._merge_in(other._prediction)  # type: ignore[arg-type]
        for name, score in merged._scores.items():
            score._merge_in(other._scores[name])
            merged._score_totals[name] += other._score_totals[name]
        merged._max_score_total += other._max_score_total
        merged._n_scored += other._n_scored
        return merged

    def _copy(self) -> PaneSummary:
        new = object.__new__(PaneSummary)
        new._profile, new._unseen_cap = self._profile, self._unseen_cap
        new._n, new._t_min, new._t_max = self._n, self._t_min, self._t_max
        new._features = {name: col._copy() for name, col in self._features.items()}
        new._prediction = self._prediction._copy()
        new._scores = {name: col._copy() for name, col in self._scores.items()}
        new._score_totals = dict(self._score_totals)
        new._max_score_total = self._max_score_total
        new._n_scored = self._n_scored
        return new

    def _identity(self) -> tuple[str, str, str, int]:
        p = self._profile
        return p.model, p.model_version, p.content_hash, self._unseen_cap

    def _same_reference(self, other: PaneSummary) -> bool:
        return self._identity() == other._identity() and (
            self._profile is other._profile or self._profile == other._profile
        )

    # -- reading ----------------------------------------------------------------------------

    @property
    def profile(self) -> ReferenceProfile:
        """The reference this summary counts against."""
        return self._profile

    @property
    def n(self) -> int:
        """Events folded."""
        return self._n

    @property
    def event_time_min(self) -> int | None:
        """Earliest event time folded (epoch ms), None when empty."""
        return self._t_min

    @property
    def event_time_max(self) -> int | None:
        """Latest event time folded (epoch ms), None when empty."""
        return self._t_max

    @property
    def features(self) -> Mapping[str, ColumnSummary]:
        """Per-feature column summaries, in the profile's feature order."""
        return MappingProxyType(self._features)

    @property
    def prediction(self) -> ColumnSummary:
        """The prediction's column summary (numeric for regression, else categorical)."""
        return self._prediction

    @property
    def scores(self) -> Mapping[str, NumericColumnSummary]:
        """Per-class score histograms over the profile's score bins."""
        return MappingProxyType(self._scores)

    def counts(self, feature: str) -> IntArray:
        """The feature's counts over its reference bins or categories (+ other slot)."""
        return self._features[feature].counts

    def missing_rate(self, feature: str) -> float | None:
        """Share of events missing the feature (type errors included); None when empty."""
        column = self._features[feature]
        return (column.nulls + column.type_errors) / self._n if self._n else None

    def score_total(self, cls: str) -> float:
        """Sum of the scores given for class ``cls`` (correctly rounded from the exact sum)."""
        return exact_value(self._score_totals[cls])

    def score_mean(self, cls: str) -> float | None:
        """Mean score of class ``cls`` over the events that scored it; None when none did."""
        n = self._scores[cls].n
        return exact_value(self._score_totals[cls]) / n if n else None

    @property
    def n_scored(self) -> int:
        """Events with at least one score for a class of the profile."""
        return self._n_scored

    @property
    def max_score_total(self) -> float:
        """Sum over scored events of their largest class score."""
        return exact_value(self._max_score_total)

    @property
    def expected_accuracy(self) -> float | None:
        """Label-free expected accuracy: the mean largest score (CBPE-style, needs calibrated
        scores and argmax predictions); None when no event was scored."""
        return exact_value(self._max_score_total) / self._n_scored if self._n_scored else None

    # -- bytes ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A compact msgpack encoding; :meth:`from_bytes` restores it exactly."""
        p = self._profile
        state = _PaneState(
            format=_FORMAT,
            model=p.model,
            model_version=p.model_version,
            content_hash=p.content_hash,
            unseen_cap=self._unseen_cap,
            n=self._n,
            event_time_min=self._t_min,
            event_time_max=self._t_max,
            features={name: col._state() for name, col in self._features.items()},
            prediction=self._prediction._state(),
            scores={
                name: _ScoreState(col._state(), _int_to_bytes(self._score_totals[name]))
                for name, col in self._scores.items()
            },
            max_score_total=_int_to_bytes(self._max_score_total),
            n_scored=self._n_scored,
        )
        return _pane_encoder.encode(state)

    @classmethod
    def from_bytes(cls, data: bytes, profile: ReferenceProfile) -> PaneSummary:
        """Decode :meth:`to_bytes` output; ``profile`` must be the one it was built from.

        Raises :class:`~driftline.errors.DecodeError` (kind ``invalid_summary``) for bytes
        that are not a summary of this profile.
        """
        try:
            state = _pane_decoder.decode(data)
        except msgspec.MsgspecError as exc:
            raise DecodeError(f"not a pane summary: {exc}", kind="invalid_summary") from None
        if state.format != _FORMAT:
            raise DecodeError(
                f"pane summary format {state.format} is not supported (expected {_FORMAT})",
                kind="invalid_summary",
            )
        identity = (profile.model, profile.model_version, profile.content_hash)
        if (state.model, state.model_version, state.content_hash) != identity:
            raise DecodeError(
                f"pane summary of {state.model}/{state.model_version} "
                f"(reference {state.content_hash[:12]}) does not match the profile "
                f"{profile.model}/{profile.model_version} ({profile.content_hash[:12]})",
                kind="invalid_summary",
            )
        summary = cls(profile, unseen_cap=state.unseen_cap)
        try:
            summary._load(state)
        except (KeyError, ValueError, TypeError) as exc:
            raise DecodeError(
                f"pane summary does not fit the profile: {exc}", kind="invalid_summary"
            ) from None
        return summary

    def _load(self, state: _PaneState) -> None:
        if state.features.keys() != self._features.keys() or (
            state.scores.keys() != self._scores.keys()
        ):
            raise ValueError("features or score classes differ")
        self._n = state.n
        self._t_min, self._t_max = state.event_time_min, state.event_time_max
        for name, column in self._features.items():
            _load_column(column, state.features[name])
        _load_column(self._prediction, state.prediction)
        for name, score in self._scores.items():
            _load_column(score, state.scores[name].column)
            self._score_totals[name] = _int_from_bytes(state.scores[name].total)
        self._max_score_total = _int_from_bytes(state.max_score_total)
        self._n_scored = state.n_scored

    # -- comparison -------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PaneSummary):
            return NotImplemented
        return (
            self._same_reference(other)
            and (self._n, self._t_min, self._t_max) == (other._n, other._t_min, other._t_max)
            and self._features == other._features
            and self._prediction == other._prediction
            and self._scores == other._scores
            and self._score_totals == other._score_totals
            and (self._max_score_total, self._n_scored) == (other._max_score_total, other._n_scored)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        p = self._profile
        return (
            f"PaneSummary(model={p.model!r}, version={p.model_version!r}, n={self._n}, "
            f"features={len(self._features)})"
        )


def _load_column(column: ColumnSummary, state: _ColumnState) -> None:
    if isinstance(column, NumericColumnSummary):
        if not isinstance(state, _NumericState):
            raise ValueError("a numeric column was encoded as a categorical one")
        column._load(state)
    else:
        if not isinstance(state, _CategoricalState):
            raise ValueError("a categorical column was encoded as a numeric one")
        column._load(state)
