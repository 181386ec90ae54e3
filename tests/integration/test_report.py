"""``driftline report`` over what a real monitor published, end to end.

SDK -> ``driftline monitor run`` (ingest, stage 2, InfluxDB writer) on a Tansu broker and a
VictoriaMetrics this test starts, then the ``driftline report --config FILE --out PATH``
command the demo runs: it reads the metrics outbox, alerts and models topics and writes the
page. Thirty-five minutes of SEA traffic whose x3 shifts from minute 10: the windows judged
are on the page, x3's drift and the alert among them, and the report holds exactly the
points the outbox holds.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import yaml
from confluent_kafka import Consumer

from driftline.client import DriftlineProducer
from driftline.config import Settings
from driftline.report.data import collect, outbox_points
from driftline.report.source import read_topics
from driftline.streams.registry import publish_profile
from driftline.testing.servers import TansuBroker, VictoriaMetrics
from driftline.testing.service import (
    SEA_MODEL,
    sea_reference,
    service_config,
    start_monitor,
    stop_process,
)
from driftline.testing.synthetic import START_MS, sea_events
from driftline.topics import create_topics
from tests.streams.kafka_helpers import assigned_reader

MODEL = "sea"
WINDOW_MS = 600_000
N_EVENTS = 21_000  # 35 minutes at ten a second: windows ending at 10, 20 and 30 minutes close
SHIFT_AT = 6_000  # x3 shifts from minute 10 on: the second and third windows drift
TIMEOUT = 90.0


def _drift_windows(consumer: Consumer, seen: dict[int, int]) -> None:
    for message in consumer.consume(1000, 0.5):
        value = message.value()
        if message.error() is None and value is not None:
            for p in outbox_points(value):
                if p.measurement == "feature_drift":
                    seen[p.time_ms] = seen.get(p.time_ms, 0) + 1


def test_report_draws_what_the_monitor_published(tmp_path: Path) -> None:
    events = list(sea_events(N_EVENTS, shift_at=SHIFT_AT, seed=5))
    with (
        TansuBroker(workdir=tmp_path / "tansu") as broker,
        VictoriaMetrics(workdir=tmp_path / "victoria-metrics") as victoria,
    ):
        raw = service_config(
            bootstrap_servers=broker.bootstrap_servers,
            influx_url=victoria.url,
            state_dir=tmp_path / "state",
            name="report",
            models={MODEL: {**SEA_MODEL, "idle_timeout": "3s"}},
            flush_interval="200ms",
        )
        settings = Settings(**raw)
        config = tmp_path / "driftline.yaml"
        config.write_text(yaml.safe_dump(raw))
        create_topics(settings.kafka, settings.topics)
        publish_profile(settings.kafka, settings.topics, sea_reference(MODEL, "1", rows=10_000))
        reader = assigned_reader(settings.kafka, [settings.topics.metrics], "report-test")
        log = tmp_path / "monitor.log"
        monitor = start_monitor("run", config, log)
        try:
            with DriftlineProducer(settings.kafka, settings.topics) as producer:
                for e in events:
                    prediction, label = e.events(MODEL)
                    producer.send(prediction)
                    producer.send(label)
            windows: dict[int, int] = {}
            expected = {START_MS + k * WINDOW_MS for k in (1, 2, 3)}
            deadline = time.monotonic() + TIMEOUT
            while not expected <= set(windows):
                assert monitor.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, (
                    f"windows {sorted(windows)} after {TIMEOUT:.0f} s\n{log.read_text()[-3000:]}"
                )
                _drift_windows(reader, windows)
        finally:
            stop_process(monitor, 30)
            reader.close()

        out = tmp_path / "report.html"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "driftline",
                "report",
                "--config",
                str(config),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        data = read_topics(settings.kafka, settings.topics, timeout=60)

    # The oracle: the outbox read by this test, one point per identity.
    assert {p.time_ms for p in data.points if p.measurement == "feature_drift"} == set(windows)
    assert data.points == collect(data.points).points
    match = re.search(r"1 model, (\d+) points, (\d+) alerts, 1 version registrations", done.stdout)
    assert match is not None, done.stdout
    assert int(match.group(1)) == len(data.points)
    assert int(match.group(2)) == len(data.alerts) > 0
    drifted = {
        p.time_ms
        for p in data.points
        if p.measurement == "feature_drift"
        and dict(p.tags)["feature"] == "x3"
        and dict(p.fields)["drifted"] is True
    }
    assert drifted == {START_MS + 2 * WINDOW_MS, START_MS + 3 * WINDOW_MS}
    page = out.read_text()
    assert page.count("Plotly.newPlot(") == 4
    assert "x3: psi" in page
    assert "v1 (cli, registered " in page  # wall clock, far from the events
