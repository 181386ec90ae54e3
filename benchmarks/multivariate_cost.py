"""What multivariate drift costs stage 1: added bytes per pane and µs per event.

For numeric features standard normal with one correlated pair, builds the same reference profile
twice (``drift.multivariate`` on, at its defaults, and off), decodes random prediction events
as the JSON producers send, and measures in the same run, per feature count and batch size,
``PaneSummary.fold_events`` (stage 1's fold of decoded events: numeric features straight from
the feature dicts, and with multivariate on, the feature matrix built from them, its
reconstruction errors and their counts). Reports µs per event with and without, the difference,
and the pane partial's bytes with and without. Best of ``--repeats`` runs, one core. Run:
``python benchmarks/multivariate_cost.py`` (or ``--events 20000 --repeats 2``). On a machine
other jobs share, ``--clock cpu`` times the process's own CPU time instead of the wall clock,
so waiting for a core does not count (cache sharing still does).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from common.report import Column, Table, best_seconds, parser
from common.synthetic import prediction_json
from driftline.config.models import MultivariateSettings
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.schemas import decode_prediction
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.wire import WirePrediction

FEATURES = (5, 20, 50)
BATCH_SIZES = (1_000, 10_000)
EVENTS = 50_000
REPEATS = 5


def _matrix(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(size=(n, d))
    x[:, 1] = 0.8 * x[:, 0] + 0.6 * x[:, 1]
    return x


def _profile(d: int, rng: np.random.Generator, *, on: bool) -> ReferenceProfile:
    ref = _matrix(20_000, d, rng)
    p = rng.uniform(size=20_000)
    return build_profile(
        "bench",
        "1",
        "binary",
        {f"f{j}": ref[:, j] for j in range(d)},
        (p >= 0.5).astype(int),
        scores={"0": 1.0 - p, "1": p},
        multivariate=MultivariateSettings(enabled=on),
    )


def _events(n: int, d: int, rng: np.random.Generator) -> list[WirePrediction]:
    values = _matrix(n, d, rng).round(6)
    scores = rng.uniform(size=n).round(6)
    return [
        decode_prediction(
            prediction_json(
                event_id=f"e-{i}",
                prediction_id=f"p-{i}",
                model="bench",
                version="1",
                timestamp=1_700_000_000_000 + i,
                features={f"f{j}": float(values[i, j]) for j in range(d)},
                p=float(scores[i]),
                digits=6,
            )
        )
        for i in range(n)
    ]


def _best_cpu_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The least process CPU time ``fn()`` took over ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _fold(profile: ReferenceProfile, events: list[WirePrediction], size: int) -> PaneSummary:
    summary = PaneSummary(profile)
    for start in range(0, len(events), size):
        summary.fold_events(events[start : start + size])
    return summary


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--events", type=int, default=EVENTS)
    options.add_argument("--repeats", type=int, default=REPEATS)
    options.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = options.parse_args()
    timed = best_seconds if args.clock == "wall" else _best_cpu_seconds
    rng = np.random.default_rng(13)
    table = Table(
        Column("features", 8, ","),
        Column("k", 3, ","),
        Column("batch", 7, ","),
        Column("off us/ev", 10, ".2f"),
        Column("on us/ev", 10, ".2f"),
        Column("added", 8, ".2f"),
        Column("off B", 7, ","),
        Column("on B", 7, ","),
        Column("added B", 8, ","),
    )
    print(
        f"{args.events:,} decoded events per run, fold_events, best of {args.repeats}, "
        f"{args.clock} clock"
    )
    print(table.header())
    for d in FEATURES:
        off, on = _profile(d, rng, on=False), _profile(d, rng, on=True)
        assert on.multivariate is not None
        events = _events(args.events, d, rng)
        for size in BATCH_SIZES:
            t_off = timed(lambda p=off, e=events, s=size: _fold(p, e, s), args.repeats)
            t_on = timed(lambda p=on, e=events, s=size: _fold(p, e, s), args.repeats)
            b_off = len(_fold(off, events, size).to_bytes())
            b_on = len(_fold(on, events, size).to_bytes())
            us_off, us_on = t_off / args.events * 1e6, t_on / args.events * 1e6
            print(
                table.row(
                    d,
                    len(on.multivariate.components),
                    size,
                    us_off,
                    us_on,
                    us_on - us_off,
                    b_off,
                    b_on,
                    b_on - b_off,
                )
            )


if __name__ == "__main__":
    main()
