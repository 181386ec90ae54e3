"""Every accept/reject rule of the event contract (DESIGN §2), for both decoders.

Each case runs through the hot-path decoder (msgspec, :mod:`driftline.schemas.wire`) and the
public pydantic models; both must give the same verdict.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from driftline.errors import DecodeError
from driftline.schemas import (
    GroundTruthEvent,
    PredictionEvent,
    decode_ground_truth,
    decode_prediction,
    event_time_ms,
)

PREDICTION: dict[str, Any] = {
    "event_id": "e-1",
    "prediction_id": "p-1",
    "model": "fraud",
    "model_version": "3",
    "timestamp": "2026-11-22T10:00:00Z",
    "features": {"amount": 12.5, "count": 3, "country": "FR", "vip": True, "note": None},
    "prediction": 1,
    "scores": {"0": 0.1, "1": 0.9},
    "segments": {"region": "eu"},
}
GROUND_TRUTH: dict[str, Any] = {
    "event_id": "e-2",
    "prediction_id": "p-1",
    "timestamp": 1_764_000_000_000,
    "label": 0,
    "model": "fraud",
}
_MISSING = object()


def with_(base: dict[str, Any], **changes: Any) -> bytes:
    """The base event with fields changed (``_MISSING`` removes one), as JSON bytes."""
    event = {**base, **changes}
    return orjson.dumps({k: v for k, v in event.items() if v is not _MISSING})


def raw(text: str) -> bytes:
    return text.encode()


ACCEPTED_PREDICTIONS = {
    "full event": with_(PREDICTION),
    "offset timestamp": with_(PREDICTION, timestamp="2026-11-22T11:00:00+01:00"),
    "fractional seconds": with_(PREDICTION, timestamp="2026-11-22T10:00:00.123456Z"),
    "epoch milliseconds": with_(PREDICTION, timestamp=1_764_000_000_000),
    "epoch zero": with_(PREDICTION, timestamp=0),
    "no scores or segments": with_(PREDICTION, scores=_MISSING, segments=_MISSING),
    "null scores and segments": with_(PREDICTION, scores=None, segments=None),
    "empty features": with_(PREDICTION, features={}),
    "string prediction": with_(PREDICTION, prediction="fraud"),
    "boolean prediction": with_(PREDICTION, prediction=True),
    "float prediction": with_(PREDICTION, prediction=0.37),
    "negative feature": with_(PREDICTION, features={"x": -1e300}),
    "largest int64 feature": with_(PREDICTION, features={"x": 2**63 - 1}),
    "score exactly 0 and 1": with_(PREDICTION, scores={"0": 0, "1": 1.0}),
    "unicode names": with_(PREDICTION, model="modèle", features={"âge": 41}),
}

REJECTED_PREDICTIONS = {
    "unknown field": with_(PREDICTION, extra="x"),
    "missing event_id": with_(PREDICTION, event_id=_MISSING),
    "missing prediction_id": with_(PREDICTION, prediction_id=_MISSING),
    "missing model": with_(PREDICTION, model=_MISSING),
    "missing model_version": with_(PREDICTION, model_version=_MISSING),
    "missing timestamp": with_(PREDICTION, timestamp=_MISSING),
    "missing features": with_(PREDICTION, features=_MISSING),
    "missing prediction": with_(PREDICTION, prediction=_MISSING),
    "empty event_id": with_(PREDICTION, event_id=""),
    "empty model": with_(PREDICTION, model=""),
    "numeric model_version": with_(PREDICTION, model_version=3),
    "naive timestamp": with_(PREDICTION, timestamp="2026-11-22T10:00:00"),
    "date-only timestamp": with_(PREDICTION, timestamp="2026-11-22"),
    "not a timestamp": with_(PREDICTION, timestamp="yesterday"),
    "float epoch": with_(PREDICTION, timestamp=1_764_000_000_000.5),
    "boolean timestamp": with_(PREDICTION, timestamp=True),
    "negative epoch": with_(PREDICTION, timestamp=-1),
    "epoch beyond year 9999": with_(PREDICTION, timestamp=253_402_300_800_000),
    "features not an object": with_(PREDICTION, features=[1, 2]),
    "nested feature value": with_(PREDICTION, features={"x": {"y": 1}}),
    "list feature value": with_(PREDICTION, features={"x": [1]}),
    "overflowing float feature": raw(
        with_(PREDICTION, features={"x": 1.5}).decode().replace("1.5", "1e999")
    ),
    "NaN literal": raw(with_(PREDICTION, features={"x": 1.5}).decode().replace("1.5", "NaN")),
    "Infinity literal": raw(
        with_(PREDICTION, features={"x": 1.5}).decode().replace("1.5", "Infinity")
    ),
    "int beyond 64 bits": raw(
        with_(PREDICTION, features={"x": 1.5}).decode().replace("1.5", "1" + "0" * 25)
    ),
    "null prediction": with_(PREDICTION, prediction=None),
    "object prediction": with_(PREDICTION, prediction={"class": 1}),
    "score above 1": with_(PREDICTION, scores={"1": 1.2}),
    "negative score": with_(PREDICTION, scores={"1": -0.1}),
    "string score": with_(PREDICTION, scores={"1": "0.9"}),
    "numeric segment": with_(PREDICTION, segments={"region": 1}),
    "not an object": raw("[1, 2, 3]"),
    "truncated JSON": with_(PREDICTION)[:-5],
    "empty bytes": b"",
    "not UTF-8": b'{"event_id": "\xff\xfe"}',
}

ACCEPTED_GROUND_TRUTH = {
    "full event": with_(GROUND_TRUTH),
    "no model": with_(GROUND_TRUTH, model=_MISSING),
    "string label": with_(GROUND_TRUTH, label="fraud"),
    "float label": with_(GROUND_TRUTH, label=12.75),
    "RFC 3339 timestamp": with_(GROUND_TRUTH, timestamp="2026-11-22T10:00:00-05:00"),
}

REJECTED_GROUND_TRUTH = {
    "unknown field": with_(GROUND_TRUTH, features={}),
    "missing label": with_(GROUND_TRUTH, label=_MISSING),
    "null label": with_(GROUND_TRUTH, label=None),
    "missing prediction_id": with_(GROUND_TRUTH, prediction_id=_MISSING),
    "naive timestamp": with_(GROUND_TRUTH, timestamp="2026-11-22 10:00:00"),
    "empty model": with_(GROUND_TRUTH, model=""),
    "overflowing label": raw(with_(GROUND_TRUTH, label=1.5).decode().replace("1.5", "-1e400")),
}


@pytest.mark.parametrize("data", ACCEPTED_PREDICTIONS.values(), ids=ACCEPTED_PREDICTIONS.keys())
def test_valid_prediction_is_accepted_by_both_decoders(data: bytes) -> None:
    wire = decode_prediction(data)
    model = PredictionEvent.model_validate_json(data)
    assert wire.event_id == model.event_id
    assert wire.features == model.features
    assert event_time_ms(wire.timestamp) == event_time_ms(model.timestamp)


@pytest.mark.parametrize("data", REJECTED_PREDICTIONS.values(), ids=REJECTED_PREDICTIONS.keys())
def test_invalid_prediction_is_rejected_by_both_decoders_with_a_reason(data: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_prediction(data)
    assert caught.value.reason
    assert caught.value.kind in {"malformed_json", "invalid_event"}
    with pytest.raises(ValidationError):
        PredictionEvent.model_validate_json(data)


@pytest.mark.parametrize("data", ACCEPTED_GROUND_TRUTH.values(), ids=ACCEPTED_GROUND_TRUTH.keys())
def test_valid_ground_truth_is_accepted_by_both_decoders(data: bytes) -> None:
    wire = decode_ground_truth(data)
    model = GroundTruthEvent.model_validate_json(data)
    assert (wire.prediction_id, wire.label) == (model.prediction_id, model.label)


@pytest.mark.parametrize("data", REJECTED_GROUND_TRUTH.values(), ids=REJECTED_GROUND_TRUTH.keys())
def test_invalid_ground_truth_is_rejected_by_both_decoders(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_ground_truth(data)
    with pytest.raises(ValidationError):
        GroundTruthEvent.model_validate_json(data)


def test_rejection_names_the_offending_field() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_prediction(with_(PREDICTION, scores={"1": 1.2}))
    assert caught.value.path == "$.scores[...]"
    assert "1.0" in caught.value.reason


def test_unknown_field_rejection_names_the_field() -> None:
    with pytest.raises(DecodeError, match="unknown field `extra`"):
        decode_prediction(with_(PREDICTION, extra="x"))


def test_both_timestamp_forms_give_the_same_instant() -> None:
    as_text = decode_prediction(with_(PREDICTION, timestamp="2025-11-24T17:00:00.250+01:00"))
    as_epoch = decode_prediction(with_(PREDICTION, timestamp=1_764_000_000_250))
    assert (
        event_time_ms(as_text.timestamp) == event_time_ms(as_epoch.timestamp) == 1_764_000_000_250
    )
    model = PredictionEvent.model_validate_json(with_(PREDICTION, timestamp=1_764_000_000_250))
    assert model.timestamp == datetime(2025, 11, 24, 16, 0, 0, 250_000, tzinfo=UTC)


def test_message_key_must_equal_prediction_id() -> None:
    assert decode_prediction(with_(PREDICTION), key=b"p-1").prediction_id == "p-1"
    with pytest.raises(DecodeError) as caught:
        decode_prediction(with_(PREDICTION), key=b"other")
    assert caught.value.kind == "key_mismatch"
    with pytest.raises(DecodeError, match="differs from prediction_id"):
        decode_ground_truth(with_(GROUND_TRUTH), key=b"p-2")


def test_events_serialise_to_json_that_decodes_back_equal() -> None:
    event = PredictionEvent.model_validate_json(with_(PREDICTION))
    again = decode_prediction(event.to_json())
    assert again.features == event.features
    assert again.scores == event.scores
    assert event_time_ms(again.timestamp) == event_time_ms(event.timestamp)
    assert orjson.loads(event.to_json())["timestamp"] == "2026-11-22T10:00:00.000Z"
