"""Tansu alone at the soak's message rate, without the monitor: does its delivery delay grow?

The soak's lag and close-to-write latency grow while the monitor's CPU stays flat; this asks
the broker the same question with nothing of driftline in the way. A producer publishes
``--rate`` messages a second of 294 bytes (a soak prediction's size) alternately to two
4-partition topics, as the soak's predictions and labels; one consumer group reads them
(committing every second, as ingest does). Every 30 s it prints the delay from a message's
creation to its consumption (median and 95th percentile), Tansu's CPU share and RSS.

Run: ``cd benchmarks && python -m soak_parts.tansu_alone --duration 300``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.testing.servers import TansuBroker
from soak_parts.probes import tree_cpu_s, tree_rss_mib

TOPICS = ("alone.predictions", "alone.ground-truth")
VALUE = b"x" * 294


def _load(servers: str, rate: float, stop: threading.Event) -> None:
    producer = Producer(
        {
            "bootstrap.servers": servers,
            "linger.ms": 5,
            "compression.type": "lz4",
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    start, n = time.monotonic(), 0
    while not stop.is_set():
        due = int((time.monotonic() - start) * rate)
        while n < due:
            producer.produce(TOPICS[n % 2], key=str(n).encode(), value=VALUE)
            n += 1
        producer.poll(0)
        stop.wait(0.005)  # pacing, as the soak's load
    producer.flush(10)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--duration", type=float, default=300.0, help="seconds")
    cli.add_argument("--rate", type=float, default=4000.0, help="messages per second, in all")
    args = cli.parse_args()
    with TansuBroker() as broker:
        servers = broker.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": servers})
        for future in admin.create_topics([NewTopic(t, 4, 1) for t in TOPICS]).values():
            future.result()
        stop = threading.Event()
        threading.Thread(target=_load, args=(servers, args.rate, stop), daemon=True).start()
        consumer = Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": "alone",
                "auto.offset.reset": "earliest",
                "auto.commit.interval.ms": 1000,
                "fetch.queue.backoff.ms": 5,
            }
        )
        consumer.subscribe(list(TOPICS))
        pid = broker._proc.pid if broker._proc is not None else 0  # private; a benchmark looks
        start = last = time.monotonic()
        cpu_before, delays = tree_cpu_s(pid), list[float]()
        while time.monotonic() - start < args.duration:
            for message in consumer.consume(5000, 0.2):
                if message.error() is None:
                    delays.append(time.time() * 1000 - message.timestamp()[1])
            now = time.monotonic()
            if now - last >= 30 and delays:
                cpu = tree_cpu_s(pid)
                delays.sort()
                print(
                    f"{now - start:5.0f} s  delay median {statistics.median(delays):6.0f} ms, "
                    f"p95 {delays[int(len(delays) * 0.95)]:6.0f} ms over {len(delays):,} "
                    f"messages; Tansu {100 * (cpu - cpu_before) / (now - last):3.0f} % of a "
                    f"core, {tree_rss_mib(pid):4.0f} MiB; load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                delays, last, cpu_before = [], now, cpu
        stop.set()
        consumer.close()


if __name__ == "__main__":
    main()
