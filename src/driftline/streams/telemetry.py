"""Prometheus metrics of the monitor's processes, one registry per process part.

Each part gets its own :class:`~prometheus_client.CollectorRegistry`, so several parts (or
tests) in one process never collide; :func:`serve` exposes them on 127.0.0.1 by default.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


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


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
    """Expose a registry at ``http://host:port/metrics`` from a daemon thread."""
    start_http_server(port, addr=host, registry=registry)
