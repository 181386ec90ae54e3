"""Decoding the input contract on the hot path.

Ingest decodes every event, so this is the hottest code in driftline. ``benchmarks/decode.py``
measures msgspec typed decoding well ahead of pydantic's ``model_validate_json`` and close to
``orjson.loads`` alone, which validates nothing (figures in ``docs/benchmarks.md``); so the
ingest path decodes into the frozen msgspec structs below.
They mirror :mod:`driftline.schemas.events`
field for field; ``tests/unit/schemas/test_wire.py`` feeds both the same accepted, rejected
and random inputs and requires identical verdicts.

An :class:`EventDecoder` adds a deployment's :class:`~driftline.schemas.limits.Limits`
(message bytes, counts, string lengths: enforced by msgspec's constraints while it decodes)
and, for ingest, requires a message key. It is built once, when a worker starts;
:data:`DEFAULT_DECODER` holds the default limits, those of the pydantic events. The
module-level functions check the contract's shape alone: they re-read events accepted before
(held or waiting in a store), whatever limits they were accepted under.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from types import GenericAlias
from typing import Annotated, Any, Literal, cast

import msgspec

from driftline.errors import DecodeError
from driftline.schemas import reasons
from driftline.schemas.events import EPOCH, INT_MAX, INT_MIN, MAX_EPOCH_MS, shadow_problem
from driftline.schemas.limits import DEFAULT_LIMITS, Limits

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
    role: Literal["champion", "shadow", "canary"] = "champion"
    shadow_of: NonEmpty | None = None

    @property
    def key(self) -> str:
        """What the message key must be: ``shadow_of`` for a shadow, else ``prediction_id``."""
        return self.shadow_of if self.shadow_of is not None else self.prediction_id


class WireGroundTruth(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A decoded, validated :class:`~driftline.schemas.events.GroundTruthEvent`."""

    event_id: NonEmpty
    prediction_id: NonEmpty
    timestamp: AwareDatetime | EpochMs
    label: Outcome
    model: NonEmpty | None = None

    @property
    def key(self) -> str:
        """What the message key must be: the ``prediction_id``."""
        return self.prediction_id


class StoredPrediction(msgspec.Struct, frozen=True, gc=False):
    """What joining needs of a prediction that was validated when it arrived (its features
    are skipped, not decoded: about half the cost of :func:`decode_prediction`)."""

    prediction_id: str
    model: str
    model_version: str
    timestamp: datetime | int
    prediction: int | float | str | bool
    scores: dict[str, float] | None = None
    segments: dict[str, str] | None = None
    """Its segment values, read for the performance slices (a compact entry gives back the
    slice only: a tracked value or ``other``)."""


def _text(min_length: int, max_length: int) -> Any:
    return Annotated[str, msgspec.Meta(min_length=min_length, max_length=max_length)]


def _mapping(key: Any, value: Any, max_length: int) -> Any:
    return Annotated[GenericAlias(dict, (key, value)), msgspec.Meta(max_length=max_length)]


@functools.cache
def bounded_types(limits: Limits) -> tuple[type[WirePrediction], type[WireGroundTruth]]:
    """Subclasses of :class:`WirePrediction` and :class:`WireGroundTruth` whose fields carry
    ``limits`` as msgspec constraints (checked in C while decoding), one pair per limits.

    >>> prediction, _ = bounded_types(Limits(max_features=2))
    >>> issubclass(prediction, WirePrediction)
    True
    """
    ident = _text(1, limits.max_id_length)
    name = _text(1, limits.max_name_length)
    key = _text(0, limits.max_feature_name_length)
    text = _text(0, limits.max_string_length)
    outcome = BoundedInt | Finite | text | bool
    prediction = msgspec.defstruct(
        "WirePrediction",
        [
            ("event_id", ident),
            ("prediction_id", ident),
            ("model", name),
            ("model_version", name),
            ("features", _mapping(key, outcome | None, limits.max_features)),
            ("prediction", outcome),
            ("scores", _mapping(text, Probability, limits.max_classes) | None, None),
            ("segments", _mapping(key, text, limits.max_segments) | None, None),
            ("role", Literal["champion", "shadow", "canary"], "champion"),
            ("shadow_of", ident | None, None),
        ],
        bases=(WirePrediction,),
        module=__name__,
    )
    truth = msgspec.defstruct(
        "WireGroundTruth",
        [
            ("event_id", ident),
            ("prediction_id", ident),
            ("label", outcome),
            ("model", name | None, None),
        ],
        bases=(WireGroundTruth,),
        module=__name__,
    )
    return cast(type[WirePrediction], prediction), cast(type[WireGroundTruth], truth)


