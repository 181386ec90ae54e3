"""Rollout roles in the contract (issue 16): a shadow names its champion's prediction, only a
shadow does, and a shadow is keyed by that name; both decoders agree on every verdict."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from driftline.client import DriftlineProducer
from driftline.errors import DecodeError, InvalidEventError
from driftline.schemas import PredictionEvent
from driftline.schemas.wire import DEFAULT_DECODER, EventDecoder
from tests.unit.schemas.test_contract import PREDICTION
from tests.unit.schemas.test_wire import mutated, verdict

SHADOW: dict[str, Any] = {
    **PREDICTION,
    "prediction_id": "p-1/shadow/4",
    "model_version": "4",
    "role": "shadow",
    "shadow_of": "p-1",
}
KEYED = EventDecoder(require_key=True)


def _bytes(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def test_a_prediction_without_role_is_a_champion_and_keeps_its_bytes() -> None:
    event = PredictionEvent.model_validate(PREDICTION)
    assert event.role == "champion"
    assert event.shadow_of is None
    assert b"role" not in event.to_json()
    assert b"shadow_of" not in event.to_json()
    wire = DEFAULT_DECODER.prediction(_bytes(PREDICTION), b"p-1")
    assert wire.role == "champion"
    assert wire.shadow_of is None


@pytest.mark.parametrize(
    "event",
    [
        {**PREDICTION, "role": "shadow"},
        {**PREDICTION, "shadow_of": "p-0"},
        {**PREDICTION, "role": "canary", "shadow_of": "p-0"},
    ],
    ids=["shadow-without-shadow_of", "champion-with-shadow_of", "canary-with-shadow_of"],
)
def test_role_and_shadow_of_must_agree_in_both_decoders(event: dict[str, Any]) -> None:
    with pytest.raises(DecodeError) as caught:
        DEFAULT_DECODER.prediction(_bytes(event))
    assert caught.value.kind == "invalid_event"
    assert caught.value.path == "$.shadow_of"
    [batch] = DEFAULT_DECODER.predictions([_bytes(event)], [None])
    assert isinstance(batch, DecodeError)
    assert batch.path == "$.shadow_of"
    with pytest.raises(ValidationError) as refused:
        PredictionEvent.model_validate(event)
    assert [e["loc"] for e in refused.value.errors()] == [("shadow_of",)]


def test_an_unknown_role_is_invalid_in_both_decoders() -> None:
    event = {**PREDICTION, "role": "blue"}
    with pytest.raises(DecodeError) as caught:
        DEFAULT_DECODER.prediction(_bytes(event))
    assert caught.value.kind == "invalid_event"
    assert caught.value.path == "$.role"
    with pytest.raises(ValidationError):
        PredictionEvent.model_validate(event)


def test_a_shadow_is_keyed_by_its_champion_prediction_id() -> None:
    data = _bytes(SHADOW)
    assert KEYED.prediction(data, b"p-1").prediction_id == "p-1/shadow/4"
    with pytest.raises(DecodeError) as caught:
        KEYED.prediction(data, b"p-1/shadow/4")
    assert caught.value.kind == "key_mismatch"
    assert caught.value.path == "$.shadow_of"
    [ok, wrong] = KEYED.predictions([data, data], [b"p-1", b"p-1/shadow/4"])
    assert not isinstance(ok, DecodeError)
    assert ok.key == "p-1"
    assert isinstance(wrong, DecodeError)
    assert wrong.kind == "key_mismatch"
    assert PredictionEvent.model_validate(SHADOW).message_key == "p-1"


def test_a_canary_is_keyed_by_its_own_prediction_id() -> None:
    canary = {**PREDICTION, "role": "canary", "model_version": "4"}
    assert KEYED.prediction(_bytes(canary), b"p-1").role == "canary"
    with pytest.raises(DecodeError) as caught:
        KEYED.prediction(_bytes(canary), b"p-0")
    assert caught.value.kind == "key_mismatch"
    assert caught.value.path == "$.prediction_id"
    assert PredictionEvent.model_validate(canary).message_key == "p-1"


def test_the_sdk_builds_a_shadow_keyed_by_shadow_of() -> None:
    producer = DriftlineProducer("localhost:1")
    event = producer.build_prediction(
        model="fraud",
        model_version="4",
        features={"amount": 1.0},
        prediction=1,
        prediction_id="p-1/shadow/4",
        role="shadow",
        shadow_of="p-1",
    )
    assert event.message_key == "p-1"
    assert DEFAULT_DECODER.prediction(event.to_json(), b"p-1").shadow_of == "p-1"
    with pytest.raises(InvalidEventError, match="shadow_of"):
        producer.build_prediction(
            model="fraud", model_version="4", features={}, prediction=1, role="shadow"
        )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(SHADOW))
def test_both_decoders_agree_on_mutated_shadow_predictions(data: bytes) -> None:
    verdict(DEFAULT_DECODER.prediction, PredictionEvent, data)
