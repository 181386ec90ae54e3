"""Creating driftline's topics with the partitions and policies the design relies on.

Predictions and ground truth must have the same partition count: both are keyed by
``prediction_id`` with the default partitioner, so equal counts put a prediction and its outcome
on the same partition number, which is what makes the stage-1 join local (DESIGN §1). The
``models`` topic is compacted, one record per model version, read whole by every worker.

**Retention follows the settings.** Stage 1 rebuilds a partition's store on a fresh machine by
re-reading its inputs, and stage 2 rebuilds its panes by re-reading the summaries topic (see
:mod:`driftline.streams.stage2`). Both keep a pane for as long as a late label can restate it,
so the predictions, ground-truth and summaries topics must keep their records for
``monitor.join_ttl`` plus the longest window and its allowed lateness (over every configured
model and the defaults an unconfigured model gets), plus :data:`RETENTION_MARGIN` for a
restart that comes late. :func:`retention_needs` says how long; :func:`create_topics` creates
topics with it and refuses existing ones that keep less; :func:`check_retention` is the
monitor's start-up check. :func:`check_broker` asks whether any broker answers at all,
quickly and quietly, so a command run against no broker says so in one line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from driftline.config import (
    KafkaSettings,
    ModelConfig,
    Settings,
    TopicSettings,
)
from driftline.errors import BrokerUnavailableError, TopicError
from driftline.kafka_auth import confluent_config

_DAY_MS = 86_400_000
_ALREADY_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS

RETENTION_MARGIN = timedelta(days=1)
"""Kept beyond what the settings need: a monitor restarted up to a day late (a weekend's
outage noticed on Monday morning is not covered; raise retention further for that) still
finds every record it needs."""

_RETAINED_ROLES = ("predictions", "ground_truth", "summaries")

BROKER_PROBE_TIMEOUT = 5.0
"""Seconds :func:`check_broker` waits for a broker to answer before a command gives up."""

# librdkafka's own log lines go to this logger during the probe (and nowhere): without it,
# a broker that is down makes librdkafka print a line every few milliseconds on stderr.
_SILENT = logging.getLogger("driftline.kafka.probe")
_SILENT.propagate = False
_SILENT.addHandler(logging.NullHandler())
_ERROR_NOISE = re.compile(r"^\S+/(?:bootstrap|\d+): |\s*\(after \d+ms in state \w+\)$")


@dataclass(frozen=True)
class RetentionNeed:
    """How long the settings need one topic to keep its records, and why."""

    role: str
    name: str
    needed: timedelta
    reason: str

    @property
    def needed_ms(self) -> int:
        """:attr:`needed` as Kafka's ``retention.ms``."""
        return round(self.needed.total_seconds() * 1000)


@dataclass(frozen=True)
class RetentionShortfall:
    """An existing topic that keeps its records for less than the settings need."""

    need: RetentionNeed
    retention_ms: int

    def __str__(self) -> str:
        kept = _readable(timedelta(milliseconds=self.retention_ms))
        need = self.need
        return (
            f"topic {need.name!r} keeps records for {kept} (retention.ms={self.retention_ms}) "
            f"but the settings need at least {_readable(need.needed)} "
            f"(retention.ms={need.needed_ms}: {need.reason}); raise it, e.g. "
            f"kafka-configs.sh --alter --entity-type topics --entity-name {need.name} "
            f"--add-config retention.ms={need.needed_ms}"
        )


def _readable(duration: timedelta) -> str:
    """A duration in days, hours, minutes and seconds, for people.

    >>> _readable(timedelta(days=9, minutes=10)), _readable(timedelta(milliseconds=1500))
    ('9d 10m', '1.5s')
    """
    seconds = duration.total_seconds()
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if seconds or not parts:
        parts.append(f"{seconds:g}s")
    return " ".join(parts)


