"""Stage 1 end to end on a real broker: ingest's sustained rate against what Kafka can deliver.

Starts a Tansu broker (DESIGN §6), pre-loads topics with realistic prediction events (20
numeric features, a binary prediction and its two scores, a UUID ``prediction_id`` as key,
one millisecond of event time apart) and one label per prediction, with a fast producer
(linger, lz4), then measures in the same run:

1. **The ceiling** on one core: a bare confluent-kafka consumer (``assign`` from the beginning,
   batch ``consume``, ``fetch.queue.backoff.ms`` = 5 as DESIGN §6 says), raw and with
   ``decode_prediction`` / ``decode_ground_truth`` on every message (best of ``--repeats``).
2. **The monitor**: the real :class:`~driftline.streams.ingest.Ingest` in this process, with a
   reference profile published on the models topic and a fresh ``state_dir`` and group per
   run, over (a) the predictions alone and (b) the predictions and every label. Timed from the
   first partition assignment (group-join time excluded) until its telemetry counters say every
   event is applied (predictions folded; for (b) labels accepted and joined), with the time
   CPython's cyclic GC took. Events/s are input messages per second; the goal is at least half
   of consume + decode of the same topics.
3. **Memory**: an ingest in a child process (so its RSS is its own) over a predictions-only
   topic, reporting peak RSS (``VmHWM``), current RSS, RocksDB's in-memory share (memtables,
   block cache, table readers), glibc's free-but-kept bytes, Python's allocated blocks, the
   pane summaries cached and the store's size on disk at each checkpoint (default 1M and 5M
   predictions; a later checkpoint estimated over 10 minutes from the measured pre-load and
   ingest rates is skipped, saying so, unless ``--rss-events`` asks for it). Events are spaced
   in event time so that the pane horizon (longest window + lateness + a pane) is full by the
   first checkpoint; ingest evicts old panes every 30 s of wall-clock time. Every prediction
   stays in the join store (waiting for its label, TTL 7 days), so the store grows with
   traffic by design; the goal is that everything else stays flat.
4. **Where the time goes**: cProfile over separate runs of (a) and (b) on the first
   ``--profile-events`` predictions (default all), top 10 by cumulative and by own time, and
   the cost per event of named parts of the hot path.

Tansu shares the machine's cores with the process measured; the ceiling is measured under the
same conditions. Run: ``python benchmarks/e2e.py`` (about 5 minutes on 2 cores), or
``python benchmarks/e2e.py --events 100000 --rss-events 250000,1000000``.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import gc
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.detectors.profile import build_profile
from driftline.schemas import decode_ground_truth, decode_prediction
from driftline.schemas.outputs import ModelVersionRegistered
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.ingest import Ingest
from driftline.streams.registry import ProfileRegistry, publish_profile
from driftline.streams.runtime import tune_gc
from driftline.testing.servers import TansuBroker
from driftline.topics import create_topics

MODEL, VERSION = "bench", "1"
N_FEATURES = 20
FEATURES = [f"f{j}" for j in range(N_FEATURES)]
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 1  # a thousand predictions per second of event time: one-minute panes of 60k events
LABEL_DELAY_MS = 60_000
CHUNK = 50_000
PREFIX = "e2e"
GOAL_RATIO = 0.5
FLAT_TOLERANCE = 0.10  # growth of RSS outside RocksDB between checkpoints still called flat
DEFAULT_RSS = "1000000,5000000"
RSS_BUDGET_S = 600.0
_OFFSET_BEGINNING = -2
# Ingest's poll waits up to its timeout for a full batch; on a backlog only the last poll
# waits, which at the default 0.2 s would add that much to a 5-second run.
POLL_TIMEOUT = 0.02
_MIB = 1024 * 1024

# --- events ---------------------------------------------------------------------------------


def _prediction_ids(seed: int, chunk: int, n: int) -> list[str]:
    """UUID-shaped ids, the same for a (seed, chunk) whichever topic asks."""
    raw = np.random.default_rng((seed, chunk)).bytes(16 * n).hex()
    ids = []
    for i in range(n):
        h = raw[32 * i : 32 * i + 32]
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def _scores(seed: int, chunk: int, n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.random.default_rng((seed, chunk, 1)).uniform(size=n).round(6)


def prediction_events(n: int, seed: int, step_ms: int = STEP_MS) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of ``n`` prediction events, ``step_ms`` of event time apart."""
    for chunk, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        ids = _prediction_ids(seed, chunk, size)
        scores = _scores(seed, chunk, size).tolist()
        rng = np.random.default_rng((seed, chunk, 2))
        values = rng.normal(50.0, 20.0, size=(size, N_FEATURES)).round(4).tolist()
        for i in range(size):
            k = start + i
            p = scores[i]
            event = {
                "event_id": f"p-{seed}-{k}",
                "prediction_id": ids[i],
                "model": MODEL,
                "model_version": VERSION,
                "timestamp": START_MS + k * step_ms,
                "features": dict(zip(FEATURES, values[i], strict=True)),
                "prediction": int(p >= 0.5),
                "scores": {"0": round(1.0 - p, 6), "1": p},
            }
            yield ids[i].encode(), orjson.dumps(event)


