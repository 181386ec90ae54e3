"""Late labels restate an earlier window's performance point, end to end.

SDK -> ``driftline monitor run`` (ingest, stage 2, InfluxDB writer) -> VictoriaMetrics and
Kafka, on a Tansu broker and a VictoriaMetrics this test starts itself (as ``driftline demo``
does). VictoriaMetrics rather than the shared ``metrics_server`` fixture: it keeps every write
of a point as its own sample, so the old and the new value of a restated point can both be
read back, where InfluxDB 2 would keep only the last one.

One model, stationary SEA traffic, ten-minute windows of one-minute panes:

1. the first window's 6,000 predictions and the labels of 40 % of them;
2. five more minutes of predictions (no labels), which close the first window: its
   ``performance`` and ``label_coverage`` points are written with coverage 0.4;
3. the labels of the other 60 % of the first window's predictions, late: the window is
   judged again and the same points (same measurement, tags and window-end timestamp) are
   written with coverage 1.0 and the accuracy of all 6,000 pairs.

If stage 2 ignored partials that arrive after a window was judged, or stage 1 dropped labels
of panes it had already emitted, step 3 would never see coverage 1.0 and the test would time
out waiting for it (checked: with ``ModelMonitor.due`` never judging a window twice, it fails
there); if a restatement wrote under another identity (a new tag, the wall-clock time), the
one series at the window end would not hold the new value.
"""

from __future__ import annotations

import random
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from math import isclose
from pathlib import Path
from typing import Any

import orjson
import yaml

from driftline.client import DriftlineProducer
from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.detectors.performance import PerformanceSummary
from driftline.sinks.outbox import decode_lines
from driftline.streams import partials as wire
from driftline.streams.registry import publish_profile
from driftline.testing.servers import Series, TansuBroker, VictoriaMetrics
from driftline.testing.service import (
    SEA_MODEL,
    sea_reference,
    service_config,
    start_monitor,
    stop_process,
)
from driftline.testing.synthetic import START_MS, STEP_MS, SyntheticEvent, sea_events
from driftline.topics import create_topics
from tests.streams.kafka_helpers import assigned_reader

MODEL, VERSION = "sea", "1"
WINDOW_MS = 10 * 60_000
PER_WINDOW = WINDOW_MS // STEP_MS  # 6,000 predictions in a ten-minute window
N_EVENTS = PER_WINDOW + PER_WINDOW // 2  # 15 minutes: the first window closes, the second not
FIRST_END = START_MS + WINDOW_MS  # the first window's points carry this timestamp
EARLY_SHARE = 0.4
N_EARLY = int(PER_WINDOW * EARLY_SHARE)
TAGS = {"model": MODEL, "version": VERSION, "window": "10m"}
TIMEOUT = 45.0  # seconds per phase; a passing run needs a few (a Tansu group join takes ~3 s)


def _config(broker: TansuBroker, victoria: VictoriaMetrics, work: Path) -> dict[str, Any]:
    # Between the phases every input partition is idle; the closing watermark is then the
    # newest event seen, which never closes a window early here. 2,400 early labels are
    # enough (min_labels 500) for the window to be judged on performance.
    return service_config(
        bootstrap_servers=broker.bootstrap_servers,
        influx_url=victoria.url,
        state_dir=work / "state",
        name="late-labels",
        models={MODEL: {**SEA_MODEL, "idle_timeout": "3s"}},
        flush_interval="200ms",
    )


def _accuracy(events: list[SyntheticEvent]) -> float:
    """The oracle: share of predictions equal to their label."""
    correct = sum(e.prediction["prediction"] == e.ground_truth["label"] for e in events)
    return correct / len(events)


class _Tail:
    """Every record of some topics from their beginning, read by assignment (no group join)."""

    def __init__(self, kafka: KafkaSettings, topics: list[str]) -> None:
        self._consumer = assigned_reader(kafka, topics, "late-labels-reader")
        self.records: dict[str, list[tuple[bytes | None, bytes]]] = {t: [] for t in topics}

    def read(self, timeout: float = 0.2) -> int:
        """Take what arrived since the last read into :attr:`records`; returns how many."""
        messages = self._consumer.consume(1000, timeout)
        for message in messages:
            value = message.value()
            if message.error() is None and value is not None:
                self.records[message.topic() or ""].append((message.key(), value))
        return len(messages)

    def read_until_quiet(self, quiet: float) -> None:
        """Read until nothing has arrived for ``quiet`` seconds."""
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            if self.read(timeout=min(0.25, quiet)):
                last = time.monotonic()

    def close(self) -> None:
        self._consumer.close()


