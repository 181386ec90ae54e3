"""Where ingest's time goes in the end-to-end benchmark: cProfile over ingest runs, the top 10
functions by cumulative and by own time, and the cost per input event of named parts of the
hot path, side by side for the runs.
"""

from __future__ import annotations

import cProfile
import pstats
from pathlib import Path
from typing import Any

from common.report import Column, Table
from driftline.config import KafkaSettings, TopicSettings
from driftline.streams.registry import ProfileRegistry
from e2e_parts.ingest import run_ingest, settings_for

# Parts of the hot path, by the function that does them (cumulative time, so a part includes
# what it calls), matched on (part of the file or description, part of the function name).
PARTS: dict[str, tuple[str, str]] = {
    "Consumer.consume (librdkafka fetch)": ("cimpl.Consumer", "consume"),
    "decode (msgspec; incl. stored predictions)": ("msgspec.json.Decoder", "decode"),
    "RocksDB point reads (store.get_*)": ("store.py", "get_"),
    "RocksDB batch write (store.write)": ("store.py", "write"),
    "Producer.flush (labeled/DLQ acks)": ("cimpl.Producer", "flush"),
    "PaneSummary.fold_events (all below)": ("detectors/summary.py", "fold_events"),
    "  fold_numeric (C kernel)": ("driftline.detectors._fold", "fold_numeric"),
    "  columns_from_events (the rest)": ("detectors/batch.py", "columns_from_events"),
    "PerformanceSummary.fold": ("detectors/performance.py", "fold"),
    "labeled records (labeled_record)": ("streams/labeled.py", "labeled_record"),
    "summaries to bytes (PaneSummaries.write)": ("streams/panes.py", "write"),
    "periodic emit (_emit)": ("ingest.py", "_emit"),
}
ProfileTable = dict[tuple[str, int, str], tuple[int, int, float, float, Any]]


def _where(key: tuple[str, int, str]) -> str:
    file, line, function = key
    if file == "~":
        return function
    short = file.split("/src/", 1)[-1].split("site-packages/", 1)[-1]
    return f"{short}:{line}({function})"


def _table(profiler: cProfile.Profile) -> ProfileTable:
    table: ProfileTable = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return table


def print_profile(title: str, profiler: cProfile.Profile, events: int) -> None:
    """Top 10 by cumulative and by own time."""
    table = _table(profiler)
    total = max(ct for _, _, _, ct, _ in table.values())
    top = Table(
        Column("calls", 10, ","),
        Column("own s", 7, ".2f"),
        Column("cum s", 7, ".2f"),
        Column("µs/event", 9, ".2f"),
        Column("function", 0, align="<", gap="  "),
    )
    for order, column in (("cumulative", 3), ("own time", 2)):
        rows = sorted(table.items(), key=lambda item: item[1][column], reverse=True)[:10]
        print(f"\n{title}: top 10 by {order} ({events:,} input events, {total:.1f} s profiled)")
        print(top.header())
        for key, (_, calls, own, cum, _) in rows:
            per_event = (cum if column == 3 else own) / events * 1e6
            print(top.row(calls, own, cum, per_event, _where(key)[:88]))


def part_seconds(profiler: cProfile.Profile) -> dict[str, float]:
    """Cumulative seconds of each of :data:`PARTS`, and the total under ``total``."""
    table = _table(profiler)
    found = {"total": max(ct for _, _, _, ct, _ in table.values())}
    for part, (where, function_part) in PARTS.items():
        found[part] = sum(
            cum
            for (file, _, function), (_, _, _, cum, _) in table.items()
            if (where in file or where in function) and function_part in function
        )
    return found


def profile_runs(
    kafka: KafkaSettings,
    runs: dict[str, tuple[TopicSettings, int]],
    registry: ProfileRegistry,
    predictions: int,
    batch_size: int,
    state_root: Path,
) -> None:
    """Profile an ingest run per letter of ``runs`` (its topics and the labels to wait for)
    over ``predictions`` predictions; print each one's top functions, then the named parts of
    all side by side."""
    profiled = {}
    for letter, (topics, labels) in runs.items():
        profiler = cProfile.Profile()
        run = run_ingest(
            settings_for(kafka, topics, state_root / f"profile-{letter}"),
            registry,
            predictions,
            labels,
            batch_size=batch_size,
            profiler=profiler,
        )
        title = (
            f"profile ({letter}) over {run.events - run.labels:,} predictions + "
            f"{run.labels:,} labels, {run.rate:,.0f} events/s under cProfile"
        )
        print_profile(title, profiler, run.events)
        profiled[letter] = (part_seconds(profiler), run.events)
    print(
        "\nnamed parts of the hot path, µs per input event under cProfile (cumulative: "
        "parts nest, e.g. decode and reads inside apply)"
    )
    columns = [Column("part", 40, align="<")]
    for letter in profiled:
        columns += [Column(f"({letter})", 8, ".2f"), Column("share", 6, ".0%")]
    parts = Table(*columns)
    print(parts.header())
    for part in ["total", *PARTS]:
        cells: list[float] = []
        for seconds, events in profiled.values():
            cells += [seconds[part] / events * 1e6, seconds[part] / seconds["total"]]
        print(parts.row(part, *cells))
