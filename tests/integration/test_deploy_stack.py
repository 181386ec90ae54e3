"""The compose stack's configuration, run as the stack runs it, on real servers: Tansu for
Kafka and VictoriaMetrics for InfluxDB's write API (no Docker engine here).

``deploy/driftline.yaml`` with only its addresses and folders pointed at this test's servers
and a temporary folder; the compose services' own commands, read from docker-compose.yml
(``topics``, then ``monitor-1`` and ``writer``); SEA traffic for model ``sea`` and no
reference published, as in the stack: version 1 is baselined from its first
``warmup_events`` predictions, its later windows are judged and written, and every point
written is one the dashboard can read (the writer's SCHEMA).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from driftline.client import DriftlineProducer
from driftline.config import Settings
from driftline.sinks.points import SCHEMA
from driftline.testing.servers import TansuBroker, VictoriaMetrics
from driftline.testing.service import stop_process
from driftline.testing.synthetic import sea_events

ROOT = Path(__file__).resolve().parents[2]
N_EVENTS = 24_000  # 40 minutes of event time at 10 a second: four ten-minute windows
RESULTS_TIMEOUT = 180.0


def _stack_config(kafka: str, influx_url: str, work: Path) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "driftline.yaml").read_text())
    raw["kafka"]["bootstrap_servers"] = kafka
    raw["influxdb"]["url"] = influx_url
    raw["influxdb"]["token"] = "unused"
    raw["monitor"]["state_dir"] = str(work / "state")
    raw["monitor"]["metrics_port"] = None  # the two parts of one test share a host
    raw["trainer"]["store_dir"] = str(work / "trainer")
    raw["registry"]["root"] = str(work / "registry")
    return raw


def _service_command(service: str, config: Path) -> list[str]:
    """A compose service's command (PyYAML resolves its anchors), run by this Python, with
    this test's configuration file."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command: list[str] = compose["services"][service]["command"]
    assert command[0] == "driftline"
    at = command.index("--config")
    args = [*command[1:at], "--config", str(config), *command[at + 2 :]]
    return [sys.executable, "-m", "driftline", *args]


def _start(service: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            _service_command(service, config),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def test_the_stack_configuration_baselines_judges_and_writes_without_a_reference(
    tmp_path: Path,
) -> None:
    with ExitStack() as stack:
        broker = stack.enter_context(TansuBroker(workdir=tmp_path / "tansu"))
        victoria = stack.enter_context(VictoriaMetrics(workdir=tmp_path / "vm"))
        raw = _stack_config(broker.bootstrap_servers, victoria.url, tmp_path)
        config = tmp_path / "driftline.yaml"
        config.write_text(yaml.safe_dump(raw))
        settings = Settings(**raw)
        created = subprocess.run(
            _service_command("topics", config),
            capture_output=True,
            text=True,
            check=False,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        log = tmp_path / "stack.log"
        monitor = _start("monitor-1", config, log)
        writer = _start("writer", config, log)
        stack.callback(stop_process, writer, 30)
        stack.callback(stop_process, monitor, 60)
        with DriftlineProducer(settings.kafka, settings.topics, config={"linger.ms": 20}) as p:
            for event in sea_events(N_EVENTS, seed=3):
                for record in event.events("sea"):
                    p.send(record)
        deadline = time.monotonic() + RESULTS_TIMEOUT
        decided: set[int] = set()
        while time.monotonic() < deadline and len(decided) < 2:
            for process in (monitor, writer):
                assert process.poll() is None, log.read_text()[-3000:]
            decided = {ms for s in victoria.series("decision", model="sea") for ms, _ in s.points}
            time.sleep(1.0)  # polling VictoriaMetrics, bounded by RESULTS_TIMEOUT
        assert len(decided) >= 2, log.read_text()[-3000:]
        series = victoria.series(model="sea")
    written = {s.measurement for s in series}
    assert {"feature_drift", "performance", "label_coverage", "decision"} <= written
    for s in series:
        schema = SCHEMA[s.measurement]
        assert s.field in schema.fields, (s.measurement, s.field)
        assert set(s.tags) == schema.tags, (s.measurement, s.tags)
        assert s.tags["version"] == "1"
    features = {s.tags["feature"] for s in series if s.measurement == "feature_drift"}
    assert {"x1", "x2", "x3"} <= features  # and __multivariate__, the PCA drift of all
