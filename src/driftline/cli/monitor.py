"""``driftline monitor``: run stage 1, stage 2 and the InfluxDB writer, apart or in one process."""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from driftline.cli._common import ConfigFile, fail
from driftline.cli._service import service_settings, startup_checks, stop_on_signals
from driftline.config import Settings
from driftline.errors import DriftlineError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

    from driftline.sinks.influx import InfluxWriter
    from driftline.telemetry.server import Health
    from driftline.telemetry.stage2 import Stage2Telemetry
    from driftline.telemetry.writer import WriterTelemetry


app = typer.Typer(help="Run the monitor service's parts.", no_args_is_help=True)

IngestProcessesOption = Annotated[
    int | None,
    typer.Option(
        "--ingest-processes",
        min=1,
        help="Stage-1 processes of one consumer group (default: the usable cores, at most the "
        "input partition count); 1 runs stage 1 in this process.",
        show_default=False,
    ),
]


@app.command("ingest")
def monitor_ingest(
    config: ConfigFile = None, ingest_processes: IngestProcessesOption = None
) -> None:
    """Run stage 1: consume predictions and ground truth, emit pane partials (until SIGTERM).

    With several ``--ingest-processes``, this process supervises them: one that dies stops
    the others and this one, with a non-zero exit status."""
    from driftline.streams.ingest import Ingest
    from driftline.streams.processes import IngestProcesses
    from driftline.streams.processes import ingest_processes as how_many
    from driftline.telemetry.server import serve

    settings = service_settings(config)
    stop = stop_on_signals()
    try:
        startup_checks(settings, stage2=False)
        processes = how_many(settings, ingest_processes)
        if processes > 1:
            children = IngestProcesses(settings, processes).start()
            if settings.monitor.metrics_port is not None:
                from prometheus_client import CollectorRegistry

                port, host = settings.monitor.metrics_port, settings.monitor.web_host
                serve(CollectorRegistry(), port, host, health=children.health)
            children.run(stop)
            return
        ingest = Ingest(settings).start()
        if settings.monitor.metrics_port is not None:
            serve(
                ingest.telemetry.registry,
                settings.monitor.metrics_port,
                settings.monitor.web_host,
                health=ingest.health,
            )
        ingest.run(stop)
    except DriftlineError as exc:
        raise fail(exc) from None


@app.command("write")
def monitor_write(config: ConfigFile = None) -> None:
    """Run the InfluxDB writer: metrics outbox to InfluxDB, commit after each write (until
    SIGTERM). An InfluxDB outage delays points; it loses none."""

    from driftline.topics import check_broker

    settings = service_settings(config)
    stop = stop_on_signals()
    try:
        check_broker(settings.kafka)
        with _writer(settings) as writer:
            _serve_metrics(settings, writer.telemetry.registry, writer.health)
            writer.run(stop)
    except DriftlineError as exc:
        raise fail(exc) from None


@app.command("merge")
def monitor_merge(config: ConfigFile = None) -> None:
    """Run stage 2 (a faust worker): merge pane partials into windows, judge them, emit
    metrics, alerts and retrain requests (until SIGTERM)."""
    from driftline.streams.registry import ProfileRegistry
    from driftline.streams.stage2.agent import create_app, run_app

    settings = service_settings(config)
    try:
        startup_checks(settings, stage2=True)
        registry = ProfileRegistry(settings.kafka, settings.topics).start()
        telemetry = _merge_telemetry(settings)
        _serve_metrics(settings, telemetry.registry, telemetry.health)
        run_app(create_app(settings, registry.get, telemetry=telemetry), override_logging=False)
    except DriftlineError as exc:
        raise fail(exc) from None


