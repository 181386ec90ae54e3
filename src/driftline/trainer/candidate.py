"""One training, start to end: the examples a request implies, a fitted candidate, its verdict.

:func:`train_candidate` is what the trainer agent runs for one retrain request, in a worker
process or thread (it does no I/O and keeps no state): it cuts the model's stored examples
into a training range and a holdout (:func:`~driftline.trainer.evaluation.training_data`),
fits the model's configured trainer (:func:`~driftline.trainer.protocol.load_trainer`) on the
training range, judges the candidate against the champion's own predictions on the holdout
(:func:`~driftline.trainer.evaluation.evaluate`) and returns all of it, with the serialised
model, as one picklable :class:`Candidate` for the registry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from driftline.config.settings import ModelConfig, TrainerSettings
from driftline.trainer.evaluation import Evaluation, TrainingData, evaluate, training_data
from driftline.trainer.protocol import Examples, load_trainer
from driftline.trainer.serialise import dumps

__all__ = ["Candidate", "train_candidate"]


@dataclass(frozen=True)
class Candidate:
    """A trained candidate: its bytes, what it learned from, and how it did."""

    model: bytes
    """The model, serialised (:mod:`driftline.trainer.serialise`)."""
    sha256: str
    """SHA-256 of the serialised model's payload, as its header states it."""
    params: dict[str, object]
    """The model's parameters (JSON values)."""
    trainer: str
    """The import path of the trainer that fitted it."""
    data: TrainingData
    """The training range and holdout, and why those."""
    data_sha256: str
    """SHA-256 of the training examples' content (:meth:`Examples.digest`)."""
    features: tuple[str, ...]
    """The feature names of the training examples."""
    evaluation: Evaluation
    """The candidate and the champion on the holdout, and whether to promote."""


def train_candidate(
    examples: Examples,
    *,
    model: str,
    config: ModelConfig,
    trainer: TrainerSettings,
    onset_ms: int | None,
) -> Candidate:
    """Train and judge a candidate for ``model`` on its stored ``examples`` (time order);
    ``onset_ms`` is the request's ``window_start`` in epoch milliseconds.

    Raises :class:`~driftline.errors.NotEnoughExamplesError` when too few examples are
    stored, :class:`~driftline.errors.TrainerLoadError` when the configured trainer does not
    load, and whatever the trainer raises when fitting fails.

    >>> from driftline.config.settings import ModelConfig, TrainerSettings
    >>> from driftline.trainer.protocol import Example
    >>> rows = Examples.of(Example(str(i), i, {"x": float(i % 2)}, i % 2, "1", prediction=0)
    ...                    for i in range(400))
    >>> found = train_candidate(rows, model="m", config=ModelConfig(task="binary"),
    ...     trainer=TrainerSettings(min_train=100, min_holdout=50), onset_ms=0)
    >>> len(found.data.train), found.evaluation.champion, found.evaluation.promote
    (320, 0.5, True)
    """
    field = f"models.{model}.training.trainer"
    settings = config.training
    fitter = load_trainer(settings.trainer, config.task, field=field)
    data = training_data(
        examples,
        range=settings.range,
        onset_ms=onset_ms,
        recent_rows=settings.recent_rows,
        holdout_fraction=trainer.holdout_fraction,
        min_holdout=trainer.min_holdout,
        min_train=trainer.min_train,
    )
    fitted = fitter.fit(data.train)
    result = evaluate(
        fitted,
        data.holdout,
        task=config.task,
        metric=config.metric,
        promote=settings.promote,
        margin=settings.margin,
        positive_class=config.positive_class,
    )
    blob = dumps(fitted)
    payload = blob[blob.index(b"\n") + 1 :]
    return Candidate(
        model=blob,
        sha256=hashlib.sha256(payload).hexdigest(),
        params=fitted.params(),
        trainer=settings.trainer or f"{type(fitter).__module__}:{type(fitter).__qualname__}",
        data=data,
        data_sha256=data.train.digest(),
        features=data.train.feature_names(),
        evaluation=result,
    )
