"""Real servers for the tests: Tansu and VictoriaMetrics, started here on free ports.

A server that cannot start fails the tests that need it; it never skips them. Where a Docker
engine answers, the ``docker`` variants run the same tests against Apache Kafka and InfluxDB 2
through testcontainers; where none does, only those variants skip, saying why.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from driftline.config import KafkaSettings, TopicSettings
from driftline.testing.docker import DockerInfluxDB, DockerKafka, docker_unavailable
from driftline.testing.servers import TansuBroker, VictoriaMetrics

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
