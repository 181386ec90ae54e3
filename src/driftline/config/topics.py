"""The ``topics`` section: every topic driftline reads or writes, and its partitions."""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, model_validator

from driftline.config.base import Section

__all__ = ["TopicSettings"]


_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


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
    rollout: str = Field(
        "driftline.rollout", description="Rollout decisions (issue 16), keyed by model."
    )
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
