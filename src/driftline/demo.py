"""``driftline demo``: the whole service, end to end, on servers it starts itself.

1. Starts a Tansu broker and VictoriaMetrics (the InfluxDB v2 write API) on free local ports.
2. Creates the topics and registers the reference of model ``sea`` version ``1``, built from
   a training sample of river's SEA stream.
3. Starts ``driftline monitor run`` (stage 1, stage 2 and the InfluxDB writer) as a process.
4. Publishes live traffic with the producer SDK: ``x3`` shifts at a third of the stream (a
   feature the model ignores) and the concept changes at two thirds (labels move, features
   do not); every outcome arrives a minute after its prediction.
5. Waits for the windows to be judged and written, then shows what InfluxDB holds, the
   alerts and the retrain requests, and stops everything.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from driftline.client import DriftlineProducer
from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import DriftAlert, RetrainRequest
from driftline.streams.registry import publish_profile
from driftline.testing.servers import Series, TansuBroker, VictoriaMetrics
from driftline.testing.service import (
    SEA_MODEL,
    sea_reference,
    service_config,
    start_monitor,
    stop_process,
)
from driftline.testing.synthetic import STEP_MS, sea_events
from driftline.topics import create_topics

MODEL, VERSION = "sea", "1"
WINDOW_MS = 10 * 60_000


@dataclass
class DemoResult:
    """What the demo saw come out of the service."""

    windows: dict[int, dict[str, Any]] = field(default_factory=dict)
    alerts: list[DriftAlert] = field(default_factory=list)
    retrain: list[RetrainRequest] = field(default_factory=list)
    points: int = 0
    shift_ms: int = 0
    change_ms: int = 0
    seconds: float = 0.0


def _settings(kafka: str, influx_url: str, state: Path) -> dict[str, Any]:
    return service_config(
        bootstrap_servers=kafka,
        influx_url=influx_url,
        state_dir=state,
        name="driftline-demo",
        models={MODEL: {**SEA_MODEL, "idle_timeout": "3s"}},
        log_level="WARNING",
    )


def _publish_traffic(kafka: KafkaSettings, topics: TopicSettings, n: int) -> tuple[int, int]:
    shift_at, change_at = n // 3, 2 * n // 3
    with DriftlineProducer(kafka, topics, config={"linger.ms": 20}) as producer:
        for event in sea_events(n, shift_at=shift_at, drift_at=change_at, seed=7):
            for record in event.events(MODEL):
                producer.send(record)
    start = next(iter(sea_events(1, seed=7))).prediction["timestamp"]
    return start + shift_at * STEP_MS, start + change_at * STEP_MS


def _read_records(kafka: KafkaSettings, topic: str, seconds: float) -> list[bytes]:
    """Everything on a topic, read by assignment (no group to join on Tansu: ~3 s saved)."""
    consumer = Consumer(
        {
            **confluent_config(kafka),
            "group.id": "driftline-demo-reader",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 5,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    values: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                value = message.value()
                if message.error() is None and value is not None:
                    values.append(value)
    finally:
        consumer.close()
    return values


def _windows(series: list[Series]) -> dict[int, dict[str, Any]]:
    windows: dict[int, dict[str, Any]] = {}
    for s in series:
        for ms, value in s.points:  # a restated point shows every value: keep the last read
            row = windows.setdefault(ms, {})
            if s.measurement == "feature_drift" and s.field == "statistic":
                row[f"psi {s.tags['feature']}"] = value
            elif s.measurement == "performance" and s.tags.get("metric") == "accuracy":
                if s.field == "value":
                    row["accuracy"] = value
            elif s.measurement == "decision":
                row[s.field] = value
            elif s.measurement == "label_coverage" and s.field == "n_predictions":
                row["events"] = value
    return windows


def run_demo(
    *,
    events: int = 90_000,
    timeout: float = 240.0,
    say: Callable[[str], None] = print,
    workdir: Path | None = None,
) -> DemoResult:
    """Run the demo and return what it saw; ``say`` reports progress."""
    began = time.monotonic()
    work = Path(workdir or tempfile.mkdtemp(prefix="driftline-demo-"))
    result = DemoResult()
    with (
        TansuBroker(workdir=work / "tansu") as broker,
        VictoriaMetrics(workdir=work / "victoria-metrics") as victoria,
    ):
        raw = _settings(broker.bootstrap_servers, victoria.url, work / "state")
        settings = Settings(**raw)
        config = work / "driftline.yaml"
        config.write_text(yaml.safe_dump(raw))
        say(
            f"Kafka (Tansu) at {broker.bootstrap_servers}, InfluxDB API (VictoriaMetrics) at "
            f"{victoria.url}"
        )
        create_topics(settings.kafka, settings.topics, settings=settings)
        publish_profile(settings.kafka, settings.topics, sea_reference(MODEL, VERSION))
        say("registered the reference of sea/1 (20,000 training rows)")
        log = work / "monitor.log"
        monitor = start_monitor("run", config, log)
        try:
            say(f"publishing {events:,} predictions and their outcomes with the SDK ...")
            result.shift_ms, result.change_ms = _publish_traffic(
                settings.kafka, settings.topics, events
            )
            # Windows that end (plus the minute of lateness) before the last event: closed.
            expected = (events * STEP_MS - 60_000) // WINDOW_MS
            say("waiting for the monitor to judge every window and write it to InfluxDB ...")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if monitor.poll() is not None:
                    raise RuntimeError(
                        f"the monitor exited with {monitor.returncode}; see {log.name}"
                    )
                decided = {
                    ms for s in victoria.series("decision", model=MODEL) for ms, _ in s.points
                }
                if len(decided) >= expected:
                    break
                time.sleep(1.0)  # polling VictoriaMetrics: results arrive within seconds
            series = victoria.series(model=MODEL)
            result.points = sum(len(s.points) for s in series)
            result.windows = _windows(series)
            # Restated windows send their records again: consumers keep one per id.
            alerts = [
                DriftAlert.model_validate_json(v)
                for v in _read_records(settings.kafka, settings.topics.alerts, 3)
            ]
            result.alerts = list({a.alert_id: a for a in alerts}.values())
            requests = [
                RetrainRequest.model_validate_json(v)
                for v in _read_records(settings.kafka, settings.topics.retrain, 2)
            ]
            result.retrain = list({r.request_id: r for r in requests}.values())
        finally:
            stop_process(monitor, 30)
    result.seconds = time.monotonic() - began
    return result


def summary_rows(result: DemoResult) -> list[tuple[str, ...]]:
    """One row per window for the demo's table."""
    rows: list[tuple[str, ...]] = []
    for ms in sorted(result.windows):
        row = result.windows[ms]
        phase = "stationary"
        if ms - WINDOW_MS >= result.change_ms:
            phase = "x3 shift + concept"
        elif ms - WINDOW_MS >= result.shift_ms:
            phase = "x3 shift"
        elif ms > result.shift_ms:
            phase = "shift begins"
        decision = "firing" if row.get("firing") else "-"
        if row.get("retrain"):
            decision += " + retrain"
        rows.append(
            (
                time.strftime("%H:%M", time.gmtime((ms - WINDOW_MS) / 1000)),
                phase,
                f"{row.get('events', 0):.0f}",
                f"{row.get('psi x3', float('nan')):.2f}",
                f"{row.get('psi x1', float('nan')):.2f}",
                f"{row.get('accuracy', float('nan')):.3f}",
                decision,
            )
        )
    return rows


def as_json(result: DemoResult) -> bytes:
    """The result as JSON (for scripts)."""
    return orjson.dumps(
        {
            "windows": {str(k): v for k, v in sorted(result.windows.items())},
            "alerts": [a.model_dump(mode="json") for a in result.alerts],
            "retrain": [r.model_dump(mode="json") for r in result.retrain],
            "points": result.points,
            "seconds": result.seconds,
        }
    )
