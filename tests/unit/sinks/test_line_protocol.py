"""Metric points as InfluxDB line protocol: escaping, field types, precision."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from influxdb_client import Point, WritePrecision

from driftline.sinks.line_protocol import lines, parse_line, to_line_protocol
from driftline.sinks.points import MetricPoint


def test_line_protocol_escapes_measurement_tags_and_string_fields() -> None:
    point = MetricPoint(
        "data quality",
        (("feature", "a,b=c d"), ("model", "fr\\aud")),
        (("note", 'say "hi"\\'), ("n", 3), ("rate", 0.5), ("flagged", False)),
        1_764_000_000_000,
    )
    assert to_line_protocol(point) == (
        "data\\ quality,feature=a\\,b\\=c\\ d,model=fr\\\\aud "
        'note="say \\"hi\\"\\\\",n=3i,rate=0.5,flagged=false 1764000000000'
    )


@pytest.mark.parametrize("char", ["\n", "\t", "\r"])
def test_a_newline_tab_or_carriage_return_in_a_name_is_escaped_as_the_client_does(
    char: str,
) -> None:
    """Issue 15: written raw, a newline in a feature name split its line, and the writer
    refused the whole window's message."""
    escaped = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}[char]
    point = MetricPoint(f"m{char}x", ((f"k{char}y", f"a{char}b"),), ((f"f{char}z", 1),), 1)
    line = to_line_protocol(point)
    assert line == f"m{escaped}x,k{escaped}y=a{escaped}b f{escaped}z=1i 1"
    assert char not in line
    assert line == client_line(point)


def test_precision_scales_the_timestamp() -> None:
    point = MetricPoint("m", (), (("v", 1.0),), 1_764_000_000_123)
    assert lines([point], "ns") == ["m v=1.0 1764000000123000000"]
    assert to_line_protocol(point, "us").endswith(" 1764000000123000")


# --- against influxdb_client's own encoder ---------------------------------------------------

SCALE = {"ms": 1, "us": 1_000, "ns": 1_000_000}
PRECISION = {"ms": WritePrecision.MS, "us": WritePrecision.US, "ns": WritePrecision.NS}
# Where the two encoders knowingly differ in names: backslashes. Each difference is pinned in
# test_where_our_line_protocol_knowingly_differs_from_the_clients.
DIFFERING = "\\"
# Characters line protocol gives a meaning to, and control characters (issue 15: a newline in a
# feature name split its line), drawn often rather than left to chance.
CONTROL = ["\n", "\t", "\r", "\x00", "\x0b", "\x0c", "\x1f", "\x7f", "\x85", "\u2028"]
SPECIAL = st.sampled_from([",", "=", " ", '"', "#", *CONTROL])
NAME_CHARS = SPECIAL | st.characters(codec="utf-8", exclude_characters=DIFFERING)
NAMES = st.text(NAME_CHARS, min_size=1, max_size=10)
VALUES = st.one_of(
    st.booleans(),
    st.integers(),
    # The client writes a whole float without its ".0" (pinned below).
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not repr(x).endswith(".0")),
    st.text(SPECIAL | st.characters(codec="utf-8"), max_size=10),
)


def client_line(point: MetricPoint, precision: str = "ms") -> str:
    """influxdb_client's line for ``point``."""
    built = Point(point.measurement)
    for key, value in point.tags:
        built.tag(key, value)
    for name, field in point.fields:
        built.field(name, field)
    built.time(point.time_ms * SCALE[precision], PRECISION[precision])
    line: str = built.to_line_protocol()
    return line


@st.composite
def points(draw: st.DrawFn) -> MetricPoint:
    """Points with tags and fields in key order, as the client writes them."""
    measurement = draw(NAMES.filter(lambda name: not name.startswith("#")))
    tags = draw(st.dictionaries(NAMES, st.text(NAME_CHARS, max_size=10), max_size=4))
    fields = draw(st.dictionaries(NAMES, VALUES, min_size=1, max_size=4))
    time_ms = draw(st.integers(min_value=0, max_value=10**13))
    return MetricPoint(
        measurement, tuple(sorted(tags.items())), tuple(sorted(fields.items())), time_ms
    )


