"""Metric points as InfluxDB line protocol: escaping, field types, precision."""

from __future__ import annotations

from driftline.sinks.line_protocol import lines, to_line_protocol
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


def test_precision_scales_the_timestamp() -> None:
    point = MetricPoint("m", (), (("v", 1.0),), 1_764_000_000_123)
    assert lines([point], "ns") == ["m v=1.0 1764000000123000000"]
    assert to_line_protocol(point, "us").endswith(" 1764000000123000")
