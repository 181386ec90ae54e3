"""The built-in trainer: river pipelines, one pass over the examples, for every task.

Features go in as events carry them: numbers (and booleans, as 0/1) are standardised, strings
are one-hot encoded, missing values (None) are left out. The learner is a logistic regression
for binary tasks, one logistic regression per class (one-vs-rest) for multiclass tasks, and a
linear regression on a standardised target for regression, each learning every example once,
oldest first. It is the example to copy for a trainer of your own: see
:mod:`driftline.trainer.protocol`.

Classes are keyed as the monitor keys them (:func:`~driftline.detectors.values.category_key`),
so the labels ``1`` and ``1.0`` are one class and a binary model's positive class is the one
the monitor reports on (:func:`~driftline.detectors.classification.default_positive_class`).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import river
from river import compose, linear_model, multiclass, preprocessing

from driftline.detectors.classification import default_positive_class
from driftline.detectors.values import category_key
from driftline.errors import TrainingError
from driftline.schemas.events import Task
from driftline.trainer.protocol import Examples, FeatureValue, Label

__all__ = ["RiverModel", "RiverTrainer"]


def _row(features: Mapping[str, FeatureValue]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for name, value in features.items():
        if value is None:
            continue
        if isinstance(value, str):
            out[name] = value
        elif isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, numbers.Real):
            number = float(value)
            if number == number:  # NaN is missing
                out[name] = number
    return out


def _preprocessing() -> Any:
    numeric = compose.SelectType(numbers.Number) | preprocessing.StandardScaler()
    categorical = compose.SelectType(str) | preprocessing.OneHotEncoder()
    return compose.TransformerUnion(numeric, categorical)


class RiverModel:
    """A fitted river pipeline behind the :class:`~driftline.trainer.protocol.FittedModel`
    interface (what :class:`RiverTrainer` returns)."""

    def __init__(
        self,
        task: Task,
        pipeline: Any,
        labels: Mapping[str, Label],
        positive: str | None,
        n_examples: int,
    ) -> None:
        self.task: Task = task
        self.pipeline = pipeline
        self._labels = dict(labels)  # class key -> the label as it was first seen
        self._positive = positive
        self._n = n_examples

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes seen in training, keyed as the monitor keys them; empty for regression."""
        return tuple(sorted(self._labels))

    def _binary_scores(self, row: dict[str, float | str]) -> dict[str, float]:
        p = float(self.pipeline.predict_proba_one(row).get(True, 0.0))
        negatives = [key for key in self._labels if key != self._positive]
        scores = dict.fromkeys(negatives, 1.0 - p)
        if self._positive is not None:
            scores[self._positive] = p
        return scores

    def predict(self, rows: Sequence[Mapping[str, FeatureValue]]) -> list[Label]:
        """One prediction per row: a class (as labelled in training) or a number."""
        if self.task == "regression":
            return [float(self.pipeline.predict_one(_row(r))) for r in rows]
        out: list[Label] = []
        for scores in self.predict_scores(rows) or ():
            best = max(sorted(scores), key=lambda key: scores[key])
            out.append(self._labels[best])
        return out

    def predict_scores(
        self, rows: Sequence[Mapping[str, FeatureValue]]
    ) -> list[dict[str, float]] | None:
        """Each class's probability per row (None for a regressor)."""
        if self.task == "regression":
            return None
        if self.task == "binary":
            return [self._binary_scores(_row(r)) for r in rows]
        out = []
        for r in rows:
            proba = self.pipeline.predict_proba_one(_row(r))
            scores = {key: float(proba.get(key, 0.0)) for key in self._labels}
            total = sum(scores.values())
            if total > 0:
                scores = {key: value / total for key, value in scores.items()}
            elif scores:
                scores = {key: 1.0 / len(scores) for key in scores}
            out.append(scores)
        return out

    def params(self) -> dict[str, object]:
        """The learner and its set-up, as JSON values."""
        return {
            "library": "river",
            "river_version": river.__version__,
            "task": self.task,
            "pipeline": str(self.pipeline),
            "classes": list(self.classes),
            "positive_class": self._positive,
            "n_examples": self._n,
        }


class RiverTrainer:
    """The default trainer: a river pipeline for ``task``, one pass over the examples.

    Parameters
    ----------
    task
        ``"binary"``, ``"multiclass"`` or ``"regression"``.
    positive_class
        For binary tasks, the class whose probability the logistic regression learns
        (default: as the monitor picks it, ``"1"`` or ``"true"`` if present).

    Examples
    --------
    >>> from driftline.trainer.protocol import Example, Examples
    >>> rows = [Example(str(i), i, {"x": float(i % 2), "c": "ab"[i % 2]}, i % 2, "1")
    ...         for i in range(200)]
    >>> model = RiverTrainer("binary").fit(Examples.of(rows))
    >>> model.predict([{"x": 1.0, "c": "b"}, {"x": 0.0, "c": "a"}])
    [1, 0]
    """

    def __init__(self, task: Task, *, positive_class: str | None = None) -> None:
        if task not in ("binary", "multiclass", "regression"):
            raise TrainingError(f"task must be one of binary, multiclass, regression, got {task!r}")
        self.task: Task = task
        self.positive_class = positive_class

    def _pipeline(self) -> Any:
        if self.task == "binary":
            return _preprocessing() | linear_model.LogisticRegression()
        if self.task == "multiclass":
            return _preprocessing() | multiclass.OneVsRestClassifier(
                linear_model.LogisticRegression()
            )
        return _preprocessing() | preprocessing.TargetStandardScaler(
            regressor=linear_model.LinearRegression()
        )

    def fit(self, examples: Examples) -> RiverModel:
        """Learn every example once, oldest first."""
        if not len(examples):
            raise TrainingError("no examples to train on")
        pipeline = self._pipeline()
        if self.task == "regression":
            for example in examples:
                pipeline.learn_one(_row(example.features), float(example.label))
            return RiverModel(self.task, pipeline, {}, None, len(examples))
        labels: dict[str, Label] = {}
        keys: list[str] = []
        for example in examples:
            key = category_key(example.label)
            if key is None:
                raise TrainingError(f"example {example.id!r} has no usable label")
            labels.setdefault(key, example.label)
            keys.append(key)
        positive: str | None = None
        if self.task == "binary":
            if len(labels) > 2:
                raise TrainingError(
                    f"a binary task's examples hold {len(labels)} classes: {sorted(labels)[:5]}"
                )
            positive = self.positive_class or default_positive_class(tuple(labels))
            for example, key in zip(examples, keys, strict=True):
                pipeline.learn_one(_row(example.features), key == positive)
        else:
            for example, key in zip(examples, keys, strict=True):
                pipeline.learn_one(_row(example.features), key)
        return RiverModel(self.task, pipeline, labels, positive, len(examples))