@given(points(), st.sampled_from(sorted(SCALE)))
def test_our_line_protocol_is_the_clients_for_any_names_and_values(
    point: MetricPoint, precision: str
) -> None:
    """Commas, spaces, equals signs and quotes in every name, any string field value."""
    assert to_line_protocol(point, precision) == client_line(point, precision)


@pytest.mark.parametrize(
    ("point", "ours", "clients"),
    [
        pytest.param(
            MetricPoint("a\\b", (("k\\", "v\\w"),), (("f\\", 1),), 1),
            "a\\\\b,k\\\\=v\\\\w f\\\\=1i 1",
            "a\\b,k\\=v\\w f\\=1i 1",
            id="a backslash in a name: doubled by us, kept by the client",
        ),
        pytest.param(
            MetricPoint("m", (("k", "v\\"),), (("f", 1),), 1),
            "m,k=v\\\\ f=1i 1",
            "m,k=v\\  f=1i 1",
            id="a tag value ending in a backslash: the client appends a space",
        ),
        pytest.param(
            MetricPoint("m", (), (("v", 1.0), ("w", -0.0), ("x", 1e16)), 1),
            "m v=1.0,w=-0.0,x=1e+16 1",
            "m v=1,w=-0,x=1e+16 1",
            id="a whole float: the client drops its .0",
        ),
        pytest.param(
            MetricPoint("m", (("z", "1"), ("a", "2")), (("b", 1), ("a", 2)), 1),
            "m,z=1,a=2 b=1i,a=2i 1",
            "m,a=2,z=1 a=2i,b=1i 1",
            id="order: ours as given, the client's sorted by key",
        ),
        pytest.param(
            MetricPoint("m", (("", "v"),), (("f", 1),), 1),
            "m,=v f=1i 1",
            "m f=1i 1",
            id="a tag with an empty key: the client drops it",
        ),
    ],
)
def test_where_our_line_protocol_knowingly_differs_from_the_clients(
    point: MetricPoint, ours: str, clients: str
) -> None:
    assert to_line_protocol(point) == ours
    assert client_line(point) == clients


def test_a_measurement_starting_with_a_hash_is_written_as_it_is_where_the_client_warns() -> None:
    point = MetricPoint("#m", (), (("f", 1),), 1)
    assert to_line_protocol(point) == "#m f=1i 1"
    with pytest.warns(SyntaxWarning, match="comment"):
        assert client_line(point) == "#m f=1i 1"


# --- reading a line back ----------------------------------------------------------------------

# Backslashes, and a backslash before an n (what an escaped newline looks like), often.
ANY_NAMES = st.lists(
    SPECIAL | st.sampled_from(["\\", "\\n"]) | st.characters(codec="utf-8"), max_size=8
).map("".join)


@given(
    measurement=ANY_NAMES.filter(bool),
    tags=st.dictionaries(ANY_NAMES, ANY_NAMES, max_size=4),
    fields=st.dictionaries(
        ANY_NAMES, VALUES | st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=4
    ),
    time_ms=st.integers(-(10**13), 10**13),
    precision=st.sampled_from(["ms", "us", "ns"]),
)
def test_parse_line_reads_back_the_point_a_line_was_written_from(
    measurement: str,
    tags: dict[str, str],
    fields: dict[str, bool | int | float | str],
    time_ms: int,
    precision: str,
) -> None:
    """Any names (backslashes, escaped-looking text, control characters) and values; only a
    tag with an empty value is lost, because it is not written."""
    point = MetricPoint(measurement, tuple(sorted(tags.items())), tuple(fields.items()), time_ms)
    parsed = parse_line(to_line_protocol(point, precision), precision)
    assert parsed == MetricPoint(
        measurement, tuple((k, v) for k, v in point.tags if v != ""), point.fields, time_ms
    )
    assert [type(v) for _, v in parsed.fields] == [type(v) for _, v in point.fields]


@pytest.mark.parametrize("line", ["m", "m v=1", "m v=1 1 extra", "m,k=v"])
def test_parse_line_refuses_a_line_that_is_not_a_point(line: str) -> None:
    with pytest.raises(ValueError, match="not a line-protocol point"):
        parse_line(line)
