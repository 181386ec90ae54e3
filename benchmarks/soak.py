"""Soak: the whole monitor at a steady rate with labels for long; do memory and lag stay flat?

Starts a Tansu broker (DESIGN §6) and VictoriaMetrics (the InfluxDB v2 write API), creates the
topics, publishes the reference of river's SEA model and starts ``driftline monitor run`` (one
process: ingest, stage 2 and the writer) as a subprocess. Then, for ``--duration``, a producer
thread publishes ``--rate`` predictions a second, stamped with the wall clock (so panes and
windows close in real time: ``--pane`` panes, ``--window`` windows hopping by a pane,
``--lateness`` allowed lateness), and each prediction's label ``--label-delay`` seconds later
(a time-ordered queue in the same thread). Every ``--every`` seconds it samples:

* **RSS** of the monitor process and its children (``VmRSS`` of ``/proc/<pid>/status``);
* **consumer lag** of the ingest group: the offsets the producer's delivery reports say were
  written, per partition, minus the group's committed offsets (not the broker's end offsets,
  which Tansu reports wrongly, DESIGN §6); ingest commits every second, so about a second of
  input is always "behind";
* **window-close-to-write latency**: VictoriaMetrics is read every second, and each window end
  that newly appears among the ``decision`` points is timed: wall time of first sight minus
  the window end. It includes the allowed lateness (a window closes only when the watermark
  passes its end plus the lateness), ingest's emit interval, stage 2 and the writer's flush
  interval, and up to a second of this script's polling.

Each row also has ingest's RocksDB memtable flushes and SST files so far, the load average,
and the CPU share (of one core) of the monitor and of Tansu, with Tansu's RSS: a monitor that
slows down looks different from one starved by the broker or by other work.

It prints a row per sample, then the verdict over the second half of the run (the first half
warms up: RocksDB memtables, allocator arenas, the windows' first fill): RSS growth by a
linear fit (MB/min and over the half as % of the RSS at the middle of the run) or, once the
stores have flushed their memtables twice, by the peaks and troughs of those rounds (RSS is
then a sawtooth, and a fit over half a run measures where it cut a tooth); the lag's trend
(slope, max) and the latency's median and 95th percentile. ``--json`` writes every sample and
the verdict; ``--rejudge FILE`` prints them again. Exits 1 if the monitor process died, 2 if
the producer failed.

Run: ``python benchmarks/soak.py`` (10 minutes), or ``--duration 90s`` for a quick check.
``./dev bench`` leaves it out of its loop (a soak wants a quiet machine and its own time);
``./dev bench soak`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.report import Column, Table, parser
from driftline.config import Settings
from driftline.config.settings import format_duration, parse_duration
from driftline.streams.registry import publish_profile
from driftline.testing import free_port
from driftline.testing.servers import TansuBroker, VictoriaMetrics
from driftline.testing.service import (
    SEA_MODEL,
    sea_reference,
    service_config,
    start_monitor,
    stop_process,
)
from driftline.testing.synthetic import sea_events
from driftline.topics import create_topics
from soak_parts.load import Load
from soak_parts.probes import (
    Lag,
    WindowWatch,
    histogram,
    quantile,
    share_within,
    store_stats,
    tree_cpu_s,
    tree_rss_mib,
)

MODEL = "sea"
NAME = "soak"
POOL = 20_000  # SEA events whose features, scores and labels are replayed with fresh ids
VM_POLL_S = 1.0
RSS_FLAT_PCT = 5.0  # RSS growth over the second half, as % of the mid-run RSS, still "flat"
LAG_FLAT_S = 1.0  # lag growth over the second half, in seconds of input, still "flat"


@dataclass
class Sample:
    """One row: seconds since the load started and what was seen in the interval before."""

    t: float
    rss_mib: float
    predictions_per_s: float
    lag_predictions: int
    lag_labels: int
    memtable_flushes: int
    sst_mib: float
    windows: int
    load_average: float
    monitor_cpu_pct: float
    broker_cpu_pct: float
    broker_rss_mib: float
    latency_min_s: float | None
    latency_median_s: float | None
    latency_max_s: float | None
    latencies_s: list[float] = field(default_factory=list, repr=False)


TABLE = Table(
    Column("t s", 6, ".0f"),
    Column("RSS MiB", 8, ".1f"),
    Column("pred/s", 7, ",.0f"),
    Column("lag pred", 9, ","),
    Column("lag labels", 10, ","),
    Column("flushes", 7),
    Column("SST MiB", 7, ".0f"),
    Column("windows", 7),
    Column("load", 5, ".1f"),
    Column("mon CPU%", 8, ".0f"),
    Column("Tansu CPU%", 10, ".0f"),
    Column("Tansu MiB", 9, ".0f"),
    Column("lat min", 8, ".1f"),
    Column("lat med", 8, ".1f"),
    Column("lat max", 8, ".1f"),
)


def _cell(value: float | None) -> float | str:
    return "" if value is None else value


def print_row(s: Sample) -> None:
    print(
        TABLE.row(
            s.t,
            s.rss_mib,
            s.predictions_per_s,
            s.lag_predictions,
            s.lag_labels,
            s.memtable_flushes,
            s.sst_mib,
            s.windows,
            s.load_average,
            s.monitor_cpu_pct,
            s.broker_cpu_pct,
            s.broker_rss_mib,
            _cell(s.latency_min_s),
            _cell(s.latency_median_s),
            _cell(s.latency_max_s),
        ),
        flush=True,
    )


# --- the verdict -------------------------------------------------------------------------------


def _slope_per_min(t_s: list[float], values: list[float]) -> float:
    return float(np.polyfit(np.array(t_s) / 60, np.array(values), 1)[0])


def memtable_cycles(samples: list[Sample]) -> list[tuple[float, float]]:
    """(peak, trough) RSS around each round of memtable flushes: the highest RSS from the
    previous trough until this round ended, and the lowest after it until the next round."""
    rounds: list[tuple[int, int]] = []  # (first, last) sample of each run of flushes
    for i in range(1, len(samples)):
        if samples[i].memtable_flushes > samples[i - 1].memtable_flushes:
            if rounds and rounds[-1][1] == i - 1:
                rounds[-1] = (rounds[-1][0], i)
            else:
                rounds.append((i, i))
    cycles: list[tuple[float, float]] = []
    begin = 0  # a peak is sought from the previous trough (the memory comes back after it)
    for k, (_, last) in enumerate(rounds):
        end = rounds[k + 1][0] if k + 1 < len(rounds) else len(samples)
        peak = max(s.rss_mib for s in samples[begin : last + 1])
        after = range(last + 1, end)
        if not after:
            cycles.append((peak, float("nan")))
            continue
        begin = min(after, key=lambda i: samples[i].rss_mib)
        cycles.append((peak, samples[begin].rss_mib))
    return cycles


def verdict(samples: list[Sample], duration: float, rate: float) -> dict[str, Any]:
    """RSS and lag trends over the second half of the run, RSS across memtable cycles, and
    the latencies of all of it."""
    half = [s for s in samples if s.t >= duration / 2]
    latencies = [x for s in samples for x in s.latencies_s]
    later = [x for s in half for x in s.latencies_s]
    result: dict[str, Any] = {
        "windows_written": len(latencies),
        "latency_median_s": statistics.median(latencies) if latencies else None,
        "latency_p95_s": float(np.percentile(latencies, 95)) if latencies else None,
        "latency_second_half_median_s": statistics.median(later) if later else None,
        "lag_max": max((s.lag_predictions + s.lag_labels for s in samples), default=0),
        "memtable_cycles": memtable_cycles(samples),
    }
    if len(half) < 3:
        return {**result, "memory": "not judged", "lag": "not judged"}
    t = [s.t for s in half]
    minutes = (t[-1] - t[0]) / 60
    rss_slope = _slope_per_min(t, [s.rss_mib for s in half])
    mid = half[0].rss_mib
    rss_pct = 100 * rss_slope * minutes / mid
    memory = "flat" if rss_pct <= RSS_FLAT_PCT else "growing"
    cycles = result["memtable_cycles"]
    if len(cycles) >= 2:
        # A sawtooth (memtables fill, flush and are freed): a fit over half a run measures
        # where the run cut a tooth; whether the teeth grow is the question.
        (peak0, trough0), (peak1, trough1) = cycles[0], cycles[-1]
        ceiling = 1 + RSS_FLAT_PCT / 100
        bounded = peak1 <= peak0 * ceiling and not trough1 > trough0 * ceiling
        memory = "flat (sawtooth)" if bounded else "growing (sawtooth)"
    lags = [float(s.lag_predictions + s.lag_labels) for s in half]
    lag_slope = _slope_per_min(t, lags)
    lag_growth_s = lag_slope * minutes / (2 * rate)  # in seconds of input (predictions + labels)
    return {
        **result,
        "rss_mid_mib": mid,
        "rss_end_mib": half[-1].rss_mib,
        "memtable_flushes_second_half": half[-1].memtable_flushes - half[0].memtable_flushes,
        "memtable_flushes": half[-1].memtable_flushes,
        "rss_slope_mib_per_min": rss_slope,
        "rss_growth_second_half_pct": rss_pct,
        "memory": memory,
        "lag_slope_per_min": lag_slope,
        "lag_growth_second_half_s": lag_growth_s,
        "lag_max_second_half": max(lags),
        "lag_max_second_half_s": max(lags) / (2 * rate),
        "lag": "flat" if lag_growth_s <= LAG_FLAT_S else "growing",
    }


def print_verdict(v: dict[str, Any], args: Any) -> None:
    def fmt(key: str, spec: str) -> str:
        return "n/a" if v.get(key) is None else format(v[key], spec)

    cycles = "; ".join(f"{peak:.0f} -> {trough:.0f}" for peak, trough in v["memtable_cycles"])
    print(
        f"\nmemory: {v['memory']} — RSS {fmt('rss_mid_mib', '.0f')} MiB at mid-run, "
        f"{fmt('rss_end_mib', '.0f')} at the end; linear fit over the second half "
        f"{fmt('rss_slope_mib_per_min', '+.2f')} MiB/min = "
        f"{fmt('rss_growth_second_half_pct', '+.1f')} % of the mid-run RSS over the half "
        f"(flat: at most {RSS_FLAT_PCT:.0f} %)"
    )
    print(
        f"  ingest's RocksDB memtable flushes: {fmt('memtable_flushes', 'd')} over the run, "
        f"{fmt('memtable_flushes_second_half', 'd')} in the second half; RSS peak -> trough "
        f"around each round of flushes (MiB): {cycles or 'no flush'}. With two rounds or "
        f"more the verdict compares the last round's peak and trough with the first's "
        f"(flat: at most {RSS_FLAT_PCT:.0f} % higher), not the fit"
    )
    print(
        f"lag: {v['lag']} — fit over the second half {fmt('lag_slope_per_min', '+,.0f')} "
        f"messages/min = {fmt('lag_growth_second_half_s', '+.2f')} s of input over the half "
        f"(flat: at most {LAG_FLAT_S:.0f} s); max {fmt('lag_max_second_half', ',.0f')} "
        f"({fmt('lag_max_second_half_s', '.1f')} s of input) in the second half, "
        f"{v['lag_max']:,} over the run (ingest commits every second, so about a second of "
        f"input, {2 * float(args.rate):,.0f} messages, is always uncommitted)"
    )
    print(
        f"window close to write: {v['windows_written']} windows, median "
        f"{fmt('latency_median_s', '.1f')} s, p95 {fmt('latency_p95_s', '.1f')} s (second "
        f"half median {fmt('latency_second_half_median_s', '.1f')} s); includes the allowed "
        f"lateness {args.lateness}, ingest's 1 s emit interval, the writer's flush interval "
        f"{args.flush_interval} and up to {VM_POLL_S:.0f} s of this script's polling"
    )


def rejudge(path: Path) -> None:
    """Print the samples and the verdict of a run saved with ``--json``."""
    saved = json.loads(path.read_text())
    options = argparse.Namespace(**saved["options"])
    # Runs saved before the load and CPU columns have none.
    later = ("load_average", "monitor_cpu_pct", "broker_cpu_pct", "broker_rss_mib")
    samples = [Sample(**{**dict.fromkeys(later, float("nan")), **s}) for s in saved["samples"]]
    print(TABLE.header())
    for sample in samples:
        print_row(sample)
    print_verdict(verdict(samples, float(options.duration), float(options.rate)), options)


# --- the run -----------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    return parse_duration(
        float(text) if text.replace(".", "", 1).isdigit() else text
    ).total_seconds()


def main() -> int:
    cli = parser(__doc__)
    cli.add_argument("--duration", type=_seconds, default=600.0, help="e.g. 600, 90s, 10m")
    cli.add_argument("--rate", type=float, default=2000.0, help="predictions per second")
    cli.add_argument("--label-delay", type=float, default=5.0, help="seconds to each label")
    cli.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    cli.add_argument("--pane", default="10s")
    cli.add_argument("--window", default="1m", help="window size (hopping by a pane)")
    cli.add_argument("--lateness", default="5s", help="the model's allowed_lateness")
    cli.add_argument("--flush-interval", default="500ms", help="the writer's flush interval")
    cli.add_argument("--json", type=Path, help="write the samples and the verdict here")
    cli.add_argument("--rejudge", type=Path, help="only print the verdict of a --json file")
    args = cli.parse_args()
    if args.rejudge:
        rejudge(args.rejudge)
        return 0
    wall = time.monotonic()
    load_start = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="driftline-soak-") as tmp,
        TansuBroker(workdir=Path(tmp) / "tansu") as broker,
        VictoriaMetrics(workdir=Path(tmp) / "victoria-metrics") as victoria,
    ):
        work = Path(tmp)
        model = {
            **SEA_MODEL,
            "pane": args.pane,
            "windows": [{"size": args.window, "hop": args.pane}],
            "allowed_lateness": args.lateness,
            "idle_timeout": "30s",
        }
        raw = service_config(
            bootstrap_servers=broker.bootstrap_servers,
            influx_url=victoria.url,
            state_dir=work / "state",
            name=NAME,
            models={MODEL: model},
            flush_interval=args.flush_interval,
        )
        port = free_port()
        raw["monitor"]["metrics_port"] = port  # for the writer's window_age histogram
        settings = Settings(**raw)
        topics = settings.topics
        config, log = work / "driftline.yaml", work / "monitor.log"
        config.write_text(json.dumps(raw))  # JSON is YAML
        create_topics(settings.kafka, topics, settings=settings)
        publish_profile(settings.kafka, topics, sea_reference(MODEL))
        pool = list(sea_events(POOL, model=MODEL, seed=7))
        print(
            f"driftline soak: {format_duration(parse_duration(args.duration))} at "
            f"{args.rate:,.0f} predictions/s, each labelled {args.label_delay:g} s later; "
            f"SEA model (3 features), {topics.input_partitions} input partitions; panes "
            f"{args.pane}, windows {args.window} hopping by a pane, lateness {args.lateness}, "
            f"writer flush {args.flush_interval}; one `driftline monitor run` process; "
            f"{os.cpu_count()} cores shared with Tansu, VictoriaMetrics and this load; "
            f"load average {load_start:.2f}"
        )
        monitor = start_monitor("run", config, log)
        load = Load(settings.kafka, topics, args.rate, args.label_delay, pool)
        lag = Lag(settings.kafka, f"{settings.monitor.group_id}-ingest")
        watch = WindowWatch(victoria, MODEL)
        samples: list[Sample] = []
        died: int | None = None
        load.start()
        start = time.monotonic()
        next_sample, last_t, last_n = start + args.every, 0.0, 0
        # TansuBroker keeps its process private; its CPU time and size show what it costs.
        broker_pid = broker._proc.pid if broker._proc is not None else 0
        last_cpu, last_broker_cpu = tree_cpu_s(monitor.pid), tree_cpu_s(broker_pid)
        print(TABLE.header())
        try:
            while time.monotonic() - start < args.duration and load.error is None:
                if monitor.poll() is not None:
                    died = monitor.returncode
                    break
                watch.poll()
                if time.monotonic() >= next_sample:
                    t, n = time.monotonic() - start, load.predictions
                    lagged = lag(load.acknowledged())
                    fresh = watch.take()
                    flushes, sst_mib = store_stats(work / "state")
                    cpu, broker_cpu = tree_cpu_s(monitor.pid), tree_cpu_s(broker_pid)
                    sample = Sample(
                        t=t,
                        rss_mib=tree_rss_mib(monitor.pid),
                        predictions_per_s=(n - last_n) / (t - last_t),
                        lag_predictions=lagged.get(topics.predictions, 0),
                        lag_labels=lagged.get(topics.ground_truth, 0),
                        memtable_flushes=flushes,
                        sst_mib=sst_mib,
                        windows=len(fresh),
                        load_average=os.getloadavg()[0],
                        monitor_cpu_pct=100 * (cpu - last_cpu) / (t - last_t),
                        broker_cpu_pct=100 * (broker_cpu - last_broker_cpu) / (t - last_t),
                        broker_rss_mib=tree_rss_mib(broker_pid),
                        latency_min_s=min(fresh) if fresh else None,
                        latency_median_s=statistics.median(fresh) if fresh else None,
                        latency_max_s=max(fresh) if fresh else None,
                        latencies_s=fresh,
                    )
                    print_row(sample)
                    samples.append(sample)
                    next_sample += args.every
                    last_t, last_n = t, n
                    last_cpu, last_broker_cpu = cpu, broker_cpu
                time.sleep(max(0.0, min(VM_POLL_S, next_sample - time.monotonic())))
        finally:
            load.stopping.set()
            load.join(60)
            lag.close()
            ages = histogram(port, "driftline_writer_window_age_seconds")
            code = stop_process(monitor, 30) if died is None else died
        result = verdict(samples, args.duration, args.rate)
        print_verdict(result, args)
        print_window_age(ages, parse_duration(args.lateness).total_seconds())
        print(
            f"sent {load.predictions:,} predictions and {load.labels:,} labels "
            f"({load.failed} failed); monitor exit status {code}; wall time "
            f"{time.monotonic() - wall:.0f} s; load average {load_start:.2f} at the start, "
            f"{os.getloadavg()[0]:.2f} at the end (above ~1 means other work shared the cores)"
        )
        if died is not None:
            print(f"THE MONITOR DIED (exit status {died}); its log ends:")
            print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "options": {k: str(v) for k, v in vars(args).items()},
                        "cores": os.cpu_count(),
                        "samples": [asdict(s) for s in samples],
                        "verdict": result,
                        "sent": {"predictions": load.predictions, "labels": load.labels},
                        "monitor_died": died,
                    },
                    indent=1,
                )
            )
    if died is not None:
        return 1
    if load.error is not None:
        print(f"THE LOAD FAILED: {load.error}")
        return 2
    return 0


def print_window_age(buckets: list[tuple[float, float]], lateness_s: float) -> None:
    """Window close to point accepted, from the writer's ``window_age`` histogram (window end
    to InfluxDB accepting the window's first record), minus the allowed lateness."""
    n = buckets[-1][1] if buckets else 0
    if not n:
        print("window close -> point accepted: no window written")
        return
    p50, p99 = quantile(buckets, 0.5) - lateness_s, quantile(buckets, 0.99) - lateness_s
    goal = lateness_s + 5
    within = share_within(buckets, goal) if goal in dict(buckets) else float("nan")
    verdict = "MET" if within >= 0.99 else "NOT MET"
    print(
        f"window close -> point accepted (writer's window_age minus the {lateness_s:g} s "
        f"lateness, {n:.0f} windows, interpolated in its buckets): p50 {p50:.1f} s, p99 "
        f"{p99:.1f} s; goal p99 <= 5 s beyond the lateness: {verdict} ({within:.1%} within)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
