"""The fault suite's rig: a whole monitor on servers of its own, steady SEA traffic, a fault
injected mid-stream, and the accounting of every produced event at the end.

A :class:`Rig` starts a Tansu broker and a VictoriaMetrics, creates the topics, registers the
SEA reference and starts the monitor, either as one ``monitor run`` process or as its three
parts (``ingest``, ``merge``, ``write``) so that one part can be killed alone. Traffic is
``N_EVENTS`` predictions, each with its label: the first ``WARM_UP`` at once, the rest, once
the first window's result is in, at a steady pace (``PRODUCE_S`` seconds for the whole), with
optional extra (hostile) messages in between. Five-minute windows of one-minute
panes: 3,000 predictions a window, ten windows.

The accounting reads the results where a user would: the ``label_coverage`` points in
VictoriaMetrics (predictions and labels counted per window; the largest value written for a
window is its final one, since restatements only add) and the joined examples on
``driftline.labeled`` (one per prediction id). A poller samples VictoriaMetrics every half
second, so that the time from the end of a fault to the first result written after it, and to
the moment every window is complete, can be read off.
"""

from __future__ import annotations

import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Producer

from driftline.config import Settings
from driftline.kafka_auth import confluent_config
from driftline.streams.registry import publish_profile
from driftline.testing.servers import Series, TansuBroker, VictoriaMetrics
from driftline.testing.service import (
    SEA_MODEL,
    sea_reference,
    service_config,
    start_monitor,
    stop_process,
)
from driftline.testing.synthetic import START_MS, STEP_MS, sea_events
from driftline.topics import create_topics
from tests.streams.kafka_helpers import assigned_reader

MODEL, VERSION = "sea", "1"
WINDOW_MS = 5 * 60_000
N_EVENTS = 31_000  # ten five-minute windows of 3,000 predictions, and 100 s more that close them
WARM_UP = 9_000  # predictions sent before the fault: three windows, the first one judged
PRODUCE_S = 20.0  # the traffic's paced duration: faults land while it flows
SETTLE_S = 150.0  # after the traffic and the fault: how long the results may take to complete
Extra = Callable[[int, dict[str, Any]], Iterable[tuple[str, bytes | None, bytes]]]
"""Messages to produce after prediction ``i``: (topic role, key, value)."""


def window_end(ts_ms: int) -> int:
    """The end of the five-minute window an event time falls in (the points' timestamp)."""
    return ts_ms - ts_ms % WINDOW_MS + WINDOW_MS


