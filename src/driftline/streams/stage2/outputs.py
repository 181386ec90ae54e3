"""The records stage 2 publishes for a judged window: its role (topic), key and value bytes.

A window report becomes one metrics-outbox record (its metric points as line protocol), or
several when its points do not fit in one record of ``monitor.max_output_bytes``, one record
per alert and at most one retrain request, all keyed by the model so that every record of a
model keeps its order on its topic.

Every record stage 2 produces is bounded: :func:`too_large` says why a record cannot be
published whole, and :func:`bounded_letter` turns a dead letter into Kafka key, value and
headers that fit the bound (the original value and key cut, their length and SHA-256 in
headers), so that nothing stage 2 makes is dropped for its size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from driftline.detectors.engine import WindowReport
from driftline.schemas.outputs import DeadLetter, Headers
from driftline.sinks.outbox import encode_messages
from driftline.sinks.points import MetricPoint, report_points

__all__ = [
    "DLQ_HEADER_ORIGINAL_BYTES",
    "DLQ_HEADER_ORIGINAL_KEY_BYTES",
    "DLQ_HEADER_ORIGINAL_SHA256",
    "RECORD_OVERHEAD",
    "Output",
    "OutputRole",
    "bounded_letter",
    "record_size",
    "report_outputs",
    "too_large",
]

OutputRole = Literal["metrics", "alerts", "retrain"]
"""The :class:`~driftline.config.settings.TopicSettings` field naming an output's topic."""

RECORD_OVERHEAD = 128
"""Bytes a Kafka record takes besides its key, value and headers, rounded up (aiokafka counts
at most 82 of batch header and record framing, plus the headers' length prefixes)."""

DLQ_HEADER_ORIGINAL_BYTES = "driftline.error.original_bytes"
"""On a dead letter whose value was cut to fit: the original value's length in bytes."""
DLQ_HEADER_ORIGINAL_SHA256 = "driftline.error.original_sha256"
"""On a dead letter whose value was cut to fit: the original value's SHA-256, hex."""
DLQ_HEADER_ORIGINAL_KEY_BYTES = "driftline.error.original_key_bytes"
"""On a dead letter whose key was cut to fit: the original key's length in bytes."""
_MAX_REASON = 2000  # characters of a reason kept in a dead letter's header


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


def bounded_letter(
    letter: DeadLetter, max_bytes: int
) -> tuple[bytes | None, bytes | None, Headers]:
    """Key, value and headers of ``letter`` on the DLQ, within ``max_bytes``.

    A letter that fits is produced as it is. Otherwise its value (then its key, when the key
    alone takes more than a quarter of the bound) is cut to fit, and headers say how long the
    original was and its SHA-256, so the letter is produced rather than lost.

    >>> from driftline.deadletter import dead_letter
    >>> letter = dead_letter(topic="t", partition=0, offset=0, key=b"k", value=b"v" * 20_000,
    ...                      headers=None, reason="too big", kind="output_too_large",
    ...                      failed_at=0)
    >>> key, value, headers = bounded_letter(letter, 10_000)
    >>> record_size(key, value, headers) <= 10_000, dict(headers)[DLQ_HEADER_ORIGINAL_BYTES]
    (True, b'20000')
    """
    if len(letter.reason) > _MAX_REASON:
        letter = letter.model_copy(update={"reason": letter.reason[:_MAX_REASON] + "..."})
    headers = letter.kafka_headers()
    key, value = letter.key, letter.value
    if record_size(key, value, headers) <= max_bytes:
        return key, value, headers
    extra: Headers = []
    if key is not None and len(key) > max_bytes // 4:
        extra.append((DLQ_HEADER_ORIGINAL_KEY_BYTES, str(len(key)).encode()))
        key = key[: max_bytes // 4]
    if value is not None:
        extra += [
            (DLQ_HEADER_ORIGINAL_BYTES, str(len(value)).encode()),
            (DLQ_HEADER_ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()),
        ]
    headers += extra
    room = max_bytes - record_size(key, b"", headers)
    if room < 0:  # the original headers alone are too large: keep driftline's only
        headers = [*letter.model_copy(update={"original_headers": ()}).kafka_headers(), *extra]
        room = max(0, max_bytes - record_size(key, b"", headers))
    return key, None if value is None else value[:room], headers
