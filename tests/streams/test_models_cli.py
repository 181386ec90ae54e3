"""``driftline models promote|rollback`` publish the version's reference on the real broker."""

from __future__ import annotations

import threading
from pathlib import Path

from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import KafkaSettings, TopicSettings
from driftline.schemas.outputs import ModelVersionRegistered
from driftline.streams.registry import ProfileRegistry
from driftline.topics import create_topics
from driftline.trainer.registry import FileSystemRegistry
from tests.unit.trainer.test_registry import profile, registration

runner = CliRunner(env={"COLUMNS": "200"})


def write_config(tmp_path: Path, kafka: KafkaSettings, topics: TopicSettings) -> Path:
    names = "\n".join(f"  {role}: {name}" for role, name in topics.names().items())
    path = tmp_path / "driftline.yaml"
    path.write_text(
        f"kafka:\n  bootstrap_servers: {kafka.bootstrap_servers}\ntopics:\n{names}\n"
        f"registry:\n  root: {tmp_path / 'registry'}\n"
    )
    return path


def test_promote_and_rollback_publish_the_versions_reference(
    tmp_path: Path, kafka: KafkaSettings, topics: TopicSettings
) -> None:
    """Each crowned version's stored profile reaches the models topic, from the registry."""
    create_topics(kafka, topics)
    store = FileSystemRegistry(tmp_path / "registry")
    store.register(registration(), b"one", reference=profile())
    store.register(registration(parent="1"), b"two", reference=profile())
    store.promote("fraud", "1", by="trainer", reason="first")
    config = write_config(tmp_path, kafka, topics)

    seen: list[ModelVersionRegistered] = []
    arrived = threading.Condition()

    def collect(record: ModelVersionRegistered) -> None:
        with arrived:
            seen.append(record)
            arrived.notify_all()

    follower = ProfileRegistry(kafka, topics, on_profile=collect).start()
    try:
        promoted = runner.invoke(
            app, ["models", "promote", "fraud", "2", "--reason", "ticket 7", "-c", str(config)]
        )
        assert promoted.exit_code == 0, promoted.output
        assert f"published its reference profile on {topics.models}" in promoted.output
        assert follower.wait_for("fraud", "2", timeout=30) == store.reference("fraud", "2")
        rolled = runner.invoke(
            app, ["models", "rollback", "fraud", "1", "--reason", "undo", "-c", str(config)]
        )
        assert rolled.exit_code == 0, rolled.output
        assert follower.wait_for("fraud", "1", timeout=30) == store.reference("fraud", "1")
    finally:
        follower.close()
    by_version = {r.model_version: r for r in seen}
    assert set(by_version) == {"1", "2"}
    record = by_version["2"]
    assert (record.source, record.parent_version) == ("registry", "1")
    assert record.registered_at == store.metadata("fraud", "2").created_at
    assert record.artifact_uri == store.location("fraud", "2")
    assert record.reference.model_version == "2"
    assert store.champion("fraud").version == "1"  # type: ignore[union-attr]


def test_a_failed_publication_says_the_registry_changed_and_a_rerun_publishes(
    tmp_path: Path, kafka: KafkaSettings, topics: TopicSettings
) -> None:
    store = FileSystemRegistry(tmp_path / "registry")
    store.register(registration(), b"one", reference=profile())
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    dead = write_config(nowhere, KafkaSettings(bootstrap_servers="127.0.0.1:1"), topics)
    dead.write_text(dead.read_text().replace(str(nowhere / "registry"), str(store.root)))
    failed = runner.invoke(
        app, ["models", "promote", "fraud", "1", "--reason", "r", "-c", str(dead), "--timeout", "2"]
    )
    assert failed.exit_code == 1
    assert "the registry changed, but its reference was not published" in failed.output
    assert "Traceback" not in failed.output
    assert store.champion("fraud").version == "1"  # type: ignore[union-attr]

    create_topics(kafka, topics)
    config = write_config(tmp_path, kafka, topics)
    again = runner.invoke(
        app, ["models", "promote", "fraud", "1", "--reason", "r", "-c", str(config)]
    )
    assert again.exit_code == 0, again.output
    follower = ProfileRegistry(kafka, topics).start()
    try:
        assert follower.wait_for("fraud", "1", timeout=30) == store.reference("fraud", "1")
    finally:
        follower.close()
    assert len(store.metadata("fraud", "1").history) == 2  # the rerun changed nothing
