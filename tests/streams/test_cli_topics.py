"""`driftline topics create` against a real broker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import KafkaSettings, TopicSettings
from driftline.kafka_auth import confluent_config
from driftline.testing.service import start_monitor, stop_process

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
    assert first.output.count("created") == len(topics.names()) == 11
    assert topics.training in first.output  # the trainer's outcomes topic too
    second = runner.invoke(app, ["topics", "create", "--config", str(path)])
    assert second.exit_code == 0, second.output
    assert second.output.count("exists") == 11
    assert "cleanup.policy=compact" in second.output


def test_topics_create_fails_cleanly_without_a_broker(tmp_path: Path) -> None:
    path = tmp_path / "driftline.yaml"
    path.write_text("kafka: {bootstrap_servers: '127.0.0.1:1'}\n")
    result = runner.invoke(app, ["topics", "create", "--config", str(path), "--timeout", "2"])
    assert result.exit_code == 1
    assert " ".join(result.output.split()) == (
        "error: no Kafka broker answered at 127.0.0.1:1 (kafka.bootstrap_servers) within 2s: "
        "Connect to ipv4#127.0.0.1:1 failed: Connection refused"
    )


def write_config(path: Path, kafka: KafkaSettings, topics: TopicSettings, extra: str) -> Path:
    names = "\n".join(f"  {role}: {name}" for role, name in topics.names().items())
    path.write_text(
        f"kafka:\n  bootstrap_servers: {kafka.bootstrap_servers}\ntopics:\n{names}\n{extra}"
    )
    return path


README_EXAMPLE = """monitor:
  join_ttl: 7d
  metrics_port: null
models:
  fraud:
    task: binary
    windows: [{size: 1h}, {size: 1d, hop: 1h}]
"""
# join_ttl 7d + the longest window 1d and its lateness (default 5m) + a day of margin.
README_RETENTION_MS = (9 * 86_400 + 300) * 1000


def test_topics_create_keeps_inputs_and_summaries_as_long_as_the_settings_need(
    tmp_path: Path, kafka: KafkaSettings, topics: TopicSettings
) -> None:
    path = write_config(tmp_path / "driftline.yaml", kafka, topics, README_EXAMPLE)
    result = runner.invoke(app, ["topics", "create", "--config", str(path)])
    assert result.exit_code == 0, result.output
    admin = AdminClient(confluent_config(kafka))
    for name in (topics.predictions, topics.ground_truth, topics.summaries):
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        config = admin.describe_configs([resource])[resource].result(timeout=10)
        assert config["retention.ms"].value == str(README_RETENTION_MS), name
    assert f"retention.ms={README_RETENTION_MS}" in result.output


def test_topics_create_refuses_an_input_topic_that_keeps_too_little(
    tmp_path: Path, kafka: KafkaSettings, topics: TopicSettings
) -> None:
    admin = AdminClient(confluent_config(kafka))
    eight_days = 8 * 86_400_000
    admin.create_topics(
        [NewTopic(topics.ground_truth, 4, 1, config={"retention.ms": str(eight_days)})]
    )[topics.ground_truth].result(10)
    path = write_config(tmp_path / "driftline.yaml", kafka, topics, README_EXAMPLE)
    result = runner.invoke(app, ["topics", "create", "--config", str(path)])
    assert result.exit_code == 1, result.output
    assert f"topic {topics.ground_truth!r} keeps records for 8d" in result.output
    assert f"retention.ms={README_RETENTION_MS}" in result.output


@pytest.mark.parametrize("part", ["ingest", "merge"])
def test_the_monitor_stops_at_start_up_when_a_topic_keeps_too_little(
    tmp_path: Path, kafka: KafkaSettings, topics: TopicSettings, part: str
) -> None:
    """Default topics (8d before the retention followed the settings) under the README's
    settings: the part exits 1 at once, naming the topic, its retention and the need."""
    admin = AdminClient(confluent_config(kafka))
    eight_days = 8 * 86_400_000
    short = topics.predictions if part == "ingest" else topics.summaries
    admin.create_topics([NewTopic(short, 4, 1, config={"retention.ms": str(eight_days)})])[
        short
    ].result(10)
    extra = README_EXAMPLE.replace(
        "  metrics_port: null\n", f"  metrics_port: null\n  state_dir: {tmp_path / 'state'}\n"
    )
    path = write_config(tmp_path / "driftline.yaml", kafka, topics, extra)
    log = tmp_path / "monitor.log"
    process = start_monitor(part, path, log, cwd=tmp_path)  # type: ignore[arg-type]
    try:
        status = process.wait(60)
    except subprocess.TimeoutExpired:
        status = stop_process(process, 10)
        raise AssertionError(
            f"monitor {part} started (status {status}) on a short retention"
        ) from None
    output = log.read_text(errors="replace")
    assert status == 1, output
    assert f"topic {short!r} keeps records for 8d (retention.ms={eight_days})" in output
    assert f"retention.ms={README_RETENTION_MS}" in output


@pytest.mark.parametrize("part", ["ingest", "merge"])
def test_the_monitor_stops_at_start_up_when_a_topic_is_missing(
    tmp_path: Path, kafka: KafkaSettings, topics: TopicSettings, part: str
) -> None:
    """A deployment whose topics were created before the rollout topic existed: the part
    exits 1 at once naming it and the command that creates it (it used to stop mid-start,
    stage 2 with a traceback)."""
    from driftline.config import load_settings
    from driftline.topics import create_topics

    extra = README_EXAMPLE.replace(
        "  metrics_port: null\n", f"  metrics_port: null\n  state_dir: {tmp_path / 'state'}\n"
    )
    path = write_config(tmp_path / "driftline.yaml", kafka, topics, extra)
    older = topics.model_copy(update={"rollout": f"{topics.rollout}-elsewhere"})
    create_topics(kafka, older, settings=load_settings(path))  # retention as the settings need
    log = tmp_path / "monitor.log"
    process = start_monitor(part, path, log, cwd=tmp_path)  # type: ignore[arg-type]
    try:
        status = process.wait(60)
    except subprocess.TimeoutExpired:
        status = stop_process(process, 10)
        raise AssertionError(f"monitor {part} started (status {status}) without a topic") from None
    output = log.read_text(errors="replace")
    assert status == 1, output
    assert f"topic(s) {topics.rollout} do not exist" in output
    assert "run driftline topics create" in output
    assert "Traceback" not in output
