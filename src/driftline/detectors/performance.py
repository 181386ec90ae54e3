"""Realised performance from joined labels, as a mergeable summary (DESIGN §4).

Stage 1 folds each batch of predictions that met their labels into a
:class:`PerformanceSummary` attributed to the prediction's pane; stage 2 merges them per
window. Everything is counts and exact sums, so merging is exact and a late label simply adds
to the pane it belongs to.

The summary is one API over two kinds of state: a classifier's counts
(:class:`~driftline.detectors.classification.ClassificationCounts`) or a regressor's sums
(:class:`~driftline.detectors.regression.RegressionSums`), chosen by the task, plus the label
delays both have. This module owns that API, its parameters and its encoding, one format for
every task.

Segments (``models.<m>.segments``): a summary may also hold one sub-summary per (segment key,
value) of the labelled predictions (:meth:`PerformanceSummary.segment`), the realised
performance of each slice; they merge and encode with the whole-model summary, and a summary
without segments encodes to the bytes it always did.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from types import MappingProxyType

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from driftline.detectors._checks import check_int, check_per_label, check_task, shaped
from driftline.detectors.classification import (
    ClassificationCounts,
    ClassificationState,
    default_positive_class,
)
from driftline.detectors.estimate import CalibrationReport
from driftline.detectors.exact import exact_sum, exact_value, int_from_bytes, int_to_bytes
from driftline.detectors.regression import RegressionState, RegressionSums
from driftline.detectors.summary import OTHER
from driftline.detectors.values import IntArray, readonly, to_numeric
from driftline.errors import DecodeError, StatisticsError, SummaryMismatchError
from driftline.schemas.events import Task
from driftline.schemas.reference import CategoricalProfile, NumericProfile, ReferenceProfile

__all__ = ["LABEL_DELAY_EDGES_MS", "PerformanceSummary", "classes_for"]

LABEL_DELAY_EDGES_MS: tuple[int, ...] = tuple(m * 10**e for e in range(3, 10) for m in (1, 2, 5))
"""Log-spaced label-delay bin edges, 1 s to 50 days in a 1-2-5 series (milliseconds)."""

_DELAY_EDGES = np.array(LABEL_DELAY_EDGES_MS, dtype=np.float64)


def classes_for(
    task: Task,
    prediction: NumericProfile | CategoricalProfile,
    labels: NumericProfile | CategoricalProfile | None,
    scores: Mapping[str, object],
) -> tuple[str, ...]:
    """The class set of a classifier's profile: scored, predicted or labelled classes, sorted.

    Every worker derives the same tuple from the same profile, so confusion counts line up.
    Empty for regression.
    """
    if task == "regression":
        return ()
    found = set(scores)
    for column in (prediction, labels):
        if isinstance(column, CategoricalProfile):
            found.update(column.categories)
    return tuple(sorted(found))


_NO_TAGS: dict[str, str] = {}


def _column(values: ArrayLike | Iterable[object]) -> np.ndarray:
    """``values`` as a 1-d array that rows can index (objects kept as they are)."""
    if isinstance(values, np.ndarray):
        return values
    items = list(values)  # type: ignore[arg-type]
    column = np.empty(len(items), dtype=object)
    column[:] = items
    return column


class _PerformanceState(msgspec.Struct, array_like=True, frozen=True):
    format: int
    task: str
    classes: list[str]
    positive_class: str | None
    score_bins: int
    n: int
    n_correct: int
    confusion: list[int]
    positive_hist: list[int]
    negative_hist: list[int]
    log_loss_total: bytes
    n_log_loss: int
    sums: list[bytes]
    delay_counts: list[int]
    delay_total: bytes
    n_delay: int


class _SegmentedPerformanceState(_PerformanceState, array_like=True, frozen=True):
    """A performance state with segment slices (key, value, their bytes); a summary without
    any encodes as a :class:`_PerformanceState`, to the bytes it always did, and decodes with
    none here."""

    segments: list[tuple[str, str, bytes]] | None = None


_FORMAT = 1
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_SegmentedPerformanceState)
# One format for every task: the fields of the other task hold what an empty one encodes to.
_NO_CLASSIFICATION = ClassificationCounts("multiclass", (), None, 1).state()
_NO_REGRESSION = RegressionSums().state()
_NO_CONFUSION = readonly(np.zeros((1, 1), dtype=np.int64))


def _classification_fields(state: _PerformanceState) -> ClassificationState:
    return ClassificationState(
        n_correct=state.n_correct,
        confusion=state.confusion,
        positive_hist=state.positive_hist,
        negative_hist=state.negative_hist,
        log_loss_total=state.log_loss_total,
        n_log_loss=state.n_log_loss,
    )


class PerformanceSummary:
    """Mergeable realised-performance counts of one model version over labelled predictions.

    Classifiers: a confusion matrix over the class set plus one slot for classes outside it,
    the number of exactly correct predictions, per-class score histograms of positives and
    negatives (``score_bins`` equal bins on ``[0, 1]``) for ROC AUC with an error bound, and
    the exact log-loss sum. Regression: exact sums of ``y``, ``y**2``, the error
    ``prediction - y``, its absolute value and its square, for MAE, RMSE, R² and bias. Both:
    a histogram of label delays over :data:`LABEL_DELAY_EDGES_MS`.

    Metrics are properties and are None where undefined (no labels yet, a metric of the other
    task, a precision without predicted positives, an AUC without both kinds of label).

    Parameters
    ----------
    task
        ``"binary"``, ``"multiclass"`` or ``"regression"``.
    classes
        The class set (see :func:`classes_for`); :meth:`from_profile` takes it from a profile.
    positive_class
        For binary tasks: the class whose precision, recall, F1 and AUC are reported
        (default: :func:`~driftline.detectors.classification.default_positive_class`).
    score_bins
        Bins of the score histograms; the AUC error bound shrinks as they grow.

    Examples
    --------
    >>> perf = PerformanceSummary("binary", ("0", "1"))
    >>> _ = perf.fold(labels=[1, 0, 1, 1], predictions=[1, 0, 0, 1],
    ...               scores={"1": [0.9, 0.2, 0.4, 0.8]}, label_delay_ms=[1500, 800, 60_000, 0])
    >>> perf.accuracy, perf.recall, perf.roc_auc, perf.roc_auc_bound
    (0.75, 0.6666666666666666, 1.0, 0.0)
    >>> other = PerformanceSummary("binary", ("0", "1")).fold([0], [1], {"1": [0.7]})
    >>> merged = perf.merge(other)
    >>> merged.n, merged.precision
    (5, 0.6666666666666666)
    >>> PerformanceSummary.from_bytes(merged.to_bytes()) == merged
    True
    """

    def __init__(
        self,
        task: Task,
        classes: Sequence[str] = (),
        *,
        positive_class: str | None = None,
        score_bins: int = 100,
    ) -> None:
        self._task: Task = check_task(task)
        names = tuple(str(c) for c in classes)
        if len(set(names)) != len(names):
            raise StatisticsError(f"classes must be distinct, got {list(names)}")
        if task == "regression" and names:
            raise StatisticsError("classes must be empty for task 'regression'")
        if task == "binary" and len(names) > 2:
            raise StatisticsError(f"task 'binary' takes at most 2 classes, got {list(names)}")
        if positive_class is not None and (task != "binary" or positive_class not in names):
            allowed = list(names) if task == "binary" else "none (only binary tasks have one)"
            raise StatisticsError(
                f"positive_class must be one of {allowed}, got {positive_class!r}"
            )
        self._classes = names
        self._positive = (
            (positive_class or default_positive_class(names)) if task == "binary" else None
        )
        self._bins = check_int("score_bins", score_bins, 1, 100_000)
        self.reset()

    @classmethod
    def from_profile(
        cls,
        profile: ReferenceProfile,
        *,
        positive_class: str | None = None,
        score_bins: int = 100,
    ) -> PerformanceSummary:
        """An empty summary over the class set of ``profile``."""
        classes = classes_for(profile.task, profile.prediction, profile.labels, profile.scores)
        return cls(profile.task, classes, positive_class=positive_class, score_bins=score_bins)

    def reset(self) -> None:
        """Forget everything folded so far (all state is created here)."""
        self._outcome: ClassificationCounts | RegressionSums = (
            RegressionSums()
            if self._task == "regression"
            else ClassificationCounts(self._task, self._classes, self._positive, self._bins)
        )
        self._delay_counts = np.zeros(len(LABEL_DELAY_EDGES_MS) + 1, dtype=np.int64)
        self._delay_total = 0
        self._n_delay = 0
        self._segments: dict[tuple[str, str], PerformanceSummary] = {}

    # -- updating ---------------------------------------------------------------------------

    def fold(
        self,
        labels: ArrayLike | Iterable[object],
        predictions: ArrayLike | Iterable[object],
        scores: Mapping[str, ArrayLike] | None = None,
        label_delay_ms: ArrayLike | None = None,
    ) -> PerformanceSummary:
        """Add labelled predictions; returns ``self``.

        All columns have one entry per prediction. Rows whose label is missing (None, NaN) are
        skipped; for regression, rows whose prediction is missing too. ``scores`` maps a class
        to its probabilities (NaN where not given; for a binary task a missing class's score
        is one minus the other's). ``label_delay_ms`` is when the label arrived minus when the
        prediction was made.
        """
        keep = self._outcome.fold(labels, predictions, scores)
        if label_delay_ms is not None:
            delays, _ = to_numeric(label_delay_ms)
            check_per_label("label_delay_ms", delays, keep.shape[0])
            delays = delays[keep]
            delays = delays[~np.isnan(delays)]
            self._delay_counts += np.bincount(
                np.searchsorted(_DELAY_EDGES, delays, side="right"),
                minlength=self._delay_counts.shape[0],
            )
            self._delay_total += exact_sum(delays)
            self._n_delay += int(delays.shape[0])
        return self

    def fold_segments(
        self,
        tracked: Mapping[str, Collection[str]],
        tags: Sequence[Mapping[str, str] | None],
        labels: ArrayLike | Iterable[object],
        predictions: ArrayLike | Iterable[object],
        scores: Mapping[str, ArrayLike] | None = None,
        label_delay_ms: ArrayLike | None = None,
    ) -> PerformanceSummary:
        """Fold labelled predictions into their segments' slices (:meth:`segment`), once per
        key of ``tracked`` (a profile's ``segments``): a prediction whose ``tags`` value of
        the key is not tracked, or that has none, falls in :data:`OTHER`. The columns are as
        :meth:`fold` takes them; the whole-model counts are not touched. Returns ``self``.

        >>> perf = PerformanceSummary("binary", ("0", "1"))
        >>> _ = perf.fold_segments({"region": ["eu"]}, [{"region": "eu"}, None, {"region": "us"}],
        ...                        labels=[1, 0, 1], predictions=[1, 1, 1])
        >>> {value: part.accuracy for (_, value), part in perf.segments.items()}
        {'eu': 1.0, 'other': 0.5}
        """
        if not tracked or not tags:
            return self
        label_column = _column(labels)
        guess_column = _column(predictions)
        score_columns = (
            None
            if scores is None
            else {c: np.asarray(v, dtype=np.float64) for c, v in scores.items()}
        )
        delays = None if label_delay_ms is None else np.asarray(label_delay_ms)
        rows_of = [tag or _NO_TAGS for tag in tags]
        for key in sorted(tracked):
            known = frozenset(tracked[key])
            groups: dict[str, list[int]] = {}
            for row, tag in enumerate(rows_of):
                value = tag.get(key)
                groups.setdefault(value if value in known else OTHER, []).append(row)
            for value in sorted(groups):
                rows = np.array(groups[value], dtype=np.intp)
                self.segment(key, value).fold(
                    label_column[rows],
                    guess_column[rows],
                    None
                    if score_columns is None
                    else {c: v[rows] for c, v in score_columns.items()},
                    None if delays is None else delays[rows],
                )
        return self

    def segment(self, key: str, value: str) -> PerformanceSummary:
        """The sub-summary of the slice ``key=value`` (created empty on first use; fold the
        slice's labelled predictions into it)."""
        part = self._segments.get((key, value))
        if part is None:
            part = self._empty()
            self._segments[key, value] = part
        return part

    @property
    def segments(self) -> Mapping[tuple[str, str], PerformanceSummary]:
        """The sub-summary of each (segment key, value) folded; empty without segments."""
        return MappingProxyType(self._segments)

    def _empty(self) -> PerformanceSummary:
        return PerformanceSummary(
            self._task, self._classes, positive_class=self._positive, score_bins=self._bins
        )

    def merge(self, other: PerformanceSummary) -> PerformanceSummary:
        """A new summary holding both; exact, associative and commutative."""
        if self._config() != other._config():
            raise SummaryMismatchError(
                "other: cannot merge performance summaries of different task, classes, "
                f"positive class or score bins ({self._config()} vs {other._config()})"
            )
        merged = object.__new__(PerformanceSummary)
        merged._task, merged._classes = self._task, self._classes
        merged._positive, merged._bins = self._positive, self._bins
        merged._outcome = self._outcome.merge(other._outcome)  # type: ignore[arg-type]
        merged._delay_counts = self._delay_counts + other._delay_counts
        merged._delay_total = self._delay_total + other._delay_total
        merged._n_delay = self._n_delay + other._n_delay
        merged._segments = {}
        for slice_ in sorted(self._segments.keys() | other._segments.keys()):
            mine, theirs = self._segments.get(slice_), other._segments.get(slice_)
            merged._segments[slice_] = (self._empty() if mine is None else mine).merge(
                self._empty() if theirs is None else theirs
            )
        return merged

    def _config(self) -> tuple[str, tuple[str, ...], str | None, int]:
        return self._task, self._classes, self._positive, self._bins

    def _classification(self) -> ClassificationCounts | None:
        outcome = self._outcome
        return outcome if isinstance(outcome, ClassificationCounts) else None

    def _regression(self) -> RegressionSums | None:
        outcome = self._outcome
        return outcome if isinstance(outcome, RegressionSums) else None

    # -- reading ----------------------------------------------------------------------------

    @property
    def task(self) -> Task:
        """The model's task."""
        return self._task

    @property
    def classes(self) -> tuple[str, ...]:
        """The class set; confusion rows and columns follow it, then one "other" slot."""
        return self._classes

    @property
    def positive_class(self) -> str | None:
        """The positive class of a binary task, else None."""
        return self._positive

    @property
    def n(self) -> int:
        """Labelled predictions folded."""
        return self._outcome.n

    def metrics(self) -> dict[str, float]:
        """Every defined metric of the task, by the names the configuration uses."""
        values = {name: getattr(self, name) for name in self._outcome.METRICS}
        return {name: float(v) for name, v in values.items() if v is not None}

    # -- reading: classification ------------------------------------------------------------

    @property
    def confusion(self) -> IntArray:
        """Counts by (true class, predicted class), classes then "other" (read-only)."""
        counts = self._classification()
        return _NO_CONFUSION if counts is None else counts.confusion

    @property
    def accuracy(self) -> float | None:
        """Share of predictions equal to their label."""
        counts = self._classification()
        return None if counts is None else counts.accuracy

    @property
    def precision(self) -> float | None:
        """Binary: of the positive class; multiclass: macro average."""
        counts = self._classification()
        return None if counts is None else counts.precision

    @property
    def recall(self) -> float | None:
        """Binary: of the positive class; multiclass: macro average."""
        counts = self._classification()
        return None if counts is None else counts.recall

    @property
    def f1(self) -> float | None:
        """Binary: of the positive class; multiclass: macro average."""
        counts = self._classification()
        return None if counts is None else counts.f1

    @property
    def precision_macro(self) -> float | None:
        """Mean precision over the known classes that were labelled or predicted."""
        counts = self._classification()
        return None if counts is None else counts.precision_macro

    @property
    def recall_macro(self) -> float | None:
        """Mean recall over the known classes that were labelled or predicted."""
        counts = self._classification()
        return None if counts is None else counts.recall_macro

    @property
    def f1_macro(self) -> float | None:
        """Mean F1 over the known classes that were labelled or predicted."""
        counts = self._classification()
        return None if counts is None else counts.f1_macro

    @property
    def log_loss(self) -> float | None:
        """Mean of ``-log p(true class)`` over rows scored for their label's class."""
        counts = self._classification()
        return None if counts is None else counts.log_loss

    def class_roc_auc(self, cls: str) -> tuple[float, float] | None:
        """One-vs-rest ROC AUC of ``cls`` and its error bound, from the score histograms.

        None unless both positives and negatives of ``cls`` were scored.
        """
        counts = self._classification()
        if counts is None:
            raise StatisticsError(f"{cls!r} is not a class: a regressor has none")
        return counts.class_roc_auc(cls)

    def calibration(self, cls: str | None = None) -> CalibrationReport | None:
        """How well ``cls``'s scores (default: the positive class) match its outcomes, from
        the score histograms: expected calibration error and a reliability table.

        None for regression, or before any score of ``cls`` was labelled.
        """
        counts = self._classification()
        return None if counts is None else counts.calibration(cls)

    @property
    def roc_auc(self) -> float | None:
        """Binary: AUC of the positive class; multiclass: macro one-vs-rest AUC."""
        counts = self._classification()
        return None if counts is None else counts.roc_auc

    @property
    def roc_auc_bound(self) -> float | None:
        """Largest difference between :attr:`roc_auc` and the exact AUC on the raw scores."""
        counts = self._classification()
        return None if counts is None else counts.roc_auc_bound

    # -- reading: regression ----------------------------------------------------------------

    @property
    def mae(self) -> float | None:
        """Mean absolute error."""
        sums = self._regression()
        return None if sums is None else sums.mae

    @property
    def rmse(self) -> float | None:
        """Root mean squared error."""
        sums = self._regression()
        return None if sums is None else sums.rmse

    @property
    def mean_error(self) -> float | None:
        """Mean of ``prediction - label`` (the bias)."""
        sums = self._regression()
        return None if sums is None else sums.mean_error

    @property
    def r2(self) -> float | None:
        """Coefficient of determination; None when the labels are constant."""
        sums = self._regression()
        return None if sums is None else sums.r2

    # -- reading: label delay ---------------------------------------------------------------

    @property
    def label_delay_counts(self) -> IntArray:
        """Labels per delay bin over :data:`LABEL_DELAY_EDGES_MS` (open outer bins)."""
        return readonly(self._delay_counts)

    @property
    def n_label_delay(self) -> int:
        """Labels whose delay was given."""
        return self._n_delay

    @property
    def mean_label_delay_ms(self) -> float | None:
        """Mean label delay in milliseconds."""
        return exact_value(self._delay_total) / self._n_delay if self._n_delay else None

    # -- bytes ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A compact msgpack encoding, self-describing; :meth:`from_bytes` restores it."""
        counts, sums = self._classification(), self._regression()
        fields: dict[str, object] = {}
        state_type: type[_PerformanceState] = _PerformanceState
        if self._segments:
            fields["segments"] = [
                (key, value, self._segments[key, value].to_bytes())
                for key, value in sorted(self._segments)
            ]
            state_type = _SegmentedPerformanceState
        state = state_type(
            format=_FORMAT,
            task=self._task,
            classes=list(self._classes),
            positive_class=self._positive,
            score_bins=self._bins,
            n=self.n,
            **(_NO_CLASSIFICATION if counts is None else counts.state()),
            **(_NO_REGRESSION if sums is None else sums.state()),
            delay_counts=self._delay_counts.tolist(),
            delay_total=int_to_bytes(self._delay_total),
            n_delay=self._n_delay,
            **fields,
        )
        return _encoder.encode(state)

    @classmethod
    def from_bytes(cls, data: bytes) -> PerformanceSummary:
        """Decode :meth:`to_bytes` output, or raise :class:`~driftline.errors.DecodeError`."""
        try:
            state = _decoder.decode(data)
        except msgspec.MsgspecError as exc:
            raise DecodeError(f"not a performance summary: {exc}", kind="invalid_summary") from None
        try:
            if state.format != _FORMAT:
                raise StatisticsError(
                    f"format {state.format} is not supported (expected {_FORMAT})"
                )
            summary = cls(
                state.task,  # type: ignore[arg-type]
                state.classes,
                positive_class=state.positive_class,
                score_bins=state.score_bins,
            )
            summary._restore(state)
        except ValueError as exc:
            raise DecodeError(
                f"not a valid performance summary: {exc}", kind="invalid_summary"
            ) from None
        return summary

    def _restore(self, state: _SegmentedPerformanceState) -> None:
        classification = _classification_fields(state)
        regression = RegressionState(sums=state.sums)
        counts, sums = self._classification(), self._regression()
        if counts is not None:
            counts.restore(state.n, classification)
            if regression != _NO_REGRESSION:
                raise StatisticsError("a classifier's summary holds regression sums")
        if sums is not None:
            if classification != _NO_CLASSIFICATION:
                raise StatisticsError("a regressor's summary holds classification counts")
            sums.restore(state.n, regression)
        self._delay_counts = shaped(state.delay_counts, (len(LABEL_DELAY_EDGES_MS) + 1,))
        self._delay_total = int_from_bytes(state.delay_total)
        self._n_delay = state.n_delay
        for key, value, raw in state.segments or ():
            part = PerformanceSummary.from_bytes(raw)
            if part._config() != self._config() or part._segments:
                raise StatisticsError(f"segment {key}={value} does not fit the summary")
            self._segments[key, value] = part

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PerformanceSummary):
            return NotImplemented
        return (
            self._config() == other._config()
            and self._outcome == other._outcome
            and (self._delay_total, self._n_delay) == (other._delay_total, other._n_delay)
            and np.array_equal(self._delay_counts, other._delay_counts)
            and self._segments == other._segments
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PerformanceSummary(task={self._task!r}, classes={self._classes}, n={self.n})"
