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


def test_config_check_names_non_positive_monitor_durations(tmp_path: Path) -> None:
    """label_idle and the health limits must be positive; each bad one is named."""
    path = config_file(
        tmp_path,
        "monitor: {label_idle: 0s, batch_size: 0, "
        "health: {writer_stall_after: 0s, merge_stall_after: -1s}}",
    )
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    for field in (
        "monitor.label_idle",
        "monitor.batch_size",
        "monitor.health.writer_stall_after",
        "monitor.health.merge_stall_after",
    ):
        assert f"{field}:" in result.output, field


def test_the_monitor_parts_take_their_tuning_and_health_limits_from_the_settings() -> None:
    """monitor.batch_size, label_idle and health reach ingest, stage 2 and the writer."""
    from driftline.cli.monitor import _merge_telemetry, _writer
    from driftline.config import Settings
    from driftline.streams.ingest import Ingest

    settings = Settings(
        monitor={
            "batch_size": 700,
            "label_idle": "2s",
            "metrics_port": None,
            "health": {
                "ingest_stall_after": "9s",
                "merge_stall_after": "8s",
                "writer_stall_after": "7s",
                "writer_failing_after": "6s",
            },
        }
    )
    ingest = Ingest(settings)
    assert (ingest._batch_size, ingest._label_idle_ms, ingest.stall_after) == (700, 2000, 9.0)
    assert _merge_telemetry(settings).stall_after == 8.0
    writer = _writer(settings)
    assert (writer.stall_after, writer.unhealthy_after) == (7.0, 6.0)
    defaults = Ingest(Settings())
    assert (defaults._batch_size, defaults._label_idle_ms, defaults.stall_after) == (
        5000,
        5000,
        60.0,
    )


def test_the_readme_configuration_example_passes_config_check(tmp_path: Path) -> None:
    """The YAML under README's "Configuration" is a valid configuration, every key known."""
    import re

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    match = re.search(r"## Configuration.*?```yaml\n(.*?)```", readme, re.S)
    assert match is not None
    result = runner.invoke(app, ["config", "check", str(config_file(tmp_path, match.group(1)))])
    assert result.exit_code == 0, result.output


def test_ingest_processes_refuses_a_bad_value_naming_the_option(tmp_path: Path) -> None:
    """``--ingest-processes`` below 1, or not a number, exits 2 naming the option."""
    path = config_file(tmp_path, "models: {fraud: {task: binary}}")
    for command in (["monitor", "ingest"], ["monitor", "run"]):
        for value in ("0", "-2", "two"):
            result = runner.invoke(
                app, [*command, "--config", str(path), "--ingest-processes", value]
            )
            assert result.exit_code == 2, (command, value, result.output)
            assert "Invalid value for '--ingest-processes'" in result.output, result.output


def test_simulate_refuses_a_model_the_configuration_lacks_and_a_bad_rate(tmp_path: Path) -> None:
    path = config_file(tmp_path, "models: {fraud: {task: binary}}")
    result = runner.invoke(app, ["simulate", "--config", str(path), "--model", "sea"])
    assert result.exit_code == 2, result.output
    assert "models: no model 'sea' to serve" in result.output
    result = runner.invoke(app, ["simulate", "--config", str(path), "--rate", "0"])
    assert result.exit_code == 2, result.output
    assert "rate: must be positive" in result.output
