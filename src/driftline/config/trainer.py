"""The ``trainer`` and ``registry`` sections: the trainer's bounds, the registry's folder."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator

from driftline.config.base import PositiveDuration, Section

__all__ = ["RegistrySettings", "TrainerSettings"]


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