def _longest_window_and_lateness(settings: Settings) -> tuple[timedelta, str]:
    """The longest window plus its lateness over every configured model and the defaults an
    unconfigured model gets, and which model needs it."""
    candidates: list[tuple[str, ModelConfig]] = [
        ("unconfigured models", ModelConfig(task="binary")),  # timing does not depend on task
        *((f"model {name!r}", config) for name, config in settings.models.items()),
    ]
    spans = [
        (max(w.size for w in config.windows) + config.allowed_lateness, who)
        for who, config in candidates
    ]
    return max(spans, key=lambda span: span[0])


def retention_needs(settings: Settings, topics: TopicSettings | None = None) -> list[RetentionNeed]:
    """How long the input and summaries topics must keep their records (module docstring).

    ``topics`` names the topics (default: ``settings.topics``).

    >>> s = Settings(monitor={"join_ttl": "7d"},
    ...              models={"m": {"task": "binary", "windows": [{"size": "1d", "hop": "1h"}]}})
    >>> [(n.role, _readable(n.needed)) for n in retention_needs(s)][2]
    ('summaries', '9d 5m')
    >>> retention_needs(s)[0].reason
    "join_ttl 7d + the longest window and its lateness 1d 5m (model 'm') + margin 1d"
    """
    topics = settings.topics if topics is None else topics
    join_ttl = settings.monitor.join_ttl
    span, who = _longest_window_and_lateness(settings)
    needed = join_ttl + span + RETENTION_MARGIN
    reason = (
        f"join_ttl {_readable(join_ttl)} + the longest window and its lateness "
        f"{_readable(span)} ({who}) + margin {_readable(RETENTION_MARGIN)}"
    )
    names = topics.names()
    return [RetentionNeed(role, names[role], needed, reason) for role in _RETAINED_ROLES]


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


def topic_specs(
    topics: TopicSettings,
    *,
    input_partitions: int | None = None,
    settings: Settings | None = None,
) -> list[TopicSpec]:
    """Every topic with its partition count and policy; the input and summaries topics'
    retention from ``settings`` (:func:`retention_needs`; default settings when None).

    >>> [(s.role, s.partitions) for s in topic_specs(TopicSettings())][:2]
    [('predictions', 6), ('ground_truth', 6)]
    >>> next(s for s in topic_specs(TopicSettings()) if s.role == "models").config
    {'cleanup.policy': 'compact'}
    >>> next(s for s in topic_specs(TopicSettings()) if s.role == "summaries").config
    {'retention.ms': '695100000'}
    """
    n_in = input_partitions or topics.input_partitions
    n_out = topics.output_partitions
    kept = {
        need.role: {"retention.ms": str(need.needed_ms)}
        for need in retention_needs(settings or Settings.model_construct(), topics)
    }
    policies: dict[str, tuple[int, dict[str, str]]] = {
        "predictions": (n_in, kept["predictions"]),
        "ground_truth": (n_in, kept["ground_truth"]),
        "dlq": (n_out, {"retention.ms": str(30 * _DAY_MS)}),
        "alerts": (n_out, {}),
        "retrain": (n_out, {}),
        "models": (1, {"cleanup.policy": "compact"}),
        "metrics": (n_out, {}),
        "labeled": (n_out, {}),
        "summaries": (n_out, kept["summaries"]),
        "training": (n_out, {}),
        "rollout": (n_out, {}),
    }
    return [TopicSpec(role, name, *policies[role]) for role, name in topics.names().items()]