_prediction_decoder = msgspec.json.Decoder(WirePrediction)
_stored_decoder = msgspec.json.Decoder(StoredPrediction)
_stored_list_decoder = msgspec.json.Decoder(list[StoredPrediction])
_ground_truth_decoder = msgspec.json.Decoder(WireGroundTruth)
_PATH = re.compile(r" - at `(\$[^`]*)`$")
_LIMIT = re.compile(r"^Expected `(str|object)` of length <= (\d+) - at (`key` in )?`(\$[^`]*)`$")
_COUNTED = {"$.features": "max_features", "$.scores": "max_classes", "$.segments": "max_segments"}
_NAMED = {"$.features": "max_feature_name_length", "$.segments": "max_feature_name_length"}
_STRINGS = {
    "$.event_id": "max_id_length",
    "$.prediction_id": "max_id_length",
    "$.shadow_of": "max_id_length",
    "$.model": "max_name_length",
    "$.model_version": "max_name_length",
}
_MS = 1000
_NO_LIMIT = 2**63
# An RFC 3339 string may name an instant datetime cannot hold in UTC (year 1 at +01:00, year
# 9999 at -01:00): only a datetime of these years can be one.
_EDGE_YEARS = frozenset({1, 9999})
_FIRST_UTC = datetime.min.replace(tzinfo=UTC)
_LAST_UTC = datetime.max.replace(tzinfo=UTC)


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
        return DecodeError(
            f"not UTF-8: {exc.reason} at byte {exc.start}", kind=reasons.MALFORMED_JSON
        )
    message = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        limit = _LIMIT.match(message)
        if limit is not None:
            return _over_limit(limit)
        match = _PATH.search(message)
        return DecodeError(
            message, kind=reasons.INVALID_EVENT, path=match.group(1) if match else None
        )
    return DecodeError(message, kind=reasons.MALFORMED_JSON)


def _over_limit(match: re.Match[str]) -> DecodeError:
    """The dead-letter reason of a msgspec length constraint: the bound and its setting."""
    what, bound, in_key, path = match.groups()
    if what == "object":
        setting = _COUNTED.get(path, "max_features")
        told = f"`{path}` has more than {bound} entries"
    elif in_key:
        setting = _NAMED.get(path, "max_string_length")
        told = f"a name in `{path}` is longer than {bound} characters"
    else:
        setting = _STRINGS.get(path, "max_string_length")
        told = f"`{path}` is longer than {bound} characters"
    return DecodeError(
        f"{told} (limit {DEFAULT_LIMITS.setting(setting)})",
        kind=reasons.LIMIT_EXCEEDED,
        path=path,
    )


def _beyond_utc(ts: datetime | int) -> DecodeError | None:
    """The error of a timestamp whose instant falls outside years 1..9999 in UTC, or None
    (the pydantic events refuse such a timestamp too: it has no UTC datetime)."""
    if isinstance(ts, int) or ts.year not in _EDGE_YEARS or _FIRST_UTC <= ts <= _LAST_UTC:
        return None
    return DecodeError(
        f"timestamp {ts.isoformat()} is outside years 1..9999 in UTC",
        kind=reasons.INVALID_EVENT,
        path="$.timestamp",
    )


