"""The monitor in the end-to-end benchmark: the real :class:`~driftline.streams.ingest.Ingest`
driven in this process until its telemetry says every event is applied, timed from its first
partition assignment (group-join time excluded), with the CPU time of this process and of the
broker and the time CPython's cyclic GC took; the join store's bytes on disk per waiting
prediction after a run; and the table that sets the runs against the ceiling.
"""

from __future__ import annotations

import cProfile
import gc
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from common.report import Column, Table
from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.streams.ingest import Ingest
from driftline.streams.registry import ProfileRegistry
from driftline.streams.store import PartitionStore
from e2e_parts.ceiling import JOINED_CEILING
from e2e_parts.load import MODEL, PREFIX

GOAL_RATIO = 0.5
GOAL_EXAMPLES_RATIO = 0.35
"""The goal of (b) with joined examples, which (a) and (b) without them do not pay for."""
# Ingest's poll waits up to its timeout for a full batch; on a backlog only the last poll
# waits, and the default 0.2 s would add that much to every run timed.
POLL_TIMEOUT = 0.02


class TimedIngest(Ingest):
    """:class:`Ingest` that notes when its first partitions were assigned (join done)."""

    assigned_at: float | None = None

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.assigned_at is None:
            self.assigned_at = time.perf_counter()
        super()._on_assign(consumer, partitions)


