"""The input contract: what model-serving services publish (DESIGN §2).

These pydantic models are the contract's single public definition: the producer SDK builds and
validates them, and the JSON Schemas in the repository's ``schemas/`` folder are generated from
them. The hot ingest path decodes the same contract with msgspec (:mod:`driftline.schemas.wire`),
about five times faster; a differential test holds the two to identical verdicts. Both bound
sizes and lengths by the default :mod:`~driftline.schemas.limits`, which the JSON Schemas state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from driftline.schemas.limits import DEFAULT_LIMITS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant datetime holds
# The widest integers JSON decoders agree on; wider ones are rejected rather than rounded.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

Task = Literal["binary", "multiclass", "regression"]
Role = Literal["champion", "shadow", "canary"]
"""The part a prediction's version plays in a rollout (issue 16): the champion answers, a
shadow predicts the same request beside it without answering, a canary answers a share."""

_AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


def parse_timestamp(value: object) -> datetime:
    """Turn either timestamp form of the contract into an aware UTC datetime.

    Accepts an RFC 3339 string with an offset (``Z`` or ``±hh:mm``) or an integer of epoch
    milliseconds. Rejects naive strings, booleans, floats and anything else with ``ValueError``.

    >>> parse_timestamp("2026-11-22T10:00:00+01:00").isoformat()
    '2026-11-22T09:00:00+00:00'
    >>> parse_timestamp(1_700_000_000_000).isoformat()
    '2023-11-14T22:13:20+00:00'
    """
    if type(value) is int:
        if not 0 <= value <= MAX_EPOCH_MS:
            raise ValueError(f"epoch milliseconds must be within 0..{MAX_EPOCH_MS}, got {value}")
        return EPOCH + timedelta(milliseconds=value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp must carry a UTC offset (naive datetimes are ambiguous)")
        return value.astimezone(UTC)
    if isinstance(value, str):
        try:
            # msgspec's parser is the one the ingest path uses, so both agree on every string.
            parsed = msgspec.convert(value, _AwareDatetime)
        except msgspec.ValidationError as exc:
            raise ValueError(
                "timestamp must be an RFC 3339 string with an offset, e.g. "
                f"2026-11-22T10:00:00Z ({exc})"
            ) from None
        return _in_utc(parsed)
    raise ValueError(
        "timestamp must be an RFC 3339 string with an offset or integer epoch milliseconds, "
        f"got {type(value).__name__}"
    )


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # Year 1 at +01:00, year 9999 at -01:00: no datetime holds the instant in UTC.
        raise ValueError(f"timestamp {value.isoformat()} is outside years 1..9999 in UTC") from None


def to_epoch_ms(ts: datetime) -> int:
    """Epoch milliseconds of an aware datetime, exactly (no float rounding)."""
    return (ts - EPOCH) // timedelta(milliseconds=1)


def _format_timestamp(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    PlainSerializer(_format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "string", "format": "date-time", "pattern": r"(Z|z|[+-]\d{2}:\d{2})$"},
                {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH_MS},
            ],
            "description": "Event time: RFC 3339 with an offset, or integer epoch milliseconds.",
        }
    ),
]


def _reject_int(value: object) -> object:
    if type(value) is int:
        raise ValueError(f"integers must fit in 64 bits ({INT_MIN}..{INT_MAX})")
    return value


BoundedInt = Annotated[StrictInt, Field(ge=INT_MIN, le=INT_MAX)]
# An integer outside int64 is rejected, never silently rounded to a float.
Number = BoundedInt | Annotated[StrictFloat, BeforeValidator(_reject_int)]
# The default limits (:mod:`driftline.schemas.limits`) are part of the published contract:
# the same bounds as the ingest decoder's under a default configuration.
Id = Annotated[StrictStr, Field(min_length=1, max_length=DEFAULT_LIMITS.max_id_length)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=DEFAULT_LIMITS.max_name_length)]
FeatureName = Annotated[StrictStr, Field(max_length=DEFAULT_LIMITS.max_feature_name_length)]
Text = Annotated[StrictStr, Field(max_length=DEFAULT_LIMITS.max_string_length)]
FeatureValue = Number | Text | StrictBool | None
Outcome = Number | Text | StrictBool
Probability = Annotated[float, Field(ge=0.0, le=1.0, strict=True)]
Scores = Annotated[dict[Text, Probability], Field(max_length=DEFAULT_LIMITS.max_classes)]
Segments = Annotated[dict[FeatureName, Text], Field(max_length=DEFAULT_LIMITS.max_segments)]


class _Event(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, protected_namespaces=()
    )

    def to_json(self) -> bytes:
        """The event as the contract's JSON bytes (UTC timestamps, optional fields omitted,
        and so is a default ``role``: a champion's event is the same bytes as before roles)."""
        return self.model_dump_json(exclude_none=True, exclude_defaults=True).encode()


