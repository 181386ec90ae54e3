"""The metrics and health endpoint, over real HTTP on 127.0.0.1: one part, and one endpoint
for several parts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.telemetry.ingest import IngestTelemetry
from driftline.telemetry.server import combined_health, serve
from driftline.telemetry.stage2 import Stage2Telemetry
from driftline.telemetry.writer import WriterTelemetry
from driftline.testing import free_port
from tests.streams.scrape import get, health, sample, scrape

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


def test_one_registry_serves_all_three_parts_and_health_needs_every_part() -> None:
    """As `monitor run` serves them: one endpoint, /healthz 200 only if all parts are."""
    registry = CollectorRegistry()
    ingest, merge, writer = (
        IngestTelemetry(registry),
        Stage2Telemetry(registry),
        WriterTelemetry(registry),
    )
    ingest.dead_letters.inc(2)
    merge.published("driftline.metrics", 3)
    writer.failures.labels("unavailable").inc()
    state = {"writer": False}
    check = combined_health(
        {
            "ingest": lambda: (True, {"part": "ingest"}),
            "merge": lambda: (True, {"part": "merge"}),
            "writer": lambda: (state["writer"], {"part": "writer", "problem": "InfluxDB down"}),
        }
    )
    port = free_port()
    http = serve(registry, port, health=check)
    base = f"http://127.0.0.1:{port}"
    try:
        samples = scrape(base)
        status, body = health(base)
        state["writer"] = True
        status_after, body_after = health(base)
    finally:
        http.shutdown()
        http.server_close()

    assert sample(samples, "driftline_ingest_dead_letters_total") == 2
    assert sample(samples, "driftline_merge_messages_out_total", topic="driftline.metrics") == 3
    assert sample(samples, "driftline_writer_write_failures_total", reason="unavailable") == 1
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["parts"]["writer"] == {
        "status": "unhealthy",
        "part": "writer",
        "problem": "InfluxDB down",
    }
    assert body["parts"]["ingest"]["status"] == "ok"
    assert (status_after, body_after["status"]) == (200, "ok")
    assert {p["status"] for p in body_after["parts"].values()} == {"ok"}
