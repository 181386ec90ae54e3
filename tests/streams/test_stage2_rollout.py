"""Stage 2's rollouts against a real broker: shadow evidence on the summaries topic, profiles
on the models topic, one RolloutDecision on the rollout topic, ``rollout`` points in the
metrics outbox and in VictoriaMetrics, and no second decision after a restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.config import KafkaSettings, ModelConfig, Settings, TopicSettings
from driftline.schemas.outputs import ModelVersionRegistered, RolloutDecision
from driftline.sinks.influx import InfluxWriter
from driftline.streams.partials import encode
from driftline.streams.registry import ProfileRegistry, publish_profile
from driftline.streams.stage2.state import Stage2State
from driftline.topics import create_topics
from tests.streams.kafka_helpers import consume_all
from tests.streams.test_influx_writer import influx_settings, run_until
from tests.streams.test_stage2 import produce
from tests.unit.streams.stage2_helpers import PROFILE, feed, metrics, model_config
from tests.unit.streams.test_stage2_rollouts import (
    canary_messages,
    decisions,
    rollout_points,
    shadow_messages,
)

# The worker as `driftline monitor merge` starts it: profiles (and parent versions) from the
# models topic through a ProfileRegistry, whose `get` is the app's profile lookup.
WORKER = """
import sys
from datetime import timedelta
from pathlib import Path

from driftline.config import Settings
from driftline.streams.registry import ProfileRegistry
from driftline.streams.stage2.agent import create_app, run_app

