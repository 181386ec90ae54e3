"""``models.<name>.rollout`` (issue 16): safe defaults, and a bad value names its field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from driftline.config import load_settings
from driftline.config.settings import RolloutSettings, Settings
from driftline.errors import ConfigError
from driftline.topics import topic_specs


def _load(tmp_path: Path, rollout: str) -> list[str]:
    path = tmp_path / "driftline.yaml"
    path.write_text(f"models:\n  fraud:\n    task: binary\n    rollout: {rollout}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    return [str(p) for p in caught.value.problems]


def test_defaults_keep_rollout_off_and_roll_back_an_undecided_challenger() -> None:
    rollout = RolloutSettings()
    assert rollout.mode == "none"
    assert rollout.on_end == "rollback"
    assert (rollout.min_labels, rollout.max_labels, rollout.alpha) == (500, 100_000, 0.05)


def test_a_shadow_rollout_loads(tmp_path: Path) -> None:
    path = tmp_path / "driftline.yaml"
    path.write_text(
        "models:\n  fraud:\n    task: binary\n"
        "    rollout: {mode: shadow, min_labels: 200, alpha: 0.01, margin: 0.02}\n"
    )
    rollout = load_settings(path, environ={}).models["fraud"].rollout
    assert rollout.mode == "shadow"
    assert (rollout.min_labels, rollout.alpha, rollout.margin) == (200, 0.01, 0.02)


@pytest.mark.parametrize(
    ("rollout", "field"),
    [
        ("{mode: blue}", "models.fraud.rollout.mode"),
        ("{canary_share: 1.0}", "models.fraud.rollout.canary_share"),
        ("{alpha: 0}", "models.fraud.rollout.alpha"),
        ("{min_labels: 0}", "models.fraud.rollout.min_labels"),
        ("{on_end: keep}", "models.fraud.rollout.on_end"),
        ("{min_labels: 10, max_labels: 5}", "models.fraud.rollout"),
    ],
)
def test_a_bad_rollout_value_names_its_field(tmp_path: Path, rollout: str, field: str) -> None:
    found = _load(tmp_path, rollout)
    assert any(p.startswith(field) for p in found), found


def test_the_rollout_topic_is_created_with_the_others() -> None:
    from driftline.config.settings import TopicSettings

    spec = next(s for s in topic_specs(TopicSettings()) if s.role == "rollout")
    assert spec.name == "driftline.rollout"
    assert spec.partitions == TopicSettings().output_partitions


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"mode": "shadow"}, "rollout.cap is required for a regression model"),
        ({"mode": "canary", "cap": 1.0}, "'canary' is not judged for regression models"),
        ({"mode": "shadow", "cap": 0}, "greater than 0"),
    ],
)
def test_a_regression_rollout_needs_a_cap_and_shadow(
    rollout: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(models={"m": {"task": "regression", "rollout": rollout}})


def test_a_regression_rollout_with_a_cap_is_accepted() -> None:
    settings = Settings(
        models={"m": {"task": "regression", "rollout": {"mode": "shadow", "cap": 2.5}}}
    )
    assert settings.models["m"].rollout.cap == 2.5


def test_max_duration_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="max_duration must be positive"):
        RolloutSettings(max_duration="0s")
    assert RolloutSettings(max_duration="7d").max_duration is not None
