"""What the soak samples: the monitor's RSS (with its children's), its stores' memtable flushes
and SST files, the ingest group's lag from the producer's own offsets, and the window ends
newly written to VictoriaMetrics."""

from __future__ import annotations

import os
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from driftline.config import KafkaSettings
from driftline.kafka_auth import confluent_config
from driftline.testing.servers import VictoriaMetrics

_TICK = os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def family(root: int) -> set[int]:
    """``root`` and every descendant (parents read from ``/proc/*/stat``)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def tree_rss_mib(root: int) -> float:
    """RSS of ``root`` and every descendant, in MiB."""
    return sum(_rss_mib(pid) for pid in family(root))


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) ``root`` and its living descendants have used."""
    total = 0
    for pid in family(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _TICK


def store_stats(state_dir: Path) -> tuple[int, float]:
    """Memtable flushes so far (``flush_started`` events in the RocksDB ``LOG`` of every ingest
    partition's store) and the stores' SST files on disk, in MiB."""
    flushes, sst = 0, 0
    for store in (state_dir / "ingest").glob("p*"):
        try:
            flushes += (store / "LOG").read_text(errors="replace").count('"flush_started"')
            sst += sum(f.stat().st_size for f in store.glob("*.sst"))
        except OSError:  # a store being opened, or a file compacted away while listed
            continue
    return flushes, sst / 1024 / 1024


class Lag:
    """The ingest group's committed offsets against the producer's acknowledged ones."""

    def __init__(self, kafka: KafkaSettings, group: str) -> None:
        # Never subscribes: committed() only asks the group coordinator (OffsetFetch).
        self.consumer = Consumer(
            {**confluent_config(kafka), "group.id": group, "enable.auto.commit": False}
        )

    def __call__(self, produced: dict[tuple[str, int], int]) -> dict[str, int]:
        """Messages produced but not committed, per topic."""
        partitions = [TopicPartition(t, p) for t, p in produced]
        committed = self.consumer.committed(partitions, timeout=10)
        lag: dict[str, int] = {}
        for tp in committed:
            done = tp.offset if tp.offset >= 0 else 0  # none committed yet: all behind
            lag[tp.topic] = lag.get(tp.topic, 0) + produced[(tp.topic, tp.partition)] - done
        return lag

    def close(self) -> None:
        self.consumer.close()


class WindowWatch:
    """Each window end seen for the first time among the written ``decision`` points: the wall
    time of first sight minus the window end, in seconds."""

    def __init__(self, victoria: VictoriaMetrics, model: str) -> None:
        self.victoria, self.model = victoria, model
        self.seen: dict[int, float] = {}
        self.fresh: list[float] = []

    def poll(self) -> None:
        ends = {t for s in self.victoria.series("decision", model=self.model) for t, _ in s.points}
        now_ms = time.time() * 1000
        for end in sorted(ends - self.seen.keys()):
            self.seen[end] = now_ms
            self.fresh.append((now_ms - end) / 1000)

    def take(self) -> list[float]:
        fresh, self.fresh = self.fresh, []
        return fresh


def histogram(port: int, name: str) -> list[tuple[float, float]]:
    """The cumulative buckets ``(le, count)`` of histogram ``name`` on the monitor's
    ``/metrics`` (summed over labels); empty when the endpoint does not answer."""
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return []
    counts: dict[float, float] = {}
    for metric in text_string_to_metric_families(body):
        for s in metric.samples:
            if s.name == f"{name}_bucket":
                le = float(s.labels["le"])
                counts[le] = counts.get(le, 0.0) + s.value
    return sorted(counts.items())


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The ``q`` quantile of cumulative ``buckets``, linearly interpolated inside its bucket
    (as Prometheus' ``histogram_quantile``); nan without observations."""
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    rank = q * buckets[-1][1]
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower_le
            return lower_le + (le - lower_le) * (rank - lower_count) / max(count - lower_count, 1)
        lower_le, lower_count = le, count
    return lower_le


def share_within(buckets: list[tuple[float, float]], seconds: float) -> float:
    """Share of the observations at most ``seconds`` (``seconds`` must be a bucket edge)."""
    total = buckets[-1][1] if buckets else 0.0
    for le, count in buckets:
        if le == seconds:
            return count / total if total else float("nan")
    raise ValueError(f"{seconds} s is not a bucket edge of {[le for le, _ in buckets]}")
