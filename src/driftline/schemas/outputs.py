"""Records driftline publishes: alerts, retrain requests, training outcomes, model versions,
rollout decisions, dead letters.

Every record has a deterministic id computed from its identity, never from a clock or a random
source, so a replayed input produces the same record and consumers drop repeats (DESIGN §2-§3).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field

from driftline.schemas.events import Timestamp, to_epoch_ms
from driftline.schemas.ids import stable_id
from driftline.schemas.reference import ReferenceProfile

ReasonKind = Literal[
    "feature_drift",
    "prediction_drift",
    "performance",
    "concept_drift",
    "data_quality",
    "traffic_stopped",
]
"""What a reason is evidence of. ``traffic_stopped`` is the one reason of a ``resolved`` alert
of a version whose traffic stopped while its model's went on (its ``statistic`` is
``silent_ms``)."""
Severity = Literal["info", "warning", "critical"]


class _Record(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, protected_namespaces=()
    )

    def to_json(self) -> bytes:
        """The record as JSON bytes, as published to Kafka."""
        return self.model_dump_json().encode()


class Reason(_Record):
    """One piece of evidence: a statistic that crossed its threshold."""

    kind: ReasonKind
    feature: str | None = Field(None, description="The feature, for feature drift and quality.")
    statistic: str = Field(min_length=1, description="e.g. psi, ks_d, accuracy, missing_rate")
    value: float
    threshold: float
    p_value: float | None = Field(None, ge=0.0, le=1.0)
    segment_key: str | None = Field(
        None, description="The segment key, when the evidence is from one segment's slice."
    )
    segment: str | None = Field(
        None, description="The segment's value (``other``: values outside the top-K)."
    )


class _WindowRecord(_Record):
    model: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    window_start: Timestamp
    window_end: Timestamp


class DriftAlert(_WindowRecord):
    """Something is wrong with a model version in a window (or it stopped being wrong).

    >>> from datetime import UTC, datetime
    >>> start, end = datetime(2026, 11, 22, 9, tzinfo=UTC), datetime(2026, 11, 22, 10, tzinfo=UTC)
    >>> reason = Reason(kind="feature_drift", feature="amount", statistic="psi",
    ...                 value=0.31, threshold=0.2, p_value=1e-9)
    >>> a = DriftAlert.create("fraud", "3", start, end, severity="warning", reasons=[reason])
    >>> a.alert_id == DriftAlert.create("fraud", "3", start, end, severity="warning",
    ...                                 reasons=[reason]).alert_id
    True
    >>> a.alert_id == DriftAlert.create("fraud", "3", start, end, severity="critical",
    ...                                 reasons=[reason]).alert_id
    False
    """

    alert_id: str
    severity: Severity
    status: Literal["firing", "resolved"] = "firing"
    reasons: tuple[Reason, ...]
    segments: tuple[str, ...] = Field(
        (),
        description="The segments (``key=value``) whose slices the reasons come from, in "
        "reason order; empty when every reason is about the whole model.",
    )

    @staticmethod
    def make_id(
        model: str,
        version: str,
        window_start: datetime,
        window_end: datetime,
        status: str,
        evidence: str = "",
    ) -> str:
        """The id of the alert for this model version, window, status and evidence.

        ``evidence`` is :meth:`evidence_digest` of the severity and reasons: deciding a window
        again gives the same id (consumers drop the repeat) unless its verdict changed (another
        severity, other features or statistics), which gives a new id, so the correction
        reaches consumers instead of being dropped as a duplicate.
        """
        start, end = to_epoch_ms(window_start), to_epoch_ms(window_end)
        return stable_id("alert", model, version, start, end, status, evidence)

    @staticmethod
    def evidence_digest(severity: str, reasons: Sequence[Reason]) -> str:
        """A short, stable digest of what an alert says: its severity and which statistics of
        which features crossed their thresholds, not their exact values. A window restated
        with a few more late labels keeps its alert id; one whose verdict changed gets a new
        one."""
        said = sorted(
            (r.kind, r.feature or "", r.statistic)
            + (() if r.segment_key is None else (r.segment_key, r.segment or ""))
            for r in reasons
        )
        return stable_id(orjson.dumps([severity, said]).decode())

    @classmethod
    def create(
        cls,
        model: str,
        version: str,
        window_start: datetime,
        window_end: datetime,
        *,
        severity: Severity,
        reasons: list[Reason] | tuple[Reason, ...],
        status: Literal["firing", "resolved"] = "firing",
    ) -> Self:
        """Build an alert with its deterministic id."""
        evidence = cls.evidence_digest(severity, reasons)
        return cls(
            alert_id=cls.make_id(model, version, window_start, window_end, status, evidence),
            model=model,
            model_version=version,
            window_start=window_start,
            window_end=window_end,
            severity=severity,
            status=status,
            reasons=tuple(reasons),
            segments=tuple(
                dict.fromkeys(
                    f"{r.segment_key}={r.segment}" for r in reasons if r.segment_key is not None
                )
            ),
        )


class RetrainRequest(_WindowRecord):
    """Ask the trainer to retrain a model; ``request_id`` = hash(model, version, rule, window).

    The trainer ignores ids it has seen and respects a per-model cool-down (DESIGN §3).
    """

    request_id: str
    rule: str = Field(min_length=1, description="The decision rule that fired.")
    reasons: tuple[Reason, ...] = Field(min_length=1)

    @staticmethod
    def make_id(
        model: str, version: str, rule: str, window_start: datetime, window_end: datetime
    ) -> str:
        """The id of the request for this model version, rule and window."""
        start, end = to_epoch_ms(window_start), to_epoch_ms(window_end)
        return stable_id("retrain", model, version, rule, start, end)

    @classmethod
    def create(
        cls,
        model: str,
        version: str,
        window_start: datetime,
        window_end: datetime,
        *,
        rule: str,
        reasons: list[Reason] | tuple[Reason, ...],
    ) -> Self:
        """Build a request with its deterministic id."""
        return cls(
            request_id=cls.make_id(model, version, rule, window_start, window_end),
            model=model,
            model_version=version,
            window_start=window_start,
            window_end=window_end,
            rule=rule,
            reasons=tuple(reasons),
        )


class ModelVersionRegistered(_Record):
    """A model version and its reference profile; one record per version on the compacted
    ``driftline.models`` topic, keyed by :meth:`key`."""

    model: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    registered_at: Timestamp
    source: Literal["cli", "trainer", "warmup", "registry"] = Field(
        description="Who registered it: the reference CLI, the trainer, a warm-up baseline, "
        "or an external registry."
    )
    parent_version: str | None = Field(None, description="The version this one retrained.")
    artifact_uri: str | None = None
    reference: ReferenceProfile

    @staticmethod
    def make_key(model: str, version: str) -> bytes:
        """Compaction key: one record per (model, version), unambiguous for any names."""
        return orjson.dumps([model, version])

    def key(self) -> bytes:
        """This record's compaction key."""
        return self.make_key(self.model, self.model_version)


