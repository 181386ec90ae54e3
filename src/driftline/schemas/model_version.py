"""The registry's record of one model version: lineage, training data, metrics, status, audit.

Written by the model registry as ``metadata.json`` beside the version's serialised model and read
by people (``driftline models show``), the trainer and serving processes; its JSON Schema is
committed with the others (``schemas/model-version-metadata.schema.json``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

from driftline.schemas.events import Timestamp
from driftline.schemas.outputs import Reason

Status = Literal["candidate", "challenger", "champion", "rejected", "retired"]
Actor = Literal["trainer", "person"]
Action = Literal["register", "challenge", "promote", "rollback", "set_status", "repair"]
RolloutMode = Literal["shadow", "canary"]
FeatureKind = Literal["numeric", "categorical"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_name(value: str, what: str = "name") -> str:
    """``value`` if it is a safe path component for the registry, else ``ValueError``.

    A name starts with a letter or digit and holds only letters, digits, ``.``, ``_`` and
    ``-`` (at most 128 characters): no separators, no ``..``, no absolute or hidden parts.

    >>> check_name("fraud-v2"), check_name("3.1")
    ('fraud-v2', '3.1')
    >>> check_name("../etc", "version")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: version '../etc' is not a safe name: 1-128 letters, digits, '.', '_', '-', ...
    """
    if not isinstance(value, str) or _SAFE_NAME.fullmatch(value) is None or ".." in value:
        raise ValueError(
            f"{what} {value!r} is not a safe name: 1-128 letters, digits, '.', '_', '-', "
            "starting with a letter or digit, without '..'"
        )
    return value


def _sha256(value: str) -> str:
    if _SHA256.fullmatch(value) is None:
        raise ValueError("expected 64 lowercase hexadecimal digits")
    return value


SafeName = Annotated[
    str,
    AfterValidator(check_name),
    Field(description="Letters, digits, '.', '_', '-'; starts with a letter or digit."),
]
Sha256 = Annotated[str, AfterValidator(_sha256), Field(description="Hex sha256 digest.")]


class _Record(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, protected_namespaces=()
    )


class TrainingSummary(_Record):
    """What a version was trained on: the event-time range, the row count and a content hash."""

    first_event_time: Timestamp
    last_event_time: Timestamp
    rows: int = Field(ge=0)
    content_hash: str = Field(
        min_length=1, description="Hash of the training rows; equal rows, equal hash."
    )

    @model_validator(mode="after")
    def _ordered(self) -> TrainingSummary:
        if self.last_event_time < self.first_event_time:
            raise ValueError("last_event_time is before first_event_time")
        return self


class HoldoutMetrics(_Record):
    """The candidate and the champion it was judged against, on the same holdout."""

    metric: str = Field(min_length=1, description="e.g. accuracy, log_loss, mae")
    candidate: float | None = Field(
        description="The candidate's value; null when the metric is undefined on the holdout."
    )
    champion: float | None = Field(
        None, description="The serving champion's value; null when there was none."
    )
    n: int = Field(ge=0, description="Holdout rows both were evaluated on.")


class Artifact(_Record):
    """The serialised model file: its format, sha256 and size in bytes."""

    format: str = Field(min_length=1, description="The serialisation format's name.")
    sha256: Sha256
    size: int = Field(ge=0)


class Environment(_Record):
    """Where a version was trained: Python's version and the key packages' versions."""

    python: str
    packages: dict[str, str] = Field(default_factory=dict)


class RolloutMetadata(_Record):
    """How a ``challenger`` is rolled out next to the champion (issue 16).

    ``shadow``: both versions predict on every request, only the champion's answer is used;
    ``canary``: the challenger answers ``canary_share`` of the requests (by a hash of a
    request key, so one key sticks to one version).
    """

    mode: RolloutMode
    canary_share: float = Field(
        0.1, gt=0.0, lt=1.0, description="Share of requests the canary answers (canary only)."
    )


class StatusChange(_Record):
    """One entry of a version's audit trail: who changed its status, when, and why."""

    at: Timestamp
    by: Actor
    action: Action
    status: Status
    previous: Status | None = Field(None, description="Null on registration.")
    reason: str = Field(min_length=1)


class ModelVersionMetadata(_Record):
    """One model version in the registry: its lineage, training data, metrics and status.

    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 12, 1, tzinfo=UTC)
    >>> m = ModelVersionMetadata(
    ...     model="fraud", version="2", created_at=at, parent_version="1",
    ...     request_id="r-1", reasons=(),
    ...     training_data=TrainingSummary(first_event_time=at, last_event_time=at, rows=10,
    ...                                content_hash="abc"),
    ...     features={"amount": "numeric"}, parameters={"grace_period": 200},
    ...     metrics=HoldoutMetrics(metric="accuracy", candidate=0.91, champion=0.84, n=500),
    ...     status="candidate",
    ...     artifact=Artifact(format="pickle", sha256="0" * 64, size=10),
    ...     code_version="0.1.0", environment=Environment(python="3.12.0"),
    ...     history=(StatusChange(at=at, by="trainer", action="register", status="candidate",
    ...                           reason="retrain request r-1"),))
    >>> ModelVersionMetadata.model_validate_json(m.model_dump_json()) == m
    True
    """

    model: SafeName
    version: SafeName
    created_at: Timestamp
    parent_version: SafeName | None = Field(None, description="The version this one retrained.")
    request_id: str | None = Field(None, description="The retrain request that caused it.")
    reasons: tuple[Reason, ...] = Field((), description="That request's reasons.")
    training_data: TrainingSummary
    features: dict[str, FeatureKind] = Field(description="Feature name to its kind.")
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    metrics: HoldoutMetrics | None = Field(
        None, description="Holdout metrics of the candidate and the champion."
    )
    status: Status
    artifact: Artifact
    reference_sha256: Sha256 | None = Field(
        None, description="sha256 of the stored reference profile, when one was stored."
    )
    rollout: RolloutMetadata | None = Field(
        None, description="The rollout mode, set when the version became a challenger."
    )
    code_version: str = Field(min_length=1)
    environment: Environment
    history: tuple[StatusChange, ...] = Field(
        min_length=1, description="Every status change, oldest first."
    )

    @model_validator(mode="after")
    def _status_is_the_last_change(self) -> ModelVersionMetadata:
        if self.history[-1].status != self.status:
            raise ValueError("status differs from the last entry of history")
        return self


def metadata_json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of the registry's metadata file, keyed by file stem."""
    return {"model-version-metadata": ModelVersionMetadata.model_json_schema(mode="serialization")}
