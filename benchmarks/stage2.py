"""Stage 2's capacity: pane partials merged and windows judged per CPU second, and its memory.

Drives the real stage-2 core (:class:`~driftline.streams.stage2.state.Stage2State`, which
merges partials through :mod:`driftline.streams.stage2.panes` into the pure engine's
:class:`~driftline.detectors.engine.ModelMonitor`) in this process, with no broker: what it
measures is stage 2's own work, the part that has to keep up with the panes.

The traffic is what stage 1 sends: per model (a binary classifier with ``--features`` (20)
numeric features, 100 bins each), per one-minute pane and per source partition (``--sources``,
12), a features partial and, with ``--labels``, a performance partial, each the *cumulative*
summary the real stage-1 fold makes (``PaneSummary.fold`` / ``PerformanceSummary.fold`` of
``--events`` events), then the partition's watermark. Windows are the default one hour,
lateness five minutes. The horizon of panes stage 2 keeps is the longest window + lateness +
``monitor.join_ttl``; each run first streams enough panes to fill it (not timed), then times
``--panes`` (60: one window of every model judged) with ``time.process_time``.

Printed, per number of models (``--models``, 1,10,100) and then per ``join_ttl`` (1 model):

- **merge alone** (the baseline): decode each pane's partials once and merge them
  (``PaneSummary.from_bytes`` + ``merge``), what any stage 2 has to do;
- **stage 2**: ``Stage2State.apply`` of every partial and watermark (replace by identity,
  merge, close and judge windows, prune): partials per CPU second, windows judged per CPU
  second of judging alone (``evaluate`` + points + records, timed apart), and its ratio to the
  baseline;
- **CPU per stream minute**: CPU seconds stage 2 spent per pane (one minute of stream time),
  as a share of 60 s (the goal: 100 models under 10 % of one core);
- **memory**: bytes traced by ``tracemalloc`` that the state holds once its horizon is full
  (a separate pass: tracing slows the run), per model and per pane held.

Run: ``python benchmarks/stage2.py`` (a few minutes), or ``--models 1,10 --ttls 0s,1h`` for
a quick look.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from common.report import Column, Table, parser
from driftline.config import Settings
from driftline.config.base import format_duration, parse_duration
from driftline.detectors.batch import ColumnBatch
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.schemas.reference import ReferenceProfile
from driftline.sinks.points import report_points
from driftline.streams.partials import Message, PanePartial, Watermark
from driftline.streams.stage2.outputs import report_outputs
from driftline.streams.stage2.state import Stage2State

VERSION = "1"
MINUTE = 60_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
VARIANTS = 8  # distinct summaries per kind, reused across panes and partitions
WINDOW = timedelta(hours=1)
LATENESS = timedelta(minutes=5)


def make_profile(model: str, n_features: int, rng: np.random.Generator) -> ReferenceProfile:
    n = 20_000
    features = {f"f{i:02d}": rng.normal(size=n) for i in range(n_features)}
    score = 1 / (1 + np.exp(-features["f00"]))
    return build_profile(
        model,
        VERSION,
        "binary",
        features,
        prediction=(score > 0.5).astype(int),
        scores={"0": 1 - score, "1": score},
        labels=(rng.random(n) < score).astype(int),
    )


def summaries(
    profile: ReferenceProfile, events: int, rng: np.random.Generator
) -> tuple[list[bytes], list[bytes]]:
    """``VARIANTS`` features and performance summaries of ``events`` events each, folded by the
    real stage-1 code."""
    features_out, performance_out = [], []
    for _ in range(VARIANTS):
        columns = {name: rng.normal(size=events) for name in profile.features}
        score = 1 / (1 + np.exp(-columns["f00"]))
        prediction = (score > 0.5).astype(int)
        scores = {"0": 1 - score, "1": score}
        batch = ColumnBatch.from_columns(
            profile,
            columns,
            prediction,
            event_time_ms=np.sort(rng.integers(0, MINUTE, events)),
            scores=scores,
        )
        features_out.append(PaneSummary(profile).fold(batch).to_bytes())
        labels = (rng.random(events) < score).astype(int)
        performance = PerformanceSummary.from_profile(profile).fold(labels, prediction, scores)
        performance_out.append(performance.to_bytes())
    return features_out, performance_out


@dataclass(frozen=True)
class Load:
    """The stream: models, their profile (one, shared: its bytes are the same per model) and
    the summaries each partial carries."""

    models: list[str]
    sources: int
    labels: bool
    features: list[bytes]
    performance: list[bytes]

    def pane(self, index: int) -> Iterator[Message]:
        """Every message of pane ``index``: per model and source, its partials then its
        watermark, as stage 1 sends a flush."""
        start = START_MS + index * MINUTE
        watermark = start + MINUTE - 1
        for model in self.models:
            for source in range(self.sources):
                blob = (index + source) % VARIANTS
                covered = (index + 1) * 1000
                yield PanePartial(
                    model, VERSION, start, MINUTE, source, "features", covered, watermark,
                    self.features[blob],
                )  # fmt: skip
                if self.labels:
                    yield PanePartial(
                        model, VERSION, start, MINUTE, source, "performance", covered + 1,
                        watermark, self.performance[blob],
                    )  # fmt: skip
                yield Watermark(model, source, watermark, self.sources)


def settings_for(models: list[str], sources: int, ttl: timedelta) -> Settings:
    config = {
        "task": "binary",
        "pane": "1m",
        "windows": [{"size": format_duration(WINDOW)}],
        "allowed_lateness": format_duration(LATENESS),
    }
    return Settings(
        models=dict.fromkeys(models, config),
        topics={"input_partitions": sources},
        monitor={"join_ttl": format_duration(ttl)},
    )


def horizon_panes(ttl: timedelta) -> int:
    """Panes a model holds once full: longest window + lateness + join_ttl, and one."""
    return (WINDOW + LATENESS + ttl) // timedelta(minutes=1) + 1


@dataclass(frozen=True)
class Run:
    """One timed stretch of ``panes`` panes."""

    cpu_s: float
    partials: int
    windows: int
    judge_cpu_s: float
    merge_cpu_s: float
    panes_held: int


def run_stage2(load: Load, profile: ReferenceProfile, ttl: timedelta, panes: int) -> Run:
    state = Stage2State(
        lambda model, version: profile, settings_for(load.models, load.sources, ttl)
    )
    fill = horizon_panes(ttl)
    now = 0
    for index in range(fill):
        for message in load.pane(index):
            state.apply(message, now)
        state.take_activity()
    held = sum(h.panes for h in state.holdings().values())
    gc.collect()
    partials = windows = 0
    start = time.process_time()
    for index in range(fill, fill + panes):
        for message in load.pane(index):
            state.apply(message, now)
            partials += isinstance(message, PanePartial)
        windows += len(state.take_activity().windows)
    cpu = time.process_time() - start
    return Run(cpu, partials, windows, judge_seconds(state, load), merge_seconds(load, profile,
               panes), held)  # fmt: skip


def judge_seconds(state: Stage2State, load: Load) -> float:
    """CPU seconds one window's judgment takes (evaluate, points, records): the first model's
    monitor judges its latest closed window again, best of five."""
    monitor = state._models[load.models[0]].monitors[VERSION]  # a benchmark may look inside
    window = max(monitor._state.judged)
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        report = monitor.evaluate(window)
        report_outputs(report, report_points(report))
        best = min(best, time.process_time() - start)
    return best


def merge_seconds(load: Load, profile: ReferenceProfile, panes: int) -> float:
    """CPU seconds to decode every partial of ``panes`` panes once and merge each pane's
    (the baseline: the least any stage 2 must do with the same messages)."""
    by_pane: list[list[PanePartial]] = []
    for index in range(panes):
        by_pane.append([m for m in load.pane(index) if isinstance(m, PanePartial)])
    start = time.process_time()
    for partials in by_pane:
        merged: dict[tuple[str, str], PaneSummary | PerformanceSummary] = {}
        for partial in partials:
            if partial.kind == "features":
                summary: PaneSummary | PerformanceSummary = PaneSummary.from_bytes(
                    partial.summary, profile
                )
            else:
                summary = PerformanceSummary.from_bytes(partial.summary)
            key = (partial.model, partial.kind)
            held = merged.get(key)
            merged[key] = summary if held is None else held.merge(summary)  # type: ignore[arg-type]
    return time.process_time() - start


def traced_bytes(load: Load, profile: ReferenceProfile, ttl: timedelta) -> tuple[float, int]:
    """Bytes the state holds with its horizon full (tracemalloc), and the panes held."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    state = Stage2State(
        lambda model, version: profile, settings_for(load.models, load.sources, ttl)
    )
    for index in range(horizon_panes(ttl) + 1):
        for message in load.pane(index):
            state.apply(message, 0)
        state.take_activity()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    panes = sum(h.panes for h in state.holdings().values())
    del state
    return held, panes