def label_events(n: int, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of the ground truth of :func:`prediction_events` (same ids, a minute on)."""
    for chunk, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        ids = _prediction_ids(seed, chunk, size)
        scores = _scores(seed, chunk, size)
        labels = (np.random.default_rng((seed, chunk, 3)).uniform(size=size) < scores).tolist()
        for i in range(size):
            k = start + i
            event = {
                "event_id": f"t-{seed}-{k}",
                "prediction_id": ids[i],
                "timestamp": START_MS + k * STEP_MS + LABEL_DELAY_MS,
                "label": int(labels[i]),
            }
            yield ids[i].encode(), orjson.dumps(event)


def reference_profile() -> ReferenceProfile:
    """The reference the live events are drawn from (20k rows, 100 bins per feature)."""
    rng = np.random.default_rng(99)
    values = rng.normal(50.0, 20.0, size=(20_000, N_FEATURES))
    p = rng.uniform(size=20_000)
    return build_profile(
        MODEL,
        VERSION,
        "binary",
        {name: values[:, j] for j, name in enumerate(FEATURES)},
        (p >= 0.5).astype(int),
        scores={"0": 1.0 - p, "1": p},
        labels=(rng.uniform(size=20_000) < p).astype(int),
        bins=100,
    )


# --- broker and topics ----------------------------------------------------------------------


def topic_names(
    ground_truth: str, partitions: int, predictions: str = "predictions"
) -> TopicSettings:
    """Shared output topics; inputs named per workload so runs can share the predictions."""
    names = {role: f"{PREFIX}.{role}" for role in TopicSettings().names()}
    names["predictions"] = f"{PREFIX}.{predictions}"
    names["ground_truth"] = f"{PREFIX}.{ground_truth}"
    return TopicSettings(**names, input_partitions=partitions, output_partitions=2)


def preload(kafka: KafkaSettings, topic: str, events: Iterator[tuple[bytes, bytes]]) -> float:
    """Produce every event, wait for the acknowledgements; seconds taken (generation included)."""
    producer = Producer(
        {
            **kafka.client_config(),
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    start = time.perf_counter()
    for key, value in events:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:  # queue full: let librdkafka deliver some first
                producer.poll(0.05)
    remaining = producer.flush(300)
    if remaining:
        raise RuntimeError(f"{remaining} events for {topic!r} were not acknowledged")
    return time.perf_counter() - start


def publish_reference(kafka: KafkaSettings, topics: TopicSettings) -> ReferenceProfile:
    """Publish the reference on the models topic, as ``driftline reference publish`` does."""
    profile = reference_profile()
    record = ModelVersionRegistered(
        model=MODEL, model_version=VERSION, registered_at=0, source="cli", reference=profile
    )
    publish_profile(kafka, topics, record)
    return profile


# --- the ceiling ----------------------------------------------------------------------------

Decoder = Callable[[bytes, bytes | None], object]


def consume_rate(
    kafka: KafkaSettings, decoders: dict[str, Decoder | None], expected: int, partitions: int
) -> float:
    """Events/s of one bare consumer reading ``expected`` messages from the beginning of the
    topics; each message goes through its topic's decoder unless that is None."""
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"{PREFIX}-ceiling-{uuid.uuid4().hex[:8]}",  # required; never joined
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 5,
            "enable.partition.eof": False,
        }
    )
    start = time.perf_counter()
    consumer.assign(
        [TopicPartition(t, p, _OFFSET_BEGINNING) for t in decoders for p in range(partitions)]
    )
    seen = 0
    try:
        while seen < expected:
            # Never ask for more than is left: consume() would wait out its timeout for it.
            wanted = min(5000, expected - seen)
            for message in consumer.consume(num_messages=wanted, timeout=0.2):
                if message.error() is not None:
                    continue
                decode = decoders[message.topic() or ""]
                if decode is not None:
                    decode(message.value() or b"", message.key())
                seen += 1
            if time.perf_counter() - start > 600:
                raise RuntimeError(f"consumed {seen} of {expected} messages in 10 minutes")
        return seen / (time.perf_counter() - start)
    finally:
        consumer.close()


