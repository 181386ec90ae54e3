"""driftline's settings: one frozen tree, from a YAML file plus ``DRIFTLINE_…`` overrides.

Precedence, strongest first: constructor arguments, environment variables (``DRIFTLINE_`` prefix,
``__`` between levels, e.g. ``DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS``), the YAML file, defaults.
Secrets are :class:`~pydantic.SecretStr` and print masked.

Each section is a module of its own (:mod:`driftline.config.kafka`, :mod:`driftline.config.models`,
…); this module holds the root :class:`Settings` and names every section's public class, so
``from driftline.config.settings import X`` works for all of them.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftline.config.base import (
    Duration,
    PositiveDuration,
    Section,
    format_duration,
    parse_duration,
)
from driftline.config.influx import InfluxSettings
from driftline.config.kafka import KafkaSettings
from driftline.config.models import (
    CategoricalTest,
    ClassificationMetric,
    DriftSettings,
    ModelConfig,
    MultivariateSettings,
    NumericTest,
    PerformanceSettings,
    QualitySettings,
    RegressionMetric,
    RetrainSettings,
    RolloutSettings,
    SegmentSettings,
    TrainingSettings,
    WindowSpec,
)
from driftline.config.monitor import HealthSettings, LimitsSettings, ModelsPolicy, MonitorSettings
from driftline.config.topics import TopicSettings
from driftline.config.trainer import RegistrySettings, TrainerSettings
from driftline.schemas.events import Task

__all__ = [
    "CategoricalTest",
    "ClassificationMetric",
    "DriftSettings",
    "Duration",
    "HealthSettings",
    "InfluxSettings",
    "KafkaSettings",
    "LimitsSettings",
    "ModelConfig",
    "ModelsPolicy",
    "MonitorSettings",
    "MultivariateSettings",
    "NumericTest",
    "PerformanceSettings",
    "PositiveDuration",
    "QualitySettings",
    "RegistrySettings",
    "RegressionMetric",
    "RetrainSettings",
    "RolloutSettings",
    "Section",
    "SegmentSettings",
    "Settings",
    "TopicSettings",
    "TrainerSettings",
    "TrainingSettings",
    "WindowSpec",
    "format_duration",
    "parse_duration",
]


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

    def examples(self, name: str) -> bool:
        """Whether stage 1 makes joined examples of model ``name`` (``retrain.examples``;
        by default, when the trainer retrains it: it is configured and its retrain policy is
        not ``never``).

        >>> s = Settings(models={"fraud": {"task": "binary"},
        ...                      "churn": {"task": "binary", "retrain": {"policy": "never"}},
        ...                      "ads": {"task": "binary", "retrain": {"policy": "never",
        ...                                                        "examples": True}}})
        >>> [s.examples(name) for name in ("fraud", "churn", "ads", "unconfigured")]
        [True, False, True, False]
        """
        configured = self.models.get(name)
        if configured is None:
            return False
        retrain = configured.retrain
        return retrain.policy != "never" if retrain.examples is None else retrain.examples

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
