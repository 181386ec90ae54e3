"""`driftline topics create` against a real broker."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import KafkaSettings, TopicSettings

runner = CliRunner(env={"COLUMNS": "200"})


def test_topics_create_creates_then_reports_existing(
    tmp_path: Path, kafka: KafkaSettings, topics: TopicSettings
) -> None:
    names = "\n".join(f"  {role}: {name}" for role, name in topics.names().items())
    path = tmp_path / "driftline.yaml"
    path.write_text(
        f"kafka:\n  bootstrap_servers: {kafka.bootstrap_servers}\n"
        f"topics:\n{names}\n  input_partitions: 3\n"
    )
    first = runner.invoke(app, ["topics", "create", "--config", str(path)])
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == 9
    second = runner.invoke(app, ["topics", "create", "--config", str(path)])
    assert second.exit_code == 0, second.output
    assert second.output.count("exists") == 9
    assert "cleanup.policy=compact" in second.output


def test_topics_create_fails_cleanly_without_a_broker(tmp_path: Path) -> None:
    path = tmp_path / "driftline.yaml"
    path.write_text("kafka: {bootstrap_servers: '127.0.0.1:1'}\n")
    result = runner.invoke(app, ["topics", "create", "--config", str(path), "--timeout", "2"])
    assert result.exit_code == 1
    assert "cannot list topics" in result.output
