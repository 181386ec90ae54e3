"""The committed JSON Schemas are exactly what the models generate, and they mean it."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from driftline.schemas import render_json_schemas
from tests.unit.schemas.test_contract import PREDICTION

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"


@pytest.mark.parametrize("name", sorted(render_json_schemas()))
def test_committed_schema_matches_the_models(name: str) -> None:
    committed = SCHEMA_DIR / name
    assert committed.exists(), f"{committed} is missing: run `driftline schemas write`"
    assert committed.read_text(encoding="utf-8") == render_json_schemas()[name], (
        f"{name} drifted from the models: run `driftline schemas write` and commit the result"
    )


def test_no_stale_schema_files_are_committed() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(render_json_schemas())


def test_prediction_schema_forbids_unknown_fields_and_requires_the_contract() -> None:
    schema = json.loads(render_json_schemas()["prediction-event.schema.json"])
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {
        "event_id",
        "prediction_id",
        "model",
        "model_version",
        "timestamp",
        "features",
        "prediction",
    }
    # The rollout fields (issue 16) are optional: an event without them is a champion's.
    assert set(schema["properties"]) == set(orjson.loads(orjson.dumps(PREDICTION))) | {
        "role",
        "shadow_of",
    }
