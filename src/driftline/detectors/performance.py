"""Realised performance from joined labels, as a mergeable summary (DESIGN §4).

Stage 1 folds each batch of predictions that met their labels into a
:class:`PerformanceSummary` attributed to the prediction's pane; stage 2 merges them per
window. Everything is counts and exact sums, so merging is exact and a late label simply adds
to the pane it belongs to.

ROC AUC comes from per-class score histograms split by label (fixed bins on ``[0, 1]``). Pairs
of a positive and a negative in different bins are ordered exactly; pairs in the same bin are
counted as ties (one half). The exact Mann-Whitney AUC counts each such pair as 0, 1/2 or 1,
so the histogram AUC is within ``roc_auc_bound = sum_i P_i N_i / (2 P N)`` of it, where
``P_i, N_i`` are the positives and negatives in bin ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec
import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftline.detectors._checks import check_int, check_task
from driftline.detectors.estimate import CalibrationReport, calibration_report
from driftline.detectors.exact import (
    exact_square_sum,
    exact_sum,
    exact_value,
    int_from_bytes,
    int_to_bytes,
)
from driftline.detectors.values import (
    FloatArray,
    IntArray,
    ObjectArray,
    category_codes,
    category_index,
    missing_mask,
    readonly,
    to_categorical,
    to_numeric,
)
from driftline.errors import DecodeError
from driftline.schemas.events import Task
from driftline.schemas.reference import CategoricalProfile, NumericProfile, ReferenceProfile

__all__ = [
    "LABEL_DELAY_EDGES_MS",
    "LOG_LOSS_EPS",
    "PerformanceSummary",
    "classes_for",
    "default_positive_class",
]


LOG_LOSS_EPS = 1e-15
"""Probabilities are clipped to ``[eps, 1 - eps]`` before the logarithm."""

LABEL_DELAY_EDGES_MS: tuple[int, ...] = tuple(m * 10**e for e in range(3, 10) for m in (1, 2, 5))
"""Log-spaced label-delay bin edges, 1 s to 50 days in a 1-2-5 series (milliseconds)."""

_DELAY_EDGES = np.array(LABEL_DELAY_EDGES_MS, dtype=np.float64)
_N_SUMS = 5  # y, y**2, error, |error|, error**2


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


def default_positive_class(classes: Sequence[str]) -> str | None:
    """``"1"`` or ``"true"`` when present, else the last class in sorted order.

    >>> default_positive_class(("0", "1")), default_positive_class(("no", "yes"))
    ('1', 'yes')
    """
    for name in ("1", "true"):
        if name in classes:
            return name
    return sorted(classes)[-1] if classes else None


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


_FORMAT = 1
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_PerformanceState)


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
        (default: :func:`default_positive_class`).
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
            raise ValueError(f"classes must be distinct, got {list(names)}")
        if task == "regression" and names:
            raise ValueError("classes must be empty for task 'regression'")
        if task == "binary" and len(names) > 2:
            raise ValueError(f"task 'binary' takes at most 2 classes, got {list(names)}")
        if positive_class is not None and (task != "binary" or positive_class not in names):
            allowed = list(names) if task == "binary" else "none (only binary tasks have one)"
            raise ValueError(f"positive_class must be one of {allowed}, got {positive_class!r}")
        self._classes = names
        self._positive = (
            (positive_class or default_positive_class(names)) if task == "binary" else None
        )
        self._bins = check_int("score_bins", score_bins, 1, 100_000)
        self._index = category_index(names)
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
        k, b = len(self._classes), self._bins
        self._n = 0
        self._n_correct = 0
        self._confusion = np.zeros((k + 1, k + 1), dtype=np.int64)
        self._positive_hist = np.zeros((k, b), dtype=np.int64)
        self._negative_hist = np.zeros((k, b), dtype=np.int64)
        self._log_loss_total = 0
        self._n_log_loss = 0
        self._sums = [0] * _N_SUMS
        self._delay_counts = np.zeros(len(LABEL_DELAY_EDGES_MS) + 1, dtype=np.int64)
        self._delay_total = 0
        self._n_delay = 0

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
        if self._task == "regression":
            truth, _ = to_numeric(labels)
            predicted, _ = to_numeric(predictions)
            self._check_length("predictions", predicted, truth.shape[0])
            keep = ~(np.isnan(truth) | np.isnan(predicted))
            self._fold_regression(truth[keep], predicted[keep])
        else:
            keys = to_categorical(labels)
            predicted_keys = to_categorical(predictions)
            self._check_length("predictions", predicted_keys, keys.shape[0])
            keep = ~missing_mask(keys)
            self._fold_classification(keys[keep], predicted_keys[keep], scores, keep)
        if label_delay_ms is not None:
            delays, _ = to_numeric(label_delay_ms)
            self._check_length("label_delay_ms", delays, keep.shape[0])
            delays = delays[keep]
            delays = delays[~np.isnan(delays)]
            self._delay_counts += np.bincount(
                np.searchsorted(_DELAY_EDGES, delays, side="right"),
                minlength=self._delay_counts.shape[0],
            )
            self._delay_total += exact_sum(delays)
            self._n_delay += int(delays.shape[0])
        return self

    @staticmethod
    def _check_length(what: str, column: NDArray[Any], n: int) -> None:
        if column.shape[0] != n:
            raise ValueError(f"{what} has {column.shape[0]} entries, labels have {n}")

    def _codes(self, keys: ObjectArray) -> IntArray:
        # Unlisted and missing classes both go to the "other" slot.
        return np.minimum(category_codes(self._index, keys), len(self._classes))

    def _fold_classification(
        self,
        labels: ObjectArray,
        predictions: ObjectArray,
        scores: Mapping[str, ArrayLike] | None,
        keep: NDArray[np.bool_],
    ) -> None:
        k, b = len(self._classes), self._bins
        m = labels.shape[0]
        truth = self._codes(labels)
        guess = self._codes(predictions)
        self._confusion += np.bincount(truth * (k + 1) + guess, minlength=(k + 1) ** 2).reshape(
            k + 1, k + 1
        )
        self._n_correct += int(np.count_nonzero(labels == predictions))
        self._n += m
        if not scores or k == 0:
            return
        matrix = np.full((m, k), np.nan)
        for c, name in enumerate(self._classes):
            if name in scores:
                column = np.asarray(scores[name], dtype=np.float64).ravel()
                self._check_length(f"scores[{name!r}]", column, keep.shape[0])
                matrix[:, c] = column[keep]
        if k == 2:
            matrix[:, 0] = np.where(np.isnan(matrix[:, 0]), 1.0 - matrix[:, 1], matrix[:, 0])
            matrix[:, 1] = np.where(np.isnan(matrix[:, 1]), 1.0 - matrix[:, 0], matrix[:, 1])
        for c in range(k):
            column = matrix[:, c]
            given = ~np.isnan(column)
            clipped = np.clip(column[given], 0.0, 1.0)
            bins = np.minimum((clipped * b).astype(np.int64), b - 1)
            positive = truth[given] == c
            hist = np.bincount(bins + b * positive, minlength=2 * b)
            self._negative_hist[c] += hist[:b]
            self._positive_hist[c] += hist[b:]
        known = truth < k
        p_true = matrix[np.flatnonzero(known), truth[known]]
        p_true = np.clip(p_true[~np.isnan(p_true)], LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
        self._log_loss_total += exact_sum(-np.log(p_true))
        self._n_log_loss += int(p_true.shape[0])

    def _fold_regression(self, truth: FloatArray, predicted: FloatArray) -> None:
        error = predicted - truth
        if not (np.isfinite(error).all() and np.isfinite(truth).all()):
            raise ValueError("labels and predictions must be finite numbers")
        self._sums[0] += exact_sum(truth)
        self._sums[1] += exact_square_sum(truth)
        self._sums[2] += exact_sum(error)
        self._sums[3] += exact_sum(np.abs(error))
        self._sums[4] += exact_square_sum(error)
        self._n += int(truth.shape[0])

    def merge(self, other: PerformanceSummary) -> PerformanceSummary:
        """A new summary holding both; exact, associative and commutative."""
        if self._config() != other._config():
            raise ValueError(
                "other: cannot merge performance summaries of different task, classes, "
                f"positive class or score bins ({self._config()} vs {other._config()})"
            )
        merged = self._copy()
        merged._n += other._n
        merged._n_correct += other._n_correct
        merged._confusion += other._confusion
        merged._positive_hist += other._positive_hist
        merged._negative_hist += other._negative_hist
        merged._log_loss_total += other._log_loss_total
        merged._n_log_loss += other._n_log_loss
        merged._sums = [a + b for a, b in zip(merged._sums, other._sums, strict=True)]
        merged._delay_counts += other._delay_counts
        merged._delay_total += other._delay_total
        merged._n_delay += other._n_delay
        return merged

    def _config(self) -> tuple[str, tuple[str, ...], str | None, int]:
        return self._task, self._classes, self._positive, self._bins

    def _copy(self) -> PerformanceSummary:
        new = object.__new__(PerformanceSummary)
        new.__dict__.update(self.__dict__)
        for name in ("_confusion", "_positive_hist", "_negative_hist", "_delay_counts"):
            setattr(new, name, getattr(self, name).copy())
        new._sums = list(self._sums)
        return new

    # -- reading: classification ------------------------------------------------------------

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
        return self._n

    @property
    def confusion(self) -> IntArray:
        """Counts by (true class, predicted class), classes then "other" (read-only)."""
        return readonly(self._confusion)

    @property
    def accuracy(self) -> float | None:
        """Share of predictions equal to their label."""
        if self._task == "regression" or not self._n:
            return None
        return self._n_correct / self._n

    def _per_class(self) -> tuple[IntArray, IntArray, IntArray]:
        k = len(self._classes)
        tp = np.diagonal(self._confusion)[:k]
        predicted = self._confusion[:, :k].sum(axis=0)
        actual = self._confusion[:k, :].sum(axis=1)
        return tp, predicted, actual

    def _positive_index(self) -> int | None:
        if self._positive is None or self._task != "binary" or not self._n:
            return None
        return self._classes.index(self._positive)

    def _macro(self, which: Literal["precision", "recall", "f1"]) -> float | None:
        if self._task == "regression" or not self._n:
            return None
        tp, predicted, actual = self._per_class()
        present = (predicted + actual) > 0
        if not present.any():
            return None
        # Like scikit-learn's zero_division=0: an undefined per-class value counts as 0.
        denominator = {"precision": predicted, "recall": actual, "f1": predicted + actual}[which]
        numerator = 2 * tp if which == "f1" else tp
        values = np.divide(numerator, denominator, out=np.zeros(tp.shape[0]), where=denominator > 0)
        return float(values[present].mean())

    def _binary(self, which: Literal["precision", "recall", "f1"]) -> float | None:
        c = self._positive_index()
        if c is None:
            return None
        tp, predicted, actual = (int(v[c]) for v in self._per_class())
        denominator = {"precision": predicted, "recall": actual, "f1": predicted + actual}[which]
        numerator = 2 * tp if which == "f1" else tp
        return numerator / denominator if denominator else None

    def _headline(self, which: Literal["precision", "recall", "f1"]) -> float | None:
        return self._binary(which) if self._task == "binary" else self._macro(which)

    @property
    def precision(self) -> float | None:
        """Binary: of the positive class; multiclass: macro average."""
        return self._headline("precision")

    @property
    def recall(self) -> float | None:
        """Binary: of the positive class; multiclass: macro average."""
        return self._headline("recall")

    @property
    def f1(self) -> float | None:
        """Binary: of the positive class; multiclass: macro average."""
        return self._headline("f1")

    @property
    def precision_macro(self) -> float | None:
        """Mean precision over the known classes that were labelled or predicted."""
        return self._macro("precision")

    @property
    def recall_macro(self) -> float | None:
        """Mean recall over the known classes that were labelled or predicted."""
        return self._macro("recall")

    @property
    def f1_macro(self) -> float | None:
        """Mean F1 over the known classes that were labelled or predicted."""
        return self._macro("f1")

    @property
    def log_loss(self) -> float | None:
        """Mean of ``-log p(true class)`` over rows scored for their label's class."""
        if not self._n_log_loss:
            return None
        return exact_value(self._log_loss_total) / self._n_log_loss

    def class_roc_auc(self, cls: str) -> tuple[float, float] | None:
        """One-vs-rest ROC AUC of ``cls`` and its error bound, from the score histograms.

        None unless both positives and negatives of ``cls`` were scored.
        """
        c = self._classes.index(cls)
        positives = [int(v) for v in self._positive_hist[c]]
        negatives = [int(v) for v in self._negative_hist[c]]
        n_pos, n_neg = sum(positives), sum(negatives)
        if not n_pos or not n_neg:
            return None
        below = 0  # negatives in lower bins
        wins = 0
        ties = 0
        for p, q in zip(positives, negatives, strict=True):
            wins += p * below
            ties += p * q
            below += q
        pairs = n_pos * n_neg
        # Integer numerators, one correctly rounded division each.
        return (2 * wins + ties) / (2 * pairs), ties / (2 * pairs)

    def calibration(self, cls: str | None = None) -> CalibrationReport | None:
        """How well ``cls``'s scores (default: the positive class) match its outcomes, from
        the score histograms: expected calibration error and a reliability table.

        None for regression, or before any score of ``cls`` was labelled.
        """
        target = cls if cls is not None else self.positive_class
        if self._task == "regression" or target is None or target not in self._classes:
            return None
        c = self._classes.index(target)
        positives = self._positive_hist[c]
        counts = positives + self._negative_hist[c]
        if not counts.any():
            return None
        edges = np.linspace(0.0, 1.0, self._bins + 1)[1:-1]  # interior edges, as profiles
        return calibration_report(edges, counts, positives)

    def _auc(self) -> tuple[float, float] | None:
        if self._task == "regression" or not self._n:
            return None
        if self._task == "binary":
            c = self._positive_index()
            return None if c is None else self.class_roc_auc(self._classes[c])
        found = [r for r in map(self.class_roc_auc, self._classes) if r is not None]
        if not found:
            return None
        return (
            math.fsum(a for a, _ in found) / len(found),
            math.fsum(b for _, b in found) / len(found),
        )

    @property
    def roc_auc(self) -> float | None:
        """Binary: AUC of the positive class; multiclass: macro one-vs-rest AUC."""
        auc = self._auc()
        return None if auc is None else auc[0]

    @property
    def roc_auc_bound(self) -> float | None:
        """Largest difference between :attr:`roc_auc` and the exact AUC on the raw scores."""
        auc = self._auc()
        return None if auc is None else auc[1]

    # -- reading: regression ----------------------------------------------------------------

    def _mean(self, index: int) -> float | None:
        if self._task != "regression" or not self._n:
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
        if self._task != "regression" or not self._n:
            return None
        s_y, s_yy, _, _, s_ee = self._sums
        # In units of 2**-1126: n * SSE / (n * Syy - Sy**2), all exact integers.
        scale = self._n * s_yy * (1 << 1126)
        total = scale - s_y * s_y
        # Syy sums squares rounded to float64 (each within 2**-53): a spread below that
        # rounding is no spread (one label, or labels equal up to rounding).
        if total <= scale >> 50:
            return None
        try:
            return 1.0 - (self._n * s_ee * (1 << 1126)) / total
        except OverflowError:  # labels that hardly vary, errors that do: R² below -1.8e308
            return -math.inf

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

    def metrics(self) -> dict[str, float]:
        """Every defined metric of the task, by the names the configuration uses."""
        names = (
            ("mae", "rmse", "r2", "mean_error")
            if self._task == "regression"
            else (
                "accuracy",
                "precision",
                "recall",
                "f1",
                "precision_macro",
                "recall_macro",
                "f1_macro",
                "log_loss",
                "roc_auc",
                "roc_auc_bound",
            )
        )
        values = {name: getattr(self, name) for name in names}
        return {name: float(v) for name, v in values.items() if v is not None}

    # -- bytes ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A compact msgpack encoding, self-describing; :meth:`from_bytes` restores it."""
        state = _PerformanceState(
            format=_FORMAT,
            task=self._task,
            classes=list(self._classes),
            positive_class=self._positive,
            score_bins=self._bins,
            n=self._n,
            n_correct=self._n_correct,
            confusion=self._confusion.ravel().tolist(),
            positive_hist=self._positive_hist.ravel().tolist(),
            negative_hist=self._negative_hist.ravel().tolist(),
            log_loss_total=int_to_bytes(self._log_loss_total),
            n_log_loss=self._n_log_loss,
            sums=[int_to_bytes(v) for v in self._sums],
            delay_counts=self._delay_counts.tolist(),
            delay_total=int_to_bytes(self._delay_total),
            n_delay=self._n_delay,
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
                raise ValueError(f"format {state.format} is not supported (expected {_FORMAT})")
            summary = cls(
                state.task,  # type: ignore[arg-type]
                state.classes,
                positive_class=state.positive_class,
                score_bins=state.score_bins,
            )
            k, b = len(summary._classes), summary._bins
            summary._n, summary._n_correct = state.n, state.n_correct
            summary._confusion = _shaped(state.confusion, (k + 1, k + 1))
            summary._positive_hist = _shaped(state.positive_hist, (k, b))
            summary._negative_hist = _shaped(state.negative_hist, (k, b))
            summary._log_loss_total = int_from_bytes(state.log_loss_total)
            summary._n_log_loss = state.n_log_loss
            if len(state.sums) != _N_SUMS:
                raise ValueError(f"{len(state.sums)} sums encoded, expected {_N_SUMS}")
            summary._sums = [int_from_bytes(v) for v in state.sums]
            summary._delay_counts = _shaped(state.delay_counts, (len(LABEL_DELAY_EDGES_MS) + 1,))
            summary._delay_total = int_from_bytes(state.delay_total)
            summary._n_delay = state.n_delay
        except ValueError as exc:
            raise DecodeError(
                f"not a valid performance summary: {exc}", kind="invalid_summary"
            ) from None
        return summary

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PerformanceSummary):
            return NotImplemented
        return (
            self._config() == other._config()
            and (self._n, self._n_correct, self._n_log_loss, self._n_delay)
            == (other._n, other._n_correct, other._n_log_loss, other._n_delay)
            and (self._log_loss_total, self._sums, self._delay_total)
            == (other._log_loss_total, other._sums, other._delay_total)
            and np.array_equal(self._confusion, other._confusion)
            and np.array_equal(self._positive_hist, other._positive_hist)
            and np.array_equal(self._negative_hist, other._negative_hist)
            and np.array_equal(self._delay_counts, other._delay_counts)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PerformanceSummary(task={self._task!r}, classes={self._classes}, n={self._n})"


def _shaped(values: list[int], shape: tuple[int, ...]) -> IntArray:
    array = np.array(values, dtype=np.int64)
    if array.size != math.prod(shape):
        raise ValueError(f"{array.size} counts encoded, expected shape {shape}")
    return array.reshape(shape)
