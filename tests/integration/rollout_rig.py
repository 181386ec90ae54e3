"""The rig of the rollout tests (issue 16): a registry with a champion and a challenger, a
whole monitor with its trainer, and a serving thread that follows the registry.

:func:`rollout_rig` starts Tansu and VictoriaMetrics, sets up the registry through its API
(version 1 registered and promoted, version 2 registered as its child and made the
``challenger`` in the configured mode), publishes both versions' references on the models
topic as the trainer does, and starts ``driftline monitor run --with-trainer`` and a
:class:`~driftline.serving.ChampionFollower`. :class:`Traffic` is the serving process: it
serves river's SEA stream through the follower, publishes what was served with
:func:`~driftline.serving.publish_served` and the label of each request keyed by the
answer's prediction id, paced in wall time, and records what served each request.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftline.client import DriftlineProducer
from driftline.config import ModelConfig, Settings
from driftline.schemas.model_version import RolloutMetadata, TrainingSummary
from driftline.schemas.outputs import ModelVersionRegistered, RolloutDecision
from driftline.serving import ChampionFollower, publish_served
from driftline.streams.registry import publish_profile
from driftline.testing.servers import TansuBroker, VictoriaMetrics
from driftline.testing.service import SEA_MODEL, stop_process
from driftline.testing.synthetic import START_MS, sea_events
from driftline.trainer.announce import version_record
from driftline.trainer.builtin import RiverTrainer
from driftline.trainer.protocol import Example, Examples, FittedModel
from driftline.trainer.rebaseline import reference_profile
from driftline.trainer.registry import FileSystemRegistry, Registration
from driftline.trainer.serialise import dumps
from tests.integration.loop_setup import loop_settings
from tests.streams.kafka_helpers import assigned_reader

MODEL = "sea"
STEP_MS = 50  # twenty requests a second of event time: 1,200 in a one-minute window
LABEL_DELAY_MS = 5_000
RATE = 1000.0  # requests a second of wall time
MODEL_SETTINGS: dict[str, Any] = {
    **SEA_MODEL,
    "pane": "10s",
    "windows": [{"size": "1m"}],
    "allowed_lateness": "1m",  # 1,200 requests: labels a second of wall time behind still count
    "idle_timeout": "3s",
    "retrain": {"policy": "never"},
}
"""SEA's settings with one-minute tumbling windows of ten-second panes and no retraining (a
retrained candidate would supersede the challenger under test). A window closes once the
predictions' event time is a minute of lateness past its end, and the labels carry a later
event time than their predictions, so the lateness is the only slack for a label consumed
after predictions beyond it: a minute of event time is 1,200 requests, over a second at
:data:`RATE`."""


def sea_examples(n: int, seed: int, *, shuffled: bool = False) -> Examples:
    """``n`` SEA examples drawn with ``seed``; ``shuffled`` permutes their labels (a model
    fitted on them learns little: about two thirds accuracy against 0.94)."""
    events = list(sea_events(n, seed=seed))
    labels = [e.ground_truth["label"] for e in events]
    if shuffled:
        random.Random(seed).shuffle(labels)
    return Examples.of(
        Example(
            e.prediction["prediction_id"],
            e.prediction["timestamp"],
            e.prediction["features"],
            label,
            "0",
        )
        for e, label in zip(events, labels, strict=True)
    )


@dataclass(frozen=True)
class Version:
    """A model to register: its fitted model, serialised bytes and training examples."""

    fitted: FittedModel
    artifact: bytes
    examples: Examples


def fit(examples: Examples) -> Version:
    """River's built-in binary trainer fitted on ``examples``."""
    fitted = RiverTrainer("binary").fit(examples)
    return Version(fitted, dumps(fitted), examples)


def good() -> Version:
    """Fitted on 5,000 correctly labelled examples."""
    return fit(sea_examples(5000, 101))


def poor() -> Version:
    """Fitted on 2,000 examples with shuffled labels."""
    return fit(sea_examples(2000, 102, shuffled=True))


