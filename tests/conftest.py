"""Real servers for the tests: Tansu and VictoriaMetrics, started here on free ports.

A server that cannot start fails the tests that need it; it never skips them. Where a Docker
engine answers, the ``docker`` variants run the same tests against Apache Kafka and InfluxDB 2
through testcontainers; where none does, only those variants skip, saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The command line's tables (rich) are as wide as COLUMNS says when there is no terminal:
# wide enough, in every pytest-xdist worker too, that no cell a test reads is cut short.
os.environ["COLUMNS"] = "200"

from driftline.config import KafkaSettings, TopicSettings
from driftline.testing.docker import DockerInfluxDB, DockerKafka, docker_unavailable
from driftline.testing.servers import TansuBroker, VictoriaMetrics
from tests import reliability as report

BACKENDS = ["tansu", pytest.param("docker", marks=pytest.mark.docker)]
METRIC_BACKENDS = ["victoria-metrics", pytest.param("docker", marks=pytest.mark.docker)]


def _skip_without_docker() -> None:
    reason = docker_unavailable()
    if reason is not None:
        pytest.skip(f"Docker variant: {reason}")


@pytest.fixture(scope="session", params=BACKENDS)
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """Bootstrap servers of a broker shared by the session (tests use their own topics)."""
    if request.param == "docker":
        _skip_without_docker()
        with DockerKafka() as kafka:
            yield kafka.bootstrap_servers
        return
    with TansuBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def kafka(kafka_bootstrap: str) -> KafkaSettings:
    """Connection settings for the session broker."""
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, client_id="driftline-tests")


@pytest.fixture
def topics() -> TopicSettings:
    """Topic names unique to this test, so tests sharing a broker never see each other."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return TopicSettings(
        **{role: f"{prefix}.{role}" for role in TopicSettings().names()},
        input_partitions=4,
        output_partitions=2,
    )


@pytest.fixture
def tansu_factory() -> Iterator[Callable[[], TansuBroker]]:
    """Brokers of a test's own, for tests that stop or kill them."""
    started: list[TansuBroker] = []

    def start() -> TansuBroker:
        broker = TansuBroker().start()
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.close()


@pytest.fixture(scope="session", params=METRIC_BACKENDS)
def metrics_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """An InfluxDB v2 write API (VictoriaMetrics, or InfluxDB 2 in Docker) with ``series()``."""
    if request.param == "docker":
        _skip_without_docker()
        with DockerInfluxDB() as influx:
            yield influx
        return
    with VictoriaMetrics() as server:
        yield server


def pytest_configure(config: pytest.Config) -> None:
    # The controlling process (not an xdist worker) names the fault suite's rows file.
    if not hasattr(config, "workerinput") and report.ROWS_ENV not in os.environ:
        config.stash[_ROWS] = report.open_rows()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    path = config.stash.get(_ROWS, None)
    if path is None:
        return
    rows = report.read_rows(path)
    path.unlink(missing_ok=True)
    os.environ.pop(report.ROWS_ENV, None)
    if rows:
        terminalreporter.section("reliability (docs/reliability.md)")
        terminalreporter.write_line(report.table(rows))


_ROWS = pytest.StashKey[Path]()


@pytest.fixture
def reliability() -> Callable[[dict[str, Any]], None]:
    """Record one fault scenario's outcome for the report printed at the end of the run."""
    return report.record