PRODUCED = Counter(window_end(START_MS + i * STEP_MS) for i in range(N_EVENTS))
"""Predictions (and labels: every prediction gets one) per window end."""
EXPECTED = {end: n for end, n in PRODUCED.items() if n == WINDOW_MS // STEP_MS}
"""The windows that close (the last one stays open: no event comes after it) and their counts."""


def _largest(series: list[Series]) -> dict[int, list[int]]:
    """Per window end, the largest ``n_predictions`` and ``n_labels`` written for it (a
    restatement only adds, so the largest is the final count)."""
    counts: dict[int, list[int]] = {}
    for s in series:
        index = {"n_predictions": 0, "n_labels": 1}.get(s.field)
        if index is None:
            continue
        for ms, value in s.points:
            c = counts.setdefault(ms, [0, 0])
            c[index] = max(c[index], int(value))
    return counts


@dataclass
class Sample:
    """What VictoriaMetrics held at one moment."""

    at: float  # time.monotonic()
    writes: int  # label_coverage samples written so far, all windows
    complete: bool  # every window counts every prediction and label


@dataclass
class Outcome:
    """One scenario's accounting: a row of ``docs/reliability.md``."""

    scenario: str
    injected: str
    produced: int  # input messages: predictions, labels and any hostile ones
    lost: int  # valid predictions or labels missing from the final window counts
    counted_twice: int  # beyond the produced count, in the final window counts
    ids_missing: int  # prediction ids without a joined example on driftline.labeled
    first_result_s: float | None  # fault end -> first window result written after it
    complete_s: float | None  # fault end -> every window complete
    notes: str = ""

    def row(self) -> dict[str, Any]:
        """The outcome as a plain dict, for the report."""
        return dict(self.__dict__)


@dataclass
class Rig:
    """Servers, configuration, monitor processes and traffic of one fault scenario."""

    work: Path
    parts: tuple[str, ...] = ("run",)
    policy: dict[str, Any] = field(default_factory=dict)
    processes: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    produced: int = 0
    seed: int = 41
    traffic_done: threading.Event = field(default_factory=threading.Event)
    running: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.broker = TansuBroker(workdir=self.work / "tansu")
        self.victoria = VictoriaMetrics(workdir=self.work / "victoria-metrics")
        self._stop_polling = threading.Event()
        self._errors: list[BaseException] = []

    # -- set-up and tear-down ------------------------------------------------------------

    def start(self) -> Rig:
        """Start the servers, create the topics, register the reference, start the monitor."""
        self.broker.start()
        self.victoria.start()
        raw = service_config(
            bootstrap_servers=self.broker.bootstrap_servers,
            influx_url=self.victoria.url,
            state_dir=self.work / "state",
            name="faults",
            models={MODEL: {**SEA_MODEL, "windows": [{"size": "5m"}], "idle_timeout": "3s"}},
            flush_interval="200ms",
        )
        if self.policy:
            raw["models_policy"] = self.policy
        self.settings = Settings(**raw)
        self.config = self.work / "driftline.yaml"
        self.config.write_text(yaml.safe_dump(raw))
        create_topics(self.settings.kafka, self.settings.topics)
        publish_profile(
            self.settings.kafka, self.settings.topics, sea_reference(MODEL, VERSION, rows=10_000)
        )
        for part in self.parts:
            self.start_part(part)
        self._poller = threading.Thread(target=self._poll, name="vm-poller", daemon=True)
        self._poller.start()
        return self

    def close(self) -> None:
        """Stop the poller, the monitor's processes and the servers."""
        self._stop_polling.set()
        for process in self.processes.values():
            stop_process(process, 20)
        self.victoria.resume()
        self.broker.resume()
        self.victoria.close()
        self.broker.close()

    def __enter__(self) -> Rig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the monitor's processes ---------------------------------------------------------

    def log(self, part: str) -> Path:
        """The log file of one part (appended to across restarts)."""
        return self.work / f"{part}.log"

    def start_part(self, part: str) -> None:
        """Start ``driftline monitor <part>``."""
        self.processes[part] = start_monitor(part, self.config, self.log(part))  # type: ignore[arg-type]

    def kill(self, part: str) -> None:
        """SIGKILL one part, as a crash would, and wait for it to be gone."""
        process = self.processes[part]
        process.kill()
        process.wait(10)

    def alive(self) -> dict[str, int | None]:
        """Each part's exit status (None while it runs)."""
        return {part: process.poll() for part, process in self.processes.items()}

    def logs(self, lines: int = 40) -> str:
        """The tail of every part's log, for a failure message."""
        out = []
        for part in self.processes:
            path = self.log(part)
            text = path.read_text(errors="replace") if path.exists() else ""
            out.append(f"--- {part} log (tail)\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)

    # -- traffic -------------------------------------------------------------------------

    def produce(self, extra: Extra | None = None) -> threading.Thread:
        """Start producing the traffic in a thread, paced over ``PRODUCE_S`` seconds."""

        def run() -> None:
            try:
                self._produce(extra, self.seed)
            except BaseException as exc:  # reported by wait_for_traffic
                self._errors.append(exc)
            finally:
                self.traffic_done.set()

        thread = threading.Thread(target=run, name="traffic", daemon=True)
        thread.start()
        return thread

    def _produce(self, extra: Extra | None, seed: int) -> None:
        topics = self.settings.topics
        roles = {"predictions": topics.predictions, "ground_truth": topics.ground_truth}
        producer = Producer(
            {
                **confluent_config(self.settings.kafka),
                "linger.ms": 20,
                "enable.idempotence": True,
                "message.max.bytes": 2_000_000,
            }
        )
        start = time.monotonic()
        for i, event in enumerate(sea_events(N_EVENTS, seed=seed)):
            if i == WARM_UP:
                # The first windows are in: the rest flows while the fault is injected.
                producer.flush(30)
                assert self.running.wait(120), "no window result within 120 s of the warm-up"
                start = time.monotonic() - PRODUCE_S * i / N_EVENTS
            key = event.prediction["prediction_id"].encode()
            producer.produce(topics.predictions, key=key, value=orjson.dumps(event.prediction))
            producer.produce(topics.ground_truth, key=key, value=orjson.dumps(event.ground_truth))
            self.produced += 2
            for role, extra_key, value in extra(i, event.prediction) if extra else ():
                producer.produce(roles[role], key=extra_key, value=value)
                self.produced += 1
            if i % 500 == 0:
                producer.poll(0)
                ahead = start + PRODUCE_S * i / N_EVENTS - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # a steady pace, so that the fault lands mid-stream
        # A stalled broker holds deliveries back: give it the fault's length and more.
        assert producer.flush(120) == 0, "the producer could not deliver everything"

    def wait_for_traffic(self, timeout: float = 180.0) -> None:
        """Wait until every message was produced and acknowledged."""
        assert self.traffic_done.wait(timeout), "the traffic did not finish"
        assert not self._errors, f"the producer failed: {self._errors[0]!r}"

    # -- results -------------------------------------------------------------------------

    def counts(self) -> dict[int, tuple[int, int]]:
        """Per window end: the largest prediction and label counts written for it."""
        series = self.victoria.series("label_coverage", model=MODEL, window="5m")
        return {ms: (c[0], c[1]) for ms, c in _largest(series).items()}

    def _poll(self) -> None:
        while not self._stop_polling.wait(0.5):
            try:
                series = self.victoria.series("label_coverage", model=MODEL, window="5m")
            except (urllib.error.URLError, OSError):
                continue  # the server is down or paused (a fault being injected)
            writes = sum(len(s.points) for s in series if s.field == "n_predictions")
            counts = _largest(series)
            complete = all(counts.get(end, [0, 0]) == [n, n] for end, n in EXPECTED.items())
            self.samples.append(Sample(time.monotonic(), writes, complete))
            if writes:
                self.running.set()

    def settle(self, timeout: float = SETTLE_S) -> None:
        """Wait until every window is complete (or the timeout), then 3 s more, so a late
        double count would show."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = {p: s for p, s in self.alive().items() if s is not None}
            assert not dead, f"monitor parts exited: {dead}\n{self.logs()}"
            if self.samples and self.samples[-1].complete:
                break
            time.sleep(0.5)  # the poller samples every half second
        time.sleep(3.0)  # a late double count (a repeated partial) would show within this

    def labeled_ids(self) -> Counter[bytes]:
        """Joined examples on ``driftline.labeled`` per prediction id."""
        consumer = assigned_reader(self.settings.kafka, [self.settings.topics.labeled], "faults")
        seen: Counter[bytes] = Counter()
        quiet_since = time.monotonic()
        try:
            while time.monotonic() - quiet_since < 2.0:
                messages = consumer.consume(5000, 0.25)
                for message in messages:
                    if message.error() is None and message.key() is not None:
                        seen[message.key()] += 1
                if messages:
                    quiet_since = time.monotonic()
        finally:
            consumer.close()
        return seen

    def dead_letters(self) -> list[Any]:
        """Every record on the dead-letter topic, as :class:`DeadLetter`."""
        from driftline.schemas.outputs import DeadLetter

        consumer = assigned_reader(self.settings.kafka, [self.settings.topics.dlq], "faults-dlq")
        letters = []
        quiet_since = time.monotonic()
        try:
            while time.monotonic() - quiet_since < 2.0:
                messages = consumer.consume(5000, 0.25)
                for m in messages:
                    if m.error() is None:
                        letters.append(DeadLetter.from_kafka(m.key(), m.value(), m.headers()))
                if messages:
                    quiet_since = time.monotonic()
        finally:
            consumer.close()
        return letters

    def outcome(self, scenario: str, injected: str, fault_end: float, notes: str = "") -> Outcome:
        """Account for every produced event; times are measured from ``fault_end``
        (``time.monotonic()`` when the fault was lifted)."""
        counts = self.counts()
        lost = twice = 0
        for end, n in EXPECTED.items():
            got = counts.get(end, (0, 0))
            for value in got:
                lost += max(0, n - value)
                twice += max(0, value - n)
        for end, got in counts.items():
            if end not in EXPECTED:  # the open window: judged at most on what it has
                twice += sum(max(0, value - PRODUCED.get(end, 0)) for value in got)
        short = {e: counts.get(e) for e, n in EXPECTED.items() if counts.get(e) != (n, n)}
        if short:
            notes = f"{notes} windows off their counts: {short}".strip()
        ids = self.labeled_ids()
        expected_ids = {
            e.prediction["prediction_id"].encode() for e in sea_events(N_EVENTS, seed=self.seed)
        }
        before = [s for s in self.samples if s.at <= fault_end]
        writes_at_end = before[-1].writes if before else 0
        after = [s for s in self.samples if s.at > fault_end]
        first = next((s.at for s in after if s.writes > writes_at_end), None)
        complete = next((s.at for s in self.samples if s.complete), None)
        return Outcome(
            scenario=scenario,
            injected=injected,
            produced=self.produced,
            lost=lost,
            counted_twice=twice,
            ids_missing=len(expected_ids - set(ids)),
            first_result_s=None if first is None else round(first - fault_end, 1),
            complete_s=None if complete is None else round(max(0.0, complete - fault_end), 1),
            notes=notes,
        )