def best_rate(repeats: int, measure: Callable[[], float]) -> float:
    """The best of ``repeats`` measurements (the ceiling is what the machine can do)."""
    return max(measure() for _ in range(repeats))


# --- the monitor ----------------------------------------------------------------------------


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


def settings_for(kafka: KafkaSettings, topics: TopicSettings, state_dir: Path) -> Settings:
    """A monitor on ``topics`` with its own group and store; one-minute panes, 1 h windows."""
    return Settings(
        kafka=kafka,
        topics=topics,
        monitor={
            "state_dir": state_dir,
            "group_id": f"{PREFIX}-{uuid.uuid4().hex[:8]}",
            "metrics_port": None,
        },
        models={MODEL: {"task": "binary", "pane": "1m", "windows": [{"size": "1h"}]}},
    )


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


def _count(counter: Any) -> int:
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
            _count(t.predictions) >= predictions
            and _count(t.labels) >= labels
            and _count(t.joined) >= labels
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
                        f"ingest applied {_count(t.predictions)} predictions and "
                        f"{_count(t.labels)} labels in 15 minutes"
                    )
            end = time.perf_counter()
            cpu, broker_cpu = _cpu(), _cpu(broker_pid)
            collector.active = False
            if profiler is not None:
                profiler.disable()
            assert ingest.assigned_at is not None
            return IngestRun(
                events=_count(t.predictions) + _count(t.labels),
                seconds=end - ingest.assigned_at,
                join_seconds=ingest.assigned_at - began,
                labels=_count(t.labels),
                joined=_count(t.joined),
                gc_seconds=collector.seconds,
                cpu_seconds=cpu - (cpu_start or cpu),
                broker_cpu_seconds=broker_cpu - broker_start,
            )
        finally:
            ingest.close()


# --- memory, in a child process -------------------------------------------------------------


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


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / _MIB


def _memory_point(ingest: Ingest, predictions: int, seconds: float) -> MemoryPoint:
    rocksdb = 0
    panes = 0
    # The workers and their stores are private to Ingest; a benchmark may look inside.
    for worker in ingest._workers.values():
        rocksdb += worker.store.memory()
        panes += len(worker._cache)
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
            _count(ingest.telemetry.predictions),  # the poll that joined may have applied some
            time.perf_counter() - ingest.assigned_at,
        )
        print(json.dumps(asdict(start)), flush=True)
        for checkpoint in checkpoints:
            while _count(ingest.telemetry.predictions) < checkpoint:
                ingest.run_once(POLL_TIMEOUT)
            seconds = time.perf_counter() - ingest.assigned_at
            point = _memory_point(ingest, _count(ingest.telemetry.predictions), seconds)
            print(json.dumps(asdict(point)), flush=True)
    finally:
        ingest.close()
        registry.close()


