"""How fast can one core turn a prediction event's bytes into a validated event?

Decoding runs once per event on ingest's hot path. Candidates, all held to the same contract
(the accept/reject suite in tests/unit/schemas runs the chosen one and the pydantic models):

* pydantic ``model_validate_json`` (the public models, validation in Rust),
* ``orjson.loads`` + pydantic ``model_validate`` on the dict,
* msgspec typed decoding into frozen structs (:func:`driftline.schemas.decode_prediction`),
  and the same with the default ``monitor.limits`` as constraints, as ingest decodes
  (:data:`driftline.schemas.wire.DEFAULT_DECODER`),
* ``orjson.loads`` alone, which validates nothing: the floor any validating decoder is compared to.

Prints events/s for each, the ratio to pydantic, and the choice.

    ./dev bench decode            # or: python benchmarks/decode.py --events 50000
"""

from __future__ import annotations

import random
import statistics
import uuid
from collections.abc import Callable

import orjson

from common.report import Column, Table, best_seconds, parser
from common.synthetic import prediction_json
from driftline.schemas import PredictionEvent, decode_prediction
from driftline.schemas.wire import DEFAULT_DECODER


def make_events(n: int, seed: int = 1) -> list[bytes]:
    """Realistic events: 15 numeric + 5 categorical features, scores, a segment."""
    rng = random.Random(seed)
    countries = ["FR", "DE", "US", "GB", "JP", "BR", "IN"]
    events = []
    for i in range(n):
        features: dict[str, object] = {f"num_{j}": rng.gauss(50, 20) for j in range(15)}
        features.update({f"cat_{j}": rng.choice(countries) for j in range(4)})
        features["is_member"] = rng.random() < 0.3
        p = rng.random()
        events.append(
            prediction_json(
                event_id=str(uuid.UUID(int=rng.getrandbits(128))),
                prediction_id=str(uuid.UUID(int=rng.getrandbits(128))),
                model="fraud",
                version="3",
                timestamp=f"2026-11-22T10:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}."
                f"{i % 1000:03d}+01:00",
                features=features,
                p=p,
                segments={"region": rng.choice(["eu", "us", "apac"])},
            )
        )
    return events


def _decode_all(decode: Callable[[bytes], object], events: list[bytes]) -> None:
    for data in events:
        decode(data)


def rate(decode: Callable[[bytes], object], events: list[bytes], repeats: int) -> float:
    """Best-of-``repeats`` events/s, after one warm-up pass."""
    _decode_all(decode, events[:1000])
    return len(events) / best_seconds(lambda: _decode_all(decode, events), repeats)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--events", type=int, default=50_000)
    options.add_argument("--repeats", type=int, default=5)
    args = options.parse_args()
    events = make_events(args.events)
    size = statistics.mean(len(e) for e in events)
    candidates: dict[str, Callable[[bytes], object]] = {
        "pydantic model_validate_json": PredictionEvent.model_validate_json,
        "orjson.loads + model_validate": lambda b: PredictionEvent.model_validate(orjson.loads(b)),
        "msgspec typed (decode_prediction)": decode_prediction,
        "msgspec typed, default limits": DEFAULT_DECODER.prediction,
        "orjson.loads only (no validation)": orjson.loads,
    }
    print(f"{args.events:,} events, {size:.0f} bytes each on average, best of {args.repeats}")
    results = {name: rate(fn, events, args.repeats) for name, fn in candidates.items()}
    baseline = results["pydantic model_validate_json"]
    table = Table(
        Column("approach", 36, align="<"),
        Column("events/s", 12, ",.0f"),
        Column("vs pydantic", 12, ".2f", suffix="x"),
    )
    print(table.header())
    for name, value in results.items():
        print(table.row(name, value, value / baseline))
    validating = {k: v for k, v in results.items() if "no validation" not in k}
    best = max(validating, key=validating.__getitem__)
    floor = results["orjson.loads only (no validation)"]
    print(f"chosen: {best} ({validating[best] / floor:.2f}x of parsing alone)")


if __name__ == "__main__":
    main()
