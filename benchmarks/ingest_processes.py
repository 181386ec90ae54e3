"""Stage 1 in two processes (``--ingest-processes 2``) against two bare consumers, one run.

Starts a Tansu broker, pre-loads ``--events`` predictions and as many labels on
``--partitions`` partitions (``benchmarks/e2e.py``'s events and reference), then
``--repeats`` times, alternating:

1. **Two bare consumers**: two spawned processes, each assigned half of the partition numbers
   of both topics (what range assignment gives two group members), reading from the beginning
   with batch ``consume`` (``fetch.queue.backoff.ms`` = 5) and driftline's decoder on every
   message. Timed from a common start (both processes ready) until the last message either
   of them reads: events/s = both topics' messages / that.
2. **Two ingest processes**: :class:`~driftline.streams.processes.IngestProcesses` with two
   children (a fresh group and ``state_dir`` each time), each serving its ``/metrics``
   (``monitor.metrics_port + 1 + i``), scraped every 20 ms. Timed from the moment both
   children own input partitions (the group join, and what the first child applied alone
   meanwhile, are left out) until their counters say every prediction is folded and every
   label accepted and joined: events/s = the events applied in that interval / its length.

Prints each run, the ratio of each run's two figures and the medians. Tansu shares the
machine's cores with the processes measured, as in production on one machine. Run:
``python benchmarks/ingest_processes.py`` (``--events``, ``--partitions``, ``--repeats``).
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from common.report import parser
from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.kafka_auth import confluent_config
from driftline.schemas import decode_ground_truth, decode_prediction
from driftline.streams.processes import IngestProcesses
from driftline.testing.servers import TansuBroker, free_port
from driftline.topics import create_topics
from e2e_parts.ingest import settings_for
from e2e_parts.load import (
    N_FEATURES,
    PREFIX,
    label_events,
    prediction_events,
    preload,
    publish_reference,
    topic_names,
)

_OFFSET_BEGINNING = -2
_IDLE = 2.0  # seconds without a message after which a bare consumer has read its share
_SCRAPE = 0.02


def _bare(
    kafka: KafkaSettings,
    topics: TopicSettings,
    partitions: list[int],
    ready: Event,
    go: Event,
    out: Any,
) -> None:
    """One bare consumer: its partitions of both topics, decoded; reports (messages, last)."""
    decoders = {topics.predictions: decode_prediction, topics.ground_truth: decode_ground_truth}
    consumer = Consumer(
        {
            **confluent_config(kafka),
            "group.id": f"{PREFIX}-bare-{os.getpid()}",  # required; never joined
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 5,
            "enable.partition.eof": False,
        }
    )
    ready.set()
    go.wait()
    consumer.assign([TopicPartition(t, p, _OFFSET_BEGINNING) for t in decoders for p in partitions])
    seen, last = 0, time.time()
    while time.time() - last < _IDLE:
        for message in consumer.consume(num_messages=5000, timeout=0.1):
            if message.error() is not None:
                continue
            decoders[message.topic() or ""](message.value() or b"", message.key())
            seen += 1
            last = time.time()
    consumer.close()
    out.put((seen, last))


def bare_rate(kafka: KafkaSettings, topics: TopicSettings, parts: int, expected: int) -> float:
    """Events/s of two bare consumers over all partitions, half each (module docstring)."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    go = context.Event()
    halves = [list(range(parts))[: (parts + 1) // 2], list(range(parts))[(parts + 1) // 2 :]]
    readies = [context.Event() for _ in halves]
    children = [
        context.Process(target=_bare, args=(kafka, topics, half, ready, go, out))
        for half, ready in zip(halves, readies, strict=True)
    ]
    for child in children:
        child.start()
    for ready in readies:
        ready.wait(60)
    start = time.time()
    go.set()
    results = [out.get(timeout=900) for _ in children]
    for child in children:
        child.join(30)
    seen = sum(n for n, _ in results)
    if seen != expected:
        raise RuntimeError(f"the bare consumers read {seen} messages, not {expected}")
    return expected / (max(last for _, last in results) - start)


def _scrape(port: int) -> dict[str, float]:
    """The unlabelled samples of one child's ``/metrics`` ({} while it serves none)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def ingest_rate(settings: Settings, predictions: int, parts: int) -> float:
    """Events/s of two ingest processes once both own partitions (module docstring)."""
    children = IngestProcesses(settings, 2).start()
    ports = [children.port(i) for i in range(2)]
    stop = threading.Event()
    supervisor = threading.Thread(target=children.run, args=(stop,), daemon=True)
    supervisor.start()
    metric = "driftline_ingest_{}_total".format

    def applied(samples: list[dict[str, float]]) -> tuple[float, float, float]:
        return tuple(  # type: ignore[return-value]
            sum(s.get(metric(name), 0.0) for s in samples)
            for name in ("predictions", "labels", "joined")
        )

    try:
        began, start, at_start = time.monotonic(), None, 0.0
        while True:
            now = time.monotonic()
            samples = [_scrape(port) for port in ports if port is not None]
            if not supervisor.is_alive():
                raise RuntimeError("an ingest process died")
            if now - began > 900:
                raise RuntimeError(f"not done in 15 minutes: {applied(samples)}")
            folded, labels, joined = applied(samples)
            owned = [s.get("driftline_ingest_partitions", 0.0) for s in samples]
            if start is None and len(owned) == 2 and all(owned) and sum(owned) == parts:
                start, at_start = now, folded + labels
            if folded >= predictions and labels >= predictions and joined >= predictions:
                if start is None:
                    raise RuntimeError("done before both processes owned partitions")
                return (folded + labels - at_start) / (now - start)
            time.sleep(_SCRAPE)
    finally:
        stop.set()
        supervisor.join(120)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--events", type=int, default=1_000_000, help="predictions")
    options.add_argument("--partitions", type=int, default=6, help="input partitions")
    options.add_argument("--repeats", type=int, default=3, help="runs of each, median kept")
    args = options.parse_args()
    n, parts = args.events, args.partitions
    wall = time.perf_counter()
    print(
        f"driftline stage 1 in two processes: {n:,} predictions + {n:,} labels, {N_FEATURES} "
        f"numeric features + 2 scores, {parts} input partitions; {len(os.sched_getaffinity(0))} "
        f"usable cores, shared with the Tansu broker; load average {os.getloadavg()[0]:.2f}"
    )
    with TansuBroker() as broker, tempfile.TemporaryDirectory(prefix="driftline-np-") as tmp:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client_id=PREFIX)
        topics = topic_names("ground-truth", parts)
        create_topics(kafka, topics)
        publish_reference(kafka, topics)
        load_p = preload(kafka, topics.predictions, prediction_events(n, seed=1))
        load_l = preload(kafka, topics.ground_truth, label_events(n, seed=1))
        print(f"pre-loaded in {load_p:.1f} s + {load_l:.1f} s")
        bare, ingest = [], []
        for run in range(args.repeats):
            bare.append(bare_rate(kafka, topics, parts, 2 * n))
            base = settings_for(kafka, topics, Path(tmp) / f"run{run}")
            port = free_port()
            monitor = base.monitor.model_copy(update={"metrics_port": port})
            ingest.append(ingest_rate(base.model_copy(update={"monitor": monitor}), n, parts))
            print(
                f"run {run + 1}: two bare consumers (consume + decode) {bare[-1]:,.0f} events/s; "
                f"two ingest processes {ingest[-1]:,.0f} events/s; "
                f"ratio {ingest[-1] / bare[-1]:.2f}x",
                flush=True,
            )
        ratios = [i / b for i, b in zip(ingest, bare, strict=True)]
        print(
            f"median of {args.repeats}: two bare consumers {statistics.median(bare):,.0f} "
            f"events/s; two ingest processes {statistics.median(ingest):,.0f} events/s; "
            f"ratio {statistics.median(ratios):.2f}x (per run: "
            f"{', '.join(f'{r:.2f}' for r in ratios)})"
        )
    print(
        f"total wall time {time.perf_counter() - wall:.0f} s; load average "
        f"{os.getloadavg()[0]:.2f} at the end"
    )


if __name__ == "__main__":
    main()
