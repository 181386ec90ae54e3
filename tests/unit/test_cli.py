"""The command line: exit codes and what it prints."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from driftline.cli import app
from driftline.schemas import render_json_schemas

runner = CliRunner()


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "driftline.yaml"
    path.write_text(text)
    return path


def test_config_check_accepts_a_valid_file(tmp_path: Path) -> None:
    path = config_file(tmp_path, "models: {fraud: {task: binary}, churn: {task: multiclass}}")
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok (2 model(s): fraud, churn)" in result.output


def test_config_check_exits_2_naming_each_bad_field(tmp_path: Path) -> None:
    path = config_file(tmp_path, "kafka: {bootstrap: x}\nmodels: {fraud: {task: ranking}}")
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert "kafka.bootstrap: unknown setting; did you mean 'bootstrap_servers'?" in result.output
    assert "models.fraud.task: Input should be 'binary', 'multiclass' or 'regression'" in (
        result.output
    )


def test_config_show_masks_secrets_and_fills_defaults(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        "kafka: {security_protocol: SASL_SSL, sasl_mechanism: PLAIN, sasl_username: u, "
        "sasl_password: hunter2}\ninfluxdb: {token: t0ken}",
    )
    result = runner.invoke(app, ["config", "show", str(path)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["kafka"]["sasl_password"] == "**********"
    assert shown["influxdb"]["token"] == "**********"
    assert shown["topics"]["predictions"] == "driftline.predictions"
    assert "hunter2" not in result.output
    assert "t0ken" not in result.output


def test_schemas_write_produces_the_committed_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schemas", "write", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == render_json_schemas()


def test_service_commands_refuse_to_start_on_a_bad_config(tmp_path: Path) -> None:
    path = config_file(tmp_path, "monitor: {join_ttl: forever}")
    for command in (
        ["monitor", "ingest"],
        ["monitor", "write"],
        ["monitor", "merge"],
        ["monitor", "run"],
    ):
        result = runner.invoke(app, [*command, "--config", str(path)])
        assert result.exit_code == 2, command
        assert "monitor.join_ttl: expected a duration" in result.output