class PredictionEvent(_Event):
    """A prediction made by a model; published to ``driftline.predictions``, keyed by its id.

    >>> ev = PredictionEvent(
    ...     event_id="e-1", prediction_id="p-1", model="fraud", model_version="3",
    ...     timestamp="2026-11-22T10:00:00Z", features={"amount": 12.5, "country": "FR"},
    ...     prediction=1, scores={"0": 0.1, "1": 0.9},
    ... )
    >>> ev.timestamp.isoformat()
    '2026-11-22T10:00:00+00:00'
    >>> PredictionEvent.model_validate_json(ev.to_json()) == ev
    True
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        protected_namespaces=(),
        # The role rule, stated for schema readers too: a shadow names its champion, only it.
        json_schema_extra={
            "if": {"properties": {"role": {"const": "shadow"}}, "required": ["role"]},
            "then": {"required": ["shadow_of"], "properties": {"shadow_of": {"type": "string"}}},
            "else": {"properties": {"shadow_of": {"type": "null"}}},
        },
    )

    event_id: Id = Field(description="Unique per event (a UUID); used to drop duplicates.")
    prediction_id: Id = Field(description="The join key with ground truth.")
    model: Name
    model_version: Name
    timestamp: Timestamp
    features: dict[FeatureName, FeatureValue] = Field(
        description="Feature name to value: number, string, boolean or null.",
        max_length=DEFAULT_LIMITS.max_features,
    )
    prediction: Outcome = Field(description="The predicted class, or the regression value.")
    scores: Scores | None = Field(
        default=None, description="Class to probability, for classifiers."
    )
    segments: Segments | None = Field(
        default=None, description='Cohort tags, e.g. {"region": "eu"}.'
    )
    role: Role = Field(
        default="champion",
        description=(
            "The part this version plays: champion (answers), shadow (predicts the same "
            "request beside the champion, unanswered) or canary (answers a share of traffic)."
        ),
    )
    shadow_of: Id | None = Field(
        default=None,
        validate_default=True,
        description=(
            "Required for a shadow, forbidden otherwise: the prediction_id of the champion's "
            "prediction of the same request (the message key of a shadow prediction)."
        ),
    )

    @field_validator("shadow_of")
    @classmethod
    def _shadow_of_matches_role(cls, value: str | None, info: ValidationInfo) -> str | None:
        role = info.data.get("role")
        if role is None:  # role itself was invalid: its own error says so
            return value
        problem = shadow_problem(role, value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @property
    def message_key(self) -> str:
        """The Kafka message key: ``shadow_of`` for a shadow (so it meets its champion's label
        on the same partition), the ``prediction_id`` otherwise."""
        return message_key(self.role, self.prediction_id, self.shadow_of)


def shadow_problem(role: str, shadow_of: str | None) -> str | None:
    """Why ``role`` and ``shadow_of`` disagree, or None: a shadow names its champion's
    prediction and only a shadow does.

    >>> shadow_problem("shadow", None)
    'a shadow prediction needs shadow_of (its champion prediction_id)'
    >>> shadow_problem("canary", "p-1")
    'only a shadow prediction has shadow_of (role is canary)'
    """
    if role == "shadow" and shadow_of is None:
        return "a shadow prediction needs shadow_of (its champion prediction_id)"
    if role != "shadow" and shadow_of is not None:
        return f"only a shadow prediction has shadow_of (role is {role})"
    return None


def message_key(role: str, prediction_id: str, shadow_of: str | None) -> str:
    """The key rule: a shadow prediction is keyed by ``shadow_of``, every other event by its
    ``prediction_id``.

    >>> message_key("shadow", "p-1/shadow/4", "p-1"), message_key("canary", "p-2", None)
    ('p-1', 'p-2')
    """
    return shadow_of if role == "shadow" and shadow_of is not None else prediction_id


class GroundTruthEvent(_Event):
    """The true outcome of an earlier prediction; published to ``driftline.ground-truth``.

    >>> GroundTruthEvent(event_id="e-2", prediction_id="p-1", timestamp=1_764_000_000_000,
    ...                  label=0).model
    """

    event_id: Id
    prediction_id: Id
    timestamp: Timestamp = Field(description="When the outcome became known.")
    label: Outcome
    model: Name | None = None

    @property
    def message_key(self) -> str:
        """The Kafka message key: the ``prediction_id``."""
        return self.prediction_id


def event_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the input events, keyed by file stem."""
    return {
        "prediction-event": PredictionEvent.model_json_schema(),
        "ground-truth-event": GroundTruthEvent.model_json_schema(),
    }
