"""Decoding the input contract on the hot path.

Ingest decodes every event, so this is the hottest code in driftline. ``benchmarks/decode.py``
measures msgspec typed decoding well ahead of pydantic's ``model_validate_json`` and close to
``orjson.loads`` alone, which validates nothing (figures in ``docs/benchmarks.md``); so the
ingest path decodes into the frozen msgspec structs below.
They mirror :mod:`driftline.schemas.events`
field for field; ``tests/unit/schemas/test_wire.py`` feeds both the same accepted, rejected
and random inputs and requires identical verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, TypeVar

import msgspec

from driftline.errors import DecodeError
from driftline.schemas.events import EPOCH, INT_MAX, INT_MIN, MAX_EPOCH_MS

_FLOAT_MAX = 1.7976931348623157e308

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
EpochMs = Annotated[int, msgspec.Meta(ge=0, le=MAX_EPOCH_MS)]
# JSON has no NaN or Infinity literals, but 1e999 overflows to inf: bounding floats rejects it.
Finite = Annotated[float, msgspec.Meta(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
BoundedInt = Annotated[int, msgspec.Meta(ge=INT_MIN, le=INT_MAX)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]

FeatureValue = BoundedInt | Finite | str | bool | None
Outcome = BoundedInt | Finite | str | bool


class WirePrediction(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A decoded, validated :class:`~driftline.schemas.events.PredictionEvent`.

    ``timestamp`` keeps the form the producer sent (aware datetime or epoch milliseconds);
    :func:`event_time_ms` turns either into epoch milliseconds.
    """

    event_id: NonEmpty
    prediction_id: NonEmpty
    model: NonEmpty
    model_version: NonEmpty
    timestamp: AwareDatetime | EpochMs
    features: dict[str, FeatureValue]
    prediction: Outcome
    scores: dict[str, Probability] | None = None
    segments: dict[str, str] | None = None


