"""Classifier performance without labels, and the calibration check once labels arrive.

Labels often arrive hours or weeks after the prediction. Until they do, a classifier's own
scores estimate its performance, in the spirit of NannyML's confidence-based performance
estimation (CBPE): if the scores are calibrated, a prediction made with top-class probability
``s`` is right with probability ``s``, so the expected accuracy of a window is the mean top-class
score, and for a binary classifier the expected confusion matrix is the sum of the positive-class
scores split by the predicted class. Every summary here is a few sums, merged by addition, so
stage 1 folds them per pane and stage 2 adds panes into windows.

The estimate is only as good as the calibration, so :func:`calibration_report` checks it against the
labels as they arrive: the expected calibration error from per-score-bin counts of predictions
and of positive labels, and a reliability table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from driftline.detectors._binned import checked_counts
from driftline.detectors.result import TestResult
from driftline.detectors.values import FloatArray
from driftline.errors import StatisticsError

__all__ = [
    "BinaryScoreSums",
    "CalibrationReport",
    "ReliabilityBin",
    "ScoreSum",
    "calibration_report",
    "expected_accuracy",
]


def expected_accuracy(sum_max_score: float, count: int) -> float:
    """Expected accuracy of ``count`` predictions whose top-class scores sum to ``sum_max_score``.

    NaN for no predictions.

    >>> expected_accuracy(85.0, 100)
    0.85
    """
    return sum_max_score / count if count else math.nan


@dataclass(frozen=True, slots=True)
class ScoreSum:
    """Sum of the top-class scores of some predictions, and how many: merged by ``+``.

    Examples
    --------
    >>> a = ScoreSum.from_scores([[0.9, 0.1], [0.4, 0.6]])
    >>> b = ScoreSum.from_scores([0.2])  # binary: positive-class scores
    >>> (a + b).count, round((a + b).total, 3)
    (3, 2.3)
    >>> round((a + b).expected_accuracy, 4)
    0.7667
    """

    total: float = 0.0
    count: int = 0

    @classmethod
    def from_scores(cls, scores: ArrayLike) -> ScoreSum:
        """Fold a batch of scores.

        ``scores`` is either an ``(n, k)`` array of class probabilities (each row's maximum is
        the predicted class's score) or a 1-d array of a binary classifier's positive-class
        probabilities (the predicted class's score is ``max(s, 1 - s)``).
        """
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim == 1:
            top = np.maximum(s, 1.0 - s)
        elif s.ndim == 2:
            top = s.max(axis=1) if s.shape[0] else np.zeros(0)
        else:
            raise StatisticsError(f"scores must be 1-d or 2-d, got shape {s.shape}")
        return cls(total=float(top.sum()), count=int(top.size))

    def __add__(self, other: ScoreSum) -> ScoreSum:
        return ScoreSum(self.total + other.total, self.count + other.count)

    @property
    def expected_accuracy(self) -> float:
        """Mean top-class score: the accuracy the scores promise (NaN for no predictions)."""
        return expected_accuracy(self.total, self.count)


@dataclass(frozen=True, slots=True)
class BinaryScoreSums:
    """Positive-class score sums of a binary classifier, split by the predicted class.

    A prediction is positive when its positive-class score ``s`` is at least ``threshold``.
    With calibrated scores the positive one contributes ``s`` expected true positives and
    ``1 - s`` false positives, a negative one ``s`` false negatives and ``1 - s`` true negatives,
    so four sums give the expected confusion matrix. Precision, recall and F1 are computed from
    the expected matrix (a ratio of expectations, as CBPE does). Merged by ``+`` when the
    thresholds agree.

    Examples
    --------
    >>> sums = BinaryScoreSums.from_scores([0.9, 0.8, 0.3, 0.1])
    >>> [round(v, 3) for v in sums.expected_confusion]  # tp, fp, fn, tn
    [1.7, 0.3, 0.4, 1.6]
    >>> round(sums.expected_precision, 3), round(sums.expected_recall, 3)
    (0.85, 0.81)
    """

    threshold: float
    n_positive: int
    score_positive: float
    n_negative: int
    score_negative: float

    @classmethod
    def from_scores(cls, scores: ArrayLike, threshold: float = 0.5) -> BinaryScoreSums:
        """Fold a batch of positive-class scores."""
        s = np.asarray(scores, dtype=np.float64).ravel()
        positive = s >= threshold
        return cls(
            threshold=float(threshold),
            n_positive=int(positive.sum()),
            score_positive=float(s[positive].sum()),
            n_negative=int((~positive).sum()),
            score_negative=float(s[~positive].sum()),
        )

    @classmethod
    def from_histogram(
        cls,
        edges: ArrayLike,
        counts: ArrayLike,
        threshold: float,
        score_sums: ArrayLike | None = None,
    ) -> BinaryScoreSums:
        """Build the sums from a histogram of positive-class scores.

        Parameters
        ----------
        edges
            Interior bin edges, strictly increasing; bins are ``[0, e0), [e0, e1), ...,
            [e_last, 1]`` as in a :class:`~driftline.schemas.reference.NumericProfile`.
        counts
            Predictions per bin, ``len(edges) + 1`` entries.
        threshold
            The decision threshold; it must be one of ``edges`` so that every bin lies wholly
            on one side of it.
        score_sums
            Sum of the scores per bin, if the histogram keeps them: the result is then exact.
            Without them each bin's scores are placed at its midpoint, which is off by at most
            half the bin's width per prediction.

        Examples
        --------
        >>> sums = BinaryScoreSums.from_histogram([0.5], [2, 2], 0.5, score_sums=[0.4, 1.7])
        >>> [round(v, 3) for v in sums.expected_confusion]
        [1.7, 0.3, 0.4, 1.6]
        """
        e = np.asarray(edges, dtype=np.float64)
        c = checked_counts(counts, e.size + 1).astype(np.float64)
        split = np.flatnonzero(e == threshold)
        if split.size != 1:
            raise StatisticsError(
                f"threshold must be one of the histogram's edges, got {threshold}"
            )
        if score_sums is None:
            closed = np.concatenate(([0.0], e, [1.0]))
            sums: FloatArray = c * (closed[:-1] + closed[1:]) / 2.0
        else:
            sums = np.asarray(score_sums, dtype=np.float64)
            if sums.shape != c.shape:
                raise StatisticsError(
                    f"score_sums must have {c.size} entries, got shape {sums.shape}"
                )
        first_positive = int(split[0]) + 1
        return cls(
            threshold=float(threshold),
            n_positive=int(c[first_positive:].sum()),
            score_positive=float(sums[first_positive:].sum()),
            n_negative=int(c[:first_positive].sum()),
            score_negative=float(sums[:first_positive].sum()),
        )

    def __add__(self, other: BinaryScoreSums) -> BinaryScoreSums:
        if other.threshold != self.threshold:
            raise StatisticsError(
                f"cannot merge sums for thresholds {self.threshold} and {other.threshold}"
            )
        return BinaryScoreSums(
            self.threshold,
            self.n_positive + other.n_positive,
            self.score_positive + other.score_positive,
            self.n_negative + other.n_negative,
            self.score_negative + other.score_negative,
        )

    @property
    def count(self) -> int:
        """Predictions summed."""
        return self.n_positive + self.n_negative

    @property
    def expected_confusion(self) -> tuple[float, float, float, float]:
        """Expected ``(tp, fp, fn, tn)``."""
        tp = self.score_positive
        fp = self.n_positive - self.score_positive
        fn = self.score_negative
        tn = self.n_negative - self.score_negative
        return (tp, fp, fn, tn)

    @property
    def expected_accuracy(self) -> float:
        """Expected share of correct predictions (NaN for no predictions)."""
        tp, _, _, tn = self.expected_confusion
        return (tp + tn) / self.count if self.count else math.nan

    @property
    def expected_precision(self) -> float:
        """Expected ``tp / (tp + fp)`` (NaN when nothing is predicted positive)."""
        tp, fp, _, _ = self.expected_confusion
        return tp / (tp + fp) if tp + fp > 0 else math.nan

    @property
    def expected_recall(self) -> float:
        """Expected ``tp / (tp + fn)`` (NaN when no positives are expected)."""
        tp, _, fn, _ = self.expected_confusion
        return tp / (tp + fn) if tp + fn > 0 else math.nan

    @property
    def expected_f1(self) -> float:
        """Expected ``2tp / (2tp + fp + fn)`` (NaN when the denominator is 0)."""
        tp, fp, fn, _ = self.expected_confusion
        denominator = 2 * tp + fp + fn
        return 2 * tp / denominator if denominator > 0 else math.nan


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """One row of a reliability table: a score bin, its mean score and its observed rate."""

    lower: float
    upper: float
    count: int
    mean_score: float
    observed_rate: float


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    """How well scores matched outcomes in one window.

    ``ece`` is the count-weighted mean of ``|observed rate - mean score|`` over the score bins,
    ``mce`` its largest bin's value, ``hosmer_lemeshow`` Pearson's statistic of the positive
    counts against the counts the scores promise, and ``p_value`` its chi-square p-value with one
    degree of freedom per non-empty bin (the scores were not fitted on these labels). ``bins``
    holds only the non-empty bins.
    """

    bins: tuple[ReliabilityBin, ...]
    n: int
    ece: float
    mce: float
    hosmer_lemeshow: float
    p_value: float | None

    def to_result(self, *, threshold: float, column: str = "calibration") -> TestResult:
        """The report as a ``performance`` :class:`TestResult` on the ECE.

        ``n_reference`` is 0: calibration compares scores with labels, not with a reference.
        ``drifted`` is ``ece >= threshold`` (never for an empty window).

        >>> report = calibration_report([0.5], [100, 100], [20, 90])
        >>> r = report.to_result(threshold=0.05)
        >>> r.test, round(r.statistic, 3), r.drifted
        ('ece', 0.1, True)
        """
        return TestResult(
            test="ece",
            column=column,
            statistic=self.ece,
            p_value=self.p_value,
            threshold=float(threshold),
            n_reference=0,
            n_current=self.n,
            drifted=bool(self.n > 0 and self.ece >= threshold),
            kind="performance",
        )


def calibration_report(
    edges: ArrayLike,
    counts: ArrayLike,
    positives: ArrayLike,
    score_sums: ArrayLike | None = None,
) -> CalibrationReport:
    """Compare scores with outcomes per score bin.

    Works for a binary classifier's positive-class score (``positives`` = positive labels per
    bin) and for any classifier's top-class score (``positives`` = correct predictions per bin).

    Parameters
    ----------
    edges
        Interior bin edges in (0, 1), strictly increasing; bins are ``[0, e0), ..., [e_last, 1]``.
    counts
        Labelled predictions per bin, ``len(edges) + 1`` entries.
    positives
        Of those, how many turned out positive (or correct).
    score_sums
        Sum of the scores per bin, if kept; otherwise each bin's mean score is its midpoint.

    Returns
    -------
    CalibrationReport
        ECE, MCE, the Hosmer-Lemeshow statistic and p-value, and the reliability table. For no
        labelled predictions: ECE and MCE NaN, p-value None.

    Examples
    --------
    >>> report = calibration_report([0.5], [100, 100], [20, 90], score_sums=[25.0, 85.0])
    >>> round(report.ece, 3), round(report.mce, 3)
    (0.05, 0.05)
    >>> [(b.mean_score, b.observed_rate) for b in report.bins]
    [(0.25, 0.2), (0.85, 0.9)]
    """
    e = np.asarray(edges, dtype=np.float64)
    c = checked_counts(counts, e.size + 1)
    k = checked_counts(positives, e.size + 1)
    if (k > c).any():
        raise StatisticsError("positives cannot exceed counts in any bin")
    closed = np.concatenate(([0.0], e, [1.0]))
    if score_sums is None:
        sums: FloatArray = c * (closed[:-1] + closed[1:]) / 2.0
    else:
        sums = np.asarray(score_sums, dtype=np.float64)
        if sums.shape != c.shape:
            raise StatisticsError(f"score_sums must have {c.size} entries, got shape {sums.shape}")
    n = int(c.sum())
    if n == 0:
        return CalibrationReport((), 0, math.nan, math.nan, 0.0, None)
    filled = c > 0
    count = c[filled].astype(np.float64)
    mean_score = sums[filled] / count
    observed = k[filled] / count
    gap = np.abs(observed - mean_score)
    expected = sums[filled]
    variance = expected * (1.0 - mean_score)
    deviation = (k[filled] - expected) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(variance > 0, deviation / variance, np.where(deviation > 0, np.inf, 0.0))
    statistic = float(terms.sum())
    rows = tuple(
        ReliabilityBin(float(lo), float(hi), int(m), float(s), float(o))
        for lo, hi, m, s, o in zip(
            closed[:-1][filled], closed[1:][filled], c[filled], mean_score, observed, strict=True
        )
    )
    return CalibrationReport(
        bins=rows,
        n=n,
        ece=float(np.dot(count / n, gap)),
        mce=float(gap.max()),
        hosmer_lemeshow=statistic,
        p_value=float(stats.chi2.sf(statistic, int(filled.sum()))),
    )
