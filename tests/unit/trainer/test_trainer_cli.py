"""``driftline trainer run`` refuses, before it touches the broker, a trainer it cannot load."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from driftline.cli import app


def test_a_trainer_that_does_not_import_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "driftline.yaml"
    config.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:1'}\n"
        "models:\n  fraud: {task: binary, training: {trainer: 'nope.module:Thing'}}\n"
    )
    result = CliRunner().invoke(app, ["trainer", "run", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "models.fraud.training.trainer" in result.output
    assert "nope" in result.output
    assert "Traceback" not in result.output
