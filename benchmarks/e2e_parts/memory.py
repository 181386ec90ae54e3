"""Memory in the end-to-end benchmark: an ingest in a child process (so its RSS is its own) over
a predictions-only topic, its resident and peak size, RocksDB's in-memory share, glibc's
free-but-kept bytes, Python's allocated blocks, the pane summaries cached and the store's size
on disk at each checkpoint, and the verdict on whether everything but the join store stays flat.

Checkpoints estimated to take longer than a budget are skipped, saying so, unless asked for.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from common.report import Column, Table
from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.streams.ingest import Ingest
from driftline.streams.registry import ProfileRegistry
from e2e_parts.ingest import POLL_TIMEOUT, TimedIngest, count, settings_for
from e2e_parts.load import MODEL, VERSION, prediction_events, preload

FLAT_TOLERANCE = 0.10  # growth of RSS outside RocksDB between checkpoints still called flat
DEFAULT_RSS = "1000000,5000000"
RSS_BUDGET_S = 600.0
_MIB = 1024 * 1024


def parse_checkpoints(text: str) -> list[int]:
    """The checkpoints of ``--rss-events`` (comma-separated counts), sorted; ``0``: none."""
    values = sorted({int(v.replace("_", "")) for v in text.split(",") if v.strip()})
    if values == [0]:
        return []  # no memory part
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"--rss-events wants positive counts, got {text!r}")
    return values


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _malloc_mib() -> tuple[float, float]:
    """glibc's (bytes in use, bytes free but kept) in MiB; (nan, nan) without mallinfo2."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return float("nan"), float("nan")
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return (info.uordblks + info.hblkhd) / _MIB, info.fordblks / _MIB


@dataclass(frozen=True)
class MemoryPoint:
    """An ingest process's memory after ``predictions`` predictions."""

    predictions: int
    seconds: float
    peak_rss_mib: float
    rss_mib: float
    rocksdb_mib: float
    malloc_used_mib: float
    malloc_free_mib: float
    python_blocks: int
    store_disk_mib: float
    panes_cached: int

    @property
    def rest_mib(self) -> float:
        """Resident memory that is not RocksDB's (Python, librdkafka, allocator slack)."""
        return self.rss_mib - self.rocksdb_mib


