"""``trainer:`` and ``models.<name>.training``: safe defaults, bad values named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import Settings
from tests.unit.config.test_settings import problems, write


def test_the_defaults_train_with_river_since_the_onset_and_promote_only_a_better_model() -> None:
    s = Settings(models={"sea": {"task": "binary"}})
    training = s.models["sea"].training
    assert (training.trainer, training.range, training.promote, training.margin) == (
        None,
        "onset",
        "if_better",
        0.0,
    )
    assert s.trainer.max_examples_per_model == 100_000
    assert s.trainer.max_example_age == timedelta(days=7)
    assert s.trainer.min_train > s.trainer.min_holdout > 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trainer: {holdout_fraction: 1.5}", "trainer.holdout_fraction: Input should be less"),
        ("trainer: {max_example_age: 0s}", "trainer.max_example_age: must be a positive"),
        ("trainer: {max_examples_per_model: 5}", "trainer.max_examples_per_model: Input should"),
        ("trainer: {timeout: never}", "trainer.timeout: expected a duration"),
        (
            "models: {sea: {task: binary, training: {trainer: 'not a path'}}}",
            "models.sea.training.trainer: String should match pattern",
        ),
        (
            "models: {sea: {task: binary, training: {range: all}}}",
            "models.sea.training.range: Input should be 'onset' or 'recent'",
        ),
        (
            "models: {sea: {task: binary, training: {margin: -0.1}}}",
            "models.sea.training.margin: Input should be greater than or equal to 0",
        ),
    ],
)
def test_a_bad_training_setting_is_reported_with_its_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    found = problems(tmp_path, text)
    assert any(expected in p for p in found), found


def test_config_check_names_a_bad_trainer_setting(tmp_path: Path) -> None:
    path = write(tmp_path, "trainer: {min_holdout: 0}")
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert "trainer.min_holdout: Input should be greater than or equal to 1" in result.output
