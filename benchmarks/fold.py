"""Stage-1 fold throughput against msgspec decoding of the same events.

Builds a reference profile for 20 numeric features (100 fine bins each) and a binary
classifier's prediction and scores, encodes random prediction events as the JSON producers
send, and measures in the same run, per batch size:

- decode: ``decode_prediction`` on every message (the baseline: ingest has to do this anyway);
- columns: ``columns_from_events`` on the decoded batch (events to arrays);
- fold: ``PaneSummary.fold`` of that batch (searchsorted + bincount per column);
- columns + fold, and decode + columns + fold, the whole stage-1 summary path.

Throughputs are events per second on one core (best of several repeats); the ratio says how
much slower summarising is than decoding alone. Run: ``python benchmarks/fold.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import orjson

from driftline.detectors.batch import ColumnBatch, columns_from_events
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.schemas import WirePrediction, decode_prediction

N_FEATURES = 20
BATCH_SIZES = (1_000, 10_000)
EVENTS = 100_000
REPEATS = 5


def _events(n: int, rng: np.random.Generator) -> list[bytes]:
    values = rng.normal(size=(n, N_FEATURES)).round(6)
    scores = rng.uniform(size=n).round(6)
    out = []
    for i in range(n):
        p = float(scores[i])
        event = {
            "event_id": f"e-{i}",
            "prediction_id": f"p-{i}",
            "model": "bench",
            "model_version": "1",
            "timestamp": 1_700_000_000_000 + i,
            "features": {f"f{j}": float(values[i, j]) for j in range(N_FEATURES)},
            "prediction": int(p > 0.5),
            "scores": {"0": round(1.0 - p, 6), "1": p},
        }
        out.append(orjson.dumps(event))
    return out


def _best(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    rng = np.random.default_rng(7)
    ref = rng.normal(size=(20_000, N_FEATURES))
    p = rng.uniform(size=20_000)
    profile = build_profile(
        "bench",
        "1",
        "binary",
        {f"f{j}": ref[:, j] for j in range(N_FEATURES)},
        (p > 0.5).astype(int),
        scores={"0": 1.0 - p, "1": p},
        bins=100,
    )
    messages = _events(EVENTS, rng)
    print(f"{EVENTS:,} events, {N_FEATURES} numeric features, 100 bins, binary scores")
    print(f"{'batch':>7} {'stage':<24} {'events/s':>12} {'vs decode':>10}")
    for size in BATCH_SIZES:
        batches = [messages[i : i + size] for i in range(0, EVENTS, size)]
        decoded = [[decode_prediction(m) for m in b] for b in batches]
        columns = [columns_from_events(b, profile) for b in decoded]

        def decode(batches: list[list[bytes]] = batches) -> None:
            for b in batches:
                [decode_prediction(m) for m in b]

        def to_columns(decoded: list[list[WirePrediction]] = decoded) -> None:
            for b in decoded:
                columns_from_events(b, profile)

        def fold(columns: list[ColumnBatch] = columns) -> None:
            summary = PaneSummary(profile)
            for c in columns:
                summary.fold(c)

        def columns_and_fold(decoded: list[list[WirePrediction]] = decoded) -> None:
            summary = PaneSummary(profile)
            for b in decoded:
                summary.fold(columns_from_events(b, profile))

        def everything(batches: list[list[bytes]] = batches) -> None:
            summary = PaneSummary(profile)
            for b in batches:
                summary.fold(columns_from_events([decode_prediction(m) for m in b], profile))

        baseline = EVENTS / _best(decode)
        for name, fn in (
            ("decode (baseline)", decode),
            ("columns", to_columns),
            ("fold", fold),
            ("columns + fold", columns_and_fold),
            ("decode + columns + fold", everything),
        ):
            rate = baseline if fn is decode else EVENTS / _best(fn)
            print(f"{size:>7,} {name:<24} {rate:>12,.0f} {rate / baseline:>9.2f}x")

    # What stage 2 handles per partial: its size, and the cost of decoding and merging it.
    summary = PaneSummary(profile)
    for c in columns:
        summary.fold(c)
    data = summary.to_bytes()
    other = PaneSummary.from_bytes(data, profile)
    per_decode = _best(lambda: [PaneSummary.from_bytes(data, profile) for _ in range(100)]) / 100
    per_merge = _best(lambda: [summary.merge(other) for _ in range(100)]) / 100
    print(
        f"pane summary of {summary.n:,} events: {len(data):,} bytes; "
        f"from_bytes {per_decode * 1e6:,.0f} us, merge {per_merge * 1e6:,.0f} us"
    )


if __name__ == "__main__":
    main()
