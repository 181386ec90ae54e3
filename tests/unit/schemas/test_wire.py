"""Junk never escapes the decoder as anything but DecodeError, and both decoders agree."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from driftline.errors import DecodeError
from driftline.schemas import GroundTruthEvent, PredictionEvent, event_time_ms
from driftline.schemas.wire import DEFAULT_DECODER
from tests.unit.schemas.test_contract import GROUND_TRUTH, PREDICTION

# The ingest decoder under the default limits: the pydantic events state the same ones.
decode_prediction = DEFAULT_DECODER.prediction
decode_ground_truth = DEFAULT_DECODER.ground_truth


def _dumps(value: Any) -> bytes:
    # The stdlib encoder writes integers of any size, which orjson refuses: we want them sent.
    return json.dumps(value).encode()


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["2026-11-22T10:00:00Z", "2026-11-22T10:00:00", "2026-13-01T00:00:00Z"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """A valid event with a few fields replaced, removed or added."""
    event = dict(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        action = draw(st.sampled_from(["replace", "remove", "add", "replace-inner"]))
        name = draw(st.sampled_from(sorted(base)))
        if action == "replace":
            event[name] = draw(json_values)
        elif action == "remove":
            event.pop(name, None)
        elif action == "add":
            event[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
        elif isinstance(event.get(name), dict):
            inner = dict(event[name])
            inner[draw(st.text(max_size=6))] = draw(json_values)
            event[name] = inner
    return _dumps(event)


def verdict(decode: Any, model: type[PredictionEvent | GroundTruthEvent], data: bytes) -> str:
    """'accept' when both decoders accept, 'reject' when both reject; fails otherwise."""
    try:
        wire = decode(data)
    except DecodeError:
        wire = None
    try:
        parsed = model.model_validate_json(data)
    except ValidationError:
        parsed = None
    assert (wire is None) == (parsed is None), f"decoders disagree on {data!r}"
    if wire is not None and parsed is not None:
        assert event_time_ms(wire.timestamp) == event_time_ms(parsed.timestamp)
        assert wire.event_id == parsed.event_id
    return "reject" if wire is None else "accept"


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_decode_errors(data: bytes) -> None:
    for decode in (decode_prediction, decode_ground_truth):
        try:
            decode(data)
        except DecodeError as exc:
            assert exc.reason
            assert exc.kind in {"malformed_json", "invalid_event"}


@given(json_values)
def test_arbitrary_json_raises_only_decode_errors(value: Any) -> None:
    data = _dumps(value)
    for decode in (decode_prediction, decode_ground_truth):
        try:
            decode(data)
        except DecodeError as exc:
            assert exc.reason


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(PREDICTION))
def test_both_prediction_decoders_give_the_same_verdict(data: bytes) -> None:
    verdict(decode_prediction, PredictionEvent, data)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(GROUND_TRUTH))
def test_both_ground_truth_decoders_give_the_same_verdict(data: bytes) -> None:
    verdict(decode_ground_truth, GroundTruthEvent, data)


@given(
    st.dictionaries(
        st.text(max_size=12),
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12),
        max_size=25,
    )
)
def test_any_contract_feature_map_is_accepted_unchanged(features: dict[str, Any]) -> None:
    data = _dumps({**PREDICTION, "features": features})
    assert verdict(decode_prediction, PredictionEvent, data) == "accept"
    assert decode_prediction(data).features == features