TIMING = Table(
    Column("models", 6),
    Column("join_ttl", 8),
    Column("run", 3),
    Column("merge partials/s", 16, ",.0f"),
    Column("stage2 partials/s", 17, ",.0f"),
    Column("vs merge", 8, ".2f", suffix="x"),
    Column("windows/s", 9, ",.0f"),
    Column("CPU s/stream min", 16, ".3f"),
    Column("% core", 6, ".2f"),
    Column("panes held", 10, ","),
)


def time_case(
    n_models: int, ttl: timedelta, args: object, blobs: tuple[list[bytes], list[bytes]],
    profile: ReferenceProfile, runs: int,
) -> list[Run]:  # fmt: skip
    models = [f"m{i:03d}" for i in range(n_models)]
    load = Load(models, args.sources, args.labels, *blobs)  # type: ignore[attr-defined]
    out = []
    for run in range(runs):
        r = run_stage2(load, profile, ttl, args.panes)  # type: ignore[attr-defined]
        minutes = args.panes  # type: ignore[attr-defined]
        print(
            TIMING.row(
                n_models,
                format_duration(ttl),
                run + 1,
                r.partials / r.merge_cpu_s,
                r.partials / r.cpu_s,
                r.merge_cpu_s / r.cpu_s,
                1 / r.judge_cpu_s,
                r.cpu_s / minutes,
                100 * r.cpu_s / minutes / 60,
                r.panes_held,
            ),
            flush=True,
        )
        out.append(r)
    return out


