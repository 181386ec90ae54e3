"""Scale-out: two ``driftline monitor run`` processes give exactly the same window results as one.

The same deterministic traffic (SEA, an ``x3`` shift at a third, a concept change at two
thirds, every label a minute after its prediction; events alternate between two models) goes
through the whole service twice, each time on a broker and a VictoriaMetrics of its own:

* **one**: a single ``monitor run`` process;
* **two**: two ``monitor run`` processes on one machine, sharing the consumer groups and the
  ``monitor.state_dir``; the second starts once the first has judged a window, so stage 1's
  input partitions (and their RocksDB stores) move mid-stream, and so does stage 2's
  summaries partition of one of the two models (the other model stays where it was).

For every window, the latest value of every metric point read back from the outbox topic
(ordered per key, so its latest record per point identity is what InfluxDB ends up holding),
the alert ids and the retrain request ids must be identical, floats bit for bit: partials
merge by exact integer sums, whichever process folded them. And in both scenarios every
window's *first* result must already count all its predictions and labels: alerts and retrain
requests are decided on it and never withdrawn, so a window judged before its labels were
applied (a watermark running ahead of the ground-truth partition while a new owner catches
up after a rebalance) makes them depend on timing.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.client import DriftlineProducer
from driftline.config import KafkaSettings, Settings, TopicSettings
from driftline.schemas.outputs import DriftAlert, ModelVersionRegistered, RetrainRequest
from driftline.sinks.outbox import decode_lines
from driftline.streams.registry import publish_profile
from driftline.testing.servers import TansuBroker, VictoriaMetrics
from driftline.testing.service import SEA_MODEL, sea_reference, service_config, start_monitor
from driftline.testing.synthetic import START_MS, STEP_MS, sea_events
from driftline.topics import create_topics
from tests.streams.kafka_helpers import assigned_reader

pytestmark = pytest.mark.scale_out

# Summaries are keyed by model; these two names fall on different partitions of the
# two-partition summaries topic (librdkafka's CRC32 partitioner), so when the second process
# joins, stage 2 hands one model over and keeps the other.
MODELS = ("sea", "sea-west")
VERSION = "1"
N_EVENTS = 60_000  # event i is for MODELS[i % 2]
WINDOW_MS = 10 * 60_000
LATENESS_MS = 60_000
# Windows whose end plus the lateness is at or before the last event close on watermarks alone.
WINDOW_ENDS = [
    START_MS + k * WINDOW_MS
    for k in range(1, N_EVENTS * STEP_MS // WINDOW_MS + 1)
    if START_MS + k * WINDOW_MS + LATENESS_MS <= START_MS + (N_EVENTS - 1) * STEP_MS
]
# ~20 s of live traffic: the second process starts ~6 s in (once the first judged a window)
# and takes over stage 2's partition ~8-10 s later, so both handovers happen mid-stream.
PUBLISH_RATE = 3_000  # predictions (and as many labels) a second
RESULTS_TIMEOUT = 90.0  # seconds, per scenario, after the traffic is published; only a failing
# run waits this long (passing runs have every window ~1 s after the last event: a stage-2
# handover on Tansu takes ~10 s, a stalled group join up to faust's 60 s rebalance timeout)
QUIET = 1.0  # seconds without a new outbox record once every window is complete: a margin
# for the records of the same instant, not a guess that results are final (see Results.missing)
PER_WINDOW = WINDOW_MS // STEP_MS // len(MODELS)  # predictions of one model in one window
STARTED = re.compile(r"ingest assigned partitions \[([\d, ]*)\]")
TRACEBACK = "Traceback (most recent call last)"
HANDED_OVER = re.compile(r"summaries partition \d+ no longer assigned; dropped the state of [1-9]")

Identity = tuple[str, int]  # (measurement and tags as written, window end in epoch ms)


def _config(broker: TansuBroker, victoria: VictoriaMetrics, work: Path) -> dict[str, Any]:
    # idle_timeout longer than a rebalance pause (a Tansu group join takes ~3 s), so no window
    # is closed early because stage 1 stopped to hand partitions over.
    return service_config(
        bootstrap_servers=broker.bootstrap_servers,
        influx_url=victoria.url,
        state_dir=work / "state",
        name="scale-out",
        models={model: {**SEA_MODEL, "idle_timeout": "30s"} for model in MODELS},
    )


def _publish(kafka: KafkaSettings, topics: TopicSettings, sent: list[int]) -> None:
    """The same stream every time, paced so that it is still flowing when processes join."""
    began = time.monotonic()
    events = sea_events(N_EVENTS, shift_at=N_EVENTS // 3, drift_at=2 * N_EVENTS // 3, seed=7)
    with DriftlineProducer(kafka, topics, config={"linger.ms": 20}) as producer:
        for i, event in enumerate(events):
            for record in event.events(MODELS[i % len(MODELS)]):
                producer.send(record)
            if i % 1000 == 999:
                sent[0] = i + 1
                ahead = began + (i + 1) / PUBLISH_RATE - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # pace the traffic: live, not a backlog
    sent[0] = N_EVENTS


class TopicTail:
    """Every record of some topics from their beginning, read by assignment (no group join)."""

    def __init__(self, kafka: KafkaSettings, topics: list[str]) -> None:
        self._consumer = assigned_reader(kafka, topics, f"scale-out-reader-{'-'.join(topics)}")

    def read(self, timeout: float = 0.5) -> list[tuple[str, bytes]]:
        """The (topic, value) records that arrived since the last read."""
        values = []
        for message in self._consumer.consume(1000, timeout):
            value = message.value()
            if message.error() is None and value is not None:
                values.append((message.topic() or "", value))
        return values

    def read_until_quiet(self, quiet: float) -> list[tuple[str, bytes]]:
        """Everything that arrives until nothing has for ``quiet`` seconds."""
        values: list[tuple[str, bytes]] = []
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            batch = self.read(timeout=min(0.5, quiet / 2))
            if batch:
                values += batch
                last = time.monotonic()
        return values

    def close(self) -> None:
        self._consumer.close()


def _split(text: str, separator: str) -> list[str]:
    """``text`` split at each ``separator`` not escaped with a backslash."""
    return re.split(rf"(?<!\\){re.escape(separator)}", text)


@dataclass
class Results:
    """What one scenario's service published, read back from Kafka."""

    points: dict[Identity, dict[str, str]] = field(default_factory=dict)
    """Latest field values (as written, so floats compare exactly) per point identity."""
    first_counts: dict[tuple[str, int], tuple[str | None, str | None]] = field(default_factory=dict)
    """(predictions, labels) of each (model, window end)'s first result."""
    records: dict[int, int] = field(default_factory=dict)
    """Outbox records per window end: the first result plus its restatements."""
    alerts: dict[str, str] = field(default_factory=dict)
    """Alert id to what it says (model, window end, status, severity, reasons)."""
    retrain_ids: set[str] = field(default_factory=set)
    logs: list[Path] = field(default_factory=list)
    second_started_after: int | None = None
    """Predictions published when the second process started (scenario two)."""

    def take(self, value: bytes) -> None:
        """Fold one outbox record in: its points replace those with the same identity."""
        ends = set()
        for line in decode_lines(value):
            series, fields, timestamp = _split(line, " ")
            identity = (series, int(timestamp))
            point = dict(f.split("=", 1) for f in _split(fields, ","))
            self.points[identity] = point
            ends.add(identity[1])
            if series.startswith("label_coverage,"):
                model = dict(t.split("=", 1) for t in _split(series, ",")[1:])["model"]
                self.first_counts.setdefault(
                    (model, identity[1]), (point.get("n_predictions"), point.get("n_labels"))
                )
        for end in ends:
            self.records[end] = self.records.get(end, 0) + 1

    def missing(self) -> list[str]:
        """Windows not yet judged on all their predictions and all their labels."""
        missing = []
        for model in MODELS:
            tags = f"model={model},version={VERSION},window=10m"
            for end in WINDOW_ENDS:
                coverage = self.points.get((f"label_coverage,{tags}", end), {})
                counts = (coverage.get("n_predictions"), coverage.get("n_labels"))
                if (
                    counts != (f"{PER_WINDOW}i",) * 2
                    or (f"decision,{tags}", end) not in self.points
                ):
                    missing.append(f"{model} {end}: {counts}")
        return missing

    def judged_early(self) -> list[str]:
        """Windows whose first result lacked predictions or labels."""
        complete = (f"{PER_WINDOW}i",) * 2
        return [
            f"{model} {end}: {counts}"
            for (model, end), counts in sorted(self.first_counts.items())
            if end in WINDOW_ENDS and counts != complete
        ]

    def tail(self) -> str:
        return "\n".join(
            f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            for log in self.logs
        )