class GcTimer:
    """Seconds spent in CPython's cyclic garbage collector while :attr:`active`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.active = False
        self._started = 0.0

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.active:
            self.seconds += time.perf_counter() - self._started


@dataclass(frozen=True)
class IngestRun:
    """One ingest run: input messages applied and seconds from first assignment."""

    events: int
    seconds: float
    join_seconds: float
    labels: int
    joined: int
    gc_seconds: float
    cpu_seconds: float = float("nan")
    """CPU time of this process, all threads (librdkafka's and RocksDB's included)."""
    broker_cpu_seconds: float = float("nan")
    """CPU time Tansu spent meanwhile (it shares the two cores)."""

    @property
    def rate(self) -> float:
        """Input events per second."""
        return self.events / self.seconds


def settings_for(
    kafka: KafkaSettings, topics: TopicSettings, state_dir: Path, *, examples: bool | None = None
) -> Settings:
    """A monitor on ``topics`` with its own group and store; one-minute panes, 1 h windows;
    ``retrain.examples`` as given (None: the default, on for this configured model)."""
    return Settings(
        kafka=kafka,
        topics=topics,
        monitor={
            "state_dir": state_dir,
            "group_id": f"{PREFIX}-{uuid.uuid4().hex[:8]}",
            "metrics_port": None,
        },
        models={
            MODEL: {
                "task": "binary",
                "pane": "1m",
                "windows": [{"size": "1h"}],
                "retrain": {"examples": examples},
            }
        },
    )


def join_bytes(state_dir: Path) -> tuple[int, int]:
    """(join entries, bytes of the join family's SST files) over the stores under
    ``state_dir``, after flushing the memtables and compacting the family: what the waiting
    predictions cost on disk, keys, RocksDB's per-entry framing, index and filters included."""
    entries = files = 0
    for current in sorted(state_dir.rglob("CURRENT")):
        store = PartitionStore(current.parent)
        try:
            joins = store._joins
            joins.flush()
            joins.compact_range(None, None)
            entries += sum(1 for _ in store.join_entries())
            files += int(joins.property_int_value("rocksdb.live-sst-files-size") or 0)
        finally:
            store.close()
    return entries, files


def _cpu(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one when None), all its threads."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count(counter: Any) -> int:
    """The value of a telemetry counter."""
    return int(counter._value.get())  # prometheus_client keeps no public reader of a Counter


def run_ingest(
    settings: Settings,
    registry: ProfileRegistry,
    predictions: int,
    labels: int,
    *,
    batch_size: int,
    profiler: cProfile.Profile | None = None,
    broker_pid: int | None = None,
) -> IngestRun:
    """Drive :class:`Ingest` in this process until ``predictions`` and ``labels`` (each joined)
    are applied; ``profiler`` is enabled only once partitions are assigned."""
    began = time.perf_counter()
    ingest = TimedIngest(settings, registry=registry, batch_size=batch_size)
    ingest.start()
    t = ingest.telemetry

    def done() -> bool:
        return (
            count(t.predictions) >= predictions
            and count(t.labels) >= labels
            and count(t.joined) >= labels
        )

    cpu_start: float | None = None
    broker_start = 0.0
    with GcTimer() as collector:
        try:
            while not done():
                if ingest.assigned_at is not None:
                    if cpu_start is None:
                        cpu_start, broker_start = _cpu(), _cpu(broker_pid)
                    collector.active = True
                    if profiler is not None:
                        profiler.enable()
                ingest.run_once(POLL_TIMEOUT)
                if time.perf_counter() - began > 900:
                    raise RuntimeError(
                        f"ingest applied {count(t.predictions)} predictions and "
                        f"{count(t.labels)} labels in 15 minutes"
                    )
            end = time.perf_counter()
            cpu, broker_cpu = _cpu(), _cpu(broker_pid)
            collector.active = False
            if profiler is not None:
                profiler.disable()
            assert ingest.assigned_at is not None
            return IngestRun(
                events=count(t.predictions) + count(t.labels),
                seconds=end - ingest.assigned_at,
                join_seconds=ingest.assigned_at - began,
                labels=count(t.labels),
                joined=count(t.joined),
                gc_seconds=collector.seconds,
                cpu_seconds=cpu - (cpu_start or cpu),
                broker_cpu_seconds=broker_cpu - broker_start,
            )
        finally:
            ingest.close()


def _verdict(name: str, ratio: float, goal: float = GOAL_RATIO) -> str:
    if ratio >= goal:
        return f"{name}: MET ({ratio:.2f}x >= {goal}x, {ratio / goal - 1:+.0%} margin)"
    return (
        f"{name}: NOT MET ({ratio:.2f}x < {goal}x; needs {goal / ratio:.2f}x the "
        f"throughput, {1 - ratio / goal:.0%} short)"
    )


def print_runs(
    ceiling: dict[str, float],
    runs: dict[str, IngestRun],
    predictions: int,
    repeats: int,
    store_bytes: dict[str, tuple[int, int]],
) -> None:
    """The ceiling and the ingest runs ((a) predictions, (b) predictions + labels, each with
    ``retrain.examples`` off and on; keys ``"a off"`` …) in one table, the notes on them, the
    join store's bytes per waiting prediction (``store_bytes``: entries and bytes after each
    (a) run) and the verdicts on the goals."""
    table = Table(
        Column("measurement", 54, align="<"),
        Column("events", 9, ","),
        Column("seconds", 8, ".2f"),
        Column("events/s", 9, ",.0f"),
        Column("µs/event", 9, ".2f"),
        Column("vs consume+decode", 18, ".2f", suffix="x"),
    )
    print(f"\n{table.header()}")
    ratios = {}
    for letter, workload in (("a", "predictions"), ("b", "predictions + labels")):
        base = ceiling[f"consume + decode, {workload}"]
        events = predictions if letter == "a" else 2 * predictions
        names = [f"raw consume, {workload}", f"consume + decode, {workload}"]
        if letter == "b":
            names.append(JOINED_CEILING)
        for name in names:
            rate = ceiling[name]
            print(table.row(name, events, events / rate, rate, 1e6 / rate, rate / base))
        for examples in ("off", "on"):
            key = f"{letter} {examples}"
            run = runs[key]
            ratios[key] = run.rate / base
            print(
                table.row(
                    f"ingest ({letter}) {workload}, examples {examples}",
                    run.events,
                    run.seconds,
                    run.rate,
                    1e6 / run.rate,
                    ratios[key],
                )
            )
    joins = ", ".join(f"{runs[k].join_seconds:.1f} s" for k in runs)
    gcs = ", ".join(f"{k} {run.gc_seconds / run.seconds:.0%}" for k, run in runs.items())
    print(
        f"(ceiling: best of {repeats}, from assign() to the last message (and, producing, to "
        f"the last acknowledgement); ingest: one run each, from the first assignment until the "
        f"counters show every event applied; group joins took {joins}, excluded; (b) joined "
        f"{runs['b on'].joined:,} and {runs['b off'].joined:,}; CPython's cyclic GC took {gcs})"
    )
    for key, run in runs.items():
        print(
            f"CPU during ({key}): {run.cpu_seconds:.2f} s in this process (all threads: "
            f"the loop, librdkafka, RocksDB) and {run.broker_cpu_seconds:.2f} s in Tansu, "
            f"over {run.seconds:.2f} s on {os.cpu_count()} cores"
        )
    for key, (entries, size) in store_bytes.items():
        print(
            f"join store after ({key}), flushed and compacted: {entries:,} waiting predictions, "
            f"{size:,} bytes of SST files, {size / max(entries, 1):.1f} bytes each (key included)"
        )
    print(_verdict("goal (a) ingest >= 0.5x consume+decode, predictions only", ratios["a off"]))
    print(
        _verdict(
            "goal (b) ingest >= 0.5x consume+decode, predictions + labels, examples off",
            ratios["b off"],
        )
    )
    print(
        _verdict(
            "goal (b) ingest >= 0.35x consume+decode, predictions + labels, examples on",
            ratios["b on"],
            GOAL_EXAMPLES_RATIO,
        )
    )
