"""Write a prediction and a ground-truth file from one of river's synthetic drift streams.

The stream is river's SEA generator: three numeric features, a binary label given by
``x1 + x2 > threshold``. A concept drift switches the threshold at ``--drift-at`` (the
features keep their distribution: only the labels change), and ``--shift-at`` shifts the
distribution of x3 (data drift that does not touch the labels). The "model" is the rule of the
first concept, scoring with a logistic link, so its accuracy falls after the concept drift.

    python examples/river_stream.py out/  &&  driftline replay out/predictions.jsonl \\
        --ground-truth out/ground-truth.jsonl --config examples/river.yaml
"""

from __future__ import annotations

import argparse
import math
import uuid
from pathlib import Path

import orjson
from river.datasets import synth

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 100  # ten predictions a second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--drift-at", type=int, default=80_000, help="concept drift position")
    parser.add_argument("--shift-at", type=int, default=40_000, help="x3 mean shift position")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # SEA variant 0 (threshold 8) then variant 3 (threshold 9.5): same features, new labels.
    stream = synth.ConceptDriftStream(
        stream=synth.SEA(variant=0, noise=0.05, seed=args.seed),
        drift_stream=synth.SEA(variant=3, noise=0.05, seed=args.seed + 1),
        position=args.drift_at,
        width=1000,
        seed=args.seed,
    )
    with (
        (args.out / "predictions.jsonl").open("wb") as preds,
        (args.out / "ground-truth.jsonl").open("wb") as truths,
    ):
        for i, (x, y) in enumerate(stream.take(args.events)):
            features = {f"x{k + 1}": float(v) for k, v in enumerate(x.values())}
            if i >= args.shift_at:
                features["x3"] += 2.5  # data drift on a feature the model ignores
            margin = features["x1"] + features["x2"] - 8.0
            p = 1.0 / (1.0 + math.exp(-margin))
            prediction_id = str(uuid.UUID(int=i + 1))
            ts = START_MS + i * STEP_MS
            preds.write(
                orjson.dumps(
                    {
                        "event_id": f"p-{i}",
                        "prediction_id": prediction_id,
                        "model": "sea",
                        "model_version": "1",
                        "timestamp": ts,
                        "features": features,
                        "prediction": int(p >= 0.5),
                        "scores": {"0": 1.0 - p, "1": p},
                    }
                )
                + b"\n"
            )
            truths.write(
                orjson.dumps(
                    {
                        "event_id": f"t-{i}",
                        "prediction_id": prediction_id,
                        "timestamp": ts + 60_000,
                        "label": int(y),
                    }
                )
                + b"\n"
            )
    print(f"wrote {args.events} predictions and labels to {args.out}")


if __name__ == "__main__":
    main()
