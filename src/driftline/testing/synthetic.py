"""Synthetic traffic with known drift, from river's generators, for tests, examples and demos.

:func:`sea_events` draws river's SEA stream (three numeric features, label
``x1 + x2 > threshold``) with a concept change at ``drift_at`` (a new threshold: features
unchanged, labels move) and a data shift of ``x3`` at ``shift_at`` (a feature the model
ignores: distribution moves, labels do not). The "model" is the first concept's rule with a
logistic score, so its accuracy falls after the concept change and nowhere else.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from river.datasets import synth

from driftline.schemas.events import GroundTruthEvent, PredictionEvent

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 100  # ten predictions a second
LABEL_DELAY_MS = 60_000
X3_SHIFT = 2.5


@dataclass(frozen=True)
class SyntheticEvent:
    """A prediction and its ground truth, as the contract's JSON objects."""

    prediction: dict[str, Any]
    ground_truth: dict[str, Any]

    def events(self, model: str | None = None) -> tuple[PredictionEvent, GroundTruthEvent]:
        """The pair as validated contract events, ready for ``DriftlineProducer.send``;
        ``model`` renames the model (the ground truth names it too)."""
        name = model or self.prediction["model"]
        return (
            PredictionEvent.model_validate({**self.prediction, "model": name}),
            GroundTruthEvent.model_validate({**self.ground_truth, "model": name}),
        )


def sea_events(
    n: int,
    *,
    drift_at: int | None = None,
    shift_at: int | None = None,
    seed: int = 42,
    noise: float = 0.05,
    model: str = "sea",
    version: str = "1",
    start_ms: int = START_MS,
) -> Iterator[SyntheticEvent]:
    """``n`` predictions with their labels; event ``i`` is made at ``start_ms + i * 100 ms``."""
    first = synth.SEA(variant=0, noise=noise, seed=seed)
    if drift_at is None:
        stream: Any = first
    else:
        # SEA variant 3 moves the threshold from 8 to 9.5; width 1000 ~ a 100-second change.
        stream = synth.ConceptDriftStream(
            stream=first,
            drift_stream=synth.SEA(variant=3, noise=noise, seed=seed + 1),
            position=drift_at,
            width=1000,
            seed=seed,
        )
    for i, (x, y) in enumerate(stream.take(n)):
        features = {f"x{k + 1}": float(v) for k, v in enumerate(x.values())}
        if shift_at is not None and i >= shift_at:
            features["x3"] += X3_SHIFT
        p = 1.0 / (1.0 + math.exp(8.0 - features["x1"] - features["x2"]))
        prediction_id = str(uuid.UUID(int=(seed << 64) + i + 1))
        ts = start_ms + i * STEP_MS
        yield SyntheticEvent(
            prediction={
                "event_id": f"p-{seed}-{i}",
                "prediction_id": prediction_id,
                "model": model,
                "model_version": version,
                "timestamp": ts,
                "features": features,
                "prediction": int(p >= 0.5),
                "scores": {"0": 1.0 - p, "1": p},
            },
            ground_truth={
                "event_id": f"t-{seed}-{i}",
                "prediction_id": prediction_id,
                "timestamp": ts + LABEL_DELAY_MS,
                "label": int(y),
            },
        )


def write_sea_files(directory: Path, n: int, **options: Any) -> tuple[Path, Path]:
    """Write ``predictions.jsonl`` and ``ground-truth.jsonl``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    predictions, truths = directory / "predictions.jsonl", directory / "ground-truth.jsonl"
    with predictions.open("wb") as p_out, truths.open("wb") as t_out:
        for event in sea_events(n, **options):
            p_out.write(orjson.dumps(event.prediction) + b"\n")
            t_out.write(orjson.dumps(event.ground_truth) + b"\n")
    return predictions, truths
