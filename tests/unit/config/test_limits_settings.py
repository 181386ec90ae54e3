"""``monitor.limits`` and ``monitor.max_clock_skew``: safe defaults, bad values named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import Settings, load_settings
from driftline.schemas.limits import DEFAULT_LIMITS
from tests.unit.config.test_settings import problems, write


def test_the_defaults_bound_every_input_and_the_clock_skew() -> None:
    monitor = Settings().monitor
    assert monitor.limits.limits() == DEFAULT_LIMITS
    assert monitor.max_clock_skew == timedelta(minutes=5)


def test_limits_and_skew_load_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "monitor: {limits: {max_features: 5000}, max_clock_skew: 90s}")
    s = load_settings(path, environ={"DRIFTLINE_MONITOR__LIMITS__MAX_NAME_LENGTH": "64"})
    assert (s.monitor.limits.max_features, s.monitor.limits.max_name_length) == (5000, 64)
    assert s.monitor.max_clock_skew == timedelta(seconds=90)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "monitor: {limits: {max_features: 0}}",
            "monitor.limits.max_features: Input should be greater than or equal to 1",
        ),
        (
            "monitor: {limits: {max_message_bytes: 10}}",
            "monitor.limits.max_message_bytes: Input should be greater than or equal to 1024",
        ),
        (
            "monitor: {limits: {max_feature_names: 3}}",
            "monitor.limits.max_feature_names: unknown setting",
        ),
        ("monitor: {max_clock_skew: 0s}", "monitor.max_clock_skew: must be a positive duration"),
        ("monitor: {max_clock_skew: soon}", "monitor.max_clock_skew: expected a duration"),
    ],
)
def test_a_bad_limit_is_reported_with_its_field(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, text)
    assert any(expected in p for p in found), found


def test_config_check_names_a_bad_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "monitor: {limits: {max_string_length: -1}}")
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert "monitor.limits.max_string_length: Input should be greater than or equal to 1" in (
        result.output
    )
