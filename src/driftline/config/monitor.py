"""The ``monitor`` and ``models_policy`` sections: the monitor's state, tuning, health, bounds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field

from driftline.config.base import Duration, PositiveDuration, Section
from driftline.schemas.limits import DEFAULT_LIMITS, Limits

__all__ = ["HealthSettings", "LimitsSettings", "ModelsPolicy", "MonitorSettings"]


class HealthSettings(Section):
    """When ``/healthz`` calls a part of the monitor unhealthy (any of them: the process)."""

    ingest_stall_after: PositiveDuration = timedelta(seconds=60)
    """Stage 1 has not polled Kafka for this long (a hung broker call, a dead loop)."""
    merge_stall_after: PositiveDuration = timedelta(seconds=30)
    """Stage 2's timer has not ticked for this long (a blocked faust event loop)."""
    writer_stall_after: PositiveDuration = timedelta(seconds=90)
    """The InfluxDB writer has not polled the metrics outbox for this long."""
    writer_failing_after: PositiveDuration = timedelta(seconds=60)
    """InfluxDB writes have failed without a success for this long."""


class LimitsSettings(Section):
    """How large one input event may be (``monitor.limits``): what exceeds a bound goes to the
    dead-letter topic (kind ``limit_exceeded``, the reason naming the setting), so no producer
    can grow stage 1's memory, store keys or output records without bound. The defaults are
    those the public contract (``schemas/*.schema.json``) states."""

    max_message_bytes: int = Field(DEFAULT_LIMITS.max_message_bytes, ge=1024, le=2**30)
    """A message's value, in bytes, checked before it is decoded."""
    max_features: int = Field(DEFAULT_LIMITS.max_features, ge=1, le=1_000_000)
    """Entries of an event's ``features``."""
    max_classes: int = Field(DEFAULT_LIMITS.max_classes, ge=2, le=1_000_000)
    """Entries of an event's ``scores`` (one per class)."""
    max_segments: int = Field(DEFAULT_LIMITS.max_segments, ge=0, le=10_000)
    """Entries of an event's ``segments``."""
    max_id_length: int = Field(DEFAULT_LIMITS.max_id_length, ge=1, le=65_536)
    """Characters of ``event_id`` and ``prediction_id``."""
    max_name_length: int = Field(DEFAULT_LIMITS.max_name_length, ge=1, le=4096)
    """Characters of ``model`` and ``model_version`` (they become store keys, InfluxDB tags
    and Prometheus labels)."""
    max_feature_name_length: int = Field(DEFAULT_LIMITS.max_feature_name_length, ge=1, le=4096)
    """Characters of a feature's or a segment's name."""
    max_string_length: int = Field(DEFAULT_LIMITS.max_string_length, ge=1, le=2**20)
    """Characters of a string value: a feature's, a segment's, a prediction, a label, a class
    name in ``scores``."""

    def limits(self) -> Limits:
        """These bounds as the decoders take them.

        >>> LimitsSettings(max_features=20).limits().max_features
        20
        """
        return Limits(**self.model_dump())


class MonitorSettings(Section):
    """The monitor worker's own state, group and tuning."""

    group_id: str = Field("driftline-monitor", min_length=1)
    state_dir: Path = Path("var/state")
    join_ttl: Duration = timedelta(days=7)
    metrics_port: int | None = Field(9464, ge=0, le=65535, description="Prometheus; None: off.")
    web_host: str = "127.0.0.1"
    batch_size: int = Field(5000, ge=1, le=1_000_000)
    """Messages stage 1 takes from Kafka per poll."""
    label_idle: PositiveDuration = timedelta(seconds=5)
    """Ground truth silent this long on a partition stops holding its watermark back (keep it
    well below the models' ``idle_timeout``): backfilled labels with old timestamps hold
    windows open only while they flow."""
    store_wal: bool = False
    """Stage 1's RocksDB write-ahead log. Off (the default, as Kafka Streams and Flink run
    RocksDB), a crash replays the inputs since the store's last memtable flush (up to ~64 MB
    per partition); on, only the last batch, at a cost per event (`docs/benchmarks.md`).
    Results are the same either way: the inputs are the store's changelog, and its families
    flush atomically, marks with data."""
    published_ids_max: int = Field(1_000_000, ge=1_000, le=100_000_000)
    """Ids of published alerts and retrain requests stage 2 remembers (read back from their
    topics at start-up and on each rebalance, about 100 bytes each) so that a restart sends
    none of them again; past it the oldest are forgotten. Keep it above the alerts and
    requests the summaries topic's retention can hold windows for."""
    max_output_bytes: int = Field(1_000_000, ge=10_000, le=100_000_000)
    """The largest record stage 2 produces (key, value and headers), and the largest warm-up
    baseline stage 1 publishes (one over it is not published: the events held for it go to
    the DLQ, kind ``output_too_large``). A window's metric points
    are split over as many outbox messages as this needs; a single record still over it (an
    alert, a retrain request, a point whose line alone is longer) goes to the DLQ instead, cut
    to fit (kind ``output_too_large``). Keep it at or below the broker's ``message.max.bytes``
    and the output topics' ``max.message.bytes`` (Kafka's defaults are about 1 MB)."""
    health: HealthSettings = HealthSettings()
    limits: LimitsSettings = LimitsSettings()
    max_clock_skew: PositiveDuration = timedelta(minutes=5)
    """How far ahead of stage 1's wall clock an event (prediction or label) may be dated;
    beyond it the event goes to the dead-letter topic (kind ``clock_skew``) instead of moving
    its partition's watermark past every event that follows."""


class ModelsPolicy(Section):
    """Which models the monitor tracks: every model name a producer sends costs state (held
    predictions, a warm-up baseline on the compacted models topic, summaries, Prometheus
    series), so names that are not configured under ``models`` are bounded here.

    An event of a model that is not admitted goes to the DLQ (kind ``unknown_model``, the
    reason naming the setting that refused it).
    """

    allow: Literal["listed", "any"] = "any"
    """``listed``: only the models configured under ``models`` are tracked. ``any``: other
    models too, with default settings, up to ``max_unknown`` of them at a time."""
    max_unknown: int = Field(1000, ge=0, le=1_000_000)
    """With ``allow: any``, how many models that ``models`` does not configure are tracked at
    a time by each stage-1 process (and labelled in each process's metrics); a new one beyond
    that is refused until a tracked one is forgotten."""
    unknown_ttl: PositiveDuration = timedelta(days=1)
    """An unconfigured model without traffic for this long (wall-clock time) is forgotten:
    its place goes to the next new one. Its stored state expires with the join TTL."""
