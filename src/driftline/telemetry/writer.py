"""The InfluxDB writer's Prometheus metrics (names prefixed ``driftline_writer_``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["AGE_BUCKETS", "WINDOW_AGE_BUCKETS", "WriterTelemetry"]

AGE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
"""Seconds, for the age of an outbox record when it is written: short while InfluxDB
answers, up to hours after an outage."""

WINDOW_AGE_BUCKETS = (
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0,
    900.0, 3600.0, 14400.0,
)  # fmt: skip
"""Seconds, for the age of a window (from its end) when its points are first accepted: at
least the model's allowed lateness, a few seconds more while every part keeps up."""


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
        self.window_age = Histogram(
            f"{p}_window_age_seconds",
            "Seconds from the end of a window (its points' timestamp) to InfluxDB accepting "
            "the first outbox record of it; per record key (the model) only a window ending "
            "later than every one written before counts, so restatements are left out. "
            "Minus the model's allowed_lateness: window close to point accepted",
            buckets=WINDOW_AGE_BUCKETS,
            registry=r,
        )
