"""Stage 2's restart on a day of panes: how long until a restarted ``monitor merge`` caught up.

Stage 2 keeps its state in memory and rebuilds it on start by re-reading the summaries topic
(``driftline.streams.stage2``), and reads the alerts and retrain topics back so that it sends
none of them again (``driftline.streams.stage2.published``). This measures both on a Tansu
broker it starts itself (DESIGN §6):

* the summaries topic holds what stage 1 sends for a day of one model: ``--hours`` (24) of
  one-minute panes from ``--partitions`` (4) source partitions, a features partial and a
  performance partial per pane and partition (a reference of ``--features`` (20) numeric
  features, ``--events`` per pane and partition) and a watermark after each pane; features
  drift in every other hour, so the day's hourly windows fire alerts and ask for retraining;
* ``driftline monitor merge`` is started (the first start judges the day), stopped with
  SIGTERM and started again, ``--restarts`` (1) times. Each start is timed from the process
  start until its first summaries message was consumed (process start and group join) and
  until its ``/metrics`` say that every message was consumed and every window judged (windows
  judged again count in ``windows_finalised``: a restarted process has not judged them
  before), with the time spent reading the alerts and retrain topics back (from the log).

The records on the alerts and retrain topics are counted after each start: a restart adds
none. Run: ``python benchmarks/stage2_restart.py`` (a few minutes; ``--hours 6`` for less).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from common.report import parser
from driftline.config import KafkaSettings, TopicSettings
from driftline.detectors.batch import ColumnBatch
from driftline.detectors.performance import PerformanceSummary
from driftline.detectors.profile import build_profile
from driftline.detectors.summary import PaneSummary
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import ModelVersionRegistered, utc_now
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.partials import PanePartial, Watermark, encode
from driftline.streams.registry import publish_profile
from driftline.testing import free_port
from driftline.testing.servers import TansuBroker
from driftline.testing.service import start_monitor, stop_process
from driftline.topics import create_topics

MODEL, VERSION = "bench", "1"
MINUTE = 60_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
VARIANTS = 8  # distinct pane summaries per kind, reused across panes (their bytes only)


def make_profile(n_features: int, rng: np.random.Generator) -> ReferenceProfile:
    n = 20_000
    features = {f"f{i:02d}": rng.normal(size=n) for i in range(n_features)}
    score = 1 / (1 + np.exp(-features["f00"]))
    return build_profile(
        MODEL,
        VERSION,
        "binary",
        features,
        prediction=(score > 0.5).astype(int),
        scores={"0": 1 - score, "1": score},
        labels=(rng.random(n) < score).astype(int),
    )


def summaries(
    profile: ReferenceProfile, events: int, shift: float, rng: np.random.Generator
) -> tuple[list[bytes], list[bytes]]:
    """``VARIANTS`` features and performance summaries of ``events`` each (features moved by
    ``shift``)."""
    features_out, performance_out = [], []
    for _ in range(VARIANTS):
        columns = {name: rng.normal(loc=shift, size=events) for name in profile.features}
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


def load_day(kafka: KafkaSettings, topic: str, profile: ReferenceProfile, args: Any) -> int:
    """Produce the day's summaries messages; returns how many."""
    rng = np.random.default_rng(7)
    calm = summaries(profile, args.events, 0.0, rng)
    drifted = summaries(profile, args.events, 1.0, rng)
    producer = Producer({**confluent_config(kafka), "linger.ms": 20, "compression.type": "lz4"})
    n = 0
    covered = [0] * args.partitions
    for pane in range(args.hours * 60 + 2):  # two more panes close the last hour's window
        start = START_MS + pane * MINUTE
        features, performance = drifted if (pane // 60) % 2 else calm
        for source in range(args.partitions):
            covered[source] += 2 * args.events
            watermark = start + MINUTE - 1
            for kind, blobs in (("features", features), ("performance", performance)):
                value = PanePartial(
                    MODEL,
                    VERSION,
                    start,
                    MINUTE,
                    source,
                    kind,
                    covered[source],
                    watermark,
                    blobs[(pane + source) % VARIANTS],
                )
                producer.produce(topic, key=MODEL.encode(), value=encode(value))
                n += 1
            mark = Watermark(MODEL, source, watermark, args.partitions)
            producer.produce(topic, key=MODEL.encode(), value=encode(mark))
            n += 1
        producer.poll(0)
    assert producer.flush(120) == 0
    return n


def count_records(kafka: KafkaSettings, topics: list[str]) -> dict[str, int]:
    """Records on each topic, read by assignment until nothing arrives for two seconds."""
    consumer = Consumer(
        {**confluent_config(kafka), "group.id": "bench-count", "enable.auto.commit": False}
    )
    assignment = []
    for topic in topics:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
    consumer.assign(assignment)
    counts = dict.fromkeys(topics, 0)
    last = time.monotonic()
    while time.monotonic() - last < 2.0:
        for message in consumer.consume(1000, 0.2):
            if message.error() is None:
                counts[message.topic() or ""] += 1
                last = time.monotonic()
    consumer.close()
    return counts


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return {}
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def timed_start(
    config: Path, log: Path, port: int, messages: int, windows: int
) -> tuple[float, float]:
    """Seconds from starting ``monitor merge`` until it consumed its first message, and until
    it consumed ``messages`` and judged ``windows``; the process is stopped after."""
    started = time.monotonic()
    first = float("nan")
    process = start_monitor("merge", config, log)
    try:
        while True:
            samples = scrape(port)
            consumed = sum(v for (k, _), v in samples.items() if k.endswith("messages_in_total"))
            judged = samples.get(
                ("driftline_merge_windows_finalised_total", frozenset({("model", MODEL)})), 0
            )
            if consumed and first != first:  # still NaN: the first message just came
                first = time.monotonic() - started
            if consumed >= messages and judged >= windows:
                return first, time.monotonic() - started
            if process.poll() is not None:
                raise SystemExit(f"monitor merge exited:\n{log.read_text()[-3000:]}")
            if time.monotonic() - started > 600:
                raise SystemExit(f"not caught up after 600 s: {consumed} messages, {judged}")
            time.sleep(0.05)  # polling /metrics; the deadline bounds it
    finally:
        stop_process(process, 30)


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--hours", type=int, default=24)
    cli.add_argument("--partitions", type=int, default=4)
    cli.add_argument("--features", type=int, default=20)
    cli.add_argument("--events", type=int, default=100, help="per pane and source partition")
    cli.add_argument("--restarts", type=int, default=1)
    args = cli.parse_args()
    wall = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, TansuBroker(workdir=Path(tmp) / "tansu") as broker:
        work = Path(tmp)
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client_id="bench")
        topics = TopicSettings(input_partitions=args.partitions, output_partitions=2)
        create_topics(kafka, topics)
        rng = np.random.default_rng(1)
        profile = make_profile(args.features, rng)
        publish_profile(
            kafka,
            topics,
            ModelVersionRegistered(
                model=MODEL,
                model_version=VERSION,
                registered_at=utc_now(),
                source="cli",
                reference=profile,
            ),
        )
        loading = time.monotonic()
        messages = load_day(kafka, topics.summaries, profile, args)
        print(
            f"summaries topic: {messages:,} messages ({args.hours} h of 1-minute panes, "
            f"{args.partitions} source partitions, {args.features} features), "
            f"produced in {time.monotonic() - loading:.1f} s"
        )
        port = free_port()
        config = work / "driftline.yaml"
        config.write_text(
            json.dumps(
                {
                    "kafka": {"bootstrap_servers": kafka.bootstrap_servers},
                    "topics": topics.model_dump(),
                    "monitor": {
                        "group_id": "bench-stage2",
                        "state_dir": str(work / "state"),
                        "metrics_port": port,
                    },
                    "models": {
                        MODEL: {
                            "task": "binary",
                            "pane": "1m",
                            "windows": [{"size": "1h"}],
                            "allowed_lateness": "1m",
                            "idle_timeout": "30s",
                            "drift": {"persistence_k": 1, "persistence_n": 1},
                            "retrain": {"policy": "on_drift", "cooldown": "1h"},
                        }
                    },
                }
            )
        )
        outputs = [topics.metrics, topics.alerts, topics.retrain]
        for run in range(args.restarts + 1):
            log = work / f"merge-{run}.log"
            first, seconds = timed_start(config, log, port, messages, args.hours)
            restored = re.findall(
                r"(\d+) alert and retrain request id\(s\) read back .* in ([\d.]+) s",
                log.read_text(),
            )
            counts = count_records(kafka, outputs)
            what = "first start" if run == 0 else f"restart {run}"
            ids = ", ".join(f"{n} ids in {s} s" for n, s in restored) or "none"
            print(
                f"{what}: caught up in {seconds:.1f} s (first message at {first:.1f} s, then "
                f"{messages / (seconds - first):,.0f} messages/s); "
                f"published ids read back: {ids}; on the topics: "
                + ", ".join(f"{t.rsplit('.', 1)[1]} {n}" for t, n in counts.items())
            )
    print(f"wall time {time.monotonic() - wall:.0f} s")


if __name__ == "__main__":
    main()
