"""A scikit-learn trainer, the example of a trainer outside river (extra ``sklearn``).

Install it with ``pip install driftline[sklearn]``; configure it per model with
``models.<name>.training.trainer: "driftline.trainer.scikit:SklearnTrainer"``. Features go
through a ``DictVectorizer`` (numbers as they are, strings one-hot, missing values left out)
and a scaler, into a logistic regression for classifiers or a ridge regression for
regression, fitted on all the examples at once. Classes are keyed as the monitor keys them,
as in :mod:`driftline.trainer.builtin`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sklearn
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

from driftline.detectors.values import category_key
from driftline.errors import TrainingError
from driftline.schemas.events import Task
from driftline.trainer.protocol import Examples, FeatureValue, Label

__all__ = ["SklearnModel", "SklearnTrainer"]


def _row(features: Mapping[str, FeatureValue]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for name, value in features.items():
        if isinstance(value, str):
            out[name] = value
        elif isinstance(value, bool) or (isinstance(value, int | float) and not math.isnan(value)):
            out[name] = float(value)
    return out


class SklearnModel:
    """A fitted scikit-learn pipeline behind the
    :class:`~driftline.trainer.protocol.FittedModel` interface."""

    def __init__(self, task: Task, pipeline: Any, labels: Mapping[str, Label], n: int) -> None:
        self.task: Task = task
        self.pipeline = pipeline
        self._labels = dict(labels)
        self._n = n

    def predict(self, rows: Sequence[Mapping[str, FeatureValue]]) -> list[Label]:
        """One prediction per row."""
        if not rows:
            return []
        predicted = self.pipeline.predict([_row(r) for r in rows])
        if self.task == "regression":
            return [float(v) for v in predicted]
        return [self._labels[str(v)] for v in predicted]

    def predict_scores(
        self, rows: Sequence[Mapping[str, FeatureValue]]
    ) -> list[dict[str, float]] | None:
        """Each class's probability per row (None for a regressor)."""
        if self.task == "regression":
            return None
        if not rows:
            return []
        proba = self.pipeline.predict_proba([_row(r) for r in rows])
        classes = [str(c) for c in self.pipeline.classes_]
        return [dict(zip(classes, map(float, row), strict=True)) for row in proba]

    def params(self) -> dict[str, object]:
        """The estimator's own parameters (those that are JSON values)."""
        estimator = self.pipeline.steps[-1][1]
        return {
            "library": "scikit-learn",
            "sklearn_version": sklearn.__version__,
            "task": self.task,
            "estimator": type(estimator).__name__,
            "estimator_params": {
                k: v
                for k, v in estimator.get_params().items()
                if v is None or isinstance(v, str | int | float | bool)
            },
            "classes": sorted(self._labels),
            "n_examples": self._n,
        }


class SklearnTrainer:
    """Logistic (inverse regularisation ``c``) or ridge (``alpha``) regression on vectorised
    feature dicts, fitted at once.

    Examples
    --------
    >>> from driftline.trainer.protocol import Example, Examples
    >>> rows = [Example(str(i), i, {"x": float(i % 2)}, "ab"[i % 2], "1") for i in range(50)]
    >>> SklearnTrainer("binary").fit(Examples.of(rows)).predict([{"x": 1.0}, {"x": 0.0}])
    ['b', 'a']
    """

    def __init__(
        self, task: Task, *, c: float = 1.0, alpha: float = 1e-3, max_iter: int = 1000
    ) -> None:
        if task not in ("binary", "multiclass", "regression"):
            raise TrainingError(f"task must be one of binary, multiclass, regression, got {task!r}")
        self.task: Task = task
        self.c = c
        self.alpha = alpha
        self.max_iter = max_iter

    def fit(self, examples: Examples) -> SklearnModel:
        """Fit on every example."""
        if not len(examples):
            raise TrainingError("no examples to train on")
        rows = [_row(f) for f in examples.features]
        if self.task == "regression":
            pipeline = make_pipeline(DictVectorizer(), MaxAbsScaler(), Ridge(alpha=self.alpha))
            pipeline.fit(rows, np.asarray(examples.labels, dtype=np.float64))
            return SklearnModel(self.task, pipeline, {}, len(examples))
        labels: dict[str, Label] = {}
        keys: list[str] = []
        for example in examples:
            key = category_key(example.label)
            if key is None:
                raise TrainingError(f"example {example.id!r} has no usable label")
            labels.setdefault(key, example.label)
            keys.append(key)
        if len(labels) < 2:
            raise TrainingError(f"the examples hold one class only: {sorted(labels)}")
        pipeline = make_pipeline(
            DictVectorizer(),
            MaxAbsScaler(),
            LogisticRegression(C=self.c, max_iter=self.max_iter),
        )
        pipeline.fit(rows, keys)
        return SklearnModel(self.task, pipeline, labels, len(examples))
