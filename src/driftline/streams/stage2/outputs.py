"""The records stage 2 publishes for a judged window: its role (topic), key and value bytes.

A window report becomes one metrics-outbox record (its metric points as line protocol), or
several when its points do not fit in one record of ``monitor.max_output_bytes``, one record
per alert and at most one retrain request, all keyed by the model so that every record of a
model keeps its order on its topic.

Every record stage 2 produces is bounded: :func:`too_large` says why a record cannot be
published whole; such a record goes to the dead-letter topic instead, cut to fit by
:func:`driftline.deadletter.fit` (as stage 1's dead letters are), so that nothing stage 2
makes is dropped for its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from driftline.detectors.engine import WindowReport
from driftline.sinks.outbox import encode_messages
from driftline.sinks.points import MetricPoint, report_points

__all__ = [
    "RECORD_OVERHEAD",
    "Output",
    "OutputRole",
    "record_size",
    "report_outputs",
    "too_large",
]

OutputRole = Literal["metrics", "alerts", "retrain", "rollout"]
"""The :class:`~driftline.config.settings.TopicSettings` field naming an output's topic."""

RECORD_OVERHEAD = 128
"""Bytes a Kafka record takes besides its key, value and headers, rounded up (aiokafka counts
at most 82 of batch header and record framing, plus the headers' length prefixes)."""


@dataclass(frozen=True, slots=True)
class Output:
    """One record to publish: to the topic of ``role``, with ``key`` and ``value`` bytes."""

    role: OutputRole
    key: bytes
    value: bytes


def record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
) -> int:
    """An upper bound of the bytes a record takes in a produce request."""
    named = sum(len(name.encode()) + len(data) for name, data in headers)
    return RECORD_OVERHEAD + len(key or b"") + len(value or b"") + named


def too_large(output: Output, max_bytes: int) -> str | None:
    """Why ``output`` cannot be published (it is over ``max_bytes``), or None.

    >>> too_large(Output("alerts", b"m", b"{}"), 10_000) is None
    True
    >>> too_large(Output("alerts", b"m", b"x" * 20_000), 10_000)
    'alerts record of 20129 bytes is over monitor.max_output_bytes (10000)'
    """
    size = record_size(output.key, output.value)
    if size <= max_bytes:
        return None
    return f"{output.role} record of {size} bytes is over monitor.max_output_bytes ({max_bytes})"


def report_outputs(
    report: WindowReport, points: list[MetricPoint] | None = None, *, max_bytes: int = 1_000_000
) -> list[Output]:
    """The records a window report publishes: its metric points, its alerts, its request.

    ``points`` are the report's metric points when the caller made them already
    (:func:`~driftline.sinks.points.report_points` of the report otherwise). The points are
    split over as many metrics records as keep each within ``max_bytes``; a single line too
    long for any record travels alone (and :func:`too_large` then says so).
    """
    if points is None:
        points = report_points(report)
    key = report.model.encode()
    budget = max_bytes - record_size(key, b"")
    outputs = [Output("metrics", key, value) for value in encode_messages(points, budget)]
    outputs += [Output("alerts", key, alert.to_json()) for alert in report.decision.alerts]
    if report.decision.retrain is not None:
        outputs.append(Output("retrain", key, report.decision.retrain.to_json()))
    return outputs