@app.command("run")
def monitor_run(
    config: ConfigFile = None,
    writer: Annotated[bool, typer.Option(help="Also run the InfluxDB writer.")] = True,
    with_trainer: Annotated[
        bool, typer.Option(help="Also run the trainer agent (in a child process).")
    ] = False,
    ingest_processes: IngestProcessesOption = None,
) -> None:
    """Run stage 1, stage 2 and the InfluxDB writer in one process (until SIGTERM).

    Several processes share the work through their consumer groups: add processes (and
    partitions) for throughput. ``--ingest-processes N`` runs stage 1 in N child processes
    of one consumer group (one per core by default), supervised as the threads are: one that
    dies takes the monitor down. ``--with-trainer`` starts ``driftline trainer run`` as a child
    process with the same configuration, stopped with the monitor.
    """
    from prometheus_client import CollectorRegistry

    from driftline.streams.ingest import Ingest
    from driftline.streams.processes import IngestProcesses
    from driftline.streams.processes import ingest_processes as how_many
    from driftline.streams.registry import ProfileRegistry
    from driftline.streams.stage2.agent import create_app, run_app
    from driftline.telemetry.ingest import IngestTelemetry
    from driftline.telemetry.server import combined_health
    from driftline.telemetry.writer import WriterTelemetry

    settings = service_settings(config)
    stop = threading.Event()
    threads = []
    died: list[str] = []
    trainer: subprocess.Popen[bytes] | None = None
    children: IngestProcesses | None = None
    try:
        startup_checks(settings, stage2=True)
        processes = how_many(settings, ingest_processes)
        registry = ProfileRegistry(settings.kafka, settings.topics).start()
        # One registry for the three parts: one endpoint serves them all.
        metrics = CollectorRegistry()
        merge = _merge_telemetry(settings, metrics)
        parts: dict[str, Health] = {"merge": merge.health}
        if processes > 1:
            children = IngestProcesses(settings, processes).start()
            parts["ingest"] = children.health
            threads.append(_part("ingest", children.run, stop, died))
        else:
            telemetry = IngestTelemetry(metrics)
            ingest = Ingest(settings, registry=registry, telemetry=telemetry).start()
            parts["ingest"] = ingest.health
            threads.append(_part("ingest", ingest.run, stop, died))
        if writer:
            sink = _writer(settings, WriterTelemetry(metrics))
            parts["writer"] = sink.health
            threads.append(_part("writer", functools.partial(_write, sink), stop, died))
        _serve_metrics(settings, metrics, combined_health(parts))
        # A part that dies before faust has installed its own SIGTERM handler (a slow start on
        # a loaded machine) would otherwise kill the process by the signal's default action,
        # skipping the exit status 1 below; faust replaces this handler once it runs.
        signal.signal(signal.SIGTERM, _leave)
        for thread in threads:
            thread.start()
        if with_trainer:
            trainer = _trainer_child(config)
        run_app(create_app(settings, registry.get, telemetry=merge), override_logging=False)
    except DriftlineError as exc:
        raise fail(exc) from None
    finally:
        # faust handled SIGTERM and returned: let the other parts flush and leave too.
        if trainer is not None:
            trainer.terminate()
            try:
                trainer.wait(60)
            except subprocess.TimeoutExpired:
                trainer.kill()
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=70)
        if children is not None:  # started, but their supervising thread may not have been
            children.stop()
        if died:  # here, not after: faust's worker leaves by SystemExit(0)
            typer.echo(f"driftline monitor run: {', '.join(died)} stopped on an error", err=True)
            raise typer.Exit(1)


def _leave(signum: int, frame: object) -> None:
    """SIGTERM before faust runs: unwind through ``monitor run``'s clean-up."""
    raise SystemExit(0)


def _trainer_child(config: Path | None) -> subprocess.Popen[bytes]:
    """``driftline trainer run`` with this configuration, as a child sharing the output."""
    command = [sys.executable, "-m", "driftline", "trainer", "run"]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.Popen(command)


def _part(
    name: str, run: Callable[[threading.Event], None], stop: threading.Event, died: list[str]
) -> threading.Thread:
    """A thread running one part of ``monitor run``. A part that dies takes the process
    down (SIGTERM to itself, exit status 1), so a supervisor restarts all of it instead of a
    process that looks alive while one of its parts no longer works."""

    def target() -> None:
        try:
            run(stop)
        except BaseException:
            logging.getLogger("driftline.cli").exception("the %s part of monitor run died", name)
            if not stop.is_set():
                died.append(name)
                os.kill(os.getpid(), signal.SIGTERM)

    return threading.Thread(target=target, name=name)


def _write(sink: InfluxWriter, stop: threading.Event) -> None:
    with sink:
        sink.run(stop)


def _writer(settings: Settings, telemetry: WriterTelemetry | None = None) -> InfluxWriter:
    """The InfluxDB writer of this deployment, with its health limits from the settings."""
    from driftline.sinks.influx import InfluxWriter

    health = settings.monitor.health
    return InfluxWriter(
        settings.kafka,
        settings.influxdb,
        settings.topics,
        group_id=_writer_group(settings),
        unhealthy_after=health.writer_failing_after.total_seconds(),
        stall_after=health.writer_stall_after.total_seconds(),
        telemetry=telemetry,
    )


def _merge_telemetry(
    settings: Settings, registry: CollectorRegistry | None = None
) -> Stage2Telemetry:
    """Stage 2's metrics and health, its stall limit from the settings."""
    from driftline.telemetry.labels import ModelLabels
    from driftline.telemetry.stage2 import Stage2Telemetry

    stall = settings.monitor.health.merge_stall_after.total_seconds()
    return Stage2Telemetry(registry, stall_after=stall, models=ModelLabels.from_settings(settings))


def _writer_group(settings: Settings) -> str:
    """The writer's consumer group: one per deployment (``monitor.group_id``), as stage 1
    (``<group_id>-ingest``) and stage 2 (``<group_id>``) have."""
    return f"{settings.monitor.group_id}-influx-writer"


def _serve_metrics(
    settings: Settings, registry: CollectorRegistry, health: Health
) -> WSGIServer | None:
    """Serve ``/metrics`` and ``/healthz`` on ``monitor.metrics_port`` (None: nothing)."""
    from driftline.telemetry.server import serve

    port = settings.monitor.metrics_port
    if port is None:
        return None
    server = serve(registry, port, settings.monitor.web_host, health=health)
    log = logging.getLogger("driftline.cli")
    log.info("serving /metrics and /healthz on %s:%d", settings.monitor.web_host, port)
    return server
