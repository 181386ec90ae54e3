"""The same servers as :mod:`driftline.testing.servers`, but the real products in Docker.

Apache Kafka (KRaft) and InfluxDB 2 through testcontainers, for machines where a Docker engine
answers. :func:`docker_unavailable` says why not, so tests can skip with that reason.
"""

from __future__ import annotations

import functools
import os
import socket
from types import TracebackType
from typing import Any, Self

from driftline.testing.servers import Series

KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
INFLUXDB_IMAGE = "influxdb:2.7"
INFLUX_ORG = "driftline"
INFLUX_BUCKET = "driftline"
INFLUX_TOKEN = "driftline-test-token"


@functools.cache
def docker_unavailable() -> str | None:
    """None when a Docker engine answers, else the reason it does not (asked once)."""
    try:
        import docker
    except ImportError:
        return "the docker Python package is not installed (pip install 'driftline[test]')"
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        # Probe the socket ourselves: the docker client leaks its socket when the engine is
        # missing, which warnings-as-errors turns into a failure.
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(2)
                probe.connect(host.removeprefix("unix://"))
        except OSError as exc:
            return f"no Docker engine answers at {host} ({exc.strerror or exc})"
    client = None
    try:
        client = docker.from_env(timeout=3)
        client.ping()
    except Exception as exc:  # any failure to reach the engine means the same thing here
        return f"no Docker engine answers ({type(exc).__name__}: {exc})"
    finally:
        if client is not None:
            client.close()
    return None


class DockerKafka:
    """Apache Kafka in KRaft mode in a container; :attr:`bootstrap_servers` for clients."""

    def __init__(self, image: str = KAFKA_IMAGE) -> None:
        from testcontainers.community.kafka import KafkaContainer

        self._container: Any = KafkaContainer(image=image).with_kraft()
        self.bootstrap_servers = ""

    def __enter__(self) -> Self:
        self._container.start()
        self.bootstrap_servers = str(self._container.get_bootstrap_server())
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._container.stop()


class DockerInfluxDB:
    """InfluxDB 2 in a container, set up with an org, a bucket and a token."""

    org = INFLUX_ORG
    bucket = INFLUX_BUCKET
    token = INFLUX_TOKEN

    def __init__(self, image: str = INFLUXDB_IMAGE) -> None:
        from testcontainers.community.influxdb import InfluxDb2Container

        self._container: Any = InfluxDb2Container(
            image=image,
            init_mode="setup",
            admin_token=INFLUX_TOKEN,
            username="driftline",
            password="driftline-password",
            org_name=INFLUX_ORG,
            bucket=INFLUX_BUCKET,
        )
        self.url = ""

    def __enter__(self) -> Self:
        self._container.start()
        self.url = str(self._container.get_url())
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._container.stop()

    def series(self, measurement: str | None = None, **tags: str) -> list[Series]:
        """Every stored series, read back with Flux, in the shape VictoriaMetrics gives."""
        from influxdb_client import InfluxDBClient

        filters = [f'r._measurement == "{measurement}"'] if measurement else []
        filters += [f'r["{k}"] == "{v}"' for k, v in tags.items()]
        where = " and ".join(filters) or "true"
        flux = f'from(bucket: "{self.bucket}") |> range(start: 0) |> filter(fn: (r) => {where})'
        grouped: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[tuple[int, float]]] = {}
        with InfluxDBClient(url=self.url, token=self.token, org=self.org) as client:
            for table in client.query_api().query(flux):
                for record in table.records:
                    values = record.values
                    labels = tuple(
                        sorted(
                            (k, str(v))
                            for k, v in values.items()
                            if not k.startswith("_") and k not in ("result", "table")
                        )
                    )
                    key = (record.get_measurement(), record.get_field(), labels)
                    millis = int(record.get_time().timestamp() * 1000)
                    grouped.setdefault(key, []).append((millis, float(record.get_value())))
        return sorted(
            (Series(m, f, dict(t), sorted(p)) for (m, f, t), p in grouped.items()),
            key=lambda s: (s.measurement, s.field, sorted(s.tags.items())),
        )