TrainingStatus = Literal["started", "succeeded", "rejected", "failed", "skipped"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "rejected", "failed", "skipped"})
"""The statuses that end a request: the trainer handles a request with one of them never
again; a request with only ``started`` was interrupted and is tried again."""


class TrainingOutcome(_Record):
    """What the trainer did with one retrain request, on ``driftline.training`` (key = model).

    ``started`` when a training begins (once per attempt), then exactly one of
    ``succeeded`` (a candidate was registered; ``promoted`` says whether it became the
    champion), ``rejected`` (it lost to the champion on the holdout, by the figures given),
    ``failed`` (training raised, timed out or had too little data: ``reason`` says which) or
    ``skipped`` (a request inside the model's cool-down, or one already handled elsewhere).
    ``outcome_id`` = hash(request id, status, attempt), so a repeat is recognisable.
    """

    outcome_id: str
    request_id: str
    model: str = Field(min_length=1)
    model_version: str = Field(min_length=1, description="The version the request was about.")
    status: TrainingStatus
    attempt: int = Field(1, ge=1, description="Which try of this request (1 on the first).")
    at: Timestamp = Field(description="Wall-clock time the trainer recorded this.")
    reason: str = ""
    window_end: Timestamp | None = Field(
        None, description="The request's window end: event time, for the cool-down."
    )
    candidate_version: str | None = None
    promoted: bool = False
    metric: str | None = None
    candidate_value: float | None = None
    champion_value: float | None = None
    n_train: int | None = Field(None, ge=0)
    n_holdout: int | None = Field(None, ge=0)

    @staticmethod
    def make_id(request_id: str, status: str, attempt: int) -> str:
        """The id of this request's outcome ``status`` on try ``attempt``."""
        return stable_id("training", request_id, status, attempt)

    @classmethod
    def create(cls, request: RetrainRequest, status: TrainingStatus, **fields: Any) -> Self:
        """An outcome of ``request``, with its deterministic id; ``at`` defaults to now."""
        attempt = int(fields.pop("attempt", 1))
        fields.setdefault("at", utc_now())
        return cls(
            outcome_id=cls.make_id(request.request_id, status, attempt),
            request_id=request.request_id,
            model=request.model,
            model_version=request.model_version,
            status=status,
            attempt=attempt,
            window_end=request.window_end,
            **fields,
        )

    def key(self) -> bytes:
        """The record's key: its model, so one model's outcomes stay in order."""
        return self.model.encode()