def _role_mismatch(event: WirePrediction) -> DecodeError | None:
    """The error of a prediction whose ``role`` and ``shadow_of`` disagree, or None."""
    problem = shadow_problem(event.role, event.shadow_of)
    if problem is None:
        return None
    return DecodeError(problem, kind=reasons.INVALID_EVENT, path="$.shadow_of")


def _missing_key() -> DecodeError:
    return DecodeError(
        "the message has no key; the contract keys every event by its prediction_id",
        kind=reasons.MISSING_KEY,
    )


def _key_mismatch(key: bytes, event: WirePrediction | WireGroundTruth) -> DecodeError:
    if isinstance(event, WirePrediction) and event.shadow_of is not None:
        return DecodeError(
            f"message key {key[:64]!r} differs from shadow_of {event.shadow_of[:64]!r}; "
            "a shadow prediction is keyed by its champion's prediction_id to join",
            kind=reasons.KEY_MISMATCH,
            path="$.shadow_of",
        )
    return DecodeError(
        f"message key {key[:64]!r} differs from prediction_id {event.prediction_id[:64]!r}; "
        "predictions and ground truth must be keyed by prediction_id to join",
        kind=reasons.KEY_MISMATCH,
        path="$.prediction_id",
    )


class EventDecoder:
    """The input contract's decoders under a deployment's limits; built once per worker.

    ``limits`` None checks the contract's shape alone. ``require_key`` (ingest) rejects a
    valid event without a message key (an invalid one keeps its own reason): the contract
    keys every event by its ``prediction_id``, and an unkeyed one lands on a partition where
    its label never arrives. Only the size is checked before decoding.

    >>> small = EventDecoder(Limits(max_features=1), require_key=True)
    >>> wide = (b'{"event_id":"e","prediction_id":"p","model":"m","model_version":"1",'
    ...         b'"timestamp":5,"features":{"x":1,"y":2},"prediction":0}')
    >>> good = wide.replace(b',"y":2', b"")
    >>> [(r.kind, r.reason) for r in small.predictions([wide, good], [b"p", None])]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('limit_exceeded', '`$.features` has more than 1 entries (limit monitor.limits.max_features)'),
     ('missing_key', 'the message has no key; the contract keys every event by its prediction_id')]
    """

    def __init__(self, limits: Limits | None = DEFAULT_LIMITS, *, require_key: bool = False):
        self.limits = limits
        self.require_key = require_key
        if limits is None:
            self._prediction, self._truth = _prediction_decoder, _ground_truth_decoder
            self._max_bytes = _NO_LIMIT
        else:
            prediction, truth = bounded_types(limits)
            self._prediction = msgspec.json.Decoder(prediction)
            self._truth = msgspec.json.Decoder(truth)
            self._max_bytes = limits.max_message_bytes

    def prediction(self, data: bytes, key: bytes | None = None) -> WirePrediction:
        """Decode and validate one prediction event, or raise :class:`DecodeError`; a
        ``key`` given must equal its ``prediction_id``."""
        return cast(WirePrediction, self._decode(self._prediction, data, key))

    def ground_truth(self, data: bytes, key: bytes | None = None) -> WireGroundTruth:
        """Decode and validate one ground-truth event, or raise :class:`DecodeError`."""
        return cast(WireGroundTruth, self._decode(self._truth, data, key))

    def predictions(
        self, values: Sequence[bytes], keys: Sequence[bytes | None]
    ) -> list[WirePrediction | DecodeError]:
        """:meth:`prediction` of each value with its key: the event, or the
        :class:`DecodeError` it raised, in order (``tests/unit/schemas/test_wire_batch.py``
        holds the two to the same verdicts)."""
        return self._decode_all(values, keys, self._prediction)

    def ground_truths(
        self, values: Sequence[bytes], keys: Sequence[bytes | None]
    ) -> list[WireGroundTruth | DecodeError]:
        """:meth:`ground_truth` of each value with its key."""
        return self._decode_all(values, keys, self._truth)

    def _decode(self, decoder: msgspec.json.Decoder[Any], data: bytes, key: bytes | None) -> Any:
        if len(data) > self._max_bytes:
            raise self._too_large(data)
        try:
            event = decoder.decode(data)
        except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
            raise _fail(exc) from None
        beyond = _beyond_utc(event.timestamp)
        if beyond is not None:
            raise beyond
        if isinstance(event, WirePrediction):
            mismatch = _role_mismatch(event)
            if mismatch is not None:
                raise mismatch
        if key is None:
            if self.require_key:
                raise _missing_key()
        elif key != event.key.encode():
            raise _key_mismatch(key, event)
        return event

    def _too_large(self, data: bytes) -> DecodeError:
        """A message refused before it is decoded: more bytes than allowed."""
        return DecodeError(
            f"the message holds {len(data)} bytes, more than {self._max_bytes} "
            f"(limit {DEFAULT_LIMITS.setting('max_message_bytes')})",
            kind=reasons.LIMIT_EXCEEDED,
        )

    def _decode_all(
        self,
        values: Sequence[bytes],
        keys: Sequence[bytes | None],
        decoder: msgspec.json.Decoder[Any],
    ) -> list[Any]:
        # :meth:`_decode` unrolled: this loop runs once per input event.
        decode = decoder.decode
        max_bytes = self._max_bytes
        require_key = self.require_key
        predictions = decoder is self._prediction
        edge_years = _EDGE_YEARS
        results: list[Any] = []
        append = results.append
        for value, key in zip(values, keys, strict=True):
            if len(value) > max_bytes:
                append(self._too_large(value))
                continue
            try:
                event = decode(value)
            except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
                append(_fail(exc))
                continue
            ts = event.timestamp
            if ts.__class__ is not int and ts.year in edge_years:
                beyond = _beyond_utc(ts)
                if beyond is not None:
                    append(beyond)
                    continue
            if predictions and (event.role != "champion" or event.shadow_of is not None):
                mismatch = _role_mismatch(event)
                if mismatch is not None:
                    append(mismatch)
                    continue
            if key is None:
                append(_missing_key() if require_key else event)
            elif key != event.key.encode():
                append(_key_mismatch(key, event))
            else:
                append(event)
        return results


