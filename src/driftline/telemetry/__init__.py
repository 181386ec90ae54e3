"""Prometheus metrics and health checks of the monitor's parts, and the endpoint serving them.

One module per part: :mod:`~driftline.telemetry.ingest` (stage 1, names prefixed
``driftline_ingest_``), :mod:`~driftline.telemetry.stage2` (stage 2, ``driftline_merge_``) and
:mod:`~driftline.telemetry.writer` (the InfluxDB writer, ``driftline_writer_``);
:mod:`~driftline.telemetry.server` serves ``/metrics`` and ``/healthz``. ``docs/operations.md``
lists every metric.

Each part gets its own :class:`~prometheus_client.CollectorRegistry` unless it is given one, so
several parts (or tests) in one process never collide; ``driftline monitor run`` gives its
three parts one registry and serves them together.

The parts feed their telemetry plain values or small records of their own; nothing here
imports the parts, so streams and sinks can both use it.
"""
