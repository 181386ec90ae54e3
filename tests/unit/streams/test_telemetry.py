"""The metrics and health endpoint, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from driftline.streams.telemetry import IngestTelemetry, serve
from driftline.testing import free_port
from tests.streams.scrape import get

state: dict[str, Any] = {"ok": True}


@pytest.fixture
def server() -> Iterator[tuple[str, IngestTelemetry]]:
    telemetry = IngestTelemetry()
    port = free_port()
    http = serve(telemetry.registry, port, health=lambda: (state["ok"], {"part": "ingest"}))
    yield f"http://127.0.0.1:{port}", telemetry
    http.shutdown()
    http.server_close()


def test_metrics_are_served_in_prometheus_format(server: tuple[str, IngestTelemetry]) -> None:
    url, telemetry = server
    telemetry.dead_letters.inc(3)
    telemetry.applied_offset.labels("driftline.predictions", "2").set(41)
    status, body = get(url + "/metrics")
    assert status == 200
    text = body.decode()
    assert "driftline_ingest_dead_letters_total 3.0" in text
    assert 'driftline_ingest_applied_offset{partition="2",topic="driftline.predictions"} 41.0' in (
        text
    )


def test_health_answers_503_when_the_part_is_unhealthy(
    server: tuple[str, IngestTelemetry],
) -> None:
    url, _ = server
    state["ok"] = True
    status, body = get(url + "/healthz")
    assert (status, orjson.loads(body)) == (200, {"status": "ok", "part": "ingest"})
    state["ok"] = False
    status, body = get(url + "/healthz")
    assert (status, orjson.loads(body)["status"]) == (503, "unhealthy")
    assert get(url + "/nope")[0] == 404