def measure_memory(
    kafka: KafkaSettings, topics: TopicSettings, checkpoints: list[int], batch_size: int
) -> list[MemoryPoint]:
    """Run :func:`rss_child` in a fresh interpreter and collect its checkpoints."""
    with tempfile.TemporaryDirectory(prefix="driftline-e2e-rss-") as state_dir:
        spec = {
            "kafka": kafka.model_dump(mode="json"),
            "topics": topics.model_dump(mode="json"),
            "checkpoints": checkpoints,
            "state_dir": state_dir,
            "batch_size": batch_size,
        }
        child = subprocess.run(
            [sys.executable, __file__, "--rss-child", json.dumps(spec)],
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


def print_memory(points: list[MemoryPoint]) -> None:
    """The checkpoints' table and the verdict on flatness."""
    print(
        f"{'predictions':>12} {'seconds':>8} {'pred/s':>7} {'peak RSS':>9} {'RSS':>6} "
        f"{'RocksDB':>8} {'RSS-RocksDB':>11} {'malloc used':>11} {'malloc free':>11} "
        f"{'py blocks':>10} {'panes':>6} {'store disk':>10}"
    )
    previous: MemoryPoint | None = None
    for p in points:
        rate = (
            f"{(p.predictions - previous.predictions) / (p.seconds - previous.seconds):>7,.0f}"
            if previous is not None
            else f"{'':>7}"
        )
        print(
            f"{p.predictions:>12,} {p.seconds:>8.1f} {rate} {p.peak_rss_mib:>9.0f} "
            f"{p.rss_mib:>6.0f} {p.rocksdb_mib:>8.0f} {p.rest_mib:>11.0f} "
            f"{p.malloc_used_mib:>11.0f} {p.malloc_free_mib:>11.0f} {p.python_blocks:>10,} "
            f"{p.panes_cached:>6} {p.store_disk_mib:>10.0f}"
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
    first, last = points[1], points[-1]
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


# --- profile --------------------------------------------------------------------------------

# Parts of the hot path, by the function that does them (cumulative time, so a part includes
# what it calls), matched on (part of the file or description, part of the function name).
PARTS: dict[str, tuple[str, str]] = {
    "Consumer.consume (librdkafka fetch)": ("cimpl.Consumer", "consume"),
    "decode (msgspec; incl. stored predictions)": ("msgspec.json.Decoder", "decode"),
    "RocksDB point reads (store.get_*)": ("store.py", "get_"),
    "RocksDB batch write (store.write)": ("store.py", "write"),
    "Producer.flush (labeled/DLQ acks)": ("cimpl.Producer", "flush"),
    "PaneSummary.fold_events (all below)": ("summary.py", "fold_events"),
    "  fold_numeric (C kernel)": ("driftline.detectors._fold", "fold_numeric"),
    "  columns_from_events (the rest)": ("summary.py", "columns_from_events"),
    "PerformanceSummary.fold": ("performance.py", "fold"),
    "labeled records (labeled_record)": ("labeled.py", "labeled_record"),
    "summaries to bytes (PaneSummaries.write)": ("panes.py", "write"),
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
    for order, column in (("cumulative", 3), ("own time", 2)):
        rows = sorted(table.items(), key=lambda item: item[1][column], reverse=True)[:10]
        print(f"\n{title}: top 10 by {order} ({events:,} input events, {total:.1f} s profiled)")
        print(f"{'calls':>10} {'own s':>7} {'cum s':>7} {'µs/event':>9}  function")
        for key, (_, calls, own, cum, _) in rows:
            per_event = (cum if column == 3 else own) / events * 1e6
            print(f"{calls:>10,} {own:>7.2f} {cum:>7.2f} {per_event:>9.2f}  {_where(key)[:88]}")


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


# --- the run --------------------------------------------------------------------------------


def _parse_checkpoints(text: str) -> list[int]:
    values = sorted({int(v.replace("_", "")) for v in text.split(",") if v.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"--rss-events wants positive counts, got {text!r}")
    return values


def _verdict(name: str, ratio: float) -> str:
    if ratio >= GOAL_RATIO:
        return f"{name}: MET ({ratio:.2f}x >= {GOAL_RATIO}x, {ratio / GOAL_RATIO - 1:+.0%} margin)"
    return (
        f"{name}: NOT MET ({ratio:.2f}x < {GOAL_RATIO}x; needs {GOAL_RATIO / ratio:.2f}x the "
        f"throughput, {1 - ratio / GOAL_RATIO:.0%} short)"
    )


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="predictions (rate runs)")
    parser.add_argument(
        "--rss-events",
        type=_parse_checkpoints,
        default=None,
        help=f"memory checkpoints, comma-separated, all measured (default {DEFAULT_RSS}, "
        f"later ones dropped when estimated over {RSS_BUDGET_S / 60:.0f} minutes)",
    )
    parser.add_argument("--partitions", type=int, default=6, help="input partitions")
    parser.add_argument("--batch-size", type=int, default=5000, help="Ingest batch_size")
    parser.add_argument("--repeats", type=int, default=2, help="ceiling runs, best kept")
    parser.add_argument(
        "--profile-events",
        type=int,
        default=None,
        help="predictions per profiled run (default: --events); 0: no profile",
    )
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    tune_gc()  # as the service commands do (driftline.streams.runtime)
    if args.rss_child:
        rss_child(json.loads(args.rss_child))
        return
    n, parts = args.events, args.partitions
    wall = time.perf_counter()
    print(
        f"driftline stage 1 end to end: {n:,} predictions (+ {n:,} labels), {N_FEATURES} "
        f"numeric features + 2 scores, {parts} input partitions, Ingest batch "
        f"{args.batch_size:,}; {os.cpu_count()} cores, shared with the Tansu broker; "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )
    with TansuBroker() as broker, tempfile.TemporaryDirectory(prefix="driftline-e2e-") as tmp:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client_id=PREFIX)
        only = topic_names("ground-truth-none", parts)
        both = topic_names("ground-truth", parts)
        rss = topic_names("rss-ground-truth", parts, predictions="rss-predictions")
        for topics in (only, both, rss):
            create_topics(kafka, topics)
        publish_reference(kafka, both)
        size = len(next(prediction_events(1, seed=1))[1])
        load_p = preload(kafka, both.predictions, prediction_events(n, seed=1))
        load_l = preload(kafka, both.ground_truth, label_events(n, seed=1))
        print(
            f"pre-loaded {n:,} predictions ({size} bytes each) in {load_p:.1f} s and "
            f"{n:,} labels in {load_l:.1f} s (generation included)"
        )

        # 1. the ceiling
        pred, truth = both.predictions, both.ground_truth
        ceiling = {
            "raw consume, predictions": best_rate(
                args.repeats, lambda: consume_rate(kafka, {pred: None}, n, parts)
            ),
            "consume + decode, predictions": best_rate(
                args.repeats, lambda: consume_rate(kafka, {pred: decode_prediction}, n, parts)
            ),
            "raw consume, predictions + labels": best_rate(
                args.repeats, lambda: consume_rate(kafka, {pred: None, truth: None}, 2 * n, parts)
            ),
            "consume + decode, predictions + labels": best_rate(
                args.repeats,
                lambda: consume_rate(
                    kafka, {pred: decode_prediction, truth: decode_ground_truth}, 2 * n, parts
                ),
            ),
        }

        # 2. the monitor
        registry = ProfileRegistry(kafka, both).start()
        registry.wait_for(MODEL, VERSION)
        broker_pid = broker._proc.pid if broker._proc is not None else None
        runs = {
            "predictions": run_ingest(
                settings_for(kafka, only, Path(tmp) / "a"),
                registry,
                n,
                0,
                batch_size=args.batch_size,
                broker_pid=broker_pid,
            ),
            "predictions + labels": run_ingest(
                settings_for(kafka, both, Path(tmp) / "b"),
                registry,
                n,
                n,
                batch_size=args.batch_size,
                broker_pid=broker_pid,
            ),
        }
        print(
            f"\n{'measurement':<40} {'events':>9} {'seconds':>8} {'events/s':>9} "
            f"{'µs/event':>9} {'vs consume+decode':>18}"
        )
        ratios = {}
        for letter, (workload, run) in zip("ab", runs.items(), strict=True):
            base = ceiling[f"consume + decode, {workload}"]
            events = n if workload == "predictions" else 2 * n
            for name, rate in (
                (f"raw consume, {workload}", ceiling[f"raw consume, {workload}"]),
                (f"consume + decode, {workload}", base),
            ):
                print(
                    f"{name:<40} {events:>9,} {events / rate:>8.2f} {rate:>9,.0f} "
                    f"{1e6 / rate:>9.2f} {rate / base:>17.2f}x"
                )
            ratios[letter] = run.rate / base
            print(
                f"{'ingest (' + letter + ') ' + workload:<40} {run.events:>9,} "
                f"{run.seconds:>8.2f} {run.rate:>9,.0f} {1e6 / run.rate:>9.2f} "
                f"{ratios[letter]:>17.2f}x"
            )
        a, b = runs["predictions"], runs["predictions + labels"]
        print(
            f"(ceiling: best of {args.repeats}, from assign() to the last message; ingest: one "
            f"run each, from the first assignment until the counters show every event applied; "
            f"group joins took {a.join_seconds:.1f} s and {b.join_seconds:.1f} s, excluded; "
            f"(b) joined {b.joined:,}; CPython's cyclic GC took {a.gc_seconds:.2f} s "
            f"({a.gc_seconds / a.seconds:.0%}) of (a) and {b.gc_seconds:.2f} s "
            f"({b.gc_seconds / b.seconds:.0%}) of (b))"
        )
        for letter, run in (("a", a), ("b", b)):
            print(
                f"CPU during ({letter}): {run.cpu_seconds:.2f} s in this process (all threads: "
                f"the loop, librdkafka, RocksDB) and {run.broker_cpu_seconds:.2f} s in Tansu, "
                f"over {run.seconds:.2f} s on {os.cpu_count()} cores"
            )
        print(_verdict("goal (a) ingest >= 0.5x consume+decode, predictions only", ratios["a"]))
        print(_verdict("goal (b) ingest >= 0.5x consume+decode, predictions + labels", ratios["b"]))

        # 3. memory, in a child process
        wanted = args.rss_events or _parse_checkpoints(DEFAULT_RSS)
        horizon = horizon_ms(settings_for(kafka, rss, Path(tmp)))
        # The first checkpoint comes after the pane cache is full (event time past the
        # horizon), so what grows after it is the join store, or a leak.
        step = max(1, -(-horizon * 11 // 10) // wanted[0])
        events = prediction_events(max(wanted), seed=2, step_ms=step)
        load_first = preload(kafka, rss.predictions, islice(events, wanted[0]))
        preload_rate = wanted[0] / load_first
        # A growing join store slows ingest (measured about halving by 5M): assume half (a).
        ingest_rate = a.rate / 2
        kept, dropped = [wanted[0]], []
        for checkpoint in wanted[1:]:
            estimate = checkpoint / preload_rate + checkpoint / ingest_rate
            if args.rss_events is None and estimate > RSS_BUDGET_S:
                dropped.append((checkpoint, estimate))
            else:
                kept.append(checkpoint)
        load_rest = preload(kafka, rss.predictions, islice(events, max(kept) - wanted[0]))
        # TansuBroker keeps its process private; its resident size shows what the data costs.
        held = _rss_mib(broker._proc.pid) if broker._proc is not None else float("nan")
        print(
            f"\nmemory: pre-loaded the first {wanted[0]:,} predictions (no labels) in "
            f"{load_first:.1f} s ({preload_rate:,.0f}/s), {max(kept) - wanted[0]:,} more in "
            f"{load_rest:.1f} s; Tansu now holds {held:,.0f} MiB resident"
        )
        print(
            f"one ingest child process over them, {step} ms of event time apart (the "
            f"{horizon / 60_000:.0f}-minute pane horizon is full by the first checkpoint):"
        )
        print_memory(measure_memory(kafka, rss, kept, args.batch_size))
        for checkpoint, estimate in dropped:
            print(
                f"NOT measured: {checkpoint:,} predictions. Estimated at ~{estimate / 60:.1f} min "
                f"(pre-load at {preload_rate:,.0f}/s, ingest at ~{ingest_rate:,.0f}/s), over "
                f"the {RSS_BUDGET_S / 60:.0f}-minute budget; opt in with --rss-events "
                f"{','.join(str(c) for c in wanted)}"
            )

        # 4. where the time goes
        cap = n if args.profile_events is None else min(args.profile_events, n)
        if cap > 0:
            profiled = {}
            for letter, topics, labels in (("a", only, 0), ("b", both, cap)):
                profiler = cProfile.Profile()
                run = run_ingest(
                    settings_for(kafka, topics, Path(tmp) / f"profile-{letter}"),
                    registry,
                    cap,
                    labels,
                    batch_size=args.batch_size,
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
            print(f"{'part':<40} {'(a)':>8} {'share':>6} {'(b)':>8} {'share':>6}")
            for part in ["total", *PARTS]:
                cells = []
                for seconds, events in profiled.values():
                    cells.append(
                        f"{seconds[part] / events * 1e6:>8.2f} "
                        f"{seconds[part] / seconds['total']:>6.0%}"
                    )
                print(f"{part:<40} {' '.join(cells)}")
        registry.close()
    print(
        f"\ntotal wall time {time.perf_counter() - wall:.0f} s; load average "
        f"{os.getloadavg()[0]:.2f} at the end (above ~1 means other work shared the cores)"
    )


if __name__ == "__main__":
    main()