def _status_mib(field: str, pid: int | str = "self") -> float:
    """A size (``VmRSS``, ``VmHWM``) from a process's ``/proc/<pid>/status``, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / _MIB


def _memory_point(ingest: Ingest, predictions: int, seconds: float) -> MemoryPoint:
    rocksdb = 0
    panes = 0
    # The workers and their stores are private to Ingest; a benchmark may look inside.
    for worker in ingest._workers.values():
        rocksdb += worker.store.memory()
        panes += worker.panes_cached
    used, free = _malloc_mib()
    return MemoryPoint(
        predictions=predictions,
        seconds=seconds,
        peak_rss_mib=_status_mib("VmHWM"),
        rss_mib=_status_mib("VmRSS"),
        rocksdb_mib=rocksdb / _MIB,
        malloc_used_mib=used,
        malloc_free_mib=free,
        python_blocks=sys.getallocatedblocks(),
        store_disk_mib=_dir_mib(ingest.settings.monitor.state_dir),
        panes_cached=panes,
    )


def rss_child(spec: dict[str, Any]) -> None:
    """In the child: run ingest over the memory topic, print a JSON line per checkpoint."""
    kafka = KafkaSettings(**spec["kafka"])
    topics = TopicSettings(**spec["topics"])
    checkpoints: list[int] = spec["checkpoints"]
    settings = settings_for(kafka, topics, Path(spec["state_dir"]))
    registry = ProfileRegistry(kafka, topics).start()
    registry.wait_for(MODEL, VERSION)
    ingest = TimedIngest(settings, registry=registry, batch_size=spec["batch_size"])
    ingest.start()
    began = time.perf_counter()
    try:
        while ingest.assigned_at is None:
            ingest.run_once(POLL_TIMEOUT)
            if time.perf_counter() - began > 60:
                raise RuntimeError("no partitions assigned in 60 s")
        start = _memory_point(
            ingest,
            count(ingest.telemetry.predictions),  # the poll that joined may have applied some
            time.perf_counter() - ingest.assigned_at,
        )
        print(json.dumps(asdict(start)), flush=True)
        for checkpoint in checkpoints:
            while count(ingest.telemetry.predictions) < checkpoint:
                ingest.run_once(POLL_TIMEOUT)
            seconds = time.perf_counter() - ingest.assigned_at
            point = _memory_point(ingest, count(ingest.telemetry.predictions), seconds)
            print(json.dumps(asdict(point)), flush=True)
    finally:
        ingest.close()
        registry.close()


def measure_memory(
    kafka: KafkaSettings,
    topics: TopicSettings,
    checkpoints: list[int],
    batch_size: int,
    script: Path,
) -> list[MemoryPoint]:
    """Run :func:`rss_child` in a fresh interpreter, through ``script``'s ``--rss-child``
    option, and collect its checkpoints."""
    with tempfile.TemporaryDirectory(prefix="driftline-e2e-rss-") as state_dir:
        spec = {
            "kafka": kafka.model_dump(mode="json"),
            "topics": topics.model_dump(mode="json"),
            "checkpoints": checkpoints,
            "state_dir": state_dir,
            "batch_size": batch_size,
        }
        child = subprocess.run(
            [sys.executable, str(script), "--rss-child", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
    if child.returncode != 0:
        raise RuntimeError(f"the RSS child failed ({child.returncode}):\n{child.stderr[-3000:]}")
    return [MemoryPoint(**json.loads(line)) for line in child.stdout.splitlines() if line]


def horizon_ms(settings: Settings) -> int:
    """Event time a partition keeps pane summaries for: longest window + lateness + a pane."""
    config = settings.models[MODEL]
    longest = max(w.size for w in config.windows)
    return int((longest + config.allowed_lateness + config.pane).total_seconds() * 1000)


MEMORY_TABLE = Table(
    Column("predictions", 12, ","),
    Column("seconds", 8, ".1f"),
    Column("pred/s", 7, ",.0f"),
    Column("peak RSS", 9, ".0f"),
    Column("RSS", 6, ".0f"),
    Column("RocksDB", 8, ".0f"),
    Column("RSS-RocksDB", 11, ".0f"),
    Column("malloc used", 11, ".0f"),
    Column("malloc free", 11, ".0f"),
    Column("py blocks", 10, ","),
    Column("panes", 6),
    Column("store disk", 10, ".0f"),
)


def print_memory(points: list[MemoryPoint]) -> None:
    """The checkpoints' table and the verdict on flatness."""
    print(MEMORY_TABLE.header())
    previous: MemoryPoint | None = None
    for p in points:
        rate: float | str = (
            (p.predictions - previous.predictions) / (p.seconds - previous.seconds)
            if previous is not None
            else ""
        )
        print(
            MEMORY_TABLE.row(
                p.predictions,
                p.seconds,
                rate,
                p.peak_rss_mib,
                p.rss_mib,
                p.rocksdb_mib,
                p.rest_mib,
                p.malloc_used_mib,
                p.malloc_free_mib,
                p.python_blocks,
                p.panes_cached,
                p.store_disk_mib,
            )
        )
        previous = p
    print(
        "(MiB; pred/s since the previous row; RocksDB = memtables + block cache + table "
        "readers of every partition's store; malloc used/free = glibc's bytes in use / freed "
        "but kept; py blocks = sys.getallocatedblocks(); panes = pane summaries cached)"
    )
    if len(points) < 3:
        print("goal RSS flat apart from the join store: not judged (needs two checkpoints)")
        return
    _print_flatness(points[1], points[-1])


