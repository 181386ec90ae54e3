"""One training end to end on SEA traffic: after a concept change the candidate wins."""

from __future__ import annotations

import pickle

import pytest

from driftline.config.settings import ModelConfig, TrainerSettings
from driftline.errors import NotEnoughExamplesError, TrainerLoadError
from driftline.trainer.candidate import train_candidate
from driftline.trainer.serialise import load, read_header
from tests.unit.trainer.sea_helpers import sea_examples

SETTINGS = TrainerSettings(min_train=1000, min_holdout=500, holdout_fraction=0.2)


def test_after_a_concept_change_the_candidate_beats_the_served_model_and_is_promoted() -> None:
    examples = sea_examples(22_000, drift_at=10_000, seed=7)
    onset = examples.rows[17_000].time_ms  # past the change's width
    config = ModelConfig(task="binary", training={"margin": 0.02})
    found = train_candidate(examples, model="sea", config=config, trainer=SETTINGS, onset_ms=onset)
    assert len(found.data.train) == 4000
    assert len(found.data.holdout) == 1000
    result = found.evaluation
    assert result.metric == "accuracy"
    assert result.candidate is not None
    assert result.champion is not None
    assert result.candidate > 0.92 > result.champion
    assert result.promote
    assert read_header(found.model).sha256 == found.sha256
    assert load(found.model, expected_sha256=found.sha256).params() == found.params
    assert found.trainer == "driftline.trainer.builtin:RiverTrainer"
    assert found.features == ("x1", "x2", "x3")
    assert found.data_sha256 == found.data.train.digest()
    assert pickle.loads(pickle.dumps(found)) == found  # crosses a process boundary


def test_on_stationary_traffic_a_candidate_does_not_beat_a_good_champion_by_the_margin() -> None:
    examples = sea_examples(8000, seed=9)
    config = ModelConfig(task="binary", training={"range": "recent", "margin": 0.02})
    found = train_candidate(examples, model="sea", config=config, trainer=SETTINGS, onset_ms=None)
    assert not found.evaluation.promote
    assert "does not beat" in found.evaluation.reason


def test_too_few_examples_and_a_bad_trainer_path_are_errors() -> None:
    with pytest.raises(NotEnoughExamplesError):
        train_candidate(
            sea_examples(100),
            model="sea",
            config=ModelConfig(task="binary"),
            trainer=SETTINGS,
            onset_ms=0,
        )
    bad = ModelConfig(task="binary", training={"trainer": "nowhere.at_all:Trainer"})
    with pytest.raises(TrainerLoadError, match=r"models\.sea\.training\.trainer: cannot import"):
        train_candidate(sea_examples(100), model="sea", config=bad, trainer=SETTINGS, onset_ms=0)
