"""Stage-1 fold throughput against msgspec decoding of the same events.

Builds a reference profile for 20 numeric features (100 fine bins each) and a binary
classifier's prediction and scores, encodes random prediction events as the JSON producers
send, and measures in the same run, per batch size:

- decode: ``decode_prediction`` on every message (the baseline: ingest has to do this anyway);
- columns: ``columns_from_events`` on the decoded batch (events to arrays);
- fold: ``PaneSummary.fold`` of that batch (searchsorted + bincount per column);
- columns + fold, and decode + columns + fold, the whole stage-1 summary path.

Throughputs are events per second on one core (best of several repeats); the ratio says how
much slower summarising is than decoding alone. Run: ``python benchmarks/fold.py`` (or
``--events 20000 --repeats 2`` for a quick look).

What a segment key costs (``models.<m>.segments``): the same events tagged with 0, 1 or 2
segment keys of 12 values each, the profile recording the top 10 per key (so 11 parts per
key: 10 values and ``other``), folded with ``PaneSummary.fold_events`` (stage 1's path) in
batches of 1,000 and 10,000; printed: microseconds per event and the pane partial's bytes.
And what it costs per labelled pair (the performance partial's segment slices, as stage 1
folds joined pairs), with the performance partial's bytes.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import msgspec
import numpy as np

from common.report import Column, Table, best_seconds, parser
from common.stage1 import Stage1
from common.synthetic import binary_profile, prediction_json
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.summary import PaneSummary
from driftline.schemas import decode_prediction
from driftline.schemas.reference import ReferenceProfile

N_FEATURES = 20
BATCH_SIZES = (1_000, 10_000)
EVENTS = 100_000
REPEATS = 5


def _events(n: int, rng: np.random.Generator) -> list[bytes]:
    values = rng.normal(size=(n, N_FEATURES)).round(6)
    scores = rng.uniform(size=n).round(6)
    return [
        prediction_json(
            event_id=f"e-{i}",
            prediction_id=f"p-{i}",
            model="bench",
            version="1",
            timestamp=1_700_000_000_000 + i,
            features={f"f{j}": float(values[i, j]) for j in range(N_FEATURES)},
            p=float(scores[i]),
            digits=6,
        )
        for i in range(n)
    ]


SEGMENT_VALUES = 12
SEGMENT_TOP_K = 10


def _segment_cost(
    profile: ReferenceProfile, messages: list[bytes], rng: np.random.Generator, repeats: int
) -> None:
    """Fold cost and partial size per number of segment keys."""
    decoded = [decode_prediction(m) for m in messages]
    table = Table(
        Column("batch", 7, ","),
        Column("segment keys", 13, ","),
        Column("parts", 6, ","),
        Column("us/event", 9, ".2f"),
        Column("vs none", 8, ".2f", suffix="x"),
        Column("partial bytes", 14, ","),
    )
    print("\nsegment keys, top 10 of 12 values each, fold_events")
    print(table.header())
    base = math.nan
    for size, n_keys in itertools.product(BATCH_SIZES, (0, 1, 2)):
        keys = [f"k{j}" for j in range(n_keys)]
        values = rng.integers(0, SEGMENT_VALUES, size=(len(decoded), max(n_keys, 1)))
        events = [
            msgspec.structs.replace(
                e, segments={k: f"v{values[i, j]}" for j, k in enumerate(keys)} or None
            )
            for i, e in enumerate(decoded)
        ]
        segmented = profile.model_copy(
            update={"segments": {k: [f"v{v}" for v in range(SEGMENT_TOP_K)] for k in keys}}
        )
        batches = [events[i : i + size] for i in range(0, len(events), size)]

        def fold(
            profile: ReferenceProfile = segmented, batches: list[list[Any]] = batches
        ) -> PaneSummary:
            summary = PaneSummary(profile)
            for batch in batches:
                summary.fold_events(batch)
            return summary

        per_event = best_seconds(fold, repeats) / len(events) * 1e6
        base = per_event if n_keys == 0 else base
        summary = fold()
        size_bytes = len(summary.to_bytes())
        ratio = per_event / base
        print(table.row(size, n_keys, len(summary.segments), per_event, ratio, size_bytes))


def _segment_performance_cost(
    profile: ReferenceProfile, n: int, rng: np.random.Generator, repeats: int
) -> None:
    """Fold cost and partial size of the labelled pairs' performance summary per number of
    segment keys (``fold`` then ``fold_segments``, as stage 1 folds joined pairs)."""
    table = Table(
        Column("batch", 7, ","),
        Column("segment keys", 13, ","),
        Column("parts", 6, ","),
        Column("us/pair", 9, ".2f"),
        Column("vs none", 8, ".2f", suffix="x"),
        Column("partial bytes", 14, ","),
    )
    print("\nperformance per segment, top 10 of 12 values each, fold + fold_segments")
    print(table.header())
    p = rng.uniform(size=n)
    guesses = (p > 0.5).astype(int)
    labels = (rng.uniform(size=n) < p).astype(int)
    scores = {"0": 1.0 - p, "1": p}
    delays = rng.integers(0, 600_000, size=n)
    base = math.nan
    for size, n_keys in itertools.product(BATCH_SIZES, (0, 1, 2)):
        keys = [f"k{j}" for j in range(n_keys)]
        values = rng.integers(0, SEGMENT_VALUES, size=(n, max(n_keys, 1)))
        tags = [{k: f"v{values[i, j]}" for j, k in enumerate(keys)} or None for i in range(n)]
        tracked = {k: [f"v{v}" for v in range(SEGMENT_TOP_K)] for k in keys}
        rows = [slice(i, i + size) for i in range(0, n, size)]

        def fold(
            tracked: dict[str, list[str]] = tracked,
            tags: list[Any] = tags,
            rows: list[slice] = rows,
        ) -> PerformanceSummary:
            summary = PerformanceSummary.from_profile(profile)
            for r in rows:
                part = {c: v[r] for c, v in scores.items()}
                summary.fold(labels[r], guesses[r], part, delays[r])
                summary.fold_segments(tracked, tags[r], labels[r], guesses[r], part, delays[r])
            return summary

        per_pair = best_seconds(fold, repeats) / n * 1e6
        base = per_pair if n_keys == 0 else base
        summary = fold()
        size_bytes = len(summary.to_bytes())
        ratio = per_pair / base
        print(table.row(size, n_keys, len(summary.segments), per_pair, ratio, size_bytes))


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--events", type=int, default=EVENTS)
    options.add_argument("--repeats", type=int, default=REPEATS)
    args = options.parse_args()
    events, repeats = args.events, args.repeats
    rng = np.random.default_rng(7)
    ref = rng.normal(size=(20_000, N_FEATURES))
    p = rng.uniform(size=20_000)
    profile = binary_profile("bench", "1", {f"f{j}": ref[:, j] for j in range(N_FEATURES)}, p)
    messages = _events(events, rng)
    print(f"{events:,} events, {N_FEATURES} numeric features, 100 bins, binary scores")
    table = Table(
        Column("batch", 7, ","),
        Column("stage", 24, align="<"),
        Column("events/s", 12, ",.0f"),
        Column("vs decode", 10, ".2f", suffix="x"),
    )
    print(table.header())
    for size in BATCH_SIZES:
        stage1 = Stage1(profile, messages, size)
        baseline = events / best_seconds(stage1.decode, repeats)
        print(table.row(size, "decode (baseline)", baseline, 1.0))
        for name, step in (
            ("columns", stage1.to_columns),
            ("fold", stage1.fold),
            ("columns + fold", stage1.columns_and_fold),
            ("decode + columns + fold", stage1.everything),
        ):
            rate = events / best_seconds(step, repeats)
            print(table.row(size, name, rate, rate / baseline))

    # What stage 2 handles per partial: its size, and the cost of decoding and merging it.
    summary = stage1.fold()
    data = summary.to_bytes()
    other = PaneSummary.from_bytes(data, profile)
    per_decode = (
        best_seconds(lambda: [PaneSummary.from_bytes(data, profile) for _ in range(100)], repeats)
        / 100
    )
    per_merge = best_seconds(lambda: [summary.merge(other) for _ in range(100)], repeats) / 100
    print(
        f"pane summary of {summary.n:,} events: {len(data):,} bytes; "
        f"from_bytes {per_decode * 1e6:,.0f} us, merge {per_merge * 1e6:,.0f} us"
    )
    _segment_cost(profile, messages, rng, repeats)
    _segment_performance_cost(profile, events, rng, repeats)


if __name__ == "__main__":
    main()
