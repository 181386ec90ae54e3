"""A classifier's realised performance as mergeable counts: confusion, score histograms, log loss.

:class:`ClassificationCounts` is the classification half of
:class:`~driftline.detectors.performance.PerformanceSummary`: a confusion matrix over the class
set plus one slot for classes outside it, the number of exactly correct predictions, per-class
score histograms of positives and negatives (``score_bins`` equal bins on ``[0, 1]``) and the
exact log-loss sum. Everything is counts and exact sums, so merging is exact.

ROC AUC comes from the score histograms. Pairs of a positive and a negative in different bins
are ordered exactly; pairs in the same bin are counted as ties (one half). The exact
Mann-Whitney AUC counts each such pair as 0, 1/2 or 1, so the histogram AUC is within
``roc_auc_bound = sum_i P_i N_i / (2 P N)`` of it, where ``P_i, N_i`` are the positives and
negatives in bin ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, TypedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftline.detectors._checks import check_per_label, shaped
from driftline.detectors.estimate import CalibrationReport, calibration_report
from driftline.detectors.exact import exact_sum, exact_value, int_from_bytes, int_to_bytes
from driftline.detectors.values import (
    IntArray,
    ObjectArray,
    category_codes,
    category_index,
    missing_mask,
    readonly,
    to_categorical,
)

__all__ = [
    "LOG_LOSS_EPS",
    "ClassificationCounts",
    "ClassificationState",
    "default_positive_class",
]

LOG_LOSS_EPS = 1e-15
"""Probabilities are clipped to ``[eps, 1 - eps]`` before the logarithm."""

_Rate = Literal["precision", "recall", "f1"]


class ClassificationState(TypedDict):
    """The fields :class:`ClassificationCounts` adds to a performance summary's encoding."""

    n_correct: int
    confusion: list[int]
    positive_hist: list[int]
    negative_hist: list[int]
    log_loss_total: bytes
    n_log_loss: int


def default_positive_class(classes: Sequence[str]) -> str | None:
    """``"1"`` or ``"true"`` when present, else the last class in sorted order.

    >>> default_positive_class(("0", "1")), default_positive_class(("no", "yes"))
    ('1', 'yes')
    """
    for name in ("1", "true"):
        if name in classes:
            return name
    return sorted(classes)[-1] if classes else None


