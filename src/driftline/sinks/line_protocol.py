"""InfluxDB line protocol: a :class:`~driftline.sinks.points.MetricPoint` as one line of text.

Owns the escaping of measurements, tag keys and values, field keys and string field values,
the text of each field type, and the timestamp's precision. Which points a window report
becomes is :mod:`driftline.sinks.points`; how lines travel to the writer and are checked on
arrival is :mod:`driftline.sinks.outbox`. Pure: no client, no clock.

:func:`parse_line` reads a line back into the point it was written from (``driftline report``
reads the metrics outbox with it).

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

import re
from collections.abc import Iterable

from driftline.sinks.points import FieldValue, MetricPoint

__all__ = ["lines", "parse_line", "split_unescaped", "to_line_protocol"]


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


def split_unescaped(
    text: str, separator: str, *, quotes: bool = False, maxsplit: int = -1
) -> list[str]:
    """``text`` split at each ``separator`` that is not escaped (nor quoted, with ``quotes``).

    >>> split_unescaped('a,b\\\\,c', ",")
    ['a', 'b\\\\,c']
    """
    parts: list[str] = []
    start, i, quoted = 0, 0, False
    while i < len(text) and len(parts) != maxsplit:
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if quotes and char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


_UNCONTROL = {"n": "\n", "t": "\t", "r": "\r"}


def _unescape(text: str) -> str:
    """A name as written by :func:`to_line_protocol`, unescaped: ``\\n`` is a newline again,
    any other escaped character is itself (a doubled backslash one backslash)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            following = text[i + 1]
            out.append(_UNCONTROL.get(following, following))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _field_value(text: str) -> FieldValue:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        body = text[1:-1]
        return re.sub(r"\\([\\\"])", r"\1", body)
    if text in ("t", "T", "true", "True", "TRUE"):
        return True
    if text in ("f", "F", "false", "False", "FALSE"):
        return False
    if text[-1:] in ("i", "u"):
        return int(text[:-1])
    return float(text)


def parse_line(line: str, precision: str = "ms") -> MetricPoint:
    """The point a line of :func:`to_line_protocol` was written from (its timestamp in
    ``precision``, read back as epoch milliseconds). A tag with an empty value is not written,
    so it does not come back. ``ValueError`` for a line that is not a point (check it first
    with :func:`driftline.sinks.outbox.check_line` for a reason).

    >>> p = MetricPoint("feature_drift", (("feature", "amount usd"), ("model", "fraud")),
    ...                 (("statistic", 0.25), ("drifted", True), ("n", 10)), 1764000000000)
    >>> parse_line(to_line_protocol(p)) == p
    True
    """
    scale = {"ms": 1, "us": 1_000, "ns": 1_000_000}[precision]
    series, *rest = split_unescaped(line, " ", maxsplit=1)
    # A timestamp holds no space, so the last space of the rest is the one before it.
    sections = rest[0].rsplit(" ", 1) if rest else []
    if len(sections) != 2 or not sections[1].lstrip("-").isdigit():
        raise ValueError(f"not a line-protocol point with a timestamp: {line[:120]!r}")
    fields_text, timestamp = sections
    measurement, *tag_texts = split_unescaped(series, ",")
    tags = []
    for tag in tag_texts:
        key, value = split_unescaped(tag, "=", maxsplit=1)
        tags.append((_unescape(key), _unescape(value)))
    fields = tuple((_unescape(k), _field_value(v)) for k, v in _field_set(fields_text))
    return MetricPoint(_unescape(measurement), tuple(tags), fields, int(timestamp) // scale)


def _field_set(text: str) -> list[tuple[str, str]]:
    """The (key, value) texts of a field set. A quote opens a string only where a value
    starts: a key may hold a quote (it is written unescaped, as the client writes it)."""
    pairs: list[tuple[str, str]] = []
    i, start, key = 0, 0, None
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if key is None and char == "=":
            key, start = text[start:i], i + 1
            if text[start : start + 1] == '"':
                i = start + 1
                while i < len(text) and text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
        elif key is not None and char == ",":
            pairs.append((key, text[start:i]))
            key, start = None, i + 1
        i += 1
    if key is None:
        raise ValueError(f"malformed field set: {text[:120]!r}")
    pairs.append((key, text[start:]))
    return pairs