def median(values: list[float]) -> float:
    return float(np.median(values))


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--models", default="1,10,100", help="model counts, comma-separated")
    cli.add_argument("--ttls", default="0s,1h,6h,1d", help="join_ttl values for 1 model")
    cli.add_argument("--ttl", default="0s", help="join_ttl of the model-count runs")
    cli.add_argument("--sources", type=int, default=12, help="source partitions")
    cli.add_argument("--features", type=int, default=20)
    cli.add_argument("--events", type=int, default=200, help="per partial")
    cli.add_argument("--panes", type=int, default=60, help="panes timed per run")
    cli.add_argument("--runs", type=int, default=3)
    cli.add_argument("--labels", action="store_true", help="a performance partial too")
    cli.add_argument("--no-memory", action="store_true")
    args = cli.parse_args()
    counts = [int(v) for v in args.models.split(",")]
    ttls = [parse_duration(v) for v in args.ttls.split(",") if v]
    rng = np.random.default_rng(3)
    profile = make_profile("m", args.features, rng)
    blobs = summaries(profile, args.events, rng)
    wall = time.monotonic()
    print(
        f"stage 2 capacity: {args.features} numeric features (100 bins), {args.sources} source "
        f"partitions, 1-minute panes, 1 h windows, 5 min lateness; partials per pane and "
        f"source: {'features + performance' if args.labels else 'features'} "
        f"({len(blobs[0][0]):,} bytes a features summary); {args.panes} panes timed; "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )
    print(TIMING.header())
    by_models = {n: time_case(n, parse_duration(args.ttl), args, blobs, profile, args.runs)
                 for n in counts}  # fmt: skip
    by_ttl = {t: time_case(1, t, args, blobs, profile, args.runs) for t in ttls}
    print("medians:")
    for label, cases in (("models", by_models), ("join_ttl", by_ttl)):
        for key, rs in cases.items():
            cpu_min = median([r.cpu_s / args.panes for r in rs])
            print(
                f"  {label} {key if label == 'models' else format_duration(key)}: "
                f"{median([r.partials / r.cpu_s for r in rs]):,.0f} partials/s "
                f"({median([r.merge_cpu_s / r.cpu_s for r in rs]):.2f}x merge alone), "
                f"{median([1 / r.judge_cpu_s for r in rs]):,.0f} windows/s, "
                f"{cpu_min:.3f} CPU s per stream minute = {100 * cpu_min / 60:.2f} % of a core"
            )
    if max(counts) in by_models:
        cpu_min = median([r.cpu_s / args.panes for r in by_models[max(counts)]])
        verdict = "MET" if cpu_min / 60 < 0.10 else "NOT MET"
        print(
            f"goal {max(counts)} models keep up with 1-minute panes under 10 % of a core: "
            f"{verdict} ({100 * cpu_min / 60:.2f} %, join_ttl {args.ttl})"
        )
    if not args.no_memory:
        print("memory held with the horizon full (tracemalloc):")
        for n in counts:
            load = Load([f"m{i:03d}" for i in range(n)], args.sources, args.labels, *blobs)
            held, panes = traced_bytes(load, profile, parse_duration(args.ttl))
            print(f"  {n} models, join_ttl {args.ttl}: {held / 2**20:,.1f} MiB, "
                  f"{held / n / 2**20:,.2f} MiB per model, {held / panes / 1024:,.1f} KiB per "
                  f"pane held ({panes:,} panes)")  # fmt: skip
        for ttl in ttls:
            load = Load(["m000"], args.sources, args.labels, *blobs)
            held, panes = traced_bytes(load, profile, ttl)
            print(f"  1 model, join_ttl {format_duration(ttl)}: {held / 2**20:,.1f} MiB, "
                  f"{held / panes / 1024:,.1f} KiB per pane held ({panes:,} panes)")  # fmt: skip
    print(
        f"wall time {time.monotonic() - wall:.0f} s; load average {os.getloadavg()[0]:.2f} at "
        "the end (the machine is shared: CPU seconds are this process's own)"
    )


if __name__ == "__main__":
    main()
