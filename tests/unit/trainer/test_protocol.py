"""Loading a trainer by import path: what resolves, and errors that name the setting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from driftline.errors import TrainerLoadError
from driftline.trainer.builtin import RiverTrainer
from driftline.trainer.protocol import (
    Example,
    Examples,
    FeatureValue,
    FittedModel,
    Label,
    Trainer,
    load_trainer,
)

FIELD = "models.sea.training.trainer"


class ConstantModel:
    """Predicts the first label it saw."""

    def __init__(self, label: Label) -> None:
        self.label = label

    def predict(self, rows: Sequence[Mapping[str, FeatureValue]]) -> list[Label]:
        return [self.label] * len(rows)

    def predict_scores(
        self, rows: Sequence[Mapping[str, FeatureValue]]
    ) -> list[dict[str, float]] | None:
        return None

    def params(self) -> dict[str, object]:
        return {"label": self.label}


class ConstantTrainer:
    """A trainer class of a user's own, as the docs describe one."""

    def __init__(self, task: str) -> None:
        self.task = task

    def fit(self, examples: Examples) -> ConstantModel:
        return ConstantModel(examples.labels[0])


CONSTANT = ConstantTrainer("binary")
NOT_A_TRAINER = 42


def make_nothing(task: str) -> object:
    return object()


def broken_factory(task: str) -> Trainer:
    raise RuntimeError("no GPU")


def test_no_path_loads_rivers_default_for_the_task() -> None:
    trainer = load_trainer(None, "regression", field=FIELD)
    assert isinstance(trainer, RiverTrainer)
    assert trainer.task == "regression"


def test_a_class_is_made_for_the_task_and_an_instance_used_as_it_is() -> None:
    made = load_trainer(f"{__name__}:ConstantTrainer", "multiclass", field=FIELD)
    assert isinstance(made, ConstantTrainer)
    assert made.task == "multiclass"
    assert load_trainer(f"{__name__}:CONSTANT", "binary", field=FIELD) is CONSTANT
    model = made.fit(Examples.of([Example("a", 0, {}, "x", "1")]))
    assert isinstance(model, FittedModel)
    assert model.predict([{}, {}]) == ["x", "x"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("driftline.trainer.builtin", "is not an import path of the form"),
        ("no_such_package.trainers:Mine", "cannot import module 'no_such_package.trainers'"),
        (f"{__name__}:Missing", f"module {__name__!r} has no attribute 'Missing'"),
        (f"{__name__}:NOT_A_TRAINER", "is neither a trainer"),
        (f"{__name__}:make_nothing", "made a object, which has no fit(examples) method"),
        (f"{__name__}:broken_factory", "failed: RuntimeError: no GPU"),
    ],
)
def test_a_path_that_does_not_give_a_trainer_is_an_error_naming_the_field(
    path: str, message: str
) -> None:
    with pytest.raises(TrainerLoadError) as caught:
        load_trainer(path, "binary", field=FIELD)
    assert caught.value.field == FIELD
    assert str(caught.value).startswith(f"{FIELD}: ")
    assert message in str(caught.value)


def test_examples_are_put_in_time_order_and_cut_by_time() -> None:
    batch = Examples.of(Example(str(t), t, {}, 0, "1") for t in (30, 10, 20))
    assert batch.times == (10, 20, 30)
    assert batch.since(20).ids == ("20", "30")
    assert batch.newest(2).ids == ("20", "30")
    assert batch.oldest(1).ids == ("10",)
    assert batch.newest(10) == batch


def test_the_digest_changes_with_any_content_and_versions_select_their_examples() -> None:
    rows = [Example("a", 1, {"x": 1.0}, 1, "1"), Example("b", 2, {"x": 2.0}, 0, "2")]
    batch = Examples.of(rows)
    assert batch.digest() == Examples.of(list(rows)).digest()
    changed = Examples.of([rows[0], Example("b", 2, {"x": 2.5}, 0, "2")])
    assert changed.digest() != batch.digest()
    assert batch.of_version("2").ids == ("b",)
    assert batch.feature_names() == ("x",)