def check_broker(
    kafka: KafkaSettings,
    *,
    timeout: float = BROKER_PROBE_TIMEOUT,
    admin_factory: Callable[[dict[str, Any]], AdminClient] = AdminClient,
) -> None:
    """Raise :class:`BrokerUnavailableError` unless a broker of ``kafka`` answers a metadata
    request within ``timeout`` seconds; librdkafka logs nothing meanwhile.

    The error names the bootstrap servers and librdkafka's reason (connection refused, a name
    that does not resolve, failed authentication).
    """
    reasons: list[str] = []

    def on_error(error: Any) -> None:
        reasons.append(_ERROR_NOISE.sub("", str(error.str())))

    admin = admin_factory({**confluent_config(kafka), "logger": _SILENT, "error_cb": on_error})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        admin.poll(0)  # serves error_cb with what librdkafka saw meanwhile
        specific = [r for r in reasons if not r.endswith("brokers are down")]
        reason = (specific or reasons or [str(exc.args[0].str())])[0]
        servers = str(confluent_config(kafka)["bootstrap.servers"])
        raise BrokerUnavailableError(servers, reason, timeout) from None


def _existing_partitions(admin: AdminClient, timeout: float) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(f"cannot list topics: {exc}") from None
    return {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}


def _topic_config(admin: AdminClient, topic: str, key: str, timeout: float) -> str | None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(f"cannot describe topic {topic!r}: {exc}") from None
    entry = configs.get(key)
    return None if entry is None or entry.value is None else str(entry.value)


def _shortfalls(
    admin: AdminClient, needs: Sequence[RetentionNeed], existing: set[str], timeout: float
) -> list[RetentionShortfall]:
    """The existing topics among ``needs`` whose ``retention.ms`` is below the need.

    -1 (keep forever) never is; a topic whose description has no ``retention.ms`` entry is not
    reported (there is nothing to compare; Kafka always reports the entry)."""
    found = []
    for need in needs:
        if need.name not in existing:
            continue
        value = _topic_config(admin, need.name, "retention.ms", timeout)
        if value is None:
            continue
        retention_ms = int(value)
        if 0 <= retention_ms < need.needed_ms:
            found.append(RetentionShortfall(need, retention_ms))
    return found


def check_retention(
    kafka: KafkaSettings,
    settings: Settings,
    *,
    timeout: float = 10.0,
    admin_factory: Callable[[dict[str, Any]], AdminClient] = AdminClient,
) -> list[RetentionShortfall]:
    """The existing input and summaries topics that keep less than ``settings`` need.

    Topics that do not exist are not reported (``driftline topics create`` makes them).
    Raises :class:`TopicError` when the broker cannot be asked.
    """
    admin = admin_factory(confluent_config(kafka))
    existing = set(_existing_partitions(admin, timeout))
    return _shortfalls(admin, retention_needs(settings), existing, timeout)


def missing_topics(
    kafka: KafkaSettings,
    names: Sequence[str],
    *,
    timeout: float = 10.0,
    admin_factory: Callable[[dict[str, Any]], AdminClient] = AdminClient,
) -> list[str]:
    """The topics of ``names`` that do not exist, in the order given. Raises
    :class:`TopicError` when the broker cannot be asked."""
    existing = _existing_partitions(admin_factory(confluent_config(kafka)), timeout)
    return [name for name in names if name not in existing]


def create_topics(
    kafka: KafkaSettings,
    topics: TopicSettings,
    *,
    timeout: float = 30.0,
    admin_factory: Callable[[dict[str, Any]], AdminClient] = AdminClient,
    settings: Settings | None = None,
) -> list[TopicOutcome]:
    """Create every missing topic; idempotent.

    Refuses, before creating anything, when predictions and ground truth both exist with
    different partition counts (the join could not work), when an existing ``models`` topic
    is not compacted (reference profiles would expire) or when an existing input or summaries
    topic keeps its records for less than ``settings`` need (:func:`retention_needs`; default
    settings when None): a restart would judge windows on incomplete panes. When only one of
    the pair exists, the other is created with its partition count, not the configured one.
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
    settings = settings or Settings.model_construct()
    specs = topic_specs(topics, input_partitions=n_pred or n_truth, settings=settings)
    short = _shortfalls(admin, retention_needs(settings, topics), set(existing), timeout)
    if short:
        raise TopicError("; ".join(str(s) for s in short))
    if topics.models in existing:
        policy = _topic_config(admin, topics.models, "cleanup.policy", timeout)
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