# Header names on a dead-lettered message; the value and key are the original bytes.
DLQ_HEADER_TOPIC = "driftline.source.topic"
DLQ_HEADER_PARTITION = "driftline.source.partition"
DLQ_HEADER_OFFSET = "driftline.source.offset"
DLQ_HEADER_REASON = "driftline.error.reason"
DLQ_HEADER_KIND = "driftline.error.kind"
DLQ_HEADER_PATH = "driftline.error.path"
DLQ_HEADER_FAILED_AT = "driftline.error.failed_at"
# Set only on a dead letter cut to fit the DLQ topic: what the original bytes were.
DLQ_HEADER_ORIGINAL_LENGTH = "driftline.original.length"
DLQ_HEADER_ORIGINAL_SHA256 = "driftline.original.sha256"
DLQ_HEADER_ORIGINAL_KEY_LENGTH = "driftline.original.key_length"
DLQ_HEADER_ORIGINAL_KEY_SHA256 = "driftline.original.key_sha256"
DLQ_HEADER_ORIGINAL_HEADERS_DROPPED = "driftline.original.headers_dropped"
_OURS = ("driftline.source.", "driftline.error.", "driftline.original.")

Headers = list[tuple[str, bytes]]


class DeadLetter(_Record):
    """A message driftline could not accept, with why and where it came from.

    On the ``driftline.dlq`` topic the message keeps its original key and value bytes; the rest
    travels in headers (``driftline.source.*``, ``driftline.error.*``) together with the
    original headers, so the message can be inspected and replayed as it was. A message too
    large for the DLQ is cut to fit (:func:`driftline.deadletter.fit`): then the
    ``driftline.original.*`` headers give the length and SHA-256 of the bytes that were cut.

    >>> dl = DeadLetter(source_topic="driftline.predictions", source_partition=2,
    ...                 source_offset=41, reason="Object missing required field `model`",
    ...                 kind="invalid_event", path="$", key=b"p-1", value=b"{}",
    ...                 failed_at=1_764_000_000_000)
    >>> DeadLetter.from_kafka(dl.key, dl.value, dl.kafka_headers()) == dl
    True
    """

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    source_topic: str
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)
    reason: str
    kind: str = "invalid_event"
    path: str | None = None
    key: bytes | None = None
    value: bytes | None = None
    original_headers: tuple[tuple[str, bytes], ...] = ()
    failed_at: Timestamp
    original_length: int | None = None
    """Length of the original value when ``value`` was cut to fit the DLQ (else None)."""
    original_sha256: str | None = None
    """Hex SHA-256 of the original value when ``value`` was cut."""
    original_key_length: int | None = None
    """Length of the original key when ``key`` was cut."""
    original_key_sha256: str | None = None
    """Hex SHA-256 of the original key when ``key`` was cut."""
    original_headers_dropped: int = 0
    """Original headers left out to fit the DLQ."""

    def kafka_headers(self) -> Headers:
        """Headers for the dead-letter message: the original ones, then driftline's."""
        headers: Headers = list(self.original_headers)
        headers += [
            (DLQ_HEADER_TOPIC, self.source_topic.encode()),
            (DLQ_HEADER_PARTITION, str(self.source_partition).encode()),
            (DLQ_HEADER_OFFSET, str(self.source_offset).encode()),
            (DLQ_HEADER_REASON, self.reason.encode()),
            (DLQ_HEADER_KIND, self.kind.encode()),
            (DLQ_HEADER_FAILED_AT, str(to_epoch_ms(self.failed_at)).encode()),
        ]
        if self.path is not None:
            headers.append((DLQ_HEADER_PATH, self.path.encode()))
        for name, field in (
            (DLQ_HEADER_ORIGINAL_LENGTH, self.original_length),
            (DLQ_HEADER_ORIGINAL_SHA256, self.original_sha256),
            (DLQ_HEADER_ORIGINAL_KEY_LENGTH, self.original_key_length),
            (DLQ_HEADER_ORIGINAL_KEY_SHA256, self.original_key_sha256),
            (DLQ_HEADER_ORIGINAL_HEADERS_DROPPED, self.original_headers_dropped or None),
        ):
            if field is not None:
                headers.append((name, str(field).encode()))
        return headers

    @classmethod
    def from_kafka(
        cls, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None
    ) -> Self:
        """Read a dead-letter message back (for inspection and replay tools)."""
        ours: dict[str, str] = {}
        original: list[tuple[str, bytes]] = []
        for name, raw in headers or []:
            if name.startswith(_OURS):
                ours[name] = raw.decode()
            else:
                original.append((name, raw))
        fields: dict[str, Any] = {
            "source_topic": ours[DLQ_HEADER_TOPIC],
            "source_partition": int(ours[DLQ_HEADER_PARTITION]),
            "source_offset": int(ours[DLQ_HEADER_OFFSET]),
            "reason": ours[DLQ_HEADER_REASON],
            "kind": ours.get(DLQ_HEADER_KIND, "invalid_event"),
            "path": ours.get(DLQ_HEADER_PATH),
            "failed_at": int(ours.get(DLQ_HEADER_FAILED_AT, "0")),
            "original_sha256": ours.get(DLQ_HEADER_ORIGINAL_SHA256),
            "original_key_sha256": ours.get(DLQ_HEADER_ORIGINAL_KEY_SHA256),
            "original_headers_dropped": int(ours.get(DLQ_HEADER_ORIGINAL_HEADERS_DROPPED, "0")),
        }
        for name, field in (
            (DLQ_HEADER_ORIGINAL_LENGTH, "original_length"),
            (DLQ_HEADER_ORIGINAL_KEY_LENGTH, "original_key_length"),
        ):
            if name in ours:
                fields[field] = int(ours[name])
        return cls(key=key, value=value, original_headers=tuple(original), **fields)