@contextmanager
def _monitors(
    config: Path, work: Path, ingest_processes: int = 1
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start ``driftline monitor run`` processes; SIGTERM them at the end and check they exit
    with status 0 (after flushing, committing and leaving their groups)."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start() -> subprocess.Popen[bytes]:
        log = work / f"monitor-{len(started) + 1}.log"
        process = start_monitor("run", config, log, cwd=work, ingest_processes=ingest_processes)
        started.append((process, log))
        return process

    try:
        yield start
    except BaseException:
        for process, _ in started:
            process.kill()
            process.wait(10)
        raise
    died = [log.name for process, log in started if process.poll() is not None]
    for process, _ in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    codes: dict[str, int | None] = {}
    for process, log in started:
        try:
            codes[log.name] = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            codes[log.name] = None  # no exit within 60 s of SIGTERM
    assert not died, f"monitor processes died before the end: {died}"
    assert all(code == 0 for code in codes.values()), (
        f"exit statuses after SIGTERM: {codes}\n"
        + "\n".join(log.read_text(errors="replace")[-3000:] for _, log in started)
    )


def _scenario(
    processes: int,
    work: Path,
    broker: TansuBroker,
    references: list[ModelVersionRegistered],
    ingest_processes: int = 1,
) -> Results:
    """The traffic through ``processes`` monitor processes (the second joining mid-stream),
    each running stage 1 in ``ingest_processes`` processes (1: in its own)."""
    work.mkdir(parents=True)
    results = Results()
    with ExitStack() as stack:
        victoria = stack.enter_context(VictoriaMetrics(workdir=work / "victoria-metrics"))
        raw = _config(broker, victoria, work)
        settings = Settings(**raw)
        config = work / "driftline.yaml"
        config.write_text(yaml.safe_dump(raw))
        create_topics(settings.kafka, settings.topics)
        for reference in references:
            publish_profile(settings.kafka, settings.topics, reference)
        outbox = TopicTail(settings.kafka, [settings.topics.metrics])
        stack.callback(outbox.close)

        start = stack.enter_context(_monitors(config, work, ingest_processes))
        monitors = [start()]
        sent = [0]
        failures: list[BaseException] = []

        def publish() -> None:
            try:
                _publish(settings.kafka, settings.topics, sent)
            except BaseException as exc:  # re-raised in the test's thread
                failures.append(exc)

        results.logs = [work / "monitor-1.log"]
        # Traffic starts once the service is up (as in production), not into a backlog.
        # Ingest processes first start their interpreters, then join the group one by one.
        ready = time.monotonic() + 60
        while not any(_assignments(results.logs[0])):
            assert monitors[0].poll() is None, f"the monitor exited:\n{results.tail()}"
            assert time.monotonic() < ready, f"no input partitions in 60 s:\n{results.tail()}"
            time.sleep(0.1)  # polling the log for the first assignment
        publisher = threading.Thread(target=publish, name="publisher", daemon=True)
        publisher.start()
        deadline = time.monotonic() + N_EVENTS / PUBLISH_RATE + RESULTS_TIMEOUT
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            for process in monitors:
                assert process.poll() is None, f"a monitor exited:\n{results.tail()}"
            # A thread of `monitor run` (ingest, writer) can die while the process lives on.
            for log in results.logs:
                text = log.read_text(errors="replace")
                at = text.find(TRACEBACK)
                assert at < 0, f"{log.name} logged a traceback:\n{text[max(0, at - 600) :]}"
            assert not failures, f"publishing failed: {failures[0]!r}"
            values = outbox.read()
            for _, value in values:
                results.take(value)
            now = time.monotonic()
            if values:
                quiet_since = now
            if len(monitors) < processes and results.records:
                # The first process has judged a window: stage 1 and stage 2 are mid-stream.
                results.second_started_after = sent[0]
                monitors.append(start())
                results.logs.append(work / "monitor-2.log")
            done = (
                not publisher.is_alive()
                and len(monitors) == processes
                and (processes == 1 or _scaled_out(results.logs))
            )
            if done and now - quiet_since >= QUIET and not results.missing():
                break
        assert not results.missing(), (
            f"with {processes} process(es), windows not judged on all their events "
            f"(model, end: (predictions, labels)): {results.missing()}\n{results.tail()}"
        )
        publisher.join(1)
        assert not failures, f"publishing failed: {failures[0]!r}"

        published = _read_all(settings.kafka, [settings.topics.alerts, settings.topics.retrain])
        for value in published[settings.topics.alerts]:
            alert = DriftAlert.model_validate_json(value)
            reasons = sorted(f"{r.kind}:{r.feature or ''}:{r.statistic}" for r in alert.reasons)
            results.alerts[alert.alert_id] = (
                f"{alert.model} {alert.window_end:%H:%M} {alert.status} {alert.severity} {reasons}"
            )
        for value in published[settings.topics.retrain]:
            results.retrain_ids.add(RetrainRequest.model_validate_json(value).request_id)

        # The writer brought every window to the InfluxDB API too.
        for model in MODELS:
            written = {ms for s in victoria.series("decision", model=model) for ms, _ in s.points}
            assert written == set(WINDOW_ENDS), f"InfluxDB API holds {model} {sorted(written)}"
    return results


def _read_all(kafka: KafkaSettings, topics: list[str]) -> dict[str, list[bytes]]:
    """Every record of ``topics``, by topic. Their writers were acknowledged before the outbox
    records read already, so a second without a new record means the end was reached."""
    tail = TopicTail(kafka, topics)
    try:
        values: dict[str, list[bytes]] = {topic: [] for topic in topics}
        for topic, value in tail.read_until_quiet(1.0):
            values[topic].append(value)
        return values
    finally:
        tail.close()


def _scaled_out(logs: list[Path]) -> bool:
    """Whether the second process owns input partitions and a model's stage-2 state moved."""
    return any(_assignments(logs[1])) and bool(
        HANDED_OVER.search(logs[0].read_text(errors="replace"))
    )


def _assignments(log: Path) -> list[list[int]]:
    return [
        [int(p) for p in match.split(",") if p.strip()]
        for match in STARTED.findall(log.read_text(errors="replace"))
    ]


def test_two_monitor_processes_give_exactly_the_same_window_results_as_one(
    tansu_factory: Callable[[], TansuBroker], tmp_path: Path
) -> None:
    references = [sea_reference(model, VERSION) for model in MODELS]
    one = _scenario(1, tmp_path / "one", tansu_factory(), references)
    two = _scenario(2, tmp_path / "two", tansu_factory(), references)

    # The scale-out happened mid-stream: the second process took input partitions (and
    # reopened their stores) while traffic still flowed, and one model's stage-2 state moved.
    assert two.second_started_after is not None
    assert two.second_started_after < N_EVENTS * 0.8, "the second process started too late"
    first, second = (_assignments(log) for log in two.logs)
    assert any(first), f"the first process never owned an input partition:\n{two.tail()}"
    assert any(second), f"the second process never owned an input partition:\n{two.tail()}"
    handed_over = HANDED_OVER.search(two.logs[0].read_text(errors="replace"))
    assert handed_over, f"no model's stage-2 state moved to the second process:\n{two.tail()}"

    assert_same_results(one, two, ("one process", "two processes"))
    print(f"outbox records per window, one process: {one.records}; two: {two.records}")


def assert_same_results(one: Results, two: Results, names: tuple[str, str]) -> None:
    """Both scenarios judged every window first on all its events, with identical points
    (floats bit for bit), alerts and retrain requests."""
    for name, results in zip(names, (one, two), strict=True):
        early = results.judged_early()
        assert not early, (
            f"with {name}, windows first judged before all their predictions and labels were "
            f"applied (model, end: (predictions, labels)): {early}\n{results.tail()}"
        )
    assert set(one.records) == set(two.records) == set(WINDOW_ENDS)
    assert one.points.keys() == two.points.keys()
    differing = {
        identity: (one.points[identity], two.points[identity])
        for identity in sorted(one.points)
        if one.points[identity] != two.points[identity]
    }
    assert not differing, f"{len(differing)} points differ, e.g. {next(iter(differing.items()))}"
    assert one.alerts, "no alert: the stream should raise some"
    assert one.retrain_ids, "no retrain request: the shift should cause some"
    assert one.alerts.keys() == two.alerts.keys(), (
        f"alerts of one process only: {[one.alerts[a] for a in one.alerts.keys() - two.alerts]}; "
        f"of two only: {[two.alerts[a] for a in two.alerts.keys() - one.alerts]}"
    )
    assert one.retrain_ids == two.retrain_ids
