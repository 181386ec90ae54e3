"""The limits of ``monitor.limits``: at a bound an event is accepted, one past it refused, by
the ingest decoder (msgspec) and the pydantic events alike, with a reason naming the setting."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from driftline.config.settings import LimitsSettings
from driftline.errors import DecodeError
from driftline.schemas import GroundTruthEvent, PredictionEvent
from driftline.schemas.limits import DEFAULT_LIMITS, Limits
from driftline.schemas.wire import DEFAULT_DECODER, EventDecoder, WirePrediction
from tests.unit.schemas.test_contract import GROUND_TRUTH, PREDICTION
from tests.unit.schemas.test_wire_batch import assert_single_verdicts

L = DEFAULT_LIMITS


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


# name: (event at the bound, event one past it, JSON path, setting)
BOUNDS: dict[str, tuple[dict[str, Any], dict[str, Any], str, str]] = {
    "event_id": (
        _with(PREDICTION, event_id="e" * L.max_id_length),
        _with(PREDICTION, event_id="e" * (L.max_id_length + 1)),
        "$.event_id",
        "max_id_length",
    ),
    "prediction_id": (
        _with(PREDICTION, prediction_id="é" * L.max_id_length),
        _with(PREDICTION, prediction_id="é" * (L.max_id_length + 1)),
        "$.prediction_id",
        "max_id_length",
    ),
    "model": (
        _with(PREDICTION, model="m" * L.max_name_length),
        _with(PREDICTION, model="m" * (L.max_name_length + 1)),
        "$.model",
        "max_name_length",
    ),
    "model_version": (
        _with(PREDICTION, model_version="😀" * L.max_name_length),
        _with(PREDICTION, model_version="😀" * (L.max_name_length + 1)),
        "$.model_version",
        "max_name_length",
    ),
    "features": (
        _with(PREDICTION, features={f"f{i}": i for i in range(L.max_features)}),
        _with(PREDICTION, features={f"f{i}": i for i in range(L.max_features + 1)}),
        "$.features",
        "max_features",
    ),
    "feature name": (
        _with(PREDICTION, features={"f" * L.max_feature_name_length: 1}),
        _with(PREDICTION, features={"f" * (L.max_feature_name_length + 1): 1}),
        "$.features",
        "max_feature_name_length",
    ),
    "feature value": (
        _with(PREDICTION, features={"x": "v" * L.max_string_length}),
        _with(PREDICTION, features={"x": "v" * (L.max_string_length + 1)}),
        "$.features[...]",
        "max_string_length",
    ),
    "prediction": (
        _with(PREDICTION, prediction="c" * L.max_string_length),
        _with(PREDICTION, prediction="c" * (L.max_string_length + 1)),
        "$.prediction",
        "max_string_length",
    ),
    "scores": (
        _with(PREDICTION, scores={str(i): 0.0 for i in range(L.max_classes)}),
        _with(PREDICTION, scores={str(i): 0.0 for i in range(L.max_classes + 1)}),
        "$.scores",
        "max_classes",
    ),
    "class name": (
        _with(PREDICTION, scores={"c" * L.max_string_length: 1.0}),
        _with(PREDICTION, scores={"c" * (L.max_string_length + 1): 1.0}),
        "$.scores",
        "max_string_length",
    ),
    "segments": (
        _with(PREDICTION, segments={f"s{i}": "x" for i in range(L.max_segments)}),
        _with(PREDICTION, segments={f"s{i}": "x" for i in range(L.max_segments + 1)}),
        "$.segments",
        "max_segments",
    ),
    "segment name": (
        _with(PREDICTION, segments={"s" * L.max_feature_name_length: "x"}),
        _with(PREDICTION, segments={"s" * (L.max_feature_name_length + 1): "x"}),
        "$.segments",
        "max_feature_name_length",
    ),
    "segment value": (
        _with(PREDICTION, segments={"region": "x" * L.max_string_length}),
        _with(PREDICTION, segments={"region": "x" * (L.max_string_length + 1)}),
        "$.segments[...]",
        "max_string_length",
    ),
    "label": (
        _with(GROUND_TRUTH, label="l" * L.max_string_length),
        _with(GROUND_TRUTH, label="l" * (L.max_string_length + 1)),
        "$.label",
        "max_string_length",
    ),
    "ground truth model": (
        _with(GROUND_TRUTH, model="m" * L.max_name_length),
        _with(GROUND_TRUTH, model="m" * (L.max_name_length + 1)),
        "$.model",
        "max_name_length",
    ),
}


def _decoders(event: dict[str, Any]) -> tuple[Any, type[PredictionEvent | GroundTruthEvent]]:
    if "label" in event:
        return DEFAULT_DECODER.ground_truth, GroundTruthEvent
    return DEFAULT_DECODER.prediction, PredictionEvent


@pytest.mark.parametrize("name", BOUNDS)
def test_at_the_bound_both_decoders_accept_and_one_past_it_both_refuse(name: str) -> None:
    at, past, path, setting = BOUNDS[name]
    decode, model = _decoders(at)
    decode(_dumps(at))
    model.model_validate_json(_dumps(at))
    with pytest.raises(DecodeError) as caught:
        decode(_dumps(past))
    with pytest.raises(ValidationError):
        model.model_validate_json(_dumps(past))
    assert (caught.value.kind, caught.value.path) == ("limit_exceeded", path)
    assert f"(limit monitor.limits.{setting})" in caught.value.reason


def test_a_message_over_max_message_bytes_is_refused_before_decoding() -> None:
    decoder = EventDecoder(Limits(max_message_bytes=100))
    with pytest.raises(DecodeError) as caught:
        decoder.prediction(b"{" + b" " * 200)  # not even JSON: never decoded
    assert caught.value.kind == "limit_exceeded"
    assert caught.value.reason == (
        "the message holds 201 bytes, more than 100 (limit monitor.limits.max_message_bytes)"
    )


def test_configured_limits_replace_the_defaults() -> None:
    wide = EventDecoder(Limits(max_features=5000))
    narrow = EventDecoder(Limits(max_name_length=3))
    many = _dumps(_with(PREDICTION, features={f"f{i}": i for i in range(4000)}))
    assert len(wide.prediction(many).features) == 4000
    with pytest.raises(DecodeError, match=r"more than 1000 entries"):
        DEFAULT_DECODER.prediction(many)
    with pytest.raises(DecodeError, match=r"`\$.model` is longer than 3 characters"):
        narrow.prediction(_dumps(PREDICTION))  # "fraud"


def test_bounded_events_are_still_wire_events_and_keys_are_checked() -> None:
    decoder = EventDecoder(Limits(max_features=10), require_key=True)
    event = decoder.prediction(_dumps(PREDICTION), b"p-1")
    assert isinstance(event, WirePrediction)
    with pytest.raises(DecodeError) as missing:
        decoder.prediction(_dumps(PREDICTION))
    assert missing.value.kind == "missing_key"
    with pytest.raises(DecodeError) as truth_missing:
        decoder.ground_truth(_dumps(GROUND_TRUTH))
    assert truth_missing.value.kind == "missing_key"
    with pytest.raises(DecodeError) as wrong:
        decoder.prediction(_dumps(PREDICTION), b"other")
    assert wrong.value.kind == "key_mismatch"
    # Without require_key (the SDK's, the tests'), the key stays optional.
    assert DEFAULT_DECODER.prediction(_dumps(PREDICTION)).prediction_id == "p-1"


def test_the_settings_hold_every_limit_with_the_same_defaults() -> None:
    assert tuple(LimitsSettings.model_fields) == Limits._fields
    assert LimitsSettings().limits() == DEFAULT_LIMITS


def test_the_published_json_schema_states_the_default_limits() -> None:
    schema = PredictionEvent.model_json_schema()
    features = schema["properties"]["features"]
    assert features["maxProperties"] == L.max_features
    assert features["propertyNames"]["maxLength"] == L.max_feature_name_length
    assert schema["properties"]["model"]["maxLength"] == L.max_name_length


# Strings and maps drawn around the default bounds: both decoders must agree on each.
def _around(bound: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=max(bound - 2, 0), max_value=bound + 2)


@st.composite
def near_the_bounds(draw: st.DrawFn) -> bytes:
    event = dict(PREDICTION)
    field = draw(st.sampled_from(["model", "event_id", "features", "keys", "values", "scores"]))
    if field == "model":
        event["model"] = "m" * draw(_around(L.max_name_length))
    elif field == "event_id":
        event["event_id"] = "ü" * draw(_around(L.max_id_length))
    elif field == "features":
        event["features"] = {f"f{i}": None for i in range(draw(_around(L.max_features)))}
    elif field == "keys":
        event["features"] = {"k" * draw(_around(L.max_feature_name_length)): 1.5}
    elif field == "values":
        event["features"] = {"x": "v" * draw(_around(L.max_string_length))}
    else:
        event["scores"] = {"s" * draw(_around(L.max_string_length)): 0.5}
    return _dumps(event)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(near_the_bounds())
def test_both_decoders_agree_around_every_default_bound(data: bytes) -> None:
    try:
        DEFAULT_DECODER.prediction(data)
        wire = True
    except DecodeError as exc:
        assert exc.kind == "limit_exceeded"
        wire = False
    try:
        PredictionEvent.model_validate_json(data)
        parsed = True
    except ValidationError:
        parsed = False
    assert wire == parsed


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=4),  # features
            st.sampled_from([None, b"p-1", b"other"]),
            st.integers(min_value=0, max_value=60),  # padding bytes
        ),
        max_size=12,
    )
)
def test_a_batch_gives_each_message_the_verdict_it_gets_alone(
    shapes: list[tuple[int, bytes | None, int]],
) -> None:
    decoder = EventDecoder(Limits(max_features=2, max_message_bytes=300), require_key=True)
    messages = []
    for n_features, key, padding in shapes:
        event = _with(PREDICTION, features={f"f{i}": i for i in range(n_features)})
        messages.append((_dumps(event) + b" " * padding * 3, key))
    results = decoder.predictions([v for v, _ in messages], [k for _, k in messages])
    assert_single_verdicts(decoder.prediction, messages, results)
