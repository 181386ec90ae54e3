"""The test harness itself: real servers that start, answer, and fail loudly when they cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from driftline.errors import ServerStartError
from driftline.testing import TansuBroker, VictoriaMetrics
from driftline.testing.servers import TANSU_ENV

T0 = 1_764_000_000_000


def write(server: Any, points: list[Point]) -> None:
    token = getattr(server, "token", "unused")
    org = getattr(server, "org", "driftline")
    with InfluxDBClient(url=server.url, token=token, org=org, enable_gzip=True) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=getattr(server, "bucket", "driftline"),
            record=points,
            write_precision=WritePrecision.MS,
        )


def drift_point(feature: str, psi: float, at: int) -> Point:
    return (
        Point("feature_drift")
        .tag("model", "fraud")
        .tag("feature", feature)
        .field("psi", psi)
        .field("n", 1000)
        .time(at, WritePrecision.MS)
    )


def test_influx_v2_writes_are_read_back_by_measurement_field_and_tags(metrics_server: Any) -> None:
    write(
        metrics_server,
        [
            drift_point("amount", 0.1, T0),
            drift_point("amount", 0.3, T0 + 60_000),
            drift_point("age", 0.05, T0),
        ],
    )
    found = {
        (s.field, s.tags["feature"]): s.points
        for s in metrics_server.series("feature_drift", model="fraud")
    }
    assert found[("psi", "amount")] == [(T0, 0.1), (T0 + 60_000, 0.3)]
    assert found[("psi", "age")] == [(T0, 0.05)]
    assert found[("n", "age")] == [(T0, 1000.0)]


def test_rewriting_a_point_keeps_one_value_in_influxdb_but_every_write_in_victoria_metrics(
    metrics_server: Any,
) -> None:
    """InfluxDB overwrites a point with the same identity; VictoriaMetrics stores both samples.

    Tests that check restated points must read the values as a set on VictoriaMetrics.
    """
    write(metrics_server, [drift_point("restated", 0.2, T0)])
    write(metrics_server, [drift_point("restated", 0.25, T0)])
    psi = next(
        s for s in metrics_server.series("feature_drift", feature="restated") if s.field == "psi"
    )
    if isinstance(metrics_server, VictoriaMetrics):
        assert sorted(psi.points) == [(T0, 0.2), (T0, 0.25)]
    else:
        assert psi.points == [(T0, 0.25)]


def test_victoria_metrics_keeps_its_points_across_a_restart(tmp_path: Path) -> None:
    with VictoriaMetrics(workdir=tmp_path) as server:
        write(server, [drift_point("amount", 0.4, T0)])
        server.stop()
        assert not server.running
        server.start()
        [psi] = [s for s in server.series("feature_drift") if s.field == "psi"]
        assert psi.points == [(T0, 0.4)]


def test_a_server_that_cannot_start_raises_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'address already in use' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(TANSU_ENV, str(fake))
    with pytest.raises(ServerStartError, match="exited with code 3") as caught:
        TansuBroker(workdir=tmp_path).start()
    assert "address already in use" in caught.value.log_tail


def test_a_stopped_broker_restarts_on_the_same_port() -> None:
    with TansuBroker() as broker:
        port = broker.port
        broker.stop()
        assert not broker.running
        broker.start()
        assert broker.running
        assert broker.port == port