class ClassificationCounts:
    """Mergeable counts of a classifier's labelled predictions, and the metrics they give.

    Built (with its parameters checked) by
    :class:`~driftline.detectors.performance.PerformanceSummary`, which documents the metrics.

    Examples
    --------
    >>> counts = ClassificationCounts("binary", ("0", "1"), "1", score_bins=10)
    >>> _ = counts.fold([1, 0, 1], [1, 1, 1], {"1": [0.9, 0.6, 0.7]})
    >>> counts.accuracy, counts.precision, counts.roc_auc
    (0.6666666666666666, 0.6666666666666666, 1.0)
    """

    METRICS = (
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
    """The metrics a classifier reports, by the names the configuration uses."""

    def __init__(
        self,
        task: Literal["binary", "multiclass"],
        classes: tuple[str, ...],
        positive_class: str | None,
        score_bins: int,
    ) -> None:
        self._task = task
        self._classes = classes
        self._positive = positive_class
        self._bins = score_bins
        self._index = category_index(classes)
        self.reset()

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

    # -- updating ---------------------------------------------------------------------------

    def fold(
        self,
        labels: ArrayLike | Iterable[object],
        predictions: ArrayLike | Iterable[object],
        scores: Mapping[str, ArrayLike] | None = None,
    ) -> NDArray[np.bool_]:
        """Add labelled predictions, skipping rows without a label; returns the rows kept.

        ``scores`` maps a class to its probabilities (NaN where not given; for a binary task a
        missing class's score is one minus the other's).
        """
        keys = to_categorical(labels)
        predicted = to_categorical(predictions)
        check_per_label("predictions", predicted, keys.shape[0])
        keep = ~missing_mask(keys)
        self._fold_kept(keys[keep], predicted[keep], scores, keep)
        return keep

    def _codes(self, keys: ObjectArray) -> IntArray:
        # Unlisted and missing classes both go to the "other" slot.
        return np.minimum(category_codes(self._index, keys), len(self._classes))

    def _fold_kept(
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
                check_per_label(f"scores[{name!r}]", column, keep.shape[0])
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

    def merge(self, other: ClassificationCounts) -> ClassificationCounts:
        """New counts holding both (of the same class set and bins); exact."""
        merged = ClassificationCounts(self._task, self._classes, self._positive, self._bins)
        merged._n = self._n + other._n
        merged._n_correct = self._n_correct + other._n_correct
        merged._confusion = self._confusion + other._confusion
        merged._positive_hist = self._positive_hist + other._positive_hist
        merged._negative_hist = self._negative_hist + other._negative_hist
        merged._log_loss_total = self._log_loss_total + other._log_loss_total
        merged._n_log_loss = self._n_log_loss + other._n_log_loss
        return merged

    # -- reading ----------------------------------------------------------------------------

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
        return self._n_correct / self._n if self._n else None

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

    def _macro(self, which: _Rate) -> float | None:
        if not self._n:
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

    def _binary(self, which: _Rate) -> float | None:
        c = self._positive_index()
        if c is None:
            return None
        tp, predicted, actual = (int(v[c]) for v in self._per_class())
        denominator = {"precision": predicted, "recall": actual, "f1": predicted + actual}[which]
        numerator = 2 * tp if which == "f1" else tp
        return numerator / denominator if denominator else None

    def _headline(self, which: _Rate) -> float | None:
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

        None before any score of ``cls`` was labelled.
        """
        target = cls if cls is not None else self._positive
        if target is None or target not in self._classes:
            return None
        c = self._classes.index(target)
        positives = self._positive_hist[c]
        counts = positives + self._negative_hist[c]
        if not counts.any():
            return None
        edges = np.linspace(0.0, 1.0, self._bins + 1)[1:-1]  # interior edges, as profiles
        return calibration_report(edges, counts, positives)

    def _auc(self) -> tuple[float, float] | None:
        if not self._n:
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

    # -- state ------------------------------------------------------------------------------

    def state(self) -> ClassificationState:
        """The counts (but ``n``) as plain fields of a performance summary's encoding."""
        return ClassificationState(
            n_correct=self._n_correct,
            confusion=self._confusion.ravel().tolist(),
            positive_hist=self._positive_hist.ravel().tolist(),
            negative_hist=self._negative_hist.ravel().tolist(),
            log_loss_total=int_to_bytes(self._log_loss_total),
            n_log_loss=self._n_log_loss,
        )

    def restore(self, n: int, state: ClassificationState) -> None:
        """Take over ``n`` and a :meth:`state`; raise if its counts do not fit the classes."""
        k, b = len(self._classes), self._bins
        self._n, self._n_correct = n, state["n_correct"]
        self._confusion = shaped(state["confusion"], (k + 1, k + 1))
        self._positive_hist = shaped(state["positive_hist"], (k, b))
        self._negative_hist = shaped(state["negative_hist"], (k, b))
        self._log_loss_total = int_from_bytes(state["log_loss_total"])
        self._n_log_loss = state["n_log_loss"]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassificationCounts):
            return NotImplemented
        return (
            (self._task, self._classes, self._positive, self._bins)
            == (other._task, other._classes, other._positive, other._bins)
            and (self._n, self._n_correct, self._n_log_loss, self._log_loss_total)
            == (other._n, other._n_correct, other._n_log_loss, other._log_loss_total)
            and np.array_equal(self._confusion, other._confusion)
            and np.array_equal(self._positive_hist, other._positive_hist)
            and np.array_equal(self._negative_hist, other._negative_hist)
        )

    __hash__ = None  # type: ignore[assignment]
