"""Prometheus metrics and a health check of the monitor's processes.

Each part gets its own :class:`~prometheus_client.CollectorRegistry`, so several parts (or
tests) in one process never collide; :func:`serve` exposes ``/metrics`` and ``/healthz`` on
127.0.0.1 by default.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

Health = Callable[[], tuple[bool, dict[str, Any]]]


class IngestTelemetry:
    """Counters of stage 1 (names prefixed ``driftline_ingest_``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        p = "driftline_ingest"
        self.events_in = Counter(f"{p}_events", "Input messages consumed", ["topic"], registry=r)
        self.predictions = Counter(f"{p}_predictions", "Predictions folded", registry=r)
        self.labels = Counter(f"{p}_labels", "Ground-truth events accepted", registry=r)
        self.joined = Counter(f"{p}_joined", "Predictions joined with their label", registry=r)
        self.dead_letters = Counter(
            f"{p}_dead_letters", "Invalid events sent to the DLQ", registry=r
        )
        self.duplicates = Counter(f"{p}_duplicates", "Duplicate events dropped", registry=r)
        self.too_late = Counter(f"{p}_too_late", "Events older than every open window", registry=r)
        self.unlabelled = Counter(
            f"{p}_never_labelled",
            "Predictions whose label did not arrive within the TTL",
            registry=r,
        )
        self.panes_emitted = Counter(
            f"{p}_partials_emitted", "Pane partials sent to stage 2", registry=r
        )
        self.sink_errors = Counter(f"{p}_sink_errors", "Failed deliveries", ["sink"], registry=r)
        self.partitions = Gauge(f"{p}_partitions", "Input partition numbers owned", registry=r)
        self.applied_offset = Gauge(
            f"{p}_applied_offset",
            "Next input offset to apply (compare with the end offset)",
            ["topic", "partition"],
            registry=r,
        )
        self.committed_offset = Gauge(
            f"{p}_committed_offset",
            "Offset last committed to Kafka",
            ["topic", "partition"],
            registry=r,
        )
        self.last_poll = Gauge(f"{p}_last_poll_seconds", "Unix time of the last poll", registry=r)


def serve(
    registry: CollectorRegistry, port: int, host: str = "127.0.0.1", health: Health | None = None
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` (Prometheus) and ``/healthz`` (200 or 503 with a JSON body) from a
    daemon thread; returns the server (``shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok, detail = health() if health is not None else (True, {})
                body = orjson.dumps({"status": "ok" if ok else "unhealthy", **detail})
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes every few seconds would drown the log

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="driftline-http", daemon=True).start()
    return server
