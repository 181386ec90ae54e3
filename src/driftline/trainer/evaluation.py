"""Champion / challenger: which examples train and judge a candidate, and whether it wins.

:func:`training_data` cuts a model's stored examples (time order) into the training range a
retrain request implies and a holdout of the newest examples:

* ``onset``: the examples predicted at or after the request's ``window_start`` (the drift's
  onset); ``recent``: the newest ``recent_rows``. When the range holds too few examples for
  ``min_train`` plus the holdout, the newest ``min_train`` plus holdout are used instead and
  the reason says so; when the store holds too few altogether,
  :class:`~driftline.errors.NotEnoughExamplesError`.
* the holdout is the newest ``max(min_holdout, holdout_fraction * range)`` examples of the
  range; the candidate never trains on them.

:func:`evaluate` judges both models on the same holdout with the model's configured metric.
The champion's figure comes from the predictions it actually made (the examples' own
``prediction`` and ``scores``, from the version being served), so no champion artifact is
loaded; the candidate predicts the holdout's features. Both are computed by
:class:`~driftline.detectors.performance.PerformanceSummary`, the monitor's own code, so the
figures match what the monitor reports. The candidate is promoted when it beats the champion
by more than ``margin`` in the metric's good direction, or always with ``promote: always``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from driftline.detectors.classification import ClassificationCounts
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.regression import RegressionSums
from driftline.detectors.values import category_key
from driftline.errors import NotEnoughExamplesError
from driftline.schemas.events import Task
from driftline.trainer.protocol import Examples, FittedModel, Label

__all__ = [
    "LOWER_IS_BETTER",
    "Evaluation",
    "TrainingData",
    "evaluate",
    "metric_value",
    "training_data",
]

LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
"""The metrics whose smaller values are better."""
_SCORE_BINS = 1000
# The metrics the monitor's own summaries report, but for two that no candidate can beat a
# champion on: an error bound of the AUC, and a bias whose good direction is zero, not up.
_METRICS = frozenset(ClassificationCounts.METRICS + RegressionSums.METRICS) - {
    "roc_auc_bound",
    "mean_error",
}


@dataclass(frozen=True)
class TrainingData:
    """What a candidate trains on and is judged on, and why these examples."""

    train: Examples
    holdout: Examples
    range: Literal["onset", "recent"]
    reason: str

    @property
    def start_ms(self) -> int:
        """The oldest training example's prediction time."""
        return self.train.rows[0].time_ms

    @property
    def end_ms(self) -> int:
        """The newest holdout example's prediction time."""
        return self.holdout.rows[-1].time_ms


def _holdout_size(n: int, fraction: float, min_holdout: int) -> int:
    return max(min_holdout, math.ceil(fraction * n))


def training_data(
    examples: Examples,
    *,
    range: Literal["onset", "recent"],
    onset_ms: int | None,
    recent_rows: int,
    holdout_fraction: float,
    min_holdout: int,
    min_train: int,
) -> TrainingData:
    """The training range and holdout for a request (see the module's docstring).

    >>> from driftline.trainer.protocol import Example
    >>> rows = Examples.of(Example(str(i), i, {}, 0, "1") for i in range(100))
    >>> data = training_data(rows, range="onset", onset_ms=50, recent_rows=0,
    ...                      holdout_fraction=0.2, min_holdout=5, min_train=20)
    >>> len(data.train), len(data.holdout), data.start_ms, data.end_ms
    (40, 10, 50, 99)
    """
    if range == "onset":
        if onset_ms is None:
            raise ValueError("range 'onset' needs onset_ms")
        chosen = examples.since(onset_ms)
        what = f"{len(chosen)} examples since the onset"
    else:
        chosen = examples.newest(recent_rows)
        what = f"the newest {len(chosen)} examples"
    holdout_n = _holdout_size(len(chosen), holdout_fraction, min_holdout)
    reason = f"{what}, the newest {holdout_n} held out"
    if len(chosen) - holdout_n < min_train:
        needed = min_train + _holdout_size(min_train, holdout_fraction, min_holdout)
        if len(examples) < needed:
            raise NotEnoughExamplesError(
                f"{len(examples)} examples stored, {needed} needed "
                f"(min_train {min_train} plus the holdout)",
                needed=needed,
                found=len(examples),
            )
        chosen = examples.newest(needed)
        holdout_n = needed - min_train
        reason = (
            f"{what} are too few for min_train {min_train} plus the holdout: trained on the "
            f"newest {needed} instead, the newest {holdout_n} held out"
        )
    train = chosen.oldest(len(chosen) - holdout_n)
    holdout = chosen.newest(holdout_n)
    return TrainingData(train, holdout, range, reason)