settings = Settings.model_validate_json(Path(sys.argv[1]).read_text())
registry = ProfileRegistry(settings.kafka, settings.topics).start()
registry.wait_for("m", "1")
registry.wait_for("m", "2")
app = create_app(settings, registry.get, session_timeout=timedelta(seconds=6))
run_app(app)
"""
REPO = Path(__file__).resolve().parents[2]
CHALLENGER = PROFILE.model_copy(update={"model_version": "2"})  # the partials fit it too


class Worker:
    """A stage-2 worker process reading its profiles from the models topic."""

    def __init__(self, tmp_path: Path, settings: Settings, name: str) -> None:
        settings_path = tmp_path / "settings.json"
        settings_path.write_text(settings.model_dump_json())
        self.log_path = tmp_path / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", WORKER, str(settings_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def stage2_settings(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path, **rollout: Any
) -> Settings:
    create_topics(kafka, topics)
    return Settings(
        kafka=kafka,
        topics=topics,
        models={"m": ModelConfig(**model_config(rollout=rollout))},
        monitor={
            "group_id": f"stage2-{uuid.uuid4().hex[:8]}",
            "state_dir": str(tmp_path / "state"),
        },
    )


def register(kafka: KafkaSettings, topics: TopicSettings) -> None:
    for profile, parent in ((PROFILE, None), (CHALLENGER, "1")):
        record = ModelVersionRegistered(
            model="m",
            model_version=profile.model_version,
            registered_at=0,
            source="cli",
            reference=profile,
            parent_version=parent,
        )
        publish_profile(kafka, topics, record)


def test_a_shadow_rollout_is_decided_once_on_the_broker_and_not_again_after_a_restart(
    kafka: KafkaSettings,
    topics: TopicSettings,
    tmp_path: Path,
    workers: list[Worker],
    metrics_server: Any,
) -> None:
    settings = stage2_settings(kafka, topics, tmp_path, mode="shadow", min_labels=1500)
    register(kafka, topics)
    registry = ProfileRegistry(kafka, topics).start()
    try:  # the canary pairing reads this, as the worker's registry does
        registry.wait_for("m", "2")
        assert (registry.parent_version("m", "2"), registry.parent_version("m", "1")) == ("1", None)
    finally:
        registry.close()

    messages = shadow_messages(8)
    # The pure core, fed the same messages, says what to expect: it is deterministic.
    expected = feed(Stage2State(lambda m, v: PROFILE, settings), messages)
    (decision,) = decisions(expected)
    assert decision.decision == "promote"
    expected_metrics = metrics(expected)

    first = Worker(tmp_path, settings, "first")
    workers.append(first)
    produce(kafka, topics.summaries, [encode(m) for m in messages])
    published = consume_all(kafka, topics.rollout, 1, 60.0)
    assert len(published) == 1, first.log_tail()
    assert published[0].key() == b"m"
    assert RolloutDecision.model_validate_json(published[0].value()) == decision
    outbox = consume_all(kafka, topics.metrics, len(expected_metrics), 60.0)
    assert [(r.key(), r.value()) for r in outbox] == [(o.key, o.value) for o in expected_metrics], (
        first.log_tail()
    )
    assert first.stop() == 0, first.log_tail()

    # Restarted: the summaries topic is read again, every window judged again in the same
    # order, the same points written again, and the decision not sent a second time.
    second = Worker(tmp_path, settings, "second")
    workers.append(second)
    again = consume_all(kafka, topics.metrics, 2 * len(expected_metrics), 60.0)
    assert [r.value() for r in again] == [o.value for o in expected_metrics] * 2, second.log_tail()
    assert len(consume_all(kafka, topics.rollout, 2, 10.0)) == 1, second.log_tail()
    assert second.stop() == 0, second.log_tail()
    logs = first.log_path.read_text() + second.log_path.read_text()
    assert "Traceback" not in logs

    gid = f"writer-{uuid.uuid4().hex[:10]}"
    with InfluxWriter(kafka, influx_settings(metrics_server), topics, group_id=gid) as writer:
        run_until(writer, lambda: writer.messages_written == len(again), timeout=60.0)
    series = metrics_server.series("rollout", model="m")
    assert {s.field for s in series} == {"estimate", "lower", "upper", "n", "decision"}
    (estimate,) = [s for s in series if s.field == "estimate"]
    assert estimate.tags == {
        "model": "m",
        "champion": "1",
        "challenger": "2",
        "metric": "accuracy",
    }
    looks = rollout_points(expected)
    assert len(looks) > 1  # several looks, the last one decisive
    # Written twice (before and after the restart): VictoriaMetrics keeps both samples.
    assert sorted({t for t, _ in estimate.points}) == [int(t) for _, t, _ in looks]
    (codes,) = [s for s in series if s.field == "decision"]
    assert sorted(set(codes.points)) == [(int(t), int(f["decision"][:-1])) for _, t, f in looks]
    assert max(codes.points)[1] == 1  # the last look promotes


def test_a_worse_canary_is_rolled_back_with_its_champion_from_the_models_topic(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path, workers: list[Worker]
) -> None:
    """The worker is given ``registry.get`` alone, as ``driftline monitor merge`` does; the
    canary's champion is its ModelVersionRegistered record's parent_version."""
    settings = stage2_settings(kafka, topics, tmp_path, mode="canary", min_labels=200)
    register(kafka, topics)
    profiles = {"1": PROFILE, "2": CHALLENGER}  # version 3 has none: its partials wait
    messages = canary_messages(10, profiles)
    parents = {("m", "2"): "1"}
    core = Stage2State(lambda m, v: profiles.get(v), settings, lambda m, v: parents.get((m, v)))
    expected = feed(core, messages)
    (decision,) = decisions(expected)
    assert (decision.decision, decision.champion_version) == ("rollback", "1")

    worker = Worker(tmp_path, settings, "worker")
    workers.append(worker)
    produce(kafka, topics.summaries, [encode(m) for m in messages])
    published = consume_all(kafka, topics.rollout, 2, 20.0)
    assert len(published) == 1, worker.log_tail()
    assert RolloutDecision.model_validate_json(published[0].value()) == decision
    outbox = consume_all(kafka, topics.metrics, len(metrics(expected)), 60.0)
    got = [line for r in outbox for line in r.value().decode().splitlines()]
    looks = [line for o in metrics(expected) for line in o.value.decode().splitlines()]
    rollout_lines = [line for line in looks if line.startswith("rollout,")]
    assert rollout_lines
    assert [line for line in got if line.startswith("rollout,")] == rollout_lines
    assert all("prediction_js=" in line for line in rollout_lines)
    assert worker.stop() == 0, worker.log_tail()
    assert "Traceback" not in worker.log_path.read_text()
