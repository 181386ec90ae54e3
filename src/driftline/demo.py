"""``driftline demo``: the whole loop, end to end, on servers and processes it starts itself.

1. Starts a Tansu broker and, when it is installed, VictoriaMetrics (the InfluxDB v2 write
   API); without it the monitor runs without its InfluxDB writer and the demo says so.
2. Writes a configuration (:func:`~driftline.testing.service.loop_config`, the one the loop
   tests use) into a working directory and creates the topics.
3. Starts three processes: ``driftline monitor run`` (stage 1, stage 2 and the writer),
   ``driftline trainer run`` and ``driftline simulate`` (:mod:`driftline.testing.simulate`: a
   serving service that trains and registers version 1, then predicts a drifting SEA stream
   with the registry's champion, publishing predictions and, a minute later in event time,
   their outcomes).
4. Follows the outputs as they come (the metrics outbox, alerts, retrain requests, training
   outcomes, the models topic) in a :class:`DemoState` that the command line draws live:
   calm, a covariate shift (a feature-drift alert), a concept change (accuracy falls, a
   retrain request, version 2 trained, promoted and served, accuracy recovers, alerts resolve).
5. Stops every process (on Ctrl-C too), asks ``driftline report`` for the HTML report where
   that command exists, and removes its working directory unless asked to keep it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from pydantic import ValidationError

from driftline.config import KafkaSettings, Settings
from driftline.errors import ServerStartError
from driftline.kafka_auth import confluent_config
from driftline.schemas.outputs import (
    DriftAlert,
    ModelVersionRegistered,
    RetrainRequest,
    TrainingOutcome,
)
from driftline.testing.servers import TansuBroker, VictoriaMetrics, victoria_metrics_binary
from driftline.testing.service import SEA_MODEL, loop_config, stop_process
from driftline.testing.simulate import Status
from driftline.topics import create_topics

MODEL = "sea"
WINDOW_MS = 5 * 60_000
LATENESS_MS = 60_000
NO_METRICS_URL = "http://127.0.0.1:9"
"""The InfluxDB URL of a demo without VictoriaMetrics: nothing writes to it (no writer)."""

DEMO_MODEL: dict[str, Any] = {
    **SEA_MODEL,
    "windows": [{"size": "5m"}],
    "idle_timeout": "3s",
    "drift": {"min_samples": 500, "persistence_k": 1, "persistence_n": 1},
    "retrain": {"policy": "on_performance", "cooldown": "6h"},
    "training": {"range": "recent", "recent_rows": 4000},
}
"""How the demo watches ``sea``: five-minute windows, an alert from the first drifted window
that resolves at the first clean one (so each phase shows in a window or two), retraining on
an accuracy drop only (a covariate shift of a feature the model ignores alerts, but
retraining would not help), once per six hours of event time (the whole demo is under two:
a slow training on a busy machine is not asked for twice)."""


@dataclass
class Window:
    """What the monitor said about one window of one version."""

    version: str
    end_ms: int
    accuracy: float | None = None
    n_labels: float = 0.0
    estimate: float | None = None
    coverage: float | None = None
    events: float = 0.0
    drifted: set[str] = field(default_factory=set)
    psi: dict[str, float] = field(default_factory=dict)
    firing: bool = False
    retrain: bool = False


@dataclass
class DemoState:
    """Everything the demo has seen so far; the live view draws it."""

    workdir: Path
    metrics_server: bool = False
    windows: dict[tuple[str, int], Window] = field(default_factory=dict)
    alerts: dict[str, DriftAlert] = field(default_factory=dict)
    requests: dict[str, RetrainRequest] = field(default_factory=dict)
    outcomes: dict[str, TrainingOutcome] = field(default_factory=dict)
    versions: dict[str, ModelVersionRegistered] = field(default_factory=dict)
    status: Status | None = None
    log: list[str] = field(default_factory=list)
    step: str = "starting"
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    """How each process ended (None: it had to be killed)."""
    points: int | None = None
    """Points VictoriaMetrics holds for the model at the end (None: no metrics server)."""
    seconds: float = 0.0
    finished: bool = False

    def phase_of(self, end_ms: int) -> str:
        """The stream's phase over the window ending at ``end_ms``."""
        s = self.status
        if s is None:
            return "?"
        start = end_ms - WINDOW_MS
        if s.switched_ms is not None and start >= s.switched_ms:
            return "promoted"
        if end_ms > s.change_ms:
            return "concept change"
        if end_ms > s.shift_ms and start < s.shift_end_ms:
            return "covariate shift"
        return "calm"

    def accuracy(self, version: str, phase: str) -> float | None:
        """The label-weighted realised accuracy of ``version``'s windows wholly in ``phase``."""
        rows = [
            w
            for w in self.windows.values()
            if w.version == version
            and w.accuracy is not None
            and w.n_labels > 0
            and self.phase_of(w.end_ms) == phase
        ]
        labels = sum(w.n_labels for w in rows)
        if not labels:
            return None
        return sum(w.accuracy * w.n_labels for w in rows if w.accuracy is not None) / labels


