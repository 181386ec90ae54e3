"""The metrics outbox message: one window report's points as InfluxDB line protocol.

Stage 2 publishes each window report to the ``driftline.metrics`` topic as one Kafka message,
or as several when its points do not fit in one (:func:`encode_messages`: a model with many
features, or very long names); the InfluxDB writer (:mod:`driftline.sinks.influx`) drains that
topic into InfluxDB (DESIGN §3).

* key: the model name, UTF-8, so one model's reports stay in order on one partition;
* value: the report's points as line protocol, UTF-8, newline-separated, timestamps in
  epoch **milliseconds** (the writer writes with precision ``ms``).

A point keeps its identity (measurement, tags, window end) through the outbox, so writing a
message again overwrites the same points. Pure: no client, no clock.

>>> from driftline.sinks.points import MetricPoint
>>> point = MetricPoint("decision", (("model", "fraud"),), (("retrain", False),), 1764000000000)
>>> decode_lines(encode_points([point]))
['decision,model=fraud retrain=false 1764000000000']
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from driftline.detectors.engine import WindowReport
from driftline.errors import DecodeError
from driftline.sinks.line_protocol import lines
from driftline.sinks.line_protocol import split_unescaped as _split
from driftline.sinks.points import MetricPoint, report_points

PRECISION = "ms"
"""Timestamp precision of every line in an outbox message."""

# Epoch milliseconds this large are a timestamp in µs or ns written by mistake:
# InfluxDB would store it as a point thousands of years away, and no query would find it.
_MAX_ABS_MS = 10**14
_INTEGER = re.compile(r"^-?\d+i$")
_UNSIGNED = re.compile(r"^\d+u$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_BOOLEANS = frozenset({"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"})
_TIMESTAMP = re.compile(r"^-?\d+$")
_SHOWN = 120  # characters of an offending line quoted in a reason


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One outbox message as stage 2 produces it: ``key`` (model name) and ``value``."""

    key: bytes
    value: bytes


def encode_points(points: Iterable[MetricPoint]) -> bytes:
    """The value of an outbox message: the points as millisecond line protocol, UTF-8.

    Raises ``ValueError`` for no points: a window report always has some, so an empty
    message would only hide a bug.
    """
    text = "\n".join(lines(points, PRECISION))
    if not text:
        raise ValueError("an outbox message needs at least one point")
    return text.encode()


def encode_messages(points: Iterable[MetricPoint], max_bytes: int) -> list[bytes]:
    """The values of the outbox messages that carry ``points``, in order, each of at most
    ``max_bytes`` bytes unless a single line is longer (it then travels alone).

    Deterministic: the same points and bound give the same messages, so a restated window
    rewrites the same points wherever the lines fall. Raises ``ValueError`` for no points,
    as :func:`encode_points` does.

    >>> from driftline.sinks.points import MetricPoint
    >>> points = [MetricPoint("m", (), (("v", i),), 1764000000000) for i in range(3)]
    >>> encode_messages(points, 50)
    [b'm v=0i 1764000000000\\nm v=1i 1764000000000', b'm v=2i 1764000000000']
    """
    values: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for line in lines(points, PRECISION):
        encoded = line.encode()
        if chunk and size + 1 + len(encoded) > max_bytes:
            values.append(b"\n".join(chunk))
            chunk, size = [], 0
        size += len(encoded) + (1 if chunk else 0)
        chunk.append(encoded)
    if not chunk:
        raise ValueError("an outbox message needs at least one point")
    values.append(b"\n".join(chunk))
    return values


def report_message(report: WindowReport) -> OutboxMessage:
    """The outbox message of a window report: key = model name, value = its points."""
    return OutboxMessage(report.model.encode(), encode_points(report_points(report)))


def _key_value(item: str) -> tuple[str, str] | None:
    key, *rest = _split(item, "=", quotes=True)
    if not rest:
        return None
    return key, "=".join(rest)


