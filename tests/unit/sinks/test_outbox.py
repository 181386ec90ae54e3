"""The metrics outbox message: points as millisecond line protocol, and checked on arrival."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.errors import DecodeError
from driftline.sinks.line_protocol import lines
from driftline.sinks.outbox import (
    check_line,
    decode_lines,
    encode_messages,
    encode_points,
    report_message,
)
from driftline.sinks.points import MetricPoint

T0 = 1_764_000_000_000
MINUTE = 60_000


def window_points(model: str, i: int) -> list[MetricPoint]:
    """The points of window ``i`` of ``model``: drift per feature, performance, a decision."""
    base = (("model", model), ("version", "3"), ("window", "1h"))
    end = T0 + i * MINUTE
    points = [
        MetricPoint(
            "feature_drift",
            tuple(sorted((*base, ("feature", feature), ("test", "psi")))),
            (("statistic", round(0.01 * i + k * 0.5, 4)), ("drifted", i % 3 == 0), ("n", 1000 + i)),
            end,
        )
        for k, feature in enumerate(("amount", "country code"))
    ]
    points.append(
        MetricPoint(
            "performance", tuple(sorted((*base, ("metric", "accuracy")))), (("value", 0.9),), end
        )
    )
    points.append(MetricPoint("decision", base, (("severity", i % 4), ("retrain", False)), end))
    return points


def test_encoded_points_decode_to_their_line_protocol_escapes_and_all() -> None:
    points = [
        MetricPoint(
            "data quality",
            (("feature", "a,b=c d"), ("model", "fr\\aud")),
            (("note", 'say "hi", 1 2'), ("n", 3), ("rate", -0.5), ("flagged", False)),
            T0,
        ),
        *window_points("fraud", 1),
    ]
    assert decode_lines(encode_points(points)) == lines(points, "ms")
    assert all(check_line(line) is None for line in lines(points, "ms"))


def test_an_outbox_message_needs_a_point() -> None:
    with pytest.raises(ValueError, match="at least one point"):
        encode_points([])


def test_a_window_report_becomes_one_message_keyed_by_its_model() -> None:
    from driftline.detectors.engine import ModelMonitor
    from tests.unit.detectors.test_engine import MINUTE as ENGINE_MINUTE
    from tests.unit.detectors.test_engine import config, reference, traffic

    monitor = ModelMonitor(reference(), config())
    traffic(monitor, 0, 3000)
    [window] = monitor.due(20 * ENGINE_MINUTE)
    report = monitor.evaluate(window)
    message = report_message(report)
    assert message.key == b"m"
    decoded = decode_lines(message.value)
    assert len(decoded) > 10
    assert {line.rsplit(" ", 1)[1] for line in decoded} == {str(window.end_ms)}


@pytest.mark.parametrize(
    ("value", "kind", "reason"),
    [
        (None, "empty_message", "no value"),
        (b"", "empty_message", "no lines"),
        (b"\n \n", "empty_message", "no lines"),
        (b"m v=1 1764000000000\xfe", "not_utf8", "not UTF-8"),
        (b"m v=1", "malformed_line_protocol", "line 1: no timestamp"),
        (b"m v=1 1\nm 1764000000000", "malformed_line_protocol", "line 2: no field set"),
        (b"m v=1 soon", "malformed_line_protocol", "'soon' is not an integer"),
        (b"m v=1 1764000000000000", "malformed_line_protocol", "not epoch milliseconds"),
        (b"m,model v=1 1", "malformed_line_protocol", "malformed tag"),
        (b"m v=1x 1", "malformed_line_protocol", "invalid field value"),
        (b"m v=nan 1", "malformed_line_protocol", "invalid field value"),
        (b" v=1 1", "malformed_line_protocol", "no measurement"),
        (b"m v=1 1 2", "malformed_line_protocol", "after the timestamp"),
        (b"m a=1 1\nm b 1\nm c=2", "malformed_line_protocol", "2 of 3 lines malformed; line 2"),
    ],
)
def test_undecodable_messages_raise_decode_error_saying_why(
    value: bytes | None, kind: str, reason: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_lines(value)
    assert caught.value.kind == kind
    assert reason in caught.value.reason


NAME = st.text(st.sampled_from(["\n", "\r", "\t", ",", "=", " ", "\\", '"', "x"]), min_size=1)


@given(NAME, NAME)
def test_a_point_with_any_control_characters_in_its_names_stays_one_valid_line(
    model: str, feature: str
) -> None:
    """Issue 15: a newline in a feature name split its line, and the whole message was refused.
    (Names come from producers as tags; measurements and field keys are driftline's own.)"""
    point = MetricPoint(
        "feature_drift", (("feature", feature), ("model", model)), (("v", 1.5),), T0
    )
    assert decode_lines(encode_points([point, point])) == lines([point, point], "ms")


@given(st.binary(max_size=200))
def test_decoding_any_bytes_gives_lines_or_a_decode_error(value: bytes) -> None:
    try:
        decoded = decode_lines(value)
    except DecodeError:
        return
    assert decoded
    assert all(check_line(line) is None for line in decoded)


@given(st.lists(st.integers(0, 40), min_size=1, max_size=30), st.integers(1, 200))
def test_points_split_over_messages_keep_every_line_in_order_each_within_the_bound(
    name_lengths: list[int], max_bytes: int
) -> None:
    """A window's points over several outbox messages (issue 15): each message within the
    bound unless one line alone is longer, and the messages together are the one message."""
    points = [
        MetricPoint("m", (("feature", "f" * n),), (("v", i),), T0)
        for i, n in enumerate(name_lengths)
    ]
    values = encode_messages(points, max_bytes)
    assert b"\n".join(values) == encode_points(points)
    for value in values:
        assert len(value) <= max_bytes or b"\n" not in value
    assert encode_messages(points, max_bytes) == values


def test_no_points_make_no_messages() -> None:
    with pytest.raises(ValueError, match="at least one point"):
        encode_messages([], 100)
