"""A restarted monitor sends no alert and no retrain request twice (DESIGN §3).

``driftline monitor run`` on a Tansu broker and a VictoriaMetrics this test starts itself,
SEA traffic whose ``x3`` shifts after the first five minutes (five-minute windows, drift in
one window enough to fire, a retrain request per drifted window outside a ten-minute
cool-down), so that several alerts and retrain requests are published. Then SIGTERM and a
restart: stage 2 rebuilds its state by re-reading the summaries topic and judges every
window again (the metrics outbox receives each window once more, which InfluxDB overwrites),
but the alerts and retrain topics keep exactly the records they had, each id once.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

from driftline.client import DriftlineProducer
from driftline.config import KafkaSettings, Settings
from driftline.sinks.outbox import decode_lines
from driftline.streams.registry import publish_profile
from driftline.testing.servers import TansuBroker, VictoriaMetrics
from driftline.testing.service import (
    SEA_MODEL,
    sea_reference,
    service_config,
    start_monitor,
    stop_process,
)
from driftline.testing.synthetic import STEP_MS, sea_events
from driftline.topics import create_topics
from tests.streams.kafka_helpers import assigned_reader

MODEL = "sea"
WINDOW_MS = 5 * 60_000
N_EVENTS = 6 * WINDOW_MS // STEP_MS  # half an hour of traffic: six windows
SHIFT_AT = WINDOW_MS // STEP_MS  # x3 moves after the first window
TIMEOUT = 90.0


class _Topics:
    """Every record of some topics from their beginning, by assignment (no group join)."""

    def __init__(self, kafka: KafkaSettings, topics: list[str]) -> None:
        self._consumer = assigned_reader(kafka, topics, "restart-test-reader")
        self.values: dict[str, list[bytes]] = {t: [] for t in topics}

    def read(self, timeout: float = 0.25) -> int:
        messages = self._consumer.consume(1000, timeout)
        for message in messages:
            value = message.value()
            if message.error() is None and value is not None:
                self.values[message.topic() or ""].append(value)
        return len(messages)

    def read_until_quiet(self, quiet: float, deadline: float) -> None:
        """Read until nothing has arrived for ``quiet`` seconds (or the deadline passed)."""
        last = time.monotonic()
        while time.monotonic() - last < quiet and time.monotonic() < deadline:
            if self.read():
                last = time.monotonic()

    def close(self) -> None:
        self._consumer.close()


def _ids(values: list[bytes], field: str) -> list[str]:
    return [orjson.loads(v)[field] for v in values]


def _windows(outbox: list[bytes]) -> set[int]:
    """The window ends (point timestamps) the metrics outbox holds points of."""
    return {int(line.rsplit(" ", 1)[1]) for value in outbox for line in decode_lines(value)}


def _wait_for(
    what: str, check: Callable[[], bool], monitor: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        assert monitor.poll() is None, f"the monitor exited while waiting for {what}\n{tail}"
        assert time.monotonic() < deadline, f"no {what} within {TIMEOUT:.0f} s\n{tail}"
        time.sleep(0.25)  # polling Kafka, bounded by the deadline


def test_a_restarted_monitor_sends_no_alert_or_retrain_request_twice(tmp_path: Path) -> None:
    model: dict[str, Any] = {
        **SEA_MODEL,
        "windows": [{"size": "5m"}],
        "idle_timeout": "3s",
        "drift": {"min_samples": 500, "persistence_k": 1, "persistence_n": 1},
        "retrain": {"policy": "on_drift", "cooldown": "10m"},
    }
    with (
        TansuBroker(workdir=tmp_path / "tansu") as broker,
        VictoriaMetrics(workdir=tmp_path / "victoria-metrics") as victoria,
    ):
        raw = service_config(
            bootstrap_servers=broker.bootstrap_servers,
            influx_url=victoria.url,
            state_dir=tmp_path / "state",
            name="restart",
            models={MODEL: model},
            flush_interval="200ms",
        )
        settings = Settings(**raw)
        topics = settings.topics
        config = tmp_path / "driftline.yaml"
        config.write_text(yaml.safe_dump(raw))
        create_topics(settings.kafka, topics)
        publish_profile(settings.kafka, topics, sea_reference(MODEL, rows=10_000))
        with DriftlineProducer(settings.kafka, topics, config={"linger.ms": 20}) as producer:
            for event in sea_events(N_EVENTS, shift_at=SHIFT_AT, seed=3):
                prediction, label = event.events(MODEL)
                producer.send(prediction)
                producer.send(label)
        outputs = _Topics(settings.kafka, [topics.metrics, topics.alerts, topics.retrain])
        log = tmp_path / "monitor.log"
        try:
            monitor = start_monitor("run", config, log)
            try:
                # The windows close as their watermarks pass, the last ones once every input
                # partition has been idle for 3 s; then the outputs stop growing.
                def judged() -> bool:
                    outputs.read()
                    return len(_windows(outputs.values[topics.metrics])) >= 5

                _wait_for("five judged windows", judged, monitor, log)
                outputs.read_until_quiet(6.0, time.monotonic() + TIMEOUT)
            finally:
                assert stop_process(monitor, 30) == 0, log.read_text()[-3000:]
            alerts = _ids(outputs.values[topics.alerts], "alert_id")
            requests = _ids(outputs.values[topics.retrain], "request_id")
            metrics_before = len(outputs.values[topics.metrics])
            windows = _windows(outputs.values[topics.metrics])
            context = f"alerts {alerts}, requests {requests}, windows {sorted(windows)}"
            assert len(alerts) >= 3, context
            assert len(requests) >= 2, context
            assert len(set(alerts)) == len(alerts), context
            assert len(set(requests)) == len(requests), context

            monitor = start_monitor("run", config, log)
            try:
                # Stage 2 judges every window of the summaries topic again: the outbox gets
                # each of them once more.
                def restored() -> bool:
                    outputs.read()
                    return len(outputs.values[topics.metrics]) >= metrics_before + len(windows)

                _wait_for("every window judged again", restored, monitor, log)
                outputs.read_until_quiet(6.0, time.monotonic() + TIMEOUT)
            finally:
                assert stop_process(monitor, 30) == 0, log.read_text()[-3000:]
        finally:
            outputs.close()

        after_alerts = _ids(outputs.values[topics.alerts], "alert_id")
        after_requests = _ids(outputs.values[topics.retrain], "request_id")
        repeated = Counter(after_alerts + after_requests) - Counter(set(alerts + requests))
        context += f"\nrepeated after the restart: {dict(repeated)}"
        assert after_alerts == alerts, context
        assert after_requests == requests, context
        # Metric points were written again, as InfluxDB overwrites them.
        assert _windows(outputs.values[topics.metrics]) == windows, context
        assert len(outputs.values[topics.metrics]) >= metrics_before + len(windows), context