_SHAPE = EventDecoder(None)
DEFAULT_DECODER = EventDecoder()
"""The default limits, keys optional: the same verdicts as the pydantic events."""


def decode_prediction(data: bytes, key: bytes | None = None) -> WirePrediction:
    """Decode and validate one prediction event's shape (no limits), or raise
    :class:`DecodeError` with the reason.

    When ``key`` (the Kafka message key) is given it must equal the ``prediction_id``.

    >>> ev = decode_prediction(b'{"event_id":"e","prediction_id":"p","model":"m",'
    ...     b'"model_version":"1","timestamp":1700000000000,"features":{"x":1.5},"prediction":0}')
    >>> ev.features
    {'x': 1.5}
    >>> decode_prediction(b'{"event_id":"e"}')
    Traceback (most recent call last):
    driftline.errors.DecodeError: Object missing required field `prediction_id`
    """
    return _SHAPE.prediction(data, key)


def decode_ground_truth(data: bytes, key: bytes | None = None) -> WireGroundTruth:
    """Decode and validate one ground-truth event's shape (no limits), or raise
    :class:`DecodeError`."""
    return _SHAPE.ground_truth(data, key)


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
    return _SHAPE.predictions(values, keys)


def decode_ground_truths(
    values: Sequence[bytes], keys: Sequence[bytes | None]
) -> list[WireGroundTruth | DecodeError]:
    """:func:`decode_ground_truth` of each value with its key (see
    :func:`decode_predictions`)."""
    return _SHAPE.ground_truths(values, keys)