def _parse_line(line: str) -> tuple[str, dict[str, str], dict[str, str], int] | None:
    """One line of line protocol (the outbox's own: no spaces inside names or values)."""
    try:
        head, fields, ts = line.rsplit(" ", 2)
    except ValueError:
        return None
    measurement, *tag_items = head.split(",")
    tags = dict(item.split("=", 1) for item in tag_items if "=" in item)
    values = dict(item.split("=", 1) for item in fields.split(",") if "=" in item)
    return measurement, tags, values, int(ts)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    if text in ("true", "false"):
        return float(text == "true")
    try:
        return float(text.rstrip("iu"))
    except ValueError:
        return None


def _fold_metrics(state: DemoState, value: bytes) -> None:
    for line in value.decode(errors="replace").splitlines():
        parsed = _parse_line(line)
        if parsed is None:
            continue
        measurement, tags, values, ms = parsed
        if tags.get("model") != MODEL or "version" not in tags:
            continue
        window = state.windows.setdefault((tags["version"], ms), Window(tags["version"], ms))
        if measurement == "performance" and tags.get("metric") == "accuracy":
            window.accuracy = _number(values.get("value"))
            window.n_labels = _number(values.get("n_labels")) or 0.0
        elif measurement == "performance_estimate" and window.estimate is None:
            window.estimate = _number(values.get("value"))
        elif measurement == "label_coverage":
            window.coverage = _number(values.get("coverage"))
            window.events = _number(values.get("n_predictions")) or 0.0
        elif measurement == "feature_drift" and "feature" in tags:
            feature = tags["feature"]
            if _number(values.get("drifted")):
                window.drifted.add(feature)
            else:
                window.drifted.discard(feature)
            statistic = _number(values.get("statistic"))
            if statistic is not None and tags.get("test") == "psi":
                window.psi[feature] = statistic
        elif measurement == "decision":
            window.firing = bool(_number(values.get("firing")))
            window.retrain = bool(_number(values.get("retrain")))


def _note(state: DemoState, text: str, say: Callable[[str], None]) -> None:
    state.log.append(text)
    say(text)


def _fold_record(
    state: DemoState, settings: Settings, topic: str, value: bytes, say: Callable[[str], None]
) -> None:
    topics = settings.topics
    try:
        if topic == topics.metrics:
            _fold_metrics(state, value)
        elif topic == topics.alerts:
            alert = DriftAlert.model_validate_json(value)
            if alert.alert_id not in state.alerts:
                state.alerts[alert.alert_id] = alert
                reasons = ", ".join(
                    f"{r.feature or r.kind} {r.statistic}={r.value:.3g}" for r in alert.reasons[:3]
                )
                reasons = reasons or "a clean window"
                _note(
                    state,
                    f"alert {alert.status} ({alert.severity}) on"
                    f" {alert.model}/{alert.model_version} window"
                    f" {alert.window_start:%H:%M}-{alert.window_end:%H:%M}: {reasons}",
                    say,
                )
        elif topic == topics.retrain:
            request = RetrainRequest.model_validate_json(value)
            if request.request_id not in state.requests:
                state.requests[request.request_id] = request
                reasons = ", ".join(
                    f"{r.feature or r.kind} {r.statistic}" for r in request.reasons[:3]
                )
                _note(
                    state,
                    f"retrain request for {request.model}/{request.model_version} after window"
                    f" {request.window_end:%H:%M}: {reasons}",
                    say,
                )
        elif topic == topics.training:
            outcome = TrainingOutcome.model_validate_json(value)
            if outcome.outcome_id not in state.outcomes:
                state.outcomes[outcome.outcome_id] = outcome
                extra = ""
                if outcome.candidate_version:
                    extra = f": version {outcome.candidate_version}" + (
                        " promoted" if outcome.promoted else " not promoted"
                    )
                _note(state, f"training {outcome.status}{extra}", say)
        elif topic == topics.models:
            record = ModelVersionRegistered.model_validate_json(value)
            if record.model == MODEL and record.model_version not in state.versions:
                state.versions[record.model_version] = record
                _note(
                    state,
                    f"models topic: reference of {record.model}/{record.model_version}"
                    f" published by the {record.source}",
                    say,
                )
    except ValidationError:
        return


