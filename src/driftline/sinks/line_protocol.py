"""InfluxDB line protocol: a :class:`~driftline.sinks.points.MetricPoint` as one line of text.

Owns the escaping of measurements, tag keys and values, field keys and string field values,
the text of each field type, and the timestamp's precision. Which points a window report
becomes is :mod:`driftline.sinks.points`; how lines travel to the writer and are checked on
arrival is :mod:`driftline.sinks.outbox`. Pure: no client, no clock.

Why not influxdb_client's ``Point``: for the same point it writes other bytes, and the outbox's
bytes (and ``driftline replay --lp`` files) are driftline's output. The client sorts fields by
key, writes a whole float without its ``.0``, leaves a backslash in a name as it is (appending
a space to a tag value that ends in one), drops a tag with an empty key and warns about a
measurement that starts with ``#``. Here a backslash is doubled. Like the client, a newline,
tab or carriage return in a name is written as ``\\n``, ``\\t``, ``\\r``: written raw, a
newline in one feature's name split its line, and the writer refused every point of the
window's message (issue 15). Everywhere else the two agree byte for byte, control characters
included: ``tests/unit/sinks/test_line_protocol.py`` checks that for arbitrary names and
values, and pins each difference above. Building a ``Point`` per point was also measured slower
than this encoding (``timeit`` over a window report's points), and it runs on stage 2's
per-window path.
"""

from __future__ import annotations

from collections.abc import Iterable

from driftline.sinks.points import FieldValue, MetricPoint

__all__ = ["lines", "to_line_protocol"]


# str.translate maps each character once: the backslashes an escape adds are not doubled again.
_CONTROL = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_MEASUREMENT = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", **_CONTROL})
_KEY = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", **_CONTROL})


def _escape_key(text: str) -> str:
    return text.translate(_KEY)


def _escape_measurement(text: str) -> str:
    return text.translate(_MEASUREMENT)


def _field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_line_protocol(point: MetricPoint, precision: str = "ms") -> str:
    """One point as an InfluxDB line-protocol line (timestamp in ``ms``, ``us`` or ``ns``).

    >>> p = MetricPoint("feature_drift", (("feature", "amount usd"), ("model", "fraud")),
    ...                 (("statistic", 0.25), ("drifted", True), ("n", 10)), 1764000000000)
    >>> print(to_line_protocol(p))
    feature_drift,feature=amount\\ usd,model=fraud statistic=0.25,drifted=true,n=10i 1764000000000
    """
    scale = {"ms": 1, "us": 1_000, "ns": 1_000_000}[precision]
    tags = "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in point.tags if v != "")
    fields = ",".join(f"{_escape_key(k)}={_field(v)}" for k, v in point.fields)
    return f"{_escape_measurement(point.measurement)}{tags} {fields} {point.time_ms * scale}"


def lines(points: Iterable[MetricPoint], precision: str = "ms") -> list[str]:
    """Line protocol for many points."""
    return [to_line_protocol(p, precision) for p in points]
