"""The training contract: a batch of joined examples, a ``Trainer`` that fits it, the model it fits.

A trainer is chosen per model by import path (``models.<name>.training.trainer``,
``"package.module:Name"``); without one, :data:`DEFAULT_TRAINER` (river, one pass) serves
every task. :func:`load_trainer` resolves the path: a class or factory is called with one
keyword argument, ``task``; an object that already has ``fit`` is used as it is. Whatever it
gives must satisfy :class:`Trainer`, or the error names the setting.

A fitted model predicts rows of features (dicts, as events carry them) and, for classifiers,
gives each row's class probabilities keyed by the class as a string (as events' ``scores``
are); ``params()`` is what the registry records as its parameters (JSON values only).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import orjson

from driftline.errors import TrainerLoadError
from driftline.schemas.events import Task

__all__ = [
    "DEFAULT_TRAINER",
    "Example",
    "Examples",
    "FeatureValue",
    "FittedModel",
    "Label",
    "Trainer",
    "load_trainer",
]

DEFAULT_TRAINER = "driftline.trainer.builtin:RiverTrainer"
"""The trainer of a model that configures none: river, one pass, for every task."""

FeatureValue = float | int | str | bool | None
"""A feature's value, as the event contract allows it."""
Label = float | int | str | bool
"""A label or a prediction, as the event contract allows it."""


@dataclass(frozen=True, slots=True)
class Example:
    """One joined example: a prediction's features and what the serving version said, with
    the label that came later.

    ``time_ms`` is the prediction's time; ``prediction`` and ``scores`` are the serving
    version's own output, from which the champion is judged without loading it.
    """

    id: str
    time_ms: int
    features: Mapping[str, FeatureValue]
    label: Label
    model_version: str
    prediction: Label | None = None
    scores: Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class Examples:
    """Examples in time order, oldest first: what a trainer fits and a holdout judges.

    >>> batch = Examples.of([Example("a", 1, {"x": 1.0}, 1, "1"),
    ...                      Example("b", 2, {"x": 0.0}, 0, "1")])
    >>> len(batch), batch.labels, batch.newest(1).ids
    (2, (1, 0), ('b',))
    """

    rows: tuple[Example, ...]

    @classmethod
    def of(cls, rows: Iterable[Example]) -> Examples:
        """A batch of ``rows``, put in time order (ties keep their order)."""
        return cls(tuple(sorted(rows, key=lambda row: row.time_ms)))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.rows)

    @property
    def ids(self) -> tuple[str, ...]:
        """Each example's id."""
        return tuple(row.id for row in self.rows)

    @property
    def features(self) -> tuple[Mapping[str, FeatureValue], ...]:
        """Each example's features."""
        return tuple(row.features for row in self.rows)

    @property
    def labels(self) -> tuple[Label, ...]:
        """Each example's label."""
        return tuple(row.label for row in self.rows)

    @property
    def times(self) -> tuple[int, ...]:
        """Each example's prediction time (milliseconds since the epoch)."""
        return tuple(row.time_ms for row in self.rows)

    def feature_names(self) -> tuple[str, ...]:
        """Every feature name any example has, sorted."""
        return tuple(sorted({name for row in self.rows for name in row.features}))

    def digest(self) -> str:
        """SHA-256 of the examples' content (ids, times, features, labels, versions, in
        order): the training data's hash the registry records.

        >>> Examples(()).digest()[:12]
        'e3b0c44298fc'
        """
        digest = hashlib.sha256()
        for row in self.rows:
            digest.update(
                orjson.dumps(
                    [row.id, row.time_ms, row.features, row.label, row.model_version],
                    option=orjson.OPT_SORT_KEYS,
                )
            )
            digest.update(b"\n")
        return digest.hexdigest()

    def of_version(self, version: str) -> Examples:
        """The examples whose prediction the model version ``version`` made."""
        return Examples(tuple(row for row in self.rows if row.model_version == version))

    def since(self, time_ms: int) -> Examples:
        """The examples predicted at or after ``time_ms``."""
        return Examples(tuple(row for row in self.rows if row.time_ms >= time_ms))

    def newest(self, n: int) -> Examples:
        """The newest ``n`` examples (all of them when there are fewer)."""
        return Examples(self.rows[max(len(self.rows) - n, 0) :])

    def oldest(self, n: int) -> Examples:
        """The oldest ``n`` examples (all of them when there are fewer)."""
        return Examples(self.rows[: max(n, 0)])


@runtime_checkable
class FittedModel(Protocol):
    """A trained model: it predicts, scores (classifiers) and tells its parameters."""

    def predict(self, rows: Sequence[Mapping[str, FeatureValue]]) -> list[Label]:
        """One prediction per row of features."""
        ...

    def predict_scores(
        self, rows: Sequence[Mapping[str, FeatureValue]]
    ) -> list[dict[str, float]] | None:
        """Per row, each class's probability keyed by the class as a string; None for a
        regressor."""
        ...

    def params(self) -> dict[str, object]:
        """The model's parameters as JSON values, for the registry's metadata."""
        ...


@runtime_checkable
class Trainer(Protocol):
    """Fits a model on examples (in time order); raises to fail the training."""

    def fit(self, examples: Examples) -> FittedModel:
        """A model fitted on ``examples``."""
        ...


def load_trainer(path: str | None, task: Task, *, field: str = "training.trainer") -> Trainer:
    """The trainer at import path ``path`` (``"package.module:Name"``), made for ``task``;
    :data:`DEFAULT_TRAINER` when ``path`` is None. ``field`` names the setting in errors.

    >>> load_trainer(None, "binary").task
    'binary'
    >>> load_trainer("driftline.trainer.builtin", "binary", field="models.m.training.trainer")
    Traceback (most recent call last):
    ...
    driftline.errors.TrainerLoadError: models.m.training.trainer: 'driftline.trainer.builtin' is ...
    """
    spec = DEFAULT_TRAINER if path is None else path
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise TrainerLoadError(
            f"{spec!r} is not an import path of the form 'package.module:Name'", field=field
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainerLoadError(f"cannot import module {module_name!r}: {exc}", field=field) from exc
    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise TrainerLoadError(
                f"module {module_name!r} has no attribute {attribute!r}", field=field
            ) from None
    trainer = target
    if isinstance(target, type) or not isinstance(target, Trainer):
        if not callable(target):
            raise TrainerLoadError(
                f"{spec!r} is neither a trainer (an object with fit(examples)) nor a class or "
                "factory that makes one",
                field=field,
            )
        try:
            trainer = target(task=task)
        except Exception as exc:
            raise TrainerLoadError(
                f"{spec!r}(task={task!r}) failed: {type(exc).__name__}: {exc}", field=field
            ) from exc
    if not isinstance(trainer, Trainer):
        raise TrainerLoadError(
            f"{spec!r} made a {type(trainer).__name__}, which has no fit(examples) method",
            field=field,
        )
    return trainer
