"""driftline's settings: one frozen tree, from a YAML file plus ``DRIFTLINE_…`` overrides.

Precedence, strongest first: constructor arguments, environment variables (``DRIFTLINE_`` prefix,
``__`` between levels, e.g. ``DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS``), the YAML file, defaults.
Secrets are :class:`~pydantic.SecretStr` and print masked.
"""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftline.config.secrets import is_secret_key
from driftline.schemas.events import Task
from driftline.schemas.limits import DEFAULT_LIMITS, Limits

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(value: object) -> timedelta:
    """A duration from ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"7d"``, ``"2w"`` or seconds.

    >>> parse_duration("90s"), parse_duration("1.5h")
    (datetime.timedelta(seconds=90), datetime.timedelta(seconds=5400))
    >>> parse_duration(2)
    datetime.timedelta(seconds=2)
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(
            "expected a duration: a number of seconds or a string such as "
            "500ms, 30s, 5m, 1h, 7d, 2w"
        )
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact form of a duration, as :func:`parse_duration` reads it.

    >>> format_duration(timedelta(hours=1)), format_duration(timedelta(milliseconds=1500))
    ('1h', '1500ms')
    """
    ms = round(value.total_seconds() * 1000)
    for unit, factor in (
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ):
        if ms and ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern}),
]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
"""A :data:`Duration` above zero (limits and timeouts)."""

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class Section(BaseModel):
    """Base of every settings section: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class KafkaSettings(Section):
    """How every driftline client connects to Kafka (:mod:`driftline.kafka_auth` maps it to
    each client library's settings)."""

    bootstrap_servers: str = Field("localhost:9092", min_length=1)
    client_id: str = Field("driftline", min_length=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    replication_factor: int = Field(1, ge=1, le=32)
    librdkafka: dict[str, str | int | float | bool | SecretStr] = Field(
        default_factory=dict,
        description="Extra librdkafka properties, passed as they are to every confluent-kafka "
        "client; the security ones stage 2 (aiokafka) understands reach it too, any other "
        "security one stops stage 2 at start-up (driftline.kafka_auth). Values of secret "
        "keys (driftline.config.secrets.is_secret_key) are kept as secrets, printed masked.",
    )

    @field_validator("librdkafka")
    @classmethod
    def _secret_values(
        cls, value: dict[str, str | int | float | bool | SecretStr]
    ) -> dict[str, str | int | float | bool | SecretStr]:
        return {
            key: SecretStr(str(item))
            if is_secret_key(key) and not isinstance(item, SecretStr)
            else item
            for key, item in value.items()
        }

    @model_validator(mode="after")
    def _security_complete(self) -> Self:
        if self.security_protocol.startswith("SASL"):
            missing = [
                name
                for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs {', '.join(missing)}"
                )
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError(
                "ssl_certificate_location and ssl_key_location go together: set both or neither"
            )
        return self


class InfluxSettings(Section):
    """Where metric points go: an InfluxDB v2 write API."""

    url: str = Field("http://localhost:8086", pattern=r"^https?://")
    org: str = Field("driftline", min_length=1)
    bucket: str = Field("driftline", min_length=1)
    token: SecretStr = SecretStr("")
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval: Duration = timedelta(seconds=1)
    timeout: Duration = timedelta(seconds=10)
    gzip: bool = True


class TopicSettings(Section):
    """Every topic driftline reads or writes (DESIGN §2), and how they are created."""

    predictions: str = "driftline.predictions"
    ground_truth: str = "driftline.ground-truth"
    dlq: str = "driftline.dlq"
    alerts: str = "driftline.alerts"
    retrain: str = "driftline.retrain"
    models: str = "driftline.models"
    metrics: str = "driftline.metrics"
    labeled: str = "driftline.labeled"
    summaries: str = "driftline.summaries"
    training: str = "driftline.training"
    rollout: str = "driftline.rollout"
    """RolloutDecision records of stage 2 (issue 16), key = model."""
    input_partitions: int = Field(
        6, ge=1, le=10_000, description="Partitions of predictions and ground-truth (equal)."
    )
    output_partitions: int = Field(
        3, ge=1, le=10_000, description="Partitions of the other topics (models has one)."
    )

    @model_validator(mode="after")
    def _names_valid_and_distinct(self) -> Self:
        names = self.names()
        for role, name in names.items():
            if not _TOPIC_NAME.match(name):
                raise ValueError(
                    f"{role}: {name!r} is not a valid Kafka topic name "
                    "(1-249 characters from A-Z a-z 0-9 . _ -)"
                )
        seen: dict[str, str] = {}
        for role, name in names.items():
            if name in seen:
                raise ValueError(f"{role} and {seen[name]} both name topic {name!r}")
            seen[name] = role
        return self

    def names(self) -> dict[str, str]:
        """Role to topic name, for every topic."""
        return {
            role: getattr(self, role)
            for role in (
                "predictions",
                "ground_truth",
                "dlq",
                "alerts",
                "retrain",
                "models",
                "metrics",
                "labeled",
                "summaries",
                "training",
                "rollout",
            )
        }


NumericTest = Literal["psi", "ks", "jensen_shannon", "wasserstein"]
CategoricalTest = Literal["chi2", "psi", "jensen_shannon"]
ClassificationMetric = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]
RegressionMetric = Literal["mae", "rmse", "r2"]
_LOWER_IS_BETTER = {"log_loss", "mae", "rmse"}


class WindowSpec(Section):
    """A window: tumbling when ``hop`` is absent, hopping (sliding by ``hop``) otherwise."""

    size: Duration
    hop: Duration | None = None

    @model_validator(mode="after")
    def _hop_fits(self) -> Self:
        if self.size <= timedelta(0):
            raise ValueError("size must be positive")
        if self.hop is not None and not timedelta(0) < self.hop <= self.size:
            raise ValueError("hop must be positive and at most the window size")
        return self


class DriftSettings(Section):
    """Which tests decide drift, their effect-size floors and the false-alarm budget."""

    numeric_test: NumericTest = "psi"
    categorical_test: CategoricalTest = "chi2"
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {
            "psi": 0.2,
            "ks": 0.1,
            "jensen_shannon": 0.1,
            "wasserstein": 0.1,
            "chi2": 0.1,
        },
        description="Effect-size floor per test (chi2: Cramér's V).",
    )
    correction: Literal["bh", "bonferroni"] = "bh"
    fdr: float = Field(0.05, gt=0.0, lt=1.0, description="False-discovery (or family) rate.")
    min_samples: int = Field(500, ge=1, description="Smallest window that may be judged.")
    persistence_k: int = Field(2, ge=1, description="Drift in k of the last n windows...")
    persistence_n: int = Field(3, ge=1, description="...raises the alert.")
    bins: int = Field(100, ge=10, le=1000, description="Fine quantile bins per feature.")

    @field_validator("thresholds")
    @classmethod
    def _known_tests(cls, value: dict[str, float]) -> dict[str, float]:
        known = {"psi", "ks", "jensen_shannon", "wasserstein", "chi2"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown test(s) {unknown}; allowed: {sorted(known)}")
        if any(v <= 0 for v in value.values()):
            raise ValueError("thresholds must be positive")
        return value

    @model_validator(mode="after")
    def _k_of_n(self) -> Self:
        if self.persistence_k > self.persistence_n:
            raise ValueError("persistence_k must be at most persistence_n")
        return self


class QualitySettings(Section):
    """Data-quality checks per feature: how far a rate may move before it is flagged."""

    missing_rate: float = Field(
        0.05, gt=0.0, le=1.0, description="Largest tolerated change of the missing-value rate."
    )
    out_of_range: float = Field(
        0.02, gt=0.0, le=1.0, description="Largest tolerated share outside the reference range."
    )
    unseen_categories: float = Field(
        0.05, gt=0.0, le=1.0, description="Largest tolerated excess of unseen categories."
    )


class PerformanceSettings(Section):
    """The metric that judges a model's realised performance, and when it is too low."""

    metric: ClassificationMetric | RegressionMetric | None = Field(
        None, description="Default: accuracy for classifiers, rmse for regression."
    )
    threshold: float | None = Field(
        None, description="Absolute limit: a floor, or a ceiling for log_loss, mae and rmse."
    )
    max_drop: float | None = Field(
        0.05, ge=0.0, description="Largest tolerated change from the reference baseline."
    )
    min_labels: int = Field(200, ge=1, description="Labels needed before a window is judged.")
    concept_detector: Literal[
        "adwin", "ddm", "eddm", "hddm_a", "hddm_w", "page_hinkley", "kswin"
    ] = "adwin"


class RetrainSettings(Section):
    """When evidence becomes a retraining request."""

    policy: Literal["never", "on_drift", "on_performance", "on_either", "on_both"] = (
        "on_performance"
    )
    cooldown: Duration = timedelta(hours=6)


_IMPORT_PATH = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"


class TrainingSettings(Section):
    """How the trainer retrains one model (``models.<name>.training``); how often is
    ``retrain.cooldown``."""

    trainer: str | None = Field(None, pattern=_IMPORT_PATH)
    """Import path (``"package.module:Name"``) of the model's trainer: a class or factory
    called with ``task=…``, or an object with ``fit(examples)``. None: river's default for
    the task (``driftline.trainer.builtin:RiverTrainer``)."""
    range: Literal["onset", "recent"] = "onset"
    """What a request trains on: ``onset``, the examples since the request's window start
    (the drift's onset); ``recent``, the newest ``recent_rows``. Both fall back to the newest
    ``trainer.min_train`` plus the holdout when too few."""
    recent_rows: int = Field(5000, ge=1, le=100_000_000)
    """Examples ``range: recent`` trains on (the holdout included)."""
    promote: Literal["if_better", "always"] = "if_better"
    """``if_better``: the candidate replaces the champion only when it beats it by more than
    ``margin`` on the holdout; ``always``: every candidate that trains is promoted."""
    margin: float = Field(0.0, ge=0.0, le=1e9)
    """How much the candidate must beat the champion by, in the units of the model's
    ``performance.metric`` (in its good direction: up for accuracy, down for RMSE)."""


class RolloutSettings(Section):
    """How a new version is rolled out (``models.<name>.rollout``, issue 16)."""

    mode: Literal["none", "shadow", "canary"] = "none"
    """``none``: a winning candidate replaces the champion at once; ``shadow``: it becomes the
    challenger and predicts beside the champion on every request, only the champion answering;
    ``canary``: it becomes the challenger and answers ``canary_share`` of the requests."""
    canary_share: float = Field(0.1, gt=0.0, lt=1.0)
    """Share of requests a canary answers (by a hash of the request key)."""
    min_labels: int = Field(500, ge=1)
    """Labelled predictions of the challenger needed before a decision."""
    max_labels: int = Field(100_000, ge=1)
    """Labelled predictions after which the rollout ends with ``on_end``."""
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    """Error rate of the sequential decision over all its looks."""
    margin: float = Field(0.0, ge=0.0, le=1e9)
    """How much better the challenger must be to be promoted, in the metric's units."""
    on_end: Literal["promote", "rollback"] = "rollback"
    """What an undecided rollout does at ``max_labels``."""


class ModelConfig(Section):
    """How one model is watched."""

    task: Task
    features: dict[str, Literal["numeric", "categorical"]] = Field(
        default_factory=dict, description="Feature types; empty means inferred from reference."
    )
    positive_class: str | None = Field(None, description="For binary tasks with string labels.")
    pane: Duration = timedelta(minutes=1)
    windows: list[WindowSpec] = Field(
        default_factory=lambda: [WindowSpec(size=timedelta(hours=1))], min_length=1
    )
    allowed_lateness: Duration = timedelta(minutes=5)
    idle_timeout: Duration = timedelta(seconds=30)
    warmup_events: int = Field(
        10_000, ge=0, description="Events to baseline a version with no reference; 0: never."
    )
    drift: DriftSettings = DriftSettings()
    quality: QualitySettings = QualitySettings()
    performance: PerformanceSettings = PerformanceSettings()
    retrain: RetrainSettings = RetrainSettings()
    training: TrainingSettings = TrainingSettings()
    rollout: RolloutSettings = RolloutSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.pane <= timedelta(0):
            raise ValueError("pane must be positive")
        for i, window in enumerate(self.windows):
            for name in ("size", "hop"):
                length = getattr(window, name)
                if length is not None and length % self.pane:
                    raise ValueError(
                        f"windows.{i}.{name} ({format_duration(length)}) must be a multiple "
                        f"of the pane ({format_duration(self.pane)})"
                    )
        metric = self.performance.metric
        if metric is not None:
            regression_metric = metric in ("mae", "rmse", "r2")
            if regression_metric != (self.task == "regression"):
                allowed = (
                    "mae, rmse, r2"
                    if self.task == "regression"
                    else "accuracy, precision, recall, f1, roc_auc, log_loss"
                )
                raise ValueError(
                    f"performance.metric {metric!r} does not fit task {self.task!r}; "
                    f"allowed: {allowed}"
                )
        return self

    @property
    def metric(self) -> str:
        """The performance metric in force (the configured one, or the task's default)."""
        if self.performance.metric is not None:
            return self.performance.metric
        return "rmse" if self.task == "regression" else "accuracy"

    @property
    def lower_is_better(self) -> bool:
        """Whether a smaller value of :attr:`metric` is better (log loss, MAE, RMSE)."""
        return self.metric in _LOWER_IS_BETTER


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


class TrainerSettings(Section):
    """The trainer's own state and bounds (``trainer:``); per-model choices are under
    ``models.<name>.training``, the cool-down between trainings is ``retrain.cooldown``."""

    store_dir: Path = Path("var/trainer")
    """Where the trainer keeps its state: the example store (``examples/``, RocksDB)."""
    max_examples_per_model: int = Field(100_000, ge=100, le=100_000_000)
    """Examples kept per model; past it the oldest go (see ``docs/benchmarks.md`` for the
    bytes an example costs on disk)."""
    max_example_age: PositiveDuration = timedelta(days=7)
    """Examples predicted longer than this before the model's newest one are dropped."""
    max_models: int = Field(100, ge=1, le=100_000)
    """Models the store keeps examples of; a new model beyond it is refused (counted, reason
    ``too_many_models``) until one's examples all age out."""
    max_example_bytes: int = Field(65_536, ge=1024, le=2**30)
    """A ``driftline.labeled`` record larger than this is not stored (reason ``too_large``)."""
    max_features: int = Field(1000, ge=1, le=1_000_000)
    """A record with more features than this is not stored (reason ``too_many_features``)."""
    max_clock_skew: PositiveDuration = timedelta(minutes=5)
    """A record predicted further ahead of the trainer's clock is not stored (``future``)."""
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """The share of the training range, newest first, held out to judge the candidate and
    the champion on (at least ``min_holdout``)."""
    min_holdout: int = Field(200, ge=1, le=10_000_000)
    """The fewest examples the holdout may have."""
    min_train: int = Field(500, ge=1, le=100_000_000)
    """The fewest examples a candidate may be trained on; with fewer stored (plus the
    holdout), the request is rejected."""
    timeout: PositiveDuration = timedelta(minutes=10)
    """How long one training may run before it is stopped and reported failed."""


class RegistrySettings(Section):
    """Where the model registry keeps every trained version (``driftline models …``).

    >>> RegistrySettings().root
    PosixPath('var/registry')
    """

    root: Path = Path("var/registry")
    """The registry's folder: ``<root>/<model>/<version>/`` holds a version's serialised model
    and metadata. Relative paths are relative to the working directory. Only the trainer (and
    people who promote or roll back) should be able to write here: a model is loaded only from
    this folder, and only when its bytes match the sha256 recorded at registration."""

    @field_validator("root")
    @classmethod
    def _not_empty(cls, value: Path) -> Path:
        if not str(value).strip() or str(value) == ".":
            raise ValueError("the registry root must name a folder, not the working directory")
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a folder")
        return value


class Settings(BaseSettings):
    """Everything driftline is configured with. Frozen.

    >>> s = Settings(kafka={"bootstrap_servers": "broker:9092"},
    ...              models={"fraud": {"task": "binary", "pane": "30s"}})
    >>> s.kafka.bootstrap_servers, s.models["fraud"].pane.total_seconds()
    ('broker:9092', 30.0)
    """

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        protected_namespaces=(),
    )

    kafka: KafkaSettings = KafkaSettings()
    influxdb: InfluxSettings = InfluxSettings()
    topics: TopicSettings = TopicSettings()
    monitor: MonitorSettings = MonitorSettings()
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    models_policy: ModelsPolicy = ModelsPolicy()
    trainer: TrainerSettings = TrainerSettings()
    registry: RegistrySettings = RegistrySettings()
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def model(self, name: str, task: Task = "binary") -> ModelConfig:
        """How model ``name`` is watched: its configuration, else the defaults for ``task``.

        The defaults' timing fields (pane, windows, lateness, idle timeout, warm-up) do not
        depend on the task, so a caller that needs only those may leave ``task`` out.

        >>> s = Settings(models={"fraud": {"task": "binary", "pane": "30s"}})
        >>> s.model("fraud").pane.total_seconds(), s.model("churn", "multiclass").task
        (30.0, 'multiclass')
        """
        configured = self.models.get(name)
        return configured if configured is not None else _default_model(task)

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        if any(not name.strip() for name in value):
            raise ValueError("model names must not be empty")
        return value


@functools.cache
def _default_model(task: Task) -> ModelConfig:
    # Frozen, so one instance per task serves every unconfigured model.
    return ModelConfig(task=task)
