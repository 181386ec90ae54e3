"""What the trainer's example store costs: bytes on disk per example, and records stored per second.

Fills an :class:`~driftline.trainer.examples.ExampleStore` with ``--rows`` joined examples of
one model, as stage 1 sends them to ``driftline.labeled`` (the SEA stream's three numeric
features, and a stream of ``--wide`` (50) numeric features with the same fields otherwise), in
batches of ``--batch`` records, then flushes and compacts the store and divides its live SST
bytes (RocksDB, zstd) by the examples kept. It also states the same for a store past its
``max_rows`` bound, which holds its bound. Run: ``python benchmarks/trainer_store.py``.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson

from common.report import Column, Table, parser
from driftline.testing.synthetic import sea_events
from driftline.trainer.examples import ExampleStore, LabeledRecord

NOW = 2_000_000_000_000


def _sea_records(n: int) -> list[bytes]:
    out = []
    for event in sea_events(n, seed=11):
        truth = event.ground_truth
        out.append(
            orjson.dumps(
                {
                    "id": "l-" + event.prediction["prediction_id"],
                    "label": truth["label"],
                    "label_event_id": truth["event_id"],
                    "label_time": truth["timestamp"],
                    "prediction_time": event.prediction["timestamp"],
                    **event.prediction,
                }
            )
        )
    return out


def _wide_records(n: int, features: int) -> list[bytes]:
    rng = np.random.default_rng(5)
    values = rng.normal(size=(n, features))
    out = []
    for i in range(n):
        p = float(rng.uniform())
        out.append(
            orjson.dumps(
                {
                    "id": f"{i:032x}",
                    "label": int(rng.uniform() < 0.5),
                    "label_event_id": f"t-{i}",
                    "label_time": 1_767_225_660_000 + i * 100,
                    "prediction_time": 1_767_225_600_000 + i * 100,
                    "event_id": f"p-{i}",
                    "prediction_id": f"{i:032x}",
                    "model": "wide",
                    "model_version": "1",
                    "timestamp": 1_767_225_600_000 + i * 100,
                    "features": {f"f{k:02d}": float(v) for k, v in enumerate(values[i])},
                    "prediction": int(p >= 0.5),
                    "scores": {"0": 1.0 - p, "1": p},
                }
            )
        )
    return out


def _measure(
    path: Path, values: list[bytes], batch: int, max_rows: int
) -> tuple[int, float, float]:
    store = ExampleStore(path, max_rows=max_rows, max_age=timedelta(days=3650))
    start = time.perf_counter()
    for i in range(0, len(values), batch):
        records = [LabeledRecord(0, i + j, v) for j, v in enumerate(values[i : i + batch])]
        store.apply(records, now_ms=NOW)
    seconds = time.perf_counter() - start
    kept = sum(store.count(model) for model in store.models())
    size = store.disk_bytes()
    store.close()
    return kept, size / kept, len(values) / seconds


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--rows", type=int, default=100_000)
    args.add_argument("--wide", type=int, default=50)
    args.add_argument("--batch", type=int, default=1000)
    options = args.parse_args()
    table = Table(
        Column("examples", 30, align="<"),
        Column("kept", 9, ",.0f"),
        Column("bytes/example", 14, ",.0f"),
        Column("record bytes", 13, ",.0f"),
        Column("records/s", 11, ",.0f"),
    )
    print(table.header())
    cases = [
        ("SEA, 3 features", _sea_records(options.rows)),
        (f"{options.wide} features", _wide_records(options.rows, options.wide)),
    ]
    with tempfile.TemporaryDirectory() as directory:
        for i, (name, values) in enumerate(cases):
            mean_record = sum(map(len, values)) / len(values)
            for bound, label in ((options.rows, ""), (options.rows // 4, ", max_rows 1/4")):
                kept, per_example, rate = _measure(
                    Path(directory) / f"{i}-{bound}", values, options.batch, bound
                )
                print(table.row(name + label, kept, per_example, mean_record, rate))


if __name__ == "__main__":
    main()
