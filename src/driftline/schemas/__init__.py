"""The event contract (DESIGN §2): input events, output records and reference profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from driftline.schemas.events import (
    GroundTruthEvent,
    PredictionEvent,
    Task,
    event_json_schemas,
    parse_timestamp,
    to_epoch_ms,
)
from driftline.schemas.ids import stable_id
from driftline.schemas.model_version import ModelVersionMetadata, metadata_json_schemas
from driftline.schemas.outputs import (
    DeadLetter,
    DriftAlert,
    ModelVersionRegistered,
    Reason,
    ReasonKind,
    RetrainRequest,
    RolloutDecision,
    TrainingOutcome,
    output_json_schemas,
)
from driftline.schemas.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from driftline.schemas.wire import (
    WireGroundTruth,
    WirePrediction,
    decode_ground_truth,
    decode_prediction,
    event_time_ms,
)

__all__ = [
    "CategoricalProfile",
    "DeadLetter",
    "DriftAlert",
    "GroundTruthEvent",
    "ModelVersionMetadata",
    "ModelVersionRegistered",
    "NumericProfile",
    "PredictionEvent",
    "Reason",
    "ReasonKind",
    "ReferenceProfile",
    "RetrainRequest",
    "RolloutDecision",
    "Task",
    "TrainingOutcome",
    "WireGroundTruth",
    "WirePrediction",
    "decode_ground_truth",
    "decode_prediction",
    "event_time_ms",
    "json_schemas",
    "parse_timestamp",
    "render_json_schemas",
    "stable_id",
    "to_epoch_ms",
]


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every public JSON Schema, keyed by file stem (``prediction-event`` ...)."""
    return {**event_json_schemas(), **output_json_schemas(), **metadata_json_schemas()}


def render_json_schemas() -> dict[str, str]:
    """File name to file text, exactly as committed in the repository's ``schemas/`` folder."""
    return {
        f"{stem}.schema.json": json.dumps(
            {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema},
            indent=2,
            sort_keys=True,
        )
        + "\n"
        for stem, schema in json_schemas().items()
    }


def write_json_schemas(directory: Path) -> list[Path]:
    """Write every schema file into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_json_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