class RolloutDecision(_WindowRecord):
    """A rollout's decision on a challenger against its champion (issue 16); published to
    ``driftline.rollout``, keyed by model, once: on the first decisive look.

    ``model_version`` is the challenger's. ``decision`` is what the evidence says (``end``: the
    challenger reached the policy's maximum labels undecided); ``action`` is what to do
    (for ``end``, the policy's ``on_end``). The evidence is the difference challenger minus
    champion of ``metric`` (higher is better), its anytime-valid interval by ``method`` at
    error rate ``alpha``, and the ``n`` labels behind it.

    >>> from datetime import UTC, datetime
    >>> end = datetime(2026, 11, 22, 10, tzinfo=UTC)
    >>> d = RolloutDecision.create("fraud", "3", "4", end, end, design="shadow",
    ...     decision="promote", action="promote", metric="accuracy", estimate=0.05,
    ...     lower=0.01, upper=0.09, n=900, alpha=0.05, margin=0.0, method="cs")
    >>> d.model_version, d.decision_id == RolloutDecision.make_id("fraud", "3", "4", "promote", end)
    ('4', True)
    """

    decision_id: str
    champion_version: str = Field(min_length=1)
    challenger_version: str = Field(min_length=1)
    design: Literal["shadow", "canary"]
    decision: Literal["promote", "rollback", "end"]
    action: Literal["promote", "rollback"]
    metric: str = Field(min_length=1)
    estimate: float
    lower: float
    upper: float
    n: int = Field(ge=0)
    alpha: float = Field(gt=0.0, lt=1.0)
    margin: float = Field(ge=0.0)
    method: str = Field(min_length=1)

    @staticmethod
    def make_id(
        model: str, champion: str, challenger: str, decision: str, window_end: datetime
    ) -> str:
        """The id of this decision on this version pair at the end of this window."""
        return stable_id("rollout", model, champion, challenger, decision, to_epoch_ms(window_end))

    @classmethod
    def create(
        cls,
        model: str,
        champion: str,
        challenger: str,
        window_start: datetime,
        window_end: datetime,
        **evidence: Any,
    ) -> Self:
        """Build a decision with its deterministic id; ``evidence`` holds the other fields."""
        decision = evidence["decision"]
        return cls(
            decision_id=cls.make_id(model, champion, challenger, decision, window_end),
            model=model,
            model_version=challenger,
            window_start=window_start,
            window_end=window_end,
            champion_version=champion,
            challenger_version=challenger,
            **evidence,
        )


def output_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the public output records, keyed by file stem."""
    return {
        "drift-alert": DriftAlert.model_json_schema(mode="serialization"),
        "retrain-request": RetrainRequest.model_json_schema(mode="serialization"),
        "model-version-registered": ModelVersionRegistered.model_json_schema(mode="serialization"),
        "training-outcome": TrainingOutcome.model_json_schema(mode="serialization"),
        "rollout-decision": RolloutDecision.model_json_schema(mode="serialization"),
    }


def utc_now() -> datetime:
    """The wall clock, aware; the default clock of the parts that take one."""
    return datetime.now(UTC)
