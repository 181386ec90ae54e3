"""Stage 1 end to end on a real broker: ingest's sustained rate against what Kafka can deliver.

Starts a Tansu broker (DESIGN §6), pre-loads topics with realistic prediction events (20
numeric features, a binary prediction and its two scores, a UUID ``prediction_id`` as key,
one millisecond of event time apart) and one label per prediction, with a fast producer
(linger, lz4), then measures in the same run:

1. **The ceiling** on one core: a bare confluent-kafka consumer (``assign`` from the beginning,
   batch ``consume``, ``fetch.queue.backoff.ms`` = 5 as DESIGN §6 says), raw and with
   ``decode_prediction`` / ``decode_ground_truth`` on every message (best of ``--repeats``),
   and over both topics the same plus producing each label's joined example (the part of the
   work that ``retrain.examples`` asks for).
2. **The monitor**: the real :class:`~driftline.streams.ingest.Ingest` in this process, with a
   reference profile published on the models topic and a fresh ``state_dir`` and group per
   run, over (a) the predictions alone and (b) the predictions and every label, each with
   ``retrain.examples`` off (predictions wait compact, nothing goes to ``driftline.labeled``)
   and on (whole events wait, every pair makes a joined example). Timed from the
   first partition assignment (group-join time excluded) until its telemetry counters say every
   event is applied (predictions folded; for (b) labels accepted and joined), with the time
   CPython's cyclic GC took. Events/s are input messages per second; the goal is at least half
   of consume + decode of the same topics (0.35x for (b) with examples). After each (a) run the
   join family of its stores is flushed and compacted, and its SST bytes per waiting
   prediction (key and RocksDB's framing included) printed.
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
same conditions; the wall time and the load average are printed at the end. Run:
``python benchmarks/e2e.py``, or for a shorter run
``python benchmarks/e2e.py --events 100000 --rss-events 250000,1000000``, or without the
memory and profile parts ``--events 100000 --rss-events 0 --profile-events 0``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from common.report import parser
from driftline.config import KafkaSettings
from driftline.streams.registry import ProfileRegistry
from driftline.streams.runtime import tune_gc
from driftline.testing.servers import TansuBroker
from driftline.topics import create_topics
from e2e_parts.ceiling import ceiling
from e2e_parts.ingest import join_bytes, print_runs, run_ingest, settings_for
from e2e_parts.load import (
    MODEL,
    N_FEATURES,
    PREFIX,
    VERSION,
    label_events,
    prediction_events,
    preload,
    publish_reference,
    topic_names,
)
from e2e_parts.memory import DEFAULT_RSS, RSS_BUDGET_S, memory, parse_checkpoints, rss_child
from e2e_parts.profiling import profile_runs


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--events", type=int, default=300_000, help="predictions (rate runs)")
    options.add_argument(
        "--rss-events",
        type=parse_checkpoints,
        default=None,
        help=f"memory checkpoints, comma-separated, all measured (default {DEFAULT_RSS}, "
        f"later ones dropped when estimated over {RSS_BUDGET_S / 60:.0f} minutes); 0: no "
        "memory part",
    )
    options.add_argument("--partitions", type=int, default=6, help="input partitions")
    options.add_argument("--batch-size", type=int, default=5000, help="Ingest batch_size")
    options.add_argument("--repeats", type=int, default=2, help="ceiling runs, best kept")
    options.add_argument(
        "--profile-events",
        type=int,
        default=None,
        help="predictions per profiled run (default: --events); 0: no profile",
    )
    options.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = options.parse_args()
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
        rates = ceiling(kafka, both, n, parts, args.repeats)

        # 2. the monitor
        registry = ProfileRegistry(kafka, both).start()
        registry.wait_for(MODEL, VERSION)
        # TansuBroker keeps its process private; its CPU time and size show what it costs.
        broker_pid = broker._proc.pid if broker._proc is not None else None
        runs, store_bytes = {}, {}
        for letter, topics, labels in (("a", only, 0), ("b", both, n)):
            for examples in (False, True):
                key = f"{letter} {'on' if examples else 'off'}"
                state = Path(tmp) / key.replace(" ", "-")
                runs[key] = run_ingest(
                    settings_for(kafka, topics, state, examples=examples),
                    registry,
                    n,
                    labels,
                    batch_size=args.batch_size,
                    broker_pid=broker_pid,
                )
                if letter == "a":  # every prediction waits for its label
                    store_bytes[key] = join_bytes(state)
        print_runs(rates, runs, n, args.repeats, store_bytes)

        # 3. memory, in a child process
        if args.rss_events == []:
            print("\nmemory: skipped (--rss-events 0)")
        else:
            memory(
                settings_for(kafka, rss, Path(tmp)),
                args.rss_events or parse_checkpoints(DEFAULT_RSS),
                opted_in=args.rss_events is not None,
                # A growing join store slows ingest over millions of predictions: assume half.
                ingest_rate=runs["a on"].rate / 2,
                batch_size=args.batch_size,
                broker_pid=broker_pid,
                script=Path(__file__),
            )

        # 4. where the time goes
        cap = n if args.profile_events is None else min(args.profile_events, n)
        if cap > 0:
            profile_runs(
                kafka,
                {"a": (only, 0), "b": (both, cap)},
                registry,
                cap,
                args.batch_size,
                Path(tmp),
            )
        registry.close()
    print(
        f"\ntotal wall time {time.perf_counter() - wall:.0f} s; load average "
        f"{os.getloadavg()[0]:.2f} at the end (above ~1 means other work shared the cores)"
    )


if __name__ == "__main__":
    main()