def _reader(kafka: KafkaSettings, topics: list[str]) -> Consumer:
    """Every partition of ``topics`` from the beginning, by assignment (no group to join)."""
    consumer = Consumer(
        {
            **confluent_config(kafka),
            "group.id": "driftline-demo-reader",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 5,
        }
    )
    assignment = []
    for topic in topics:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
    consumer.assign(assignment)
    return consumer


def metrics_server_available() -> bool:
    """Whether VictoriaMetrics is installed (the demo runs without it otherwise)."""
    try:
        victoria_metrics_binary()
    except ServerStartError:
        return False
    return True


def _start(command: list[str], config: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``driftline <command> --config <config> <extra>`` with its output in ``log``, in a session
    of its own: a Ctrl-C in the terminal reaches the demo, which stops it in order."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "driftline", *command, "--config", str(config), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )


def _write_report(config_path: Path, out_path: Path, say: Callable[[str], None] = print) -> bool:
    """Write the HTML report with ``driftline report`` when that command exists (True), or say
    that it is not available (False). Needs the broker up: the report reads the outbox topic."""
    driftline = [sys.executable, "-m", "driftline"]
    probe = subprocess.run(
        [*driftline, "report", "--help"], capture_output=True, check=False, timeout=60
    )
    if probe.returncode != 0:
        say("the HTML report is not available here (no `driftline report` command)")
        return False
    done = subprocess.run(
        [*driftline, "report", "--config", str(config_path), "--out", str(out_path)],
        capture_output=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        say(f"driftline report failed ({done.returncode}): {' '.join(tail)}")
        return False
    say(f"HTML report written to {out_path}")
    return True


@dataclass(frozen=True)
class DemoOptions:
    """How to run the demo."""

    short: bool = False
    metrics_server: bool = True
    timeout: float = 240.0
    workdir: Path | None = None
    keep: bool = False
    report: Path | None = None
    rate: float | None = None


def _closing_end(state: DemoState) -> int | None:
    """The end of the last window of the promoted version that can close once traffic stops."""
    status = state.status
    if status is None or status.last_ms is None:
        return None
    ready = status.last_ms - LATENESS_MS
    return ready - ready % WINDOW_MS


def run_demo(
    options: DemoOptions,
    *,
    say: Callable[[str], None] = print,
    update: Callable[[DemoState], None] = lambda _: None,
) -> DemoState:
    """Run the demo (module docstring); ``say`` reports steps and events, ``update`` is called
    with the state whenever it may have changed. Stops everything it started, also when
    interrupted (KeyboardInterrupt propagates after the clean-up)."""
    began = time.monotonic()
    work = Path(options.workdir or tempfile.mkdtemp(prefix="driftline-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    state = DemoState(workdir=work)
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def step(text: str) -> None:
        state.step = text
        _note(state, text, say)
        update(state)

    use_metrics = options.metrics_server and metrics_server_available()
    state.metrics_server = use_metrics
    # Servers started by hand, not by ``with``: a Ctrl-C while one is starting still stops it.
    broker = TansuBroker(workdir=work / "tansu")
    victoria = VictoriaMetrics(workdir=work / "victoria-metrics") if use_metrics else None
    try:
        broker.start()
        if victoria is not None:
            victoria.start()
        step(f"Kafka (Tansu) at {broker.bootstrap_servers}")
        if victoria is not None:
            step(f"InfluxDB API (VictoriaMetrics) at {victoria.url}")
        else:
            why = "not installed" if options.metrics_server else "left out (asked)"
            step(
                f"VictoriaMetrics {why}: running without the metrics server"
                " (the monitor runs without its InfluxDB writer)"
            )
        settings, config = _configure(work, broker, victoria)
        _start_loop(processes, config, work, options, victoria is not None)
        step("started: driftline monitor run, driftline trainer run, driftline simulate")
        _follow(state, settings, processes, work / "simulate.json", options, began, say, update)
    finally:
        for name in ("simulate", "trainer", "monitor"):
            if name in processes:
                state.exit_codes[name] = stop_process(processes[name], 30)
        try:
            if state.finished and options.report is not None:
                _write_report(work / "driftline.yaml", options.report, say)
            if victoria is not None and state.finished:
                state.points = sum(len(s.points) for s in victoria.series(model=MODEL))
                say(f"{state.points:,} points of {MODEL} in VictoriaMetrics")
        finally:
            if victoria is not None:
                victoria.stop()
            broker.stop()
            state.seconds = time.monotonic() - began
            if options.keep or options.workdir is not None:
                say(f"working directory kept: {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
    return state


def _configure(
    work: Path, broker: TansuBroker, victoria: VictoriaMetrics | None
) -> tuple[Settings, Path]:
    """The loop's settings, written to ``driftline.yaml`` in ``work``; every topic created."""
    raw = loop_config(
        work,
        bootstrap_servers=broker.bootstrap_servers,
        influx_url=victoria.url if victoria is not None else NO_METRICS_URL,
        name="driftline-demo",
        models={MODEL: DEMO_MODEL},
    )
    settings = Settings(**raw)
    config = work / "driftline.yaml"
    config.write_text(yaml.safe_dump(raw))
    create_topics(settings.kafka, settings.topics, settings=settings)
    return settings, config


def _start_loop(
    processes: dict[str, subprocess.Popen[bytes]],
    config: Path,
    work: Path,
    options: DemoOptions,
    writer: bool,
) -> None:
    """Start the monitor, the trainer and the simulation into ``processes`` (each entered as
    soon as it runs, so the caller stops whatever started)."""
    monitor_args = ["--ingest-processes", "1"]
    if not writer:
        monitor_args.append("--no-writer")
    processes["monitor"] = _start(["monitor", "run"], config, work / "monitor.log", *monitor_args)
    processes["trainer"] = _start(["trainer", "run"], config, work / "trainer.log")
    sim_args = ["--status", str(work / "simulate.json")]
    if options.short:
        sim_args.append("--short")
    if options.rate is not None:
        sim_args += ["--rate", str(options.rate)]
    processes["simulate"] = _start(["simulate"], config, work / "simulate.log", *sim_args)


def _follow(
    state: DemoState,
    settings: Settings,
    processes: dict[str, subprocess.Popen[bytes]],
    status_path: Path,
    options: DemoOptions,
    began: float,
    say: Callable[[str], None],
    update: Callable[[DemoState], None],
) -> None:
    """Read the outputs until the promoted version's last window is judged (or time is up)."""
    topics = settings.topics
    reader = _reader(
        settings.kafka,
        [topics.metrics, topics.alerts, topics.retrain, topics.training, topics.models],
    )
    deadline = began + options.timeout
    settle: float | None = None
    announced: str | None = None
    try:
        while True:
            for message in reader.consume(1000, 0.25):
                value = message.value()
                if message.error() is None and value is not None:
                    _fold_record(state, settings, message.topic() or "", value, say)
            state.status = Status.read(status_path) or state.status
            state.seconds = time.monotonic() - began
            status = state.status
            if status is not None and status.version and status.version != announced:
                announced = status.version
                _note(state, f"serving {MODEL} version {announced}", say)
            for name, process in processes.items():
                if process.poll() is not None and not (
                    name == "simulate" and process.returncode == 0
                ):
                    raise RuntimeError(
                        f"driftline {name} exited with {process.returncode}; see {name}.log"
                        f" in {state.workdir} (run with --keep to keep it)"
                    )
            update(state)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo did not finish in {options.timeout:.0f} s")
            if status is None or not status.done:
                continue
            if status.switched_ms is None:
                raise RuntimeError("the simulation ended without a promoted version to serve")
            end = _closing_end(state)
            last = state.windows.get((status.version or "", end or 0))
            if settle is None and last is not None and last.accuracy is not None:
                settle = time.monotonic() + 3.0  # its alerts reach their topics
            if settle is not None and time.monotonic() >= settle:
                break
    finally:
        reader.close()
    state.finished = True
    state.step = "done"
    update(state)
