"""Creating driftline's topics with the partitions and policies the design relies on.

Predictions and ground truth must have the same partition count: both are keyed by
``prediction_id`` with the default partitioner, so equal counts put a prediction and its outcome
on the same partition number, which is what makes the stage-1 join local (DESIGN §1). The
``models`` topic is compacted, one record per model version, read whole by every worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from driftline.config import KafkaSettings, TopicSettings
from driftline.errors import TopicError
from driftline.kafka_auth import confluent_config

_DAY_MS = 86_400_000
_ALREADY_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS


@dataclass(frozen=True)
class TopicSpec:
    """A topic as driftline wants it."""

    role: str
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicOutcome:
    """What :func:`create_topics` did with one topic."""

    spec: TopicSpec
    status: Literal["created", "exists"]
    partitions: int


def topic_specs(topics: TopicSettings, *, input_partitions: int | None = None) -> list[TopicSpec]:
    """Every topic with its partition count and policy.

    >>> [(s.role, s.partitions) for s in topic_specs(TopicSettings())][:2]
    [('predictions', 6), ('ground_truth', 6)]
    >>> next(s for s in topic_specs(TopicSettings()) if s.role == "models").config
    {'cleanup.policy': 'compact'}
    """
    n_in = input_partitions or topics.input_partitions
    n_out = topics.output_partitions
    policies: dict[str, tuple[int, dict[str, str]]] = {
        # Stage 1 rebuilds a partition's join store on a fresh machine by re-reading its
        # inputs: keep them as long as a prediction can wait for its label (the join TTL,
        # 7 days by default) plus a day of margin.
        "predictions": (n_in, {"retention.ms": str(8 * _DAY_MS)}),
        "ground_truth": (n_in, {"retention.ms": str(8 * _DAY_MS)}),
        "dlq": (n_out, {"retention.ms": str(30 * _DAY_MS)}),
        "alerts": (n_out, {}),
        "retrain": (n_out, {}),
        "models": (1, {"cleanup.policy": "compact"}),
        "metrics": (n_out, {}),
        "labeled": (n_out, {}),
        # Stage 2 restores by re-reading partials: keep them as long as a late label can
        # restate a window (the join TTL, 7 days by default) plus a day of margin.
        "summaries": (n_out, {"retention.ms": str(8 * _DAY_MS)}),
    }
    return [TopicSpec(role, name, *policies[role]) for role, name in topics.names().items()]


def _existing_partitions(admin: AdminClient, timeout: float) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(f"cannot list topics: {exc}") from None
    return {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}


def _cleanup_policy(admin: AdminClient, topic: str, timeout: float) -> str | None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(f"cannot describe topic {topic!r}: {exc}") from None
    entry = configs.get("cleanup.policy")
    return None if entry is None else str(entry.value)


def create_topics(
    kafka: KafkaSettings,
    topics: TopicSettings,
    *,
    timeout: float = 30.0,
    admin_factory: Callable[[dict[str, Any]], AdminClient] = AdminClient,
) -> list[TopicOutcome]:
    """Create every missing topic; idempotent.

    Refuses, before creating anything, when predictions and ground truth both exist with
    different partition counts (the join could not work) or when an existing ``models`` topic
    is not compacted (reference profiles would expire). When only one of the pair exists, the
    other is created with its partition count, not the configured one.
    """
    admin = admin_factory(confluent_config(kafka))
    existing = _existing_partitions(admin, timeout)
    n_pred, n_truth = existing.get(topics.predictions), existing.get(topics.ground_truth)
    if n_pred is not None and n_truth is not None and n_pred != n_truth:
        raise TopicError(
            f"topics {topics.predictions!r} ({n_pred} partitions) and {topics.ground_truth!r} "
            f"({n_truth} partitions) must have the same partition count so that a prediction "
            "and its ground truth share a partition; repartition one of them, or configure "
            "other topic names"
        )
    specs = topic_specs(topics, input_partitions=n_pred or n_truth)
    if topics.models in existing:
        policy = _cleanup_policy(admin, topics.models, timeout)
        if policy is None or "compact" not in policy:
            raise TopicError(
                f"topic {topics.models!r} exists with cleanup.policy={policy}; it must be "
                "compacted (cleanup.policy=compact) or reference profiles will expire"
            )
    missing = [s for s in specs if s.name not in existing]
    created: set[str] = set()
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(s.name, s.partitions, kafka.replication_factor, config=s.config)
                for s in missing
            ],
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
                created.add(name)
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() != _ALREADY_EXISTS:  # lost a race with another creator: fine
                    raise TopicError(f"cannot create topic {name!r}: {error.str()}") from None
    after = _existing_partitions(admin, timeout)
    return [
        TopicOutcome(
            s,
            "created" if s.name in created else "exists",
            after.get(s.name, existing.get(s.name, s.partitions)),
        )
        for s in specs
    ]
