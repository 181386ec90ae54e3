"""Valid but extreme events: the ingest decoder takes each one whole, or dead-letters it with
a documented reason, and the pydantic events say the same (issue 15, build 6)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from driftline.errors import DecodeError
from driftline.schemas import GroundTruthEvent, PredictionEvent, event_time_ms, reasons
from driftline.schemas.limits import DEFAULT_LIMITS
from driftline.schemas.wire import DEFAULT_DECODER, EventDecoder
from tests import strategies as ex

INGEST = EventDecoder(DEFAULT_LIMITS, require_key=True)
"""The ingest decoder under a default configuration: keys required."""


def same_value(decoded: Any, sent: Any) -> bool:
    """Equal, of the same JSON type, and for floats with the same sign (-0.0 stays -0.0)."""
    if isinstance(sent, dict):
        return (
            isinstance(decoded, dict)
            and decoded.keys() == sent.keys()
            and all(same_value(decoded[k], v) for k, v in sent.items())
        )
    if type(decoded) is not type(sent) or decoded != sent:
        return False
    return not isinstance(sent, float) or math.copysign(1.0, decoded) == math.copysign(1.0, sent)


def pydantic_verdict(model: type[PredictionEvent | GroundTruthEvent], data: bytes) -> bool:
    """Whether the pydantic event accepts ``data``; raising anything but a ValidationError
    fails the test."""
    try:
        model.model_validate_json(data)
    except ValidationError:
        return False
    return True


def check_valid(model: type[PredictionEvent | GroundTruthEvent], event: dict[str, Any]) -> None:
    data = ex.dumps(event)
    key = event["prediction_id"].encode()
    decode = INGEST.prediction if model is PredictionEvent else INGEST.ground_truth
    if len(data) > DEFAULT_LIMITS.max_message_bytes:
        with pytest.raises(DecodeError) as caught:
            decode(data, key)
        assert caught.value.kind == reasons.LIMIT_EXCEEDED
        assert "monitor.limits.max_message_bytes" in caught.value.reason
        return
    decoded = decode(data, key)
    assert pydantic_verdict(model, data)
    parsed = model.model_validate_json(data)
    assert event_time_ms(decoded.timestamp) == event_time_ms(parsed.timestamp)
    for name, sent in event.items():
        if name != "timestamp":
            assert same_value(getattr(decoded, name), sent), name
    # Both escape forms of the same text are the same event.
    assert decode(ex.dumps(event, ascii_only=True), key) == decoded
    with pytest.raises(DecodeError) as missing:
        decode(data, None)
    assert missing.value.kind == reasons.MISSING_KEY


@settings(max_examples=150, deadline=None)
@given(ex.predictions())
def test_a_valid_extreme_prediction_decodes_whole_and_pydantic_agrees(
    event: dict[str, Any],
) -> None:
    check_valid(PredictionEvent, event)


@settings(max_examples=100, deadline=None)
@given(ex.ground_truths())
def test_a_valid_extreme_label_decodes_whole_and_pydantic_agrees(event: dict[str, Any]) -> None:
    check_valid(GroundTruthEvent, event)


@st.composite
def over_limit_events(draw: st.DrawFn) -> tuple[dict[str, Any], str, bool]:
    is_prediction = draw(st.booleans())
    event = draw(ex.predictions() if is_prediction else ex.ground_truths())
    changed, bound = draw(ex.over_limit(event))
    return changed, bound, is_prediction


@settings(max_examples=150, deadline=None)
@given(over_limit_events())
def test_one_bound_exceeded_by_one_is_dead_lettered_naming_it_and_pydantic_refuses_it(
    case: tuple[dict[str, Any], str, bool],
) -> None:
    event, bound, is_prediction = case
    data = ex.dumps(event)
    decode = INGEST.prediction if is_prediction else INGEST.ground_truth
    with pytest.raises(DecodeError) as caught:
        decode(data, event["prediction_id"].encode())
    assert caught.value.kind == reasons.LIMIT_EXCEEDED
    told = "max_message_bytes" if len(data) > DEFAULT_LIMITS.max_message_bytes else bound
    assert f"monitor.limits.{told}" in caught.value.reason
    model = PredictionEvent if is_prediction else GroundTruthEvent
    assert not pydantic_verdict(model, data)


# Timestamps anywhere in what either form can write, odd offsets included.
@settings(max_examples=200, deadline=None)
@given(ex.timestamps())
@example("0001-01-01T00:00:00+01:00")  # before year 1 in UTC
@example("9999-12-31T23:59:59-01:00")  # after year 9999 in UTC
@example("0001-01-01T00:59:59.999999+01:00")
@example("9999-12-31T22:59:59.999-01:00")
def test_any_timestamp_is_read_the_same_or_refused_the_same_by_both_decoders(
    timestamp: Any,
) -> None:
    event = {"event_id": "e", "prediction_id": "p", "timestamp": timestamp, "label": 1}
    data = ex.dumps(event)
    (batched,) = INGEST.ground_truths([data], [b"p"])  # the ingest loop's path
    try:
        decoded = DEFAULT_DECODER.ground_truth(data)
    except DecodeError as exc:
        assert exc.kind == reasons.INVALID_EVENT
        assert exc.path == "$.timestamp"
        assert isinstance(batched, DecodeError)
        assert (batched.kind, batched.path) == (exc.kind, exc.path)
        assert not pydantic_verdict(GroundTruthEvent, data)
        return
    assert batched == decoded
    assert pydantic_verdict(GroundTruthEvent, data)
    parsed = GroundTruthEvent.model_validate_json(data)
    assert event_time_ms(decoded.timestamp) == event_time_ms(parsed.timestamp)
    # The SDK writes milliseconds: what it sends again is the same event time.
    again = GroundTruthEvent.model_validate_json(parsed.to_json())
    assert event_time_ms(again.timestamp) == event_time_ms(parsed.timestamp)