def _print_flatness(first: MemoryPoint, last: MemoryPoint) -> None:
    """Whether RSS outside RocksDB stayed flat from the first checkpoint to the last."""
    relative = (last.rest_mib - first.rest_mib) / first.rest_mib
    verdict = "MET" if relative <= FLAT_TOLERANCE else "NOT MET"
    live_first = first.rest_mib - first.malloc_free_mib
    live_last = last.rest_mib - last.malloc_free_mib
    print(
        f"goal RSS flat apart from the join store: {verdict} (RSS outside RocksDB "
        f"{first.rest_mib:.0f} -> {last.rest_mib:.0f} MiB from {first.predictions:,} to "
        f"{last.predictions:,} predictions, {relative:+.0%}, tolerance {FLAT_TOLERANCE:.0%})"
    )
    print(
        f"  of which glibc's free-but-kept memory {first.malloc_free_mib:.0f} -> "
        f"{last.malloc_free_mib:.0f} MiB; without it {live_first:.0f} -> {live_last:.0f} MiB "
        f"({live_last / live_first - 1:+.0%}); Python's allocated blocks "
        f"{last.python_blocks / first.python_blocks - 1:+.0%}; panes cached "
        f"{first.panes_cached} -> {last.panes_cached} (bounded by the horizon, evicted every 30 s)"
    )
    print(
        f"  peak RSS {first.peak_rss_mib:.0f} -> {last.peak_rss_mib:.0f} MiB "
        f"({last.peak_rss_mib / first.peak_rss_mib - 1:+.0%}); RocksDB in memory "
        f"{first.rocksdb_mib:.0f} -> {last.rocksdb_mib:.0f} MiB; store on disk "
        f"{last.store_disk_mib:,.0f} MiB = "
        f"{last.store_disk_mib * _MIB / max(last.predictions, 1):.0f} bytes per prediction "
        "(the join keeps every prediction's bytes for the TTL, 7 days)"
    )


def memory(
    settings: Settings,
    wanted: list[int],
    opted_in: bool,
    ingest_rate: float,
    batch_size: int,
    broker_pid: int | None,
    script: Path,
) -> None:
    """Pre-load the predictions topic of ``settings`` and print the checkpoints of an ingest
    child over it; checkpoints of ``wanted`` estimated to end later than :data:`RSS_BUDGET_S`
    (at the pre-load rate measured and ``ingest_rate``) are skipped unless ``opted_in``."""
    kafka, topics = settings.kafka, settings.topics
    horizon = horizon_ms(settings)
    # The first checkpoint comes after the pane cache is full (event time past the
    # horizon), so what grows after it is the join store, or a leak.
    step = max(1, -(-horizon * 11 // 10) // wanted[0])
    events = prediction_events(max(wanted), seed=2, step_ms=step)
    load_first = preload(kafka, topics.predictions, islice(events, wanted[0]))
    preload_rate = wanted[0] / load_first
    kept, dropped = [wanted[0]], []
    for checkpoint in wanted[1:]:
        estimate = checkpoint / preload_rate + checkpoint / ingest_rate
        if not opted_in and estimate > RSS_BUDGET_S:
            dropped.append((checkpoint, estimate))
        else:
            kept.append(checkpoint)
    load_rest = preload(kafka, topics.predictions, islice(events, max(kept) - wanted[0]))
    # The broker's resident size shows what the pre-loaded data costs it.
    held = _status_mib("VmRSS", broker_pid) if broker_pid is not None else float("nan")
    print(
        f"\nmemory: pre-loaded the first {wanted[0]:,} predictions (no labels) in "
        f"{load_first:.1f} s ({preload_rate:,.0f}/s), {max(kept) - wanted[0]:,} more in "
        f"{load_rest:.1f} s; Tansu now holds {held:,.0f} MiB resident"
    )
    print(
        f"one ingest child process over them, {step} ms of event time apart (the "
        f"{horizon / 60_000:.0f}-minute pane horizon is full by the first checkpoint):"
    )
    print_memory(measure_memory(kafka, topics, kept, batch_size, script))
    for checkpoint, estimate in dropped:
        print(
            f"NOT measured: {checkpoint:,} predictions. Estimated at ~{estimate / 60:.1f} min "
            f"(pre-load at {preload_rate:,.0f}/s, ingest at ~{ingest_rate:,.0f}/s), over "
            f"the {RSS_BUDGET_S / 60:.0f}-minute budget; opt in with --rss-events "
            f"{','.join(str(c) for c in wanted)}"
        )