@dataclass(frozen=True)
class Evaluation:
    """The candidate and the champion on one holdout, and the decision."""

    metric: str
    champion: float | None
    candidate: float | None
    n: int
    margin: float
    lower_is_better: bool
    promote: bool
    reason: str

    @property
    def improvement(self) -> float | None:
        """How much better the candidate is, in the metric's good direction."""
        if self.champion is None or self.candidate is None:
            return None
        delta = self.candidate - self.champion
        return -delta if self.lower_is_better else delta


def _classes(task: Task, columns: Sequence[Sequence[object]]) -> tuple[str, ...]:
    found: set[str] = set()
    for column in columns:
        found.update(key for key in map(category_key, column) if key is not None)
    return tuple(sorted(found))


def _score_columns(
    scores: Sequence[Mapping[str, float] | None], classes: Sequence[str]
) -> dict[str, list[float]] | None:
    if not any(scores):
        return None
    return {
        c: [math.nan if s is None else float(s.get(c, math.nan)) for s in scores] for c in classes
    }


def metric_value(
    metric: str,
    task: Task,
    labels: Sequence[Label],
    predictions: Sequence[Label | None],
    scores: Sequence[Mapping[str, float] | None] | None = None,
    *,
    classes: Sequence[str] | None = None,
    positive_class: str | None = None,
) -> float | None:
    """``metric`` of ``predictions`` (and ``scores``) against ``labels``, as the monitor
    computes it; None where undefined (an AUC with one class, a log loss without scores).

    >>> metric_value("accuracy", "binary", [1, 0, 1, 1], [1, 0, 0, 1])
    0.75
    >>> metric_value("rmse", "regression", [1.0, 2.0], [1.0, 4.0])
    1.4142135623730951
    """
    if task == "regression":
        summary = PerformanceSummary("regression")
        predicted = [math.nan if p is None else float(p) for p in predictions]
        summary.fold(np.asarray(labels, dtype=np.float64), np.asarray(predicted))
    else:
        score_rows = list(scores) if scores is not None else []
        if classes is None:
            classes = _classes(task, [labels, predictions, [k for s in score_rows if s for k in s]])
        summary = PerformanceSummary(
            task, classes, positive_class=positive_class, score_bins=_SCORE_BINS
        )
        summary.fold(labels, predictions, _score_columns(score_rows, classes))
    value = getattr(summary, metric)
    return None if value is None else float(value)


def evaluate(
    candidate: FittedModel,
    holdout: Examples,
    *,
    task: Task,
    metric: str,
    promote: Literal["if_better", "always"] = "if_better",
    margin: float = 0.0,
    positive_class: str | None = None,
) -> Evaluation:
    """Judge ``candidate`` against the champion's own predictions on ``holdout``.

    The champion's figure is that of whichever versions made the holdout's predictions; to
    judge only the version being served, pass ``holdout.of_version(version)`` (both models
    are then judged on those examples alone).

    >>> from driftline.trainer.protocol import Example
    >>> class Always1:
    ...     def predict(self, rows): return [1] * len(rows)
    ...     def predict_scores(self, rows): return None
    ...     def params(self): return {}
    >>> holdout = Examples.of(Example(str(i), i, {}, 1, "1", prediction=i % 2) for i in range(10))
    >>> result = evaluate(Always1(), holdout, task="binary", metric="accuracy", margin=0.1)
    >>> result.champion, result.candidate, result.promote
    (0.5, 1.0, True)
    """
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; allowed: {sorted(_METRICS)}")
    lower = metric in LOWER_IS_BETTER
    rows = holdout.features
    labels = holdout.labels
    champion_predictions = [row.prediction for row in holdout]
    champion_scores = [row.scores for row in holdout]
    candidate_predictions = candidate.predict(rows)
    candidate_scores = None if task == "regression" else candidate.predict_scores(rows)
    classes: tuple[str, ...] | None = None
    if task != "regression":
        score_keys = [k for s in [*champion_scores, *(candidate_scores or [])] if s for k in s]
        classes = _classes(task, [labels, champion_predictions, candidate_predictions, score_keys])
    champion, challenger = (
        metric_value(
            metric, task, labels, predicted, scored, classes=classes, positive_class=positive_class
        )
        for predicted, scored in (
            (champion_predictions, champion_scores),
            (candidate_predictions, candidate_scores),
        )
    )
    n = len(holdout)
    if promote == "always":
        decision, reason = True, "promote: always"
    elif challenger is None:
        decision, reason = False, f"the candidate has no {metric} on the holdout"
    elif champion is None:
        decision, reason = True, f"the champion has no {metric} on the holdout"
    else:
        gain = champion - challenger if lower else challenger - champion
        decision = gain > margin
        verb = "beats" if decision else "does not beat"
        reason = (
            f"the candidate's {metric} {challenger:.4g} {verb} the champion's {champion:.4g} "
            f"by more than {margin:g} on {n} holdout examples"
        )
    return Evaluation(metric, champion, challenger, n, margin, lower, decision, reason)
