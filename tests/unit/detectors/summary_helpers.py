"""A reference profile and rows of events, shared by the tests of the pane summary's parts."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import orjson

from driftline.detectors.batch import ColumnBatch
from driftline.detectors.profile import build_profile
from driftline.schemas import ReferenceProfile

RNG_SEED = 20261122


def make_reference(n: int = 2_000, seed: int = RNG_SEED) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    p1 = rng.uniform(size=n)
    return {
        "features": {
            "amount": rng.lognormal(3.0, 1.0, size=n),
            "age": rng.integers(18, 90, size=n),
            "country": rng.choice(["FR", "DE", "IT", "ES"], p=[0.4, 0.3, 0.2, 0.1], size=n),
        },
        "prediction": (p1 > 0.5).astype(int),
        "scores": {"0": 1.0 - p1, "1": p1},
    }


REF_DATA = make_reference()
PROFILE = build_profile(
    "fraud",
    "3",
    "binary",
    REF_DATA["features"],
    REF_DATA["prediction"],
    scores=REF_DATA["scores"],
    feature_types={"age": "numeric"},
    bins=20,
    top_k=3,  # ES becomes "other" in the reference
)


def batch_of(rows: list[dict[str, Any]], profile: ReferenceProfile = PROFILE) -> ColumnBatch:
    """A batch from row dicts: feature values, prediction, scores and time."""
    names = list(profile.features)
    return ColumnBatch.from_columns(
        profile,
        {name: [r.get(name) for r in rows] for name in names},
        [r["prediction"] for r in rows],
        scores={c: [r.get("scores", {}).get(c) for r in rows] for c in profile.scores},
        event_time_ms=[r["t"] for r in rows],
    )


def event_bytes(i: int, features: dict[str, Any], prediction: Any, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{i}",
            "prediction_id": f"p{i}",
            "model": "fraud",
            "model_version": "3",
            "timestamp": 1_700_000_000_000 + i,
            "features": features,
            "prediction": prediction,
            **extra,
        }
    )


def bin_counts_oracle(edges: list[float], values: list[float]) -> list[int]:
    """Counts over (-inf, e0), [e0, e1), ..., [e_last, inf) by direct comparison."""
    bounds = [-math.inf, *edges, math.inf]
    return [sum(1 for v in values if lo <= v < hi) for lo, hi in itertools.pairwise(bounds)]
