"""Stage 1's Prometheus metrics (names prefixed ``driftline_ingest_``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["IngestTelemetry"]


class IngestTelemetry:
    """Counters of stage 1 (names prefixed ``driftline_ingest_``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        p = "driftline_ingest"
        self.events_in = Counter(f"{p}_events", "Input messages consumed", ["topic"], registry=r)
        self.predictions = Counter(f"{p}_predictions", "Predictions folded", registry=r)
        self.labels = Counter(f"{p}_labels", "Ground-truth events accepted", registry=r)
        self.joined = Counter(f"{p}_joined", "Predictions joined with their label", registry=r)
        self.dead_letters = Counter(
            f"{p}_dead_letters", "Invalid events sent to the DLQ", registry=r
        )
        self.duplicates = Counter(f"{p}_duplicates", "Duplicate events dropped", registry=r)
        self.too_late = Counter(f"{p}_too_late", "Events older than every open window", registry=r)
        self.shadow_pairs = Counter(
            f"{p}_shadow_pairs",
            "Shadow predictions paired with their champion through the label they share",
            registry=r,
        )
        self.shadows_unpaired = Counter(
            f"{p}_shadows_unpaired",
            "Shadow predictions that came after their champion joined its label (or were held "
            "for their version's profile when it came): never paired",
            registry=r,
        )
        self.shadow_pairs_unscored = Counter(
            f"{p}_shadow_pairs_unscored",
            "Shadow pairs left out of the rollout evidence: the rollout metric cannot score them",
            registry=r,
        )
        self.unlabelled = Counter(
            f"{p}_never_labelled",
            "Predictions whose label did not arrive within the TTL",
            registry=r,
        )
        self.panes_emitted = Counter(
            f"{p}_partials_emitted", "Pane partials sent to stage 2", registry=r
        )
        self.sink_errors = Counter(f"{p}_sink_errors", "Failed deliveries", ["sink"], registry=r)
        self.partitions = Gauge(f"{p}_partitions", "Input partition numbers owned", registry=r)
        self.applied_offset = Gauge(
            f"{p}_applied_offset",
            "Next input offset to apply (compare with the end offset)",
            ["topic", "partition"],
            registry=r,
        )
        self.committed_offset = Gauge(
            f"{p}_committed_offset",
            "Offset last committed to Kafka",
            ["topic", "partition"],
            registry=r,
        )
        self.last_poll = Gauge(f"{p}_last_poll_seconds", "Unix time of the last poll", registry=r)
        self.messages_out = Counter(
            f"{p}_messages_out", "Records produced, per topic", ["topic"], registry=r
        )
        self.restoring = Gauge(
            f"{p}_restoring",
            "1 while a partition's store is rebuilt from the input topics",
            ["partition"],
            registry=r,
        )
        self.restored = Counter(
            f"{p}_restored_outputs",
            "Dead letters and joined examples not sent again while rebuilding a store",
            registry=r,
        )
        self.unknown_models = Gauge(
            f"{p}_unknown_models",
            "Models not configured under models that this process tracks (models_policy)",
            registry=r,
        )
        self.store_keys = Gauge(
            f"{p}_store_keys",
            "Keys in a partition's RocksDB store (RocksDB's estimate): join entries, partials",
            ["partition"],
            registry=r,
        )
        self.store_bytes = Gauge(
            f"{p}_store_bytes",
            "Bytes of a partition's RocksDB store (live SST files + memtables)",
            ["partition"],
            registry=r,
        )
