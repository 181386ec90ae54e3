"""The trainer agent against the real broker: ``driftline trainer run`` processes, retrain
requests and joined examples on their topics, outcomes read back from ``driftline.training``.

The examples are SEA traffic after a concept change (the threshold moved from 8 to 9.5), as
version 1, still predicting the old concept, served it: a candidate trained on them beats
version 1's own predictions on the holdout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Producer

from driftline.config import KafkaSettings, TopicSettings
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import (
    ModelVersionRegistered,
    Reason,
    RetrainRequest,
    TrainingOutcome,
)
from driftline.schemas.wire import decode_ground_truth
from driftline.streams.labeled import labeled_record
from driftline.testing.service import stop_process
from driftline.testing.synthetic import START_MS, sea_events
from driftline.topics import create_topics
from driftline.trainer.registry import FileSystemRegistry
from tests.streams.kafka_helpers import assigned_reader

ROOT = Path(__file__).resolve().parents[2]
N_EXAMPLES = 3000
TIMEOUT = 90.0
REASON = Reason(kind="performance", statistic="accuracy", value=0.84, threshold=0.9)


def _at(minutes: int) -> datetime:
    return datetime.fromtimestamp(START_MS / 1000, UTC) + timedelta(minutes=minutes)


def _request(model: str, end_minute: int) -> RetrainRequest:
    """A request about version 1 of ``model`` for the window from the traffic's start (the
    drift onset: the examples span its first five minutes) to ``end_minute``."""
    return RetrainRequest.create(
        model, "1", _at(0), _at(end_minute), rule="on_performance", reasons=[REASON]
    )


class Trainers:
    """A test's trainer processes, its topics, its registry and what it reads back."""

    def __init__(
        self, kafka: KafkaSettings, topics: TopicSettings, work: Path, models: dict[str, Any]
    ) -> None:
        self.kafka, self.topics, self.work = kafka, topics, work
        self.models = models
        self.registry = FileSystemRegistry(work / "registry")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        create_topics(kafka, topics)
        self.producer = Producer({**confluent_config(kafka), "linger.ms": 5})
        self.reader = assigned_reader(kafka, [topics.training, topics.models], "trainer-test")
        self.outcomes: list[TrainingOutcome] = []
        self.versions: list[ModelVersionRegistered] = []

    def config(self, name: str) -> Path:
        """The configuration of trainer ``name``: its own example store, the shared registry."""
        path = self.work / f"{name}.yaml"
        raw = {
            "kafka": {"bootstrap_servers": self.kafka.bootstrap_servers, "client_id": name},
            "topics": {
                **self.topics.names(),
                "input_partitions": self.topics.input_partitions,
                "output_partitions": self.topics.output_partitions,
            },
            "monitor": {"state_dir": str(self.work / name / "state"), "group_id": "t"},
            "trainer": {"store_dir": str(self.work / name / "trainer"), "timeout": "20s"},
            "registry": {"root": str(self.work / "registry")},
            "models": self.models,
        }
        path.write_text(yaml.safe_dump(raw))
        return path

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``driftline trainer run`` as ``name`` (output in ``<name>.log``)."""
        with (self.work / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "driftline", "trainer", "run", "-c", str(self.config(name))],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,  # the test trainers are imported from tests.trainer_doubles
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.processes[name] = process
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} log\n" + (self.work / f"{name}.log").read_text(errors="replace")[-4000:]
            for name in self.processes
        )

    def examples(self, model: str, seed: int) -> None:
        """Publish ``N_EXAMPLES`` joined examples of version 1 of ``model``."""
        for event in sea_events(N_EXAMPLES, seed=seed, drift_at=0, model=model):
            prediction = orjson.dumps(event.prediction)
            truth = decode_ground_truth(orjson.dumps(event.ground_truth))
            record = labeled_record(
                event.prediction["prediction_id"],
                prediction,
                truth,
                event.prediction["timestamp"],
                event.ground_truth["timestamp"],
            )
            self.producer.produce(self.topics.labeled, key=record.key, value=record.value)
        assert self.producer.flush(30) == 0

    def send(self, request: RetrainRequest) -> None:
        self.producer.produce(
            self.topics.retrain, key=request.model.encode(), value=request.to_json()
        )
        assert self.producer.flush(30) == 0

    def read(self) -> None:
        for message in self.reader.consume(1000, 0.2):
            if message.error() is not None or message.value() is None:
                continue
            if message.topic() == self.topics.training:
                self.outcomes.append(TrainingOutcome.model_validate_json(message.value()))
            else:
                self.versions.append(ModelVersionRegistered.model_validate_json(message.value()))

    def of(self, request: RetrainRequest) -> list[str]:
        """The statuses recorded for ``request``, in order."""
        return [o.status for o in self.outcomes if o.request_id == request.request_id]

    def wait(self, what: str, check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.read()
            if check():
                return
            for name, process in self.processes.items():
                assert process.poll() is None, f"trainer {name} exited\n{self.logs()}"
            assert time.monotonic() < deadline, f"no {what} in {timeout:.0f} s\n{self.logs()}"

    def close(self) -> None:
        for process in self.processes.values():
            stop_process(process, 20)
        self.reader.close()


@pytest.fixture
def trainers(
    request: pytest.FixtureRequest, kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> Iterator[Trainers]:
    rig = Trainers(kafka, topics, tmp_path, request.param)
    try:
        yield rig
    finally:
        rig.close()


BINARY = {"task": "binary", "retrain": {"policy": "on_either", "cooldown": "1h"}}


@pytest.mark.parametrize("trainers", [{"sea": BINARY}], indirect=True)
def test_a_request_trains_registers_promotes_and_publishes_once_across_repeats_and_processes(
    trainers: Trainers,
) -> None:
    """One request trains once: repeated to the same process, and again after a second
    process took the partitions over; a request inside the cool-down is recorded skipped."""
    trainers.examples("sea", seed=5)
    trainers.start("a")
    first = _request("sea", 5)
    trainers.send(first)
    trainers.wait("success", lambda: "succeeded" in trainers.of(first))

    versions = trainers.registry.versions("sea")
    assert [(v.version, v.status) for v in versions] == [("2", "champion")]
    metadata = versions[0]
    assert metadata.parent_version == "1"
    assert metadata.request_id == first.request_id
    assert metadata.reasons == (REASON,)
    assert metadata.training_data.rows > 0
    assert len(metadata.training_data.content_hash) == 64
    assert set(metadata.features) == {"x1", "x2", "x3"}
    assert metadata.metrics is not None
    assert metadata.metrics.metric == "accuracy"
    assert metadata.metrics.candidate is not None
    assert metadata.metrics.champion is not None
    assert metadata.metrics.candidate > metadata.metrics.champion
    assert "river" in metadata.environment.packages
    assert metadata.environment.python
    trainers.wait("the models record", lambda: len(trainers.versions) == 1)
    record = trainers.versions[0]
    assert (record.model, record.model_version, record.source) == ("sea", "2", "trainer")
    assert record.parent_version == "1"
    assert set(record.reference.features) == {"x1", "x2", "x3"}

    # The same request again, then one inside the cool-down: the repeat is dropped (the
    # cool-down's outcome, on the same partition after it, shows it was read).
    cooling = _request("sea", 10)
    trainers.send(first)
    trainers.send(cooling)
    trainers.wait("the cool-down skip", lambda: "skipped" in trainers.of(cooling))
    skipped = next(o for o in trainers.outcomes if o.request_id == cooling.request_id)
    assert "cool-down" in skipped.reason

    # A second process joins, the first leaves: the second reads what the first did.
    trainers.start("b")
    time.sleep(8.0)  # the rebalance (Tansu joins take ~3 s per member)
    assert stop_process(trainers.processes.pop("a"), 30) == 0
    later = _request("sea", 20)
    trainers.send(first)
    trainers.send(later)
    trainers.wait("the second skip", lambda: "skipped" in trainers.of(later))

    assert trainers.of(first) == ["started", "succeeded"], trainers.outcomes
    assert [v.version for v in trainers.registry.versions("sea")] == ["2"]
    assert len(trainers.versions) == 1


@pytest.mark.parametrize(
    "trainers",
    [
        {
            "loses": {**BINARY, "training": {"trainer": "tests.trainer_doubles:LosingTrainer"}},
            "raises": {**BINARY, "training": {"trainer": "tests.trainer_doubles:RaisingTrainer"}},
            "hangs": {**BINARY, "training": {"trainer": "tests.trainer_doubles:HangingTrainer"}},
            "after": BINARY,
        }
    ],
    indirect=True,
)
def test_a_losing_failing_or_hanging_training_is_recorded_and_the_agent_serves_on(
    trainers: Trainers,
) -> None:
    """A candidate that loses on the holdout is registered as rejected, not promoted; a
    training that raises or runs past the timeout is recorded failed; the next request of
    another model is handled as usual."""
    for seed, model in enumerate(("loses", "raises", "hangs", "after")):
        trainers.examples(model, seed=seed)
    trainers.start("a")
    requests = {m: _request(m, 5) for m in ("loses", "raises", "hangs", "after")}
    for request in requests.values():
        trainers.send(request)
    trainers.wait(
        "the last request's success",
        lambda: "succeeded" in trainers.of(requests["after"]),
        timeout=180.0,
    )
    outcome = {o.model: o for o in trainers.outcomes if o.status != "started"}
    assert {m: o.status for m, o in outcome.items()} == {
        "loses": "rejected",
        "raises": "failed",
        "hangs": "failed",
        "after": "succeeded",
    }
    lost = outcome["loses"]
    assert lost.champion_value is not None
    assert lost.candidate_value is not None
    assert lost.candidate_value < lost.champion_value
    assert not lost.promoted
    assert [(v.version, v.status) for v in trainers.registry.versions("loses")] == [
        ("2", "rejected")
    ]
    assert "GPU is on fire" in outcome["raises"].reason
    assert "trainer.timeout" in outcome["hangs"].reason
    assert set(trainers.registry.models()) == {"loses", "after"}  # nothing from the others
    assert {(v.model, v.model_version) for v in trainers.versions} == {("after", "2")}


@pytest.mark.parametrize(
    "trainers",
    [{"slow": {**BINARY, "training": {"trainer": "tests.trainer_doubles:SlowTrainer"}}}],
    indirect=True,
)
def test_a_trainer_killed_mid_training_tries_again_after_a_restart_and_registers_once(
    trainers: Trainers,
) -> None:
    """SIGKILL while the candidate trains: the request was not committed, so the restarted
    trainer sees it again, records a second try and registers exactly one version."""
    trainers.examples("slow", seed=9)
    process = trainers.start("a")
    request = _request("slow", 5)
    trainers.send(request)
    trainers.wait("the first try", lambda: "started" in trainers.of(request))
    time.sleep(3.0)  # into the training (it takes eight seconds)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    trainers.start("a")
    trainers.wait("success after the restart", lambda: "succeeded" in trainers.of(request))
    attempts = [o.attempt for o in trainers.outcomes if o.status == "started"]
    assert attempts == [1, 2], trainers.outcomes
    assert trainers.of(request) == ["started", "started", "succeeded"]
    assert [(v.version, v.status) for v in trainers.registry.versions("slow")] == [
        ("2", "champion")
    ]