def _register(
    registry: FileSystemRegistry, config: ModelConfig, version: Version, parent: str | None
) -> str:
    examples = version.examples
    times = examples.times
    summary = TrainingSummary(
        first_event_time=datetime.fromtimestamp(times[0] / 1000, UTC),
        last_event_time=datetime.fromtimestamp(times[-1] / 1000, UTC),
        rows=len(examples),
        content_hash=examples.digest(),
    )
    features = dict.fromkeys(examples.feature_names(), "numeric")
    registration = Registration(MODEL, parent, summary, features, "pickle-5")  # type: ignore[arg-type]
    number = "1" if parent is None else str(int(parent) + 1)
    reference = reference_profile(MODEL, number, config, version.fitted, examples)
    metadata = registry.register(
        registration, version.artifact, reference=reference, by="person", reason="rollout test"
    )
    assert metadata.version == number
    return metadata.version


@dataclass
class Traffic:
    """The serving process: requests of SEA's stream through the follower (module docstring).

    ``served[i]`` is what answered request ``i`` and what else predicted it, as (version,
    role) pairs; :meth:`stop_after` ends the stream ``n`` requests after the current one.
    """

    settings: Settings
    follower: ChampionFollower
    limit: int = 60_000
    served: list[tuple[tuple[str, str], ...]] = field(default_factory=list)
    predictions: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    _end: int | None = None

    def stop_after(self, n: int) -> int:
        """End the stream ``n`` requests after those already served; returns the index of
        the first request sure to be served after this call."""
        first = len(self.served) + 1  # the request in progress may have been served before
        self._end = first + n
        return first

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.done.set()

    def _run(self) -> None:
        start = time.monotonic()
        events = sea_events(self.limit, seed=17, model=MODEL)
        with DriftlineProducer(
            self.settings.kafka, self.settings.topics, config={"linger.ms": 20}
        ) as producer:
            for i, event in enumerate(events):
                if self._end is not None and i >= self._end:
                    break
                features = event.prediction["features"]
                ts = START_MS + i * STEP_MS
                pid = f"req-{i}"
                served = self.follower.predict(f"user-{i}", features, prediction_id=pid)
                assert served, "the follower has no champion"
                assert served[0].answer, served
                publish_served(producer, MODEL, served, features, timestamp=ts)
                producer.send_ground_truth(
                    prediction_id=pid,
                    label=event.ground_truth["label"],
                    timestamp=ts + LABEL_DELAY_MS,
                )
                self.served.append(tuple((s.version, s.role) for s in served))
                self.predictions += len(served)
                if i % 200 == 0:
                    producer.poll(0)
                    ahead = start + i / RATE - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)  # a steady pace, so decisions come while it serves
            else:
                raise AssertionError(f"no end asked for after {self.limit} requests")


