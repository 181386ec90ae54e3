"""Prometheus metrics and health checks of the monitor's parts.

Each part gets its own :class:`~prometheus_client.CollectorRegistry` unless it is given one,
so several parts (or tests) in one process never collide; ``driftline monitor run`` gives its
three parts one registry and serves them together. :func:`serve` exposes ``/metrics`` and
``/healthz`` on 127.0.0.1 by default; :func:`combined_health` makes one health check of
several.

Metric names start with the part: ``driftline_ingest_`` (stage 1), ``driftline_merge_``
(stage 2), ``driftline_writer_`` (the InfluxDB writer). The README's *Operations* section
lists every one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from driftline.streams.stage2.state import Activity, Holding

Health = Callable[[], tuple[bool, dict[str, Any]]]
"""``() -> (healthy, detail)``: the detail is the JSON body of ``/healthz``."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds, for stage 2's close-to-publish latency: milliseconds normally, seconds when
the broker is slow."""
AGE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
"""Seconds, for the age of an outbox record when it is written: about a second normally,
up to hours after an InfluxDB outage."""


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
        self.messages_out = Counter(
            f"{p}_messages_out", "Records produced, per topic", ["topic"], registry=r
        )
        self.restoring = Gauge(
            f"{p}_restoring",
            "1 while a partition's store is rebuilt from the input topics",
            ["partition"],
            registry=r,
        )
        self.restored = Counter(
            f"{p}_restored_outputs",
            "Dead letters and joined examples not sent again while rebuilding a store",
            registry=r,
        )
        self.store_keys = Gauge(
            f"{p}_store_keys",
            "Keys in a partition's RocksDB store (RocksDB's estimate): join entries, partials",
            ["partition"],
            registry=r,
        )
        self.store_bytes = Gauge(
            f"{p}_store_bytes",
            "Bytes of a partition's RocksDB store (live SST files + memtables)",
            ["partition"],
            registry=r,
        )


class Stage2Telemetry:
    """Metrics and health of stage 2 (names prefixed ``driftline_merge_``).

    The faust wiring (:func:`driftline.streams.stage2.agent.create_app`) feeds it: what came in,
    what the pure core did (:meth:`record`), what was published, what is held
    (:meth:`hold`), and each timer tick (:meth:`ticked`). :meth:`health` is unhealthy until
    the first tick and once ``stall_after`` seconds pass without one: the timer runs every
    second on the worker's event loop, so a missing tick means the worker is not running or
    its loop is stuck.

    Parameters
    ----------
    registry
        Where the metrics register; a new one by default.
    stall_after
        Seconds without a tick after which :meth:`health` is unhealthy.
    clock
        Unix seconds, for the tick times.

    Examples
    --------
    >>> telemetry = Stage2Telemetry(clock=lambda: 100.0)
    >>> telemetry.health()[0]  # no tick yet: the worker has not started
    False
    >>> telemetry.ticked()
    >>> telemetry.health()
    (True, {'part': 'merge', 'seconds_since_tick': 0.0, 'models': 0})
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        stall_after: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not stall_after > 0:
            raise ValueError(f"stall_after must be positive seconds, got {stall_after}")
        self.registry = registry or CollectorRegistry()
        self.stall_after = stall_after
        self._clock = clock
        self._last_tick: float | None = None
        self._models: set[str] = set()
        r = self.registry
        p = "driftline_merge"
        self.messages_in = Counter(
            f"{p}_messages_in", "Summaries messages consumed", ["topic"], registry=r
        )
        self.partials = Counter(
            f"{p}_partials",
            "Pane partials applied, by kind and outcome (added, replaced, stale, expired)",
            ["kind", "outcome"],
            registry=r,
        )
        self.partials_dropped = Counter(
            f"{p}_partials_dropped",
            "Partials held for a version without profile, dropped when it came (did not fit)",
            registry=r,
        )
        self.dead_letters = Counter(
            f"{p}_dead_letters", "Summaries messages sent to the DLQ", ["kind"], registry=r
        )
        self.windows_finalised = Counter(
            f"{p}_windows_finalised", "Windows judged for the first time", ["model"], registry=r
        )
        self.windows_restated = Counter(
            f"{p}_windows_restated",
            "Windows judged again because late partials changed them",
            ["model"],
            registry=r,
        )
        self.alerts = Counter(f"{p}_alerts", "Alerts published", ["model"], registry=r)
        self.retrain_requests = Counter(
            f"{p}_retrain_requests", "Retrain requests published", ["model"], registry=r
        )
        self.metric_points = Counter(
            f"{p}_metric_points", "Metric points published to the outbox", ["model"], registry=r
        )
        self.messages_out = Counter(
            f"{p}_messages_out",
            "Records published and acknowledged, per topic (DLQ included)",
            ["topic"],
            registry=r,
        )
        self.publish_errors = Counter(
            f"{p}_publish_errors",
            "Publications that failed (the agent restarts and re-reads its input)",
            registry=r,
        )
        self.panes_held = Gauge(
            f"{p}_panes_held", "Panes (version, pane start) held in memory", ["model"], registry=r
        )
        self.partials_held = Gauge(
            f"{p}_partials_held", "Partials (one per source partition) held", ["model"], registry=r
        )
        self.watermark = Gauge(
            f"{p}_watermark_seconds",
            "The model's closing watermark, epoch seconds of event time",
            ["model"],
            registry=r,
        )
        self.last_tick = Gauge(
            f"{p}_last_tick_seconds", "Unix time of the last timer tick", registry=r
        )
        self.close_to_publish = Histogram(
            f"{p}_close_to_publish_seconds",
            "Wall-clock seconds from a window becoming due (its watermark, an idle timeout or "
            "its profile arriving) to the acknowledgement of its last record",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def received(self, topic: str) -> None:
        """One summaries message consumed."""
        self.messages_in.labels(topic).inc()

    def published(self, topic: str, n: int = 1) -> None:
        """``n`` records acknowledged on ``topic``."""
        if n:
            self.messages_out.labels(topic).inc(n)

    def record(self, activity: Activity, published_at: float) -> None:
        """Count what the pure core did, once its records were acknowledged at
        ``published_at`` (Unix seconds, the clock that gave the core its ``now_ms``)."""
        for (kind, outcome), n in activity.partials.items():
            self.partials.labels(kind, outcome).inc(n)
        if activity.dropped:
            self.partials_dropped.inc(activity.dropped)
        for window in activity.windows:
            model = window.model
            if window.restated:
                self.windows_restated.labels(model).inc()
            else:
                self.windows_finalised.labels(model).inc()
                self.close_to_publish.observe(max(0.0, published_at - window.due_ms / 1000))
            self.metric_points.labels(model).inc(window.points)
            if window.alerts:
                self.alerts.labels(model).inc(window.alerts)
            if window.retrain:
                self.retrain_requests.labels(model).inc()

    def hold(self, holdings: Mapping[str, Holding]) -> None:
        """Set the per-model gauges; models no longer held lose theirs."""
        for model in self._models - holdings.keys():
            for gauge in (self.panes_held, self.partials_held, self.watermark):
                gauge.remove(model)
        for model, held in holdings.items():
            self.panes_held.labels(model).set(held.panes)
            self.partials_held.labels(model).set(held.partials)
            if held.watermark_ms is not None:
                self.watermark.labels(model).set(held.watermark_ms / 1000)
        self._models = set(holdings)

    def ticked(self) -> None:
        """The worker's timer ran."""
        self._last_tick = self._clock()
        self.last_tick.set(self._last_tick)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the timer ticks; the body says how long since the last tick."""
        age = None if self._last_tick is None else self._clock() - self._last_tick
        detail: dict[str, Any] = {
            "part": "merge",
            "seconds_since_tick": None if age is None else round(age, 3),
            "models": len(self._models),
        }
        if age is None:
            detail["problem"] = "no timer tick yet: the faust worker is not running (yet)"
            return False, detail
        if age >= self.stall_after:
            detail["problem"] = (
                f"no timer tick for {age:.0f} s (limit {self.stall_after:g} s): the faust "
                "worker stopped or its event loop is stuck"
            )
            return False, detail
        return True, detail


class WriterTelemetry:
    """Metrics of the InfluxDB writer (names prefixed ``driftline_writer_``).

    :class:`~driftline.sinks.influx.InfluxWriter` updates it; its health check is
    :meth:`InfluxWriter.health <driftline.sinks.influx.InfluxWriter.health>`.

    Examples
    --------
    >>> telemetry = WriterTelemetry()
    >>> telemetry.failures.labels("unavailable").inc()
    >>> telemetry.registry.get_sample_value(
    ...     "driftline_writer_write_failures_total", {"reason": "unavailable"})
    1.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        p = "driftline_writer"
        self.messages_in = Counter(
            f"{p}_messages_in", "Outbox messages consumed", ["topic"], registry=r
        )
        self.messages_written = Counter(
            f"{p}_messages_written", "Outbox messages whose points InfluxDB accepted", registry=r
        )
        self.points_written = Counter(f"{p}_points_written", "Points InfluxDB accepted", registry=r)
        self.write_calls = Counter(f"{p}_write_calls", "Write calls to InfluxDB", registry=r)
        self.failures = Counter(
            f"{p}_write_failures",
            "Failed attempts: unavailable (InfluxDB down, 5xx, 429, auth), rejected (400, 413, "
            "422: the data is dead-lettered), dead_letter (the DLQ could not be written)",
            ["reason"],
            registry=r,
        )
        self.retries = Counter(
            f"{p}_retries", "Batches written again after a failed attempt", registry=r
        )
        self.backoff = Counter(
            f"{p}_backoff_seconds", "Seconds spent waiting between retries", registry=r
        )
        self.dead_letters = Counter(
            f"{p}_dead_letters", "Outbox messages sent to the DLQ", ["kind"], registry=r
        )
        self.batches = Counter(f"{p}_batches", "Batches written and committed", registry=r)
        self.commit_failures = Counter(
            f"{p}_commit_failures", "Offset commits that failed (retried later)", registry=r
        )
        self.written_offset = Gauge(
            f"{p}_written_offset",
            "Next outbox offset whose points are written (or dead-lettered)",
            ["topic", "partition"],
            registry=r,
        )
        self.committed_offset = Gauge(
            f"{p}_committed_offset",
            "Outbox offset last committed to Kafka",
            ["topic", "partition"],
            registry=r,
        )
        self.pending = Gauge(
            f"{p}_pending_messages",
            "Messages of the current batch not yet written (non-zero while InfluxDB fails)",
            registry=r,
        )
        self.last_poll = Gauge(
            f"{p}_last_poll_seconds", "Unix time the outbox consumer last polled", registry=r
        )
        self.failing_since = Gauge(
            f"{p}_failing_since_seconds",
            "Unix time of the first failure of the current run of failures; 0 while writing",
            registry=r,
        )
        self.record_age = Histogram(
            f"{p}_record_age_seconds",
            "Seconds from an outbox record's Kafka timestamp to InfluxDB accepting its points",
            buckets=AGE_BUCKETS,
            registry=r,
        )


def combined_health(parts: Mapping[str, Health]) -> Health:
    """One health check of several parts: healthy only if every part is.

    >>> check = combined_health({"a": lambda: (True, {"x": 1}), "b": lambda: (False, {})})
    >>> check()
    (False, {'parts': {'a': {'status': 'ok', 'x': 1}, 'b': {'status': 'unhealthy'}}})
    """
    checks = dict(parts)

    def health() -> tuple[bool, dict[str, Any]]:
        ok = True
        detail: dict[str, dict[str, Any]] = {}
        for name, check in checks.items():
            part_ok, part = check()
            ok = ok and part_ok
            detail[name] = {"status": "ok" if part_ok else "unhealthy", **part}
        return ok, {"parts": detail}

    return health


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