class WireGroundTruth(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A decoded, validated :class:`~driftline.schemas.events.GroundTruthEvent`."""

    event_id: NonEmpty
    prediction_id: NonEmpty
    timestamp: AwareDatetime | EpochMs
    label: Outcome
    model: NonEmpty | None = None


class StoredPrediction(msgspec.Struct, frozen=True, gc=False):
    """What joining needs of a prediction that was validated when it arrived (its features
    are skipped, not decoded: about half the cost of :func:`decode_prediction`)."""

    prediction_id: str
    model: str
    model_version: str
    timestamp: datetime | int
    prediction: int | float | str | bool
    scores: dict[str, float] | None = None


_prediction_decoder = msgspec.json.Decoder(WirePrediction)
_stored_decoder = msgspec.json.Decoder(StoredPrediction)
_stored_list_decoder = msgspec.json.Decoder(list[StoredPrediction])
_ground_truth_decoder = msgspec.json.Decoder(WireGroundTruth)
_PATH = re.compile(r" - at `(\$[^`]*)`$")
_MS = 1000


def event_time_ms(ts: datetime | int) -> int:
    """Epoch milliseconds of either timestamp form.

    >>> event_time_ms(1_700_000_000_123)
    1700000000123
    >>> from datetime import UTC, datetime
    >>> event_time_ms(datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC))
    1700000000123
    """
    if isinstance(ts, int):
        return ts
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * _MS + delta.microseconds // _MS


def _fail(exc: msgspec.MsgspecError | UnicodeDecodeError) -> DecodeError:
    if isinstance(exc, UnicodeDecodeError):
        return DecodeError(f"not UTF-8: {exc.reason} at byte {exc.start}", kind="malformed_json")
    message = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        match = _PATH.search(message)
        return DecodeError(message, kind="invalid_event", path=match.group(1) if match else None)
    return DecodeError(message, kind="malformed_json")


def _check_key(key: bytes | None, prediction_id: str) -> None:
    if key is not None and key != prediction_id.encode():
        raise DecodeError(
            f"message key {key[:64]!r} differs from prediction_id {prediction_id[:64]!r}; "
            "predictions and ground truth must be keyed by prediction_id to join",
            kind="key_mismatch",
            path="$.prediction_id",
        )


def decode_prediction(data: bytes, key: bytes | None = None) -> WirePrediction:
    """Decode and validate one prediction event, or raise :class:`DecodeError` with the reason.

    When ``key`` (the Kafka message key) is given it must equal the ``prediction_id``.

    >>> ev = decode_prediction(b'{"event_id":"e","prediction_id":"p","model":"m",'
    ...     b'"model_version":"1","timestamp":1700000000000,"features":{"x":1.5},"prediction":0}')
    >>> ev.features
    {'x': 1.5}
    >>> decode_prediction(b'{"event_id":"e"}')
    Traceback (most recent call last):
    driftline.errors.DecodeError: Object missing required field `prediction_id`
    """
    try:
        event = _prediction_decoder.decode(data)
    except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
        raise _fail(exc) from None
    if key is not None and key != event.prediction_id.encode():
        _check_key(key, event.prediction_id)
    return event


def decode_ground_truth(data: bytes, key: bytes | None = None) -> WireGroundTruth:
    """Decode and validate one ground-truth event, or raise :class:`DecodeError`."""
    try:
        event = _ground_truth_decoder.decode(data)
    except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
        raise _fail(exc) from None
    if key is not None and key != event.prediction_id.encode():
        _check_key(key, event.prediction_id)
    return event


def decode_stored_prediction(data: bytes) -> StoredPrediction:
    """Re-read a prediction that :func:`decode_prediction` accepted before (from a store).

    >>> decode_stored_prediction(b'{"event_id":"e","prediction_id":"p","model":"m",'
    ...     b'"model_version":"1","timestamp":5,"features":{"x":1.5},"prediction":0}').prediction
    0
    """
    return _stored_decoder.decode(data)


def decode_stored_predictions(data: Sequence[bytes]) -> list[StoredPrediction]:
    """:func:`decode_stored_prediction` of each, in one call (they were all accepted before,
    so the batch cannot fail on one of them).

    >>> [p.prediction for p in decode_stored_predictions([b'{"prediction_id":"p","model":"m",'
    ...     b'"model_version":"1","timestamp":5,"prediction":0}'] * 2)]
    [0, 0]
    """
    if not data:
        return []
    return _stored_list_decoder.decode(b"[" + b",".join(data) + b"]")


_Event = TypeVar("_Event", WirePrediction, WireGroundTruth)


def decode_predictions(
    values: Sequence[bytes], keys: Sequence[bytes | None]
) -> list[WirePrediction | DecodeError]:
    """:func:`decode_prediction` of each value with its key: the event, or the
    :class:`DecodeError` it raised, in order.

    (Decoding the batch as one JSON array, with a compiled check that each value is exactly
    one object, gained nothing measurable end to end, so each message is decoded on its own.)

    >>> good = (b'{"event_id":"e","prediction_id":"p","model":"m","model_version":"1",'
    ...         b'"timestamp":5,"features":{},"prediction":0}')
    >>> [type(r).__name__ for r in decode_predictions([good, b"{", good], [b"p", None, b"q"])]
    ['WirePrediction', 'DecodeError', 'DecodeError']
    """
    return _decode_all(values, keys, decode_prediction)


def decode_ground_truths(
    values: Sequence[bytes], keys: Sequence[bytes | None]
) -> list[WireGroundTruth | DecodeError]:
    """:func:`decode_ground_truth` of each value with its key (see
    :func:`decode_predictions`)."""
    return _decode_all(values, keys, decode_ground_truth)


def _decode_all(
    values: Sequence[bytes],
    keys: Sequence[bytes | None],
    decode_one: Callable[[bytes, bytes | None], _Event],
) -> list[_Event | DecodeError]:
    results: list[_Event | DecodeError] = []
    for value, key in zip(values, keys, strict=True):
        try:
            results.append(decode_one(value, key))
        except DecodeError as exc:
            results.append(exc)
    return results