@contextmanager
def _monitor(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = start_monitor("run", config, log)
    try:
        yield process
    finally:
        stop_process(process, 30)


def _log_tail(log: Path, lines: int = 60) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "--- monitor log (tail)\n" + "\n".join(text.splitlines()[-lines:])


def _wait_for(
    what: str,
    check: Callable[[], bool],
    monitor: subprocess.Popen[bytes],
    log: Path,
    timeout: float = TIMEOUT,
) -> None:
    """Poll ``check`` until it holds; fail with the monitor's log when it does not in time."""
    deadline = time.monotonic() + timeout
    while True:
        assert monitor.poll() is None, (
            f"the monitor exited with {monitor.returncode} while waiting for {what}\n"
            + _log_tail(log)
        )
        if check():
            return
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s\n" + _log_tail(log)
        time.sleep(0.25)  # polling Kafka / VictoriaMetrics; results follow their cause in ~1 s


def _first_window(
    victoria: VictoriaMetrics, measurement: str, field: str, **tags: str
) -> list[Series]:
    return [
        s
        for s in victoria.series(measurement, **TAGS, **tags)
        if s.field == field and any(ms == FIRST_END for ms, _ in s.points)
    ]


def _values(series: list[Series]) -> list[float]:
    return [v for s in series for ms, v in s.points if ms == FIRST_END]


def _contains(values: list[float], expected: float) -> bool:
    # VictoriaMetrics keeps about 12 significant digits of a float.
    return any(isclose(v, expected, rel_tol=1e-9) for v in values)


def _labels_sent_to_stage2(records: list[tuple[bytes | None, bytes]]) -> int:
    """Labels in the first window's performance partials on the summaries topic: per pane and
    source partition the latest (cumulative) one, as stage 2 keeps them."""
    latest: dict[tuple[int, int], wire.PanePartial] = {}
    for _, value in records:
        message = wire.decode(value)
        if (
            isinstance(message, wire.PanePartial)
            and message.kind == "performance"
            and message.pane_start_ms < FIRST_END
        ):
            identity = (message.pane_start_ms, message.source_partition)
            held = latest.get(identity)
            if held is None or message.covered > held.covered:
                latest[identity] = message
    return sum(PerformanceSummary.from_bytes(p.summary).n for p in latest.values())


def _split(text: str, separator: str) -> list[str]:
    """``text`` split at each ``separator`` not escaped with a backslash."""
    return re.split(rf"(?<!\\){re.escape(separator)}", text)


def _outbox_points(records: list[tuple[bytes | None, bytes]]) -> list[dict[str, dict[str, str]]]:
    """The first window's points per outbox record, in publication order (one model: one
    partition): ``{series as written: {field: value as written}}``."""
    found = []
    for _, value in records:
        points = {}
        for line in decode_lines(value):
            series, fields, timestamp = _split(line, " ")
            if int(timestamp) == FIRST_END:
                points[series] = dict(f.split("=", 1) for f in _split(fields, ","))
        if points:
            found.append(points)
    return found


def test_late_labels_restate_the_first_windows_performance_points(tmp_path: Path) -> None:
    """The first window is judged on 40 % of its labels, then rewritten under the same point
    identities with all of them: coverage 0.4 -> 1.0, accuracy -> the oracle of all pairs."""
    events = list(sea_events(N_EVENTS, seed=7))
    first = events[:PER_WINDOW]
    early_rows = set(random.Random(11).sample(range(PER_WINDOW), N_EARLY))
    early = [e for i, e in enumerate(first) if i in early_rows]
    late = [e for i, e in enumerate(first) if i not in early_rows]
    partial_accuracy, full_accuracy = _accuracy(early), _accuracy(first)
    assert all(e.prediction["timestamp"] < FIRST_END for e in first)

    with (
        TansuBroker(workdir=tmp_path / "tansu") as broker,
        VictoriaMetrics(workdir=tmp_path / "victoria-metrics") as victoria,
    ):
        raw = _config(broker, victoria, tmp_path)
        settings = Settings(**raw)
        topics: TopicSettings = settings.topics
        config = tmp_path / "driftline.yaml"
        config.write_text(yaml.safe_dump(raw))
        create_topics(settings.kafka, topics)
        publish_profile(settings.kafka, topics, sea_reference(MODEL, VERSION, rows=10_000))
        outputs = [topics.summaries, topics.labeled, topics.metrics, topics.alerts, topics.retrain]
        tail = _Tail(settings.kafka, outputs)
        log = tmp_path / "monitor.log"

        def send(records: list[Any]) -> None:
            with DriftlineProducer(settings.kafka, topics, config={"linger.ms": 20}) as producer:
                for record in records:
                    producer.send(record)

        try:
            with _monitor(config, log) as monitor:
                # 1. The first window's predictions and 40 % of their labels.
                send([e.events(MODEL)[0] for e in first] + [e.events(MODEL)[1] for e in early])

                def early_labels_emitted() -> bool:
                    tail.read()
                    return _labels_sent_to_stage2(tail.records[topics.summaries]) == N_EARLY

                # Stage 2 reads the summaries topic in order, so once the early labels' partials
                # are on it, any watermark that closes the first window comes after them: its
                # first judgment counts exactly the early labels, however the next predictions
                # are batched.
                _wait_for("the early labels' partials", early_labels_emitted, monitor, log)

                # 2. Five more minutes of predictions close the first window.
                send([e.events(MODEL)[0] for e in events[PER_WINDOW:]])

                def judged_early() -> bool:
                    coverage = _values(_first_window(victoria, "label_coverage", "coverage"))
                    accuracy = _values(
                        _first_window(victoria, "performance", "value", metric="accuracy")
                    )
                    return _contains(coverage, EARLY_SHARE) and _contains(
                        accuracy, partial_accuracy
                    )

                _wait_for("first judgment with 40 % coverage", judged_early, monitor, log)
                seen_before = {
                    "coverage": set(_values(_first_window(victoria, "label_coverage", "coverage"))),
                    "n_labels": set(_values(_first_window(victoria, "label_coverage", "n_labels"))),
                }
                # So far judged on exactly the early labels (nothing of the window changed since).
                assert seen_before["n_labels"] == {N_EARLY}, f"{seen_before}\n" + _log_tail(log)

                # 3. The other 60 % of the labels, after the window was judged.
                send([e.events(MODEL)[1] for e in late])

                def restated() -> bool:
                    n_labels = _values(_first_window(victoria, "label_coverage", "n_labels"))
                    accuracy = _values(
                        _first_window(victoria, "performance", "value", metric="accuracy")
                    )
                    return _contains(n_labels, PER_WINDOW) and _contains(accuracy, full_accuracy)

                _wait_for("restatement with every label", restated, monitor, log)
                # Stage 2 publishes a judgment's alerts and retrain requests with its metric
                # points and waits for all their acknowledgements, so by now they are on their
                # topics; a quiet second lets the reader catch up with them.
                tail.read_until_quiet(1.0)

                coverage = _first_window(victoria, "label_coverage", "coverage")
                n_labels = _first_window(victoria, "label_coverage", "n_labels")
                n_predictions = _first_window(victoria, "label_coverage", "n_predictions")
                delay = _first_window(victoria, "label_coverage", "mean_label_delay_s")
                accuracy = _first_window(victoria, "performance", "value", metric="accuracy")
                performance_n = _first_window(victoria, "performance", "n_labels")
                firing = _first_window(victoria, "decision", "firing")
                every_timestamp = {ms for s in victoria.series(**TAGS) for ms, _ in s.points}
                context = (
                    f"seen before the late labels: {seen_before}\n"
                    f"coverage {sorted(_values(coverage))}, n_labels {sorted(_values(n_labels))},"
                    f" accuracy {sorted(_values(accuracy))} (oracle {partial_accuracy} on "
                    f"{N_EARLY}, {full_accuracy} on {PER_WINDOW})\n" + _log_tail(log)
                )

                # One identity per point: one series each, written only at the window end.
                for series in (coverage, n_labels, n_predictions, accuracy, firing):
                    assert len(series) == 1, context
                assert every_timestamp == {FIRST_END}, context
                # Old and new value of the same point; nothing else: counts only grow.
                assert _contains(_values(coverage), EARLY_SHARE), context
                assert max(_values(coverage)) == 1.0, context
                assert min(_values(coverage)) >= EARLY_SHARE, context
                assert {N_EARLY, PER_WINDOW} <= set(_values(n_labels)), context
                assert set(_values(n_predictions)) == {PER_WINDOW}, context
                assert _contains(_values(accuracy), partial_accuracy), context
                assert _contains(_values(accuracy), full_accuracy), context
                # Every performance metric was rewritten, not only accuracy.
                assert len(performance_n) > 1, context
                for series in performance_n:
                    assert {N_EARLY, PER_WINDOW} <= set(_values([series])), (series, context)
                assert set(_values(delay)) == {60.0}, context  # every label 1 min after
                assert set(_values(firing)) == {0.0}, context

                # The newest write is the complete one: the outbox holds the writes in order.
                written = _outbox_points(tail.records[topics.metrics])
                coverage_key = "label_coverage,model=sea,version=1,window=10m"
                accuracy_key = "performance,metric=accuracy,model=sea,version=1,window=10m"
                counts = [int(p[coverage_key]["n_labels"].rstrip("i")) for p in written]
                assert len(written) >= 2, context
                assert counts == sorted(counts), context
                assert counts[0] == N_EARLY, context  # judged first on the early labels only
                assert counts[-1] == PER_WINDOW, context
                assert written[-1][coverage_key]["coverage"] == "1.0", context
                assert float(written[-1][accuracy_key]["value"]) == full_accuracy, context
                assert float(written[0][accuracy_key]["value"]) == partial_accuracy, context
                assert all(set(p) == set(written[0]) for p in written), context

                # A stationary stream: no alert, no retrain request, for any judgment.
                assert tail.records[topics.alerts] == [], context
                assert tail.records[topics.retrain] == [], context

                # One joined example per labelled prediction, early or late.
                keys = Counter(key for key, _ in tail.records[topics.labeled])
                expected = {e.prediction["prediction_id"].encode() for e in first}
                assert set(keys) == expected, context
                assert set(keys.values()) == {1}, context
                ids = {orjson.loads(v)["id"] for _, v in tail.records[topics.labeled]}
                assert len(ids) == PER_WINDOW, context
        finally:
            tail.close()