@dataclass
class Rig:
    """Everything a rollout test reads: settings, registry, follower, traffic, records."""

    settings: Settings
    registry: FileSystemRegistry
    follower: ChampionFollower
    traffic: Traffic
    monitor: subprocess.Popen[bytes]
    victoria: VictoriaMetrics
    log: Path
    decisions: list[RolloutDecision] = field(default_factory=list)
    versions: list[ModelVersionRegistered] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    followed_at: float | None = None
    """Seconds from the first request until the test saw the follower switch."""
    decided_at: float | None = None
    """Seconds from the first request to the first decision read from the topic."""

    def context(self) -> str:
        """The monitor's log tail, for failure messages."""
        text = self.log.read_text(errors="replace")
        return "--- monitor and trainer log (tail)\n" + "\n".join(text.splitlines()[-60:])

    def wait(self, what: str, done: Callable[[], bool], timeout: float) -> None:
        """Read the output topics until ``done()`` or ``timeout`` seconds (then fail)."""
        deadline = time.monotonic() + timeout
        while not done():
            self.read()
            assert self.monitor.poll() is None, f"the monitor exited\n{self.context()}"
            assert self.traffic.error is None, f"{self.traffic.error!r}\n{self.context()}"
            assert time.monotonic() < deadline, (
                f"{what}: not in {timeout:.0f} s; {len(self.traffic.served)} requests served;"
                f" decisions {self.decisions}\n{self.context()}"
            )

    def linger(self, seconds: float) -> None:
        """Keep reading the output topics for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.read()

    def read(self) -> None:
        """Take what arrived on the rollout and models topics."""
        topics = self.settings.topics
        for message in self._reader.consume(1000, 0.2):
            value = message.value()
            if message.error() is not None or value is None:
                continue
            if message.topic() == topics.rollout:
                self.decisions.append(RolloutDecision.model_validate_json(value))
                if self.decided_at is None:
                    self.decided_at = time.monotonic() - self.started
            else:
                self.versions.append(ModelVersionRegistered.model_validate_json(value))

    def points(self) -> dict[int, dict[str, float]]:
        """The ``rollout`` points of the pair (1, 2) in VictoriaMetrics: window end ms ->
        field -> value."""
        found: dict[int, dict[str, float]] = {}
        for series in self.victoria.series("rollout", model=MODEL, champion="1", challenger="2"):
            for ms, value in series.points:
                found.setdefault(ms, {})[series.field] = value
        return found

    def status(self, version: str) -> str:
        """A version's status in the registry now."""
        return self.registry.metadata(MODEL, version).status

    _reader: Any = None


def _text(log: Path) -> str:
    return log.read_text(errors="replace")


@contextmanager
def rollout_rig(
    tmp_path: Path, rollout: dict[str, Any], champion: Version, challenger: Version
) -> Iterator[Rig]:
    """The rig, with ``models.sea.rollout`` = ``rollout`` (module docstring); the traffic
    thread is started, and stopped with everything else on exit."""
    model = {**MODEL_SETTINGS, "rollout": rollout}
    with (
        TansuBroker(workdir=tmp_path / "tansu") as broker,
        VictoriaMetrics(workdir=tmp_path / "victoria-metrics") as victoria,
    ):
        settings, config = loop_settings(tmp_path, broker, victoria, "rollout", {MODEL: model})
        topics = settings.topics

        registry = FileSystemRegistry(tmp_path / "registry")
        model_config = settings.models[MODEL]
        one = _register(registry, model_config, champion, None)
        registry.promote(MODEL, one, by="person", reason="the rollout test's champion")
        two = _register(registry, model_config, challenger, one)
        mode = RolloutMetadata(mode=rollout["mode"], canary_share=rollout.get("canary_share", 0.1))
        registry.challenge(MODEL, two, mode, by="trainer", reason="the rollout test's challenger")
        for version in (one, two):
            record = version_record(registry, MODEL, version, source="trainer")
            assert record is not None
            publish_profile(settings.kafka, topics, record)

        log = tmp_path / "monitor.log"
        with log.open("ab") as out:
            monitor = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "driftline",
                    "monitor",
                    "run",
                    "--with-trainer",
                    "--ingest-processes",
                    "1",
                    "--config",
                    str(config),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        reader = assigned_reader(settings.kafka, [topics.rollout, topics.models], "rollout-test")
        follower = ChampionFollower(
            settings.kafka, topics, registry, MODEL, poll_interval=0.5
        ).start()
        traffic = Traffic(settings, follower)
        rig = Rig(settings, registry, follower, traffic, monitor, victoria, log)
        rig._reader = reader
        thread = threading.Thread(target=traffic.run, name="serving", daemon=True)
        try:
            challenger_served = follower.challenger()
            assert challenger_served is not None
            assert challenger_served.version == two
            # The rollout starts once the monitor's trainer is in its group (as in production,
            # where it runs before): the time from a decision to its effect is then the loop's.
            rig.wait("the trainer's assignment", lambda: "trainer assigned" in _text(log), 90)
            rig.started = time.monotonic()
            thread.start()
            yield rig
        finally:
            if thread.is_alive():
                traffic.stop_after(0)
                thread.join(30)
            follower.close()
            reader.close()
            assert stop_process(monitor, 60) == 0, rig.context()