def _field_value_problem(value: str) -> str | None:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return None
    if value in _BOOLEANS or _INTEGER.match(value) or _UNSIGNED.match(value):
        return None
    if _FLOAT.match(value):
        return None if math.isfinite(float(value)) else f"non-finite field value {value!r}"
    return f"invalid field value {value!r}"


def check_line(line: str) -> str | None:
    """Why ``line`` is not a line-protocol point with a millisecond timestamp, or None.

    Checks the shape (measurement, tag set, field set, timestamp), each field value's type,
    and that the timestamp is present and plausible in milliseconds: InfluxDB stamps a line
    without one with its own clock, which would give a restated point a new identity.

    >>> check_line("m,model=a v=1.5,n=3i,ok=true 1764000000000") is None
    True
    >>> check_line("m,model=a v=1.5")
    'no timestamp after the field set'
    >>> check_line("m v=1 1764000000000000000")
    'timestamp 1764000000000000000 is not epoch milliseconds'
    """
    if not line.strip():
        return "empty line"
    if line[0] in " ,":
        return "no measurement"
    # Quotes delimit strings only in the field set; in a measurement or a tag they are text.
    series, *rest = _split(line, " ", maxsplit=1)
    sections = [series, *_split(rest[0], " ", quotes=True)] if rest else [series]
    if len(sections) < 2 or not sections[1]:
        return "no field set"
    if len(sections) < 3:
        return "no timestamp after the field set" if "=" in sections[1] else "no field set"
    if len(sections) > 3:
        return "unexpected text after the timestamp (unescaped space?)"
    series, fields, timestamp = sections
    measurement, *tags = _split(series, ",")
    if not measurement:
        return "no measurement"
    for tag in tags:
        pair = _key_value(tag)
        if pair is None or not pair[0] or not pair[1]:
            return f"malformed tag {tag!r}"
    for item in _split(fields, ",", quotes=True):
        pair = _key_value(item)
        if pair is None or not pair[0]:
            return f"malformed field {item!r}"
        problem = _field_value_problem(pair[1])
        if problem is not None:
            return problem
    if not _TIMESTAMP.match(timestamp):
        return f"timestamp {timestamp!r} is not an integer"
    if abs(int(timestamp)) >= _MAX_ABS_MS:
        return f"timestamp {timestamp} is not epoch milliseconds"
    return None


def decode_lines(value: bytes | None) -> list[str]:
    """The line-protocol lines of an outbox message, every one checked by :func:`check_line`.

    Blank lines are skipped, as InfluxDB skips them. A message that cannot be written whole
    raises :class:`~driftline.errors.DecodeError` (``kind``: ``empty_message``, ``not_utf8``
    or ``malformed_line_protocol``; ``path``: the first bad line's number) whose reason
    counts the bad lines and quotes the first: the writer dead-letters such a message with
    that reason and carries on.

    >>> decode_lines(b"m v=1 1764000000000\\n\\nm v=2 1764000060000\\n")
    ['m v=1 1764000000000', 'm v=2 1764000060000']
    >>> decode_lines(b"m v=1 1764000000000\\nm v=2")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    driftline.errors.DecodeError: 1 of 2 lines malformed; line 2: no timestamp after the ...
    """
    if value is None:
        raise DecodeError("the message has no value (a tombstone?)", kind="empty_message")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"not UTF-8 at byte {exc.start}: {value[exc.start : exc.start + 8]!r}",
            kind="not_utf8",
        ) from None
    good: list[str] = []
    bad: list[tuple[int, str, str]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip():
            continue
        problem = check_line(line)
        if problem is None:
            good.append(line)
        else:
            bad.append((number, problem, line))
    if bad:
        number, problem, line = bad[0]
        shown = line if len(line) <= _SHOWN else line[:_SHOWN] + "..."
        raise DecodeError(
            f"{len(bad)} of {len(good) + len(bad)} lines malformed; "
            f"line {number}: {problem}: {shown!r}",
            kind="malformed_line_protocol",
            path=f"line {number}",
        )
    if not good:
        raise DecodeError("the message holds no lines", kind="empty_message")
    return good
