"""The whole loop, end to end (issue 11): a concept change, a retrain request, a new version
trained, registered and promoted, the serving side switching, and accuracy recovering.

``driftline monitor run --with-trainer`` on a Tansu broker and a VictoriaMetrics this test
starts itself. A simulated serving process (a thread here) predicts river's SEA stream with
version 1 (the pre-change concept, threshold 8), publishing each prediction and its label;
at event 18,000 the concept changes (threshold 9.5, over 1,000 events) and version 1's
accuracy falls by about ten points. The monitor judges a window whose accuracy dropped more
than five points below the reference's and asks for retraining; the trainer trains on the
joined examples, beats version 1 on the holdout, registers version 2 and publishes its
reference on the models topic; the serving thread's :class:`~driftline.serving.
ChampionFollower` loads version 2 from the registry and stamps its predictions "2". Then the
stream stays on the new concept.

Checked: the registry's version 2 and its metadata, the models topic's record of it, version
2's realised accuracy (from the monitor's performance points) within 0.02 of version 1's
before the change, no retrain request about version 2, and version 1's alert resolved once its
traffic stopped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from driftline.config import Settings
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import (
    DriftAlert,
    ModelVersionRegistered,
    RetrainRequest,
    TrainingOutcome,
)
from driftline.serving import ChampionFollower
from driftline.streams.registry import publish_profile
from driftline.testing.servers import TansuBroker, VictoriaMetrics
from driftline.testing.service import SEA_MODEL, sea_reference, stop_process
from driftline.testing.synthetic import START_MS, STEP_MS, sea_events
from driftline.trainer.registry import FileSystemRegistry
from tests.integration.loop_setup import loop_settings
from tests.streams.kafka_helpers import assigned_reader

MODEL = "sea"
CHANGE_AT = 18_000  # six five-minute windows of the old concept
AFTER_SWITCH = 24_000  # predictions of version 2 after it took over (eight windows)
RATE = 1500.0  # predictions a second of wall time: the loop closes while traffic flows
WINDOW_MS = 5 * 60_000
TIMEOUT = 180.0


class Serving:
    """The simulated model-serving process: version 1's rule until the follower has a
    champion, then the champion; every prediction with its label, paced."""

    def __init__(self, settings: Settings, follower: ChampionFollower) -> None:
        self.settings = settings
        self.follower = follower
        self.switched_at: int | None = None  # the first event index served by the champion
        self.sent = 0
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.done.set()

    def _run(self) -> None:
        topics = self.settings.topics
        producer = Producer({**confluent_config(self.settings.kafka), "linger.ms": 20})
        start = time.monotonic()
        total = 10**9
        for i, event in enumerate(sea_events(10**7, drift_at=CHANGE_AT, seed=17, model=MODEL)):
            if i >= total:
                break
            prediction: dict[str, Any] = dict(event.prediction)
            champion = self.follower.current()
            if champion is not None:
                if self.switched_at is None:
                    self.switched_at = i
                    total = i + AFTER_SWITCH
                features = prediction["features"]
                prediction["prediction"] = champion.model.predict([features])[0]
                scores = champion.model.predict_scores([features])
                if scores is not None:
                    prediction["scores"] = scores[0]
                prediction["model_version"] = champion.version
            key = prediction["prediction_id"].encode()
            producer.produce(topics.predictions, key=key, value=orjson.dumps(prediction))
            producer.produce(topics.ground_truth, key=key, value=orjson.dumps(event.ground_truth))
            self.sent = i + 1
            if i % 300 == 0:
                producer.poll(0)
                ahead = start + i / RATE - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # a steady pace: the loop closes while traffic flows
            if i > CHANGE_AT + 200_000:
                raise AssertionError("no champion to switch to after 200,000 predictions")
        assert producer.flush(60) == 0


def _accuracy(victoria: VictoriaMetrics, version: str) -> dict[int, tuple[float, float]]:
    """Per window end of ``version``: the latest accuracy and its label count."""
    values: dict[int, dict[str, float]] = {}
    for series in victoria.series("performance", model=MODEL, version=version, metric="accuracy"):
        if series.field not in ("value", "n_labels"):
            continue
        for ms, value in series.points:
            values.setdefault(ms, {})[series.field] = value
    return {ms: (v["value"], v["n_labels"]) for ms, v in values.items() if len(v) == 2}


def _weighted(windows: dict[int, tuple[float, float]]) -> float:
    labels = sum(n for _, n in windows.values())
    return sum(a * n for a, n in windows.values()) / labels


def test_a_concept_change_is_retrained_promoted_served_and_recovered(tmp_path: Path) -> None:
    model: dict[str, Any] = {
        **SEA_MODEL,
        "windows": [{"size": "5m"}],
        "idle_timeout": "3s",
        "retrain": {"policy": "on_performance", "cooldown": "6h"},
        "training": {"range": "recent", "recent_rows": 4000},
    }
    with (
        TansuBroker(workdir=tmp_path / "tansu") as broker,
        VictoriaMetrics(workdir=tmp_path / "victoria-metrics") as victoria,
    ):
        settings, config = loop_settings(tmp_path, broker, victoria, "loop", {MODEL: model})
        topics = settings.topics
        publish_profile(settings.kafka, topics, sea_reference(MODEL, "1", rows=10_000))
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
        reader = assigned_reader(
            settings.kafka,
            [topics.retrain, topics.training, topics.models, topics.alerts],
            "loop-test",
        )
        records: dict[str, list[bytes]] = {
            topics.retrain: [],
            topics.training: [],
            topics.models: [],
            topics.alerts: [],
        }

        def read() -> None:
            for message in reader.consume(1000, 0.2):
                if message.error() is None and message.value() is not None:
                    records[message.topic() or ""].append(message.value())

        def context() -> str:
            text = log.read_text(errors="replace")
            return "--- monitor and trainer log (tail)\n" + "\n".join(text.splitlines()[-80:])

        registry = FileSystemRegistry(tmp_path / "registry")
        try:
            with ChampionFollower(settings.kafka, topics, tmp_path / "registry", MODEL) as follower:
                serving = Serving(settings, follower)
                thread = threading.Thread(target=serving.run, name="serving", daemon=True)
                thread.start()
                deadline = time.monotonic() + TIMEOUT
                while not serving.done.is_set():
                    read()
                    assert monitor.poll() is None, f"the monitor exited\n{context()}"
                    assert time.monotonic() < deadline, (
                        f"the stream did not end in {TIMEOUT:.0f} s: sent {serving.sent},"
                        f" switched at {serving.switched_at}\n{context()}"
                    )
                assert serving.error is None, f"{serving.error!r}\n{context()}"
                switched = serving.switched_at
                assert switched is not None

                # The windows close as the watermark passes them, the last once every input
                # partition has been idle for 3 s; then version 2's windows are all judged.
                newest = START_MS + (switched + AFTER_SWITCH - 1) * STEP_MS
                # The last window that can close: its end plus the lateness (a minute) is at
                # or before the newest event time, which is where the idle watermark stops.
                ready = newest - 60_000
                closing = ready - ready % WINDOW_MS
                deadline = time.monotonic() + 60
                while closing not in _accuracy(victoria, "2"):
                    read()
                    assert monitor.poll() is None, f"the monitor exited\n{context()}"
                    assert time.monotonic() < deadline, f"v2's last window not judged\n{context()}"
                    time.sleep(0.5)  # polling VictoriaMetrics, bounded by the deadline
                time.sleep(2.0)  # the alerts and outcomes of that last window reach their topics
                read()
        finally:
            reader.close()
            assert stop_process(monitor, 60) == 0, context()

        requests = [RetrainRequest.model_validate_json(v) for v in records[topics.retrain]]
        outcomes = [TrainingOutcome.model_validate_json(v) for v in records[topics.training]]
        versions = [ModelVersionRegistered.model_validate_json(v) for v in records[topics.models]]
        alerts = [DriftAlert.model_validate_json(v) for v in records[topics.alerts]]
        before = {
            end: a
            for end, a in _accuracy(victoria, "1").items()
            if end <= START_MS + CHANGE_AT * STEP_MS
        }
        after = _accuracy(victoria, "2")
        pre, post = _weighted(before), _weighted(after)
        summary = (
            f"switched at event {switched}; v1 before the change {pre:.4f} over {len(before)}"
            f" windows, v2 {post:.4f} over {len(after)} windows {sorted(after.values())};"
            f" requests {[(r.model_version, r.window_end.isoformat()) for r in requests]};"
            f" outcomes {[(o.status, o.reason) for o in outcomes]}\n{context()}"
        )
        print(summary.split("\n")[0])

        # The loop: a request about version 1, one training that succeeded and promoted "2".
        assert requests, summary
        assert all(r.model_version == "1" for r in requests), summary
        succeeded = [o for o in outcomes if o.status == "succeeded"]
        assert len(succeeded) == 1, summary
        assert succeeded[0].candidate_version == "2", summary
        assert succeeded[0].promoted, summary

        # The registry's version 2, with its lineage and figures.
        (v2,) = [v for v in registry.versions(MODEL) if v.version == "2"]
        assert v2.status == "champion", v2
        assert v2.parent_version == "1", v2
        assert v2.request_id == succeeded[0].request_id
        assert v2.reasons
        assert v2.reasons[0].statistic == "accuracy"
        assert v2.training_data.rows >= 3000
        assert v2.metrics is not None
        assert v2.metrics.candidate is not None
        assert v2.metrics.champion is not None
        assert v2.metrics.candidate > v2.metrics.champion, v2.metrics
        assert set(v2.features) == {"x1", "x2", "x3"}

        # The models topic carries its reference; the monitor judged version 2 against it.
        (record,) = [v for v in versions if v.model_version == "2"]
        assert record.source == "trainer"
        assert record.parent_version == "1"
        assert record.reference.model_version == "2"

        # Accuracy recovered, and version 2 asked for nothing.
        assert len(after) >= 6, summary
        assert post >= pre - 0.02, summary
        assert not [r for r in requests if r.model_version == "2"], summary

        # Version 1's alert fired on the change and resolved once its traffic stopped.
        v1 = [a for a in alerts if a.model_version == "1"]
        assert v1, summary
        assert v1[0].status == "firing", summary
        assert v1[-1].status == "resolved", [(a.status, a.reasons) for a in v1]
        assert v1[-1].reasons[0].kind == "traffic_stopped", v1[-1]
        assert not [a for a in alerts if a.model_version == "2" and a.status == "firing"], alerts
