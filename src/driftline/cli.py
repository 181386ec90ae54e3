"""The ``driftline`` command line: one entry point that starts each part."""

from __future__ import annotations

import functools
import json
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
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from driftline import __version__
from driftline.config import Settings, load_settings, masked
from driftline.errors import ConfigError, DriftlineError, RegistryError, TopicError
from driftline.logs import redact

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

    from driftline.schemas.model_version import ModelVersionMetadata
    from driftline.sinks.influx import InfluxWriter
    from driftline.telemetry.server import Health
    from driftline.telemetry.stage2 import Stage2Telemetry
    from driftline.telemetry.writer import WriterTelemetry
    from driftline.trainer.registry import FileSystemRegistry

app = typer.Typer(
    name="driftline",
    help="Streaming-native model monitoring on Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check and show configuration files.", no_args_is_help=True)
topics_app = typer.Typer(help="Create driftline's Kafka topics.", no_args_is_help=True)
schemas_app = typer.Typer(help="The JSON Schemas of the public events.", no_args_is_help=True)
reference_app = typer.Typer(help="Build and publish reference profiles.", no_args_is_help=True)
monitor_app = typer.Typer(help="Run the monitor service's parts.", no_args_is_help=True)
trainer_app = typer.Typer(help="The retraining agent that closes the loop.", no_args_is_help=True)
models_app = typer.Typer(
    help="The model registry: list, show, promote and roll back versions.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(monitor_app, name="monitor")
app.add_typer(models_app, name="models")
app.add_typer(trainer_app, name="trainer")
app.add_typer(reference_app, name="reference")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML configuration file (default: $DRIFTLINE_CONFIG)."),
]
EXIT_CONFIG = 2
EXIT_FAILED = 1


def _fail(exc: DriftlineError) -> typer.Exit:
    message = escape(redact(str(exc)))
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILED)


@app.command()
def version() -> None:
    """Print driftline's version."""
    out.print(__version__)


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="YAML configuration file.")]) -> None:
    """Validate a configuration file (and DRIFTLINE_ overrides); exit 2 naming every bad field."""
    try:
        settings = load_settings(file)
    except ConfigError as exc:
        raise _fail(exc) from None
    models = ", ".join(settings.models) or "none"
    out.print(f"{file}: ok ({len(settings.models)} model(s): {models})", highlight=False)


@config_app.command("show")
def config_show(file: Annotated[Path, typer.Argument(help="YAML configuration file.")]) -> None:
    """Print the effective configuration, defaults filled in and secrets masked."""
    try:
        settings = load_settings(file)
    except ConfigError as exc:
        raise _fail(exc) from None
    out.print_json(json.dumps(masked(settings)))


@topics_app.command("create")
def topics_create(
    config: ConfigFile = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.")] = 30.0,
) -> None:
    """Create every topic with its partitions and policy; safe to run again.

    The input and summaries topics keep their records for ``monitor.join_ttl`` plus the longest
    window and its lateness plus a day; an existing one that keeps less is refused (exit 1),
    naming the topic, its retention and what the settings need.
    """
    from driftline.topics import create_topics

    try:
        settings = load_settings(config)
        outcomes = create_topics(
            settings.kafka, settings.topics, timeout=timeout, settings=settings
        )
    except DriftlineError as exc:
        raise _fail(exc) from None
    table = Table("role", "topic", "partitions", "policy", "status")
    for o in outcomes:
        policy = ", ".join(f"{k}={v}" for k, v in o.spec.config.items()) or "-"
        table.add_row(o.spec.role, o.spec.name, str(o.partitions), policy, o.status)
    out.print(table)


@schemas_app.command("write")
def schemas_write(
    directory: Annotated[Path, typer.Argument(help="Where to write.")] = Path("schemas"),
) -> None:
    """Regenerate the JSON Schema files from the event models."""
    from driftline.schemas import write_json_schemas

    for path in write_json_schemas(directory):
        out.print(f"wrote {path}", highlight=False)


@reference_app.command("build")
def reference_build(
    data: Annotated[
        Path,
        typer.Argument(
            help="CSV, JSONL or Parquet: features + prediction [+ score_<class>] [+ label]."
        ),
    ],
    model: Annotated[str, typer.Option(help="Model name.")],
    version: Annotated[str, typer.Option(help="Model version.")],
    task: Annotated[str, typer.Option(help="binary | multiclass | regression")],
    output: Annotated[
        Path | None, typer.Option("--out", help="Where to write the profile JSON.")
    ] = None,
    bins: Annotated[int, typer.Option(help="Fine quantile bins per numeric feature.")] = 100,
    top_k: Annotated[int, typer.Option(help="Categories kept per categorical feature.")] = 50,
    prediction: Annotated[str, typer.Option(help="The prediction column.")] = "prediction",
    label: Annotated[str, typer.Option(help="The label column, if any.")] = "label",
) -> None:
    """Build a model version's reference profile from a dataset and write it as JSON."""
    from driftline.datasets import load_dataset

    if task not in ("binary", "multiclass", "regression"):
        err.print(f"error: --task must be binary, multiclass or regression, got {task!r}")
        raise typer.Exit(EXIT_CONFIG)
    try:
        dataset = load_dataset(data, prediction=prediction, label=label)
        profile = dataset.profile(model, version, task, bins=bins, top_k=top_k)  # type: ignore[arg-type]
    except DriftlineError as exc:
        raise _fail(exc) from None
    except ValueError as exc:
        err.print(f"error: {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    target = output or Path(f"{model}-{version}.reference.json")
    target.write_text(profile.model_dump_json(indent=2) + "\n", encoding="utf-8")
    _say(
        f"wrote {target}: {profile.n_rows} rows, {len(profile.features)} features, "
        f"hash {profile.content_hash[:12]}"
    )


@reference_app.command("publish")
def reference_publish(
    profile_file: Annotated[Path, typer.Argument(help="Profile JSON from `reference build`.")],
    config: ConfigFile = None,
) -> None:
    """Register a model version's profile on the compacted models topic."""
    from driftline.schemas.outputs import ModelVersionRegistered, utc_now
    from driftline.schemas.reference import ReferenceProfile
    from driftline.streams.registry import publish_profile

    try:
        settings = load_settings(config)
        profile = ReferenceProfile.model_validate_json(profile_file.read_bytes())
        record = ModelVersionRegistered(
            model=profile.model,
            model_version=profile.model_version,
            registered_at=utc_now(),
            source="cli",
            reference=profile,
        )
        publish_profile(settings.kafka, settings.topics, record)
    except DriftlineError as exc:
        raise _fail(exc) from None
    except (OSError, ValueError) as exc:
        err.print(f"error: {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    _say(f"registered {profile.model} {profile.model_version} on {settings.topics.models}")


ReasonOption = Annotated[str, typer.Option("--reason", help="Why: recorded in the audit trail.")]


def _registry(config: Path | None) -> tuple[Settings, FileSystemRegistry]:
    from driftline.trainer.registry import FileSystemRegistry

    settings = load_settings(config)
    return settings, FileSystemRegistry(settings.registry.root)


@models_app.command("list")
def models_list(
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    config: ConfigFile = None,
) -> None:
    """List every version in the registry: status, lineage, rows and holdout metrics."""
    try:
        settings, registry = _registry(config)
        names = [model] if model is not None else registry.models()
        rows = [m for name in names for m in registry.versions(name)]
    except DriftlineError as exc:
        raise _fail(exc) from None
    if not rows:
        _say(f"the registry at {settings.registry.root} holds no versions")
        return
    table = Table("model", "version", "status", "created (UTC)", "parent", "rows", "holdout")
    for m in rows:
        metrics = "-"
        if m.metrics is not None:
            candidate, champion = (
                "-" if value is None else f"{value:.4g}"
                for value in (m.metrics.candidate, m.metrics.champion)
            )
            metrics = f"{m.metrics.metric} {candidate} vs {champion} (n={m.metrics.n})"
        table.add_row(
            escape(m.model),
            escape(m.version),
            _status_text(m),
            f"{m.created_at:%Y-%m-%d %H:%M}",
            escape(m.parent_version or "-"),
            str(m.training_data.rows),
            metrics,
        )
    out.print(table)


def _status_text(m: ModelVersionMetadata) -> str:
    """The status, with the rollout mode of a challenger (``challenger (canary 10%)``)."""
    if m.status != "challenger" or m.rollout is None:
        return m.status
    if m.rollout.mode == "canary":
        return f"challenger (canary {m.rollout.canary_share:.0%})"
    return f"challenger ({m.rollout.mode})"


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version.")],
    config: ConfigFile = None,
) -> None:
    """Print a version's metadata: lineage, training data, metrics, status and audit trail."""
    try:
        _, registry = _registry(config)
        metadata = registry.metadata(model, version)
    except DriftlineError as exc:
        raise _fail(exc) from None
    out.print_json(metadata.model_dump_json())


@models_app.command("promote")
def models_promote(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="The candidate to make champion.")],
    reason: ReasonOption,
    config: ConfigFile = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.")] = 30.0,
) -> None:
    """Make a candidate the champion (the old champion retires) and publish its reference."""
    _crown(model, version, reason, config, timeout, rollback=False)


@models_app.command("rollback")
def models_rollback(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="A retired or rejected version.")],
    reason: ReasonOption,
    config: ConfigFile = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.")] = 30.0,
) -> None:
    """Bring a retired or rejected version back as champion and publish its reference."""
    _crown(model, version, reason, config, timeout, rollback=True)


def _crown(
    model: str, version: str, reason: str, config: Path | None, timeout: float, *, rollback: bool
) -> None:
    """Change the champion as a person, then publish the version's reference profile (if the
    registry holds one) so the monitor judges its traffic against it. Running it again after
    a failed publication publishes again and changes nothing else."""
    from driftline.streams.registry import publish_profile
    from driftline.trainer.announce import version_record

    try:
        settings, registry = _registry(config)
        before = registry.champion(model)
        change = registry.rollback if rollback else registry.promote
        changed = change(model, version, by="person", reason=reason)
    except DriftlineError as exc:
        raise _fail(exc) from None
    if changed.status == "rejected":  # a challenger rolled back: its rollout ends
        _say(f"{model} {version} was the challenger: rejected, its rollout ends")
        return  # the champion is unchanged: nothing to publish; followers poll the registry
    was = (
        f" (version {before.version} retired)"
        if before is not None and before.version != version
        else ""
    )
    _say(f"{model} {version} is the champion{was}")
    try:
        record = version_record(registry, model, version, source="registry")
        if record is None:
            _say("no reference profile stored with this version: nothing published")
            return
        publish_profile(settings.kafka, settings.topics, record, timeout=timeout)
    except DriftlineError as exc:
        err.print(
            "the registry changed, but its reference was not published: run the command "
            "again to publish it",
            highlight=False,
        )
        raise _fail(exc) from None
    _say(f"published its reference profile on {settings.topics.models}")


@monitor_app.command("ingest")
def monitor_ingest(config: ConfigFile = None) -> None:
    """Run stage 1: consume predictions and ground truth, emit pane partials (until SIGTERM)."""
    from driftline.streams.ingest import Ingest
    from driftline.telemetry.server import serve

    settings = _service_settings(config)
    stop = _stop_on_signals()
    try:
        _startup_checks(settings, stage2=False)
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
        raise _fail(exc) from None


@monitor_app.command("write")
def monitor_write(config: ConfigFile = None) -> None:
    """Run the InfluxDB writer: metrics outbox to InfluxDB, commit after each write (until
    SIGTERM). An InfluxDB outage delays points; it loses none."""

    settings = _service_settings(config)
    stop = _stop_on_signals()
    try:
        with _writer(settings) as writer:
            _serve_metrics(settings, writer.telemetry.registry, writer.health)
            writer.run(stop)
    except DriftlineError as exc:
        raise _fail(exc) from None


@monitor_app.command("merge")
def monitor_merge(config: ConfigFile = None) -> None:
    """Run stage 2 (a faust worker): merge pane partials into windows, judge them, emit
    metrics, alerts and retrain requests (until SIGTERM)."""
    from driftline.streams.registry import ProfileRegistry
    from driftline.streams.stage2.agent import create_app, run_app

    settings = _service_settings(config)
    try:
        _startup_checks(settings, stage2=True)
        registry = ProfileRegistry(settings.kafka, settings.topics).start()
        telemetry = _merge_telemetry(settings)
        _serve_metrics(settings, telemetry.registry, telemetry.health)
        run_app(create_app(settings, registry.get, telemetry=telemetry), override_logging=False)
    except DriftlineError as exc:
        raise _fail(exc) from None


@monitor_app.command("run")
def monitor_run(
    config: ConfigFile = None,
    writer: Annotated[bool, typer.Option(help="Also run the InfluxDB writer.")] = True,
    with_trainer: Annotated[
        bool, typer.Option(help="Also run the trainer agent (in a child process).")
    ] = False,
) -> None:
    """Run stage 1, stage 2 and the InfluxDB writer in one process (until SIGTERM).

    Several processes share the work through their consumer groups: add processes (and
    partitions) for throughput. ``--with-trainer`` starts ``driftline trainer run`` as a child
    process with the same configuration, stopped with the monitor.
    """
    from prometheus_client import CollectorRegistry

    from driftline.streams.ingest import Ingest
    from driftline.streams.registry import ProfileRegistry
    from driftline.streams.stage2.agent import create_app, run_app
    from driftline.telemetry.ingest import IngestTelemetry
    from driftline.telemetry.server import combined_health
    from driftline.telemetry.writer import WriterTelemetry

    settings = _service_settings(config)
    stop = threading.Event()
    threads = []
    died: list[str] = []
    trainer: subprocess.Popen[bytes] | None = None
    try:
        _startup_checks(settings, stage2=True)
        registry = ProfileRegistry(settings.kafka, settings.topics).start()
        # One registry for the three parts: one endpoint serves them all.
        metrics = CollectorRegistry()
        ingest = Ingest(settings, registry=registry, telemetry=IngestTelemetry(metrics)).start()
        merge = _merge_telemetry(settings, metrics)
        parts: dict[str, Health] = {"ingest": ingest.health, "merge": merge.health}
        threads.append(_part("ingest", ingest.run, stop, died))
        if writer:
            sink = _writer(settings, WriterTelemetry(metrics))
            parts["writer"] = sink.health
            threads.append(_part("writer", functools.partial(_write, sink), stop, died))
        _serve_metrics(settings, metrics, combined_health(parts))
        for thread in threads:
            thread.start()
        if with_trainer:
            trainer = _trainer_child(config)
        run_app(create_app(settings, registry.get, telemetry=merge), override_logging=False)
    except DriftlineError as exc:
        raise _fail(exc) from None
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
            thread.join(timeout=60)
        if died:  # here, not after: faust's worker leaves by SystemExit(0)
            typer.echo(f"driftline monitor run: {', '.join(died)} stopped on an error", err=True)
            raise typer.Exit(1)


def _trainer_child(config: Path | None) -> subprocess.Popen[bytes]:
    """``driftline trainer run`` with this configuration, as a child sharing the output."""
    command = [sys.executable, "-m", "driftline", "trainer", "run"]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.Popen(command)


@trainer_app.command("run")
def trainer_run(config: ConfigFile = None) -> None:
    """Run the trainer agent: retrain requests in; candidates trained on the joined
    examples, judged against the champion, registered, promoted; outcomes on the training
    topic (until SIGTERM)."""
    from driftline.streams.stage2.agent import run_app
    from driftline.topics import missing_topics
    from driftline.trainer.agent import KafkaPublisher, create_app
    from driftline.trainer.examples import ExampleStore
    from driftline.trainer.feed import LabeledFeed
    from driftline.trainer.handler import RequestHandler
    from driftline.trainer.protocol import load_trainer
    from driftline.trainer.registry import FileSystemRegistry
    from driftline.trainer.rollout import RolloutHandler

    settings = _service_settings(config)
    store = feed = None
    try:
        for name, model in settings.models.items():  # a trainer that cannot load: say so now
            load_trainer(
                model.training.trainer, model.task, field=f"models.{name}.training.trainer"
            )
        _startup_checks(settings, stage2=True)
        missing = missing_topics(
            settings.kafka,
            [
                settings.topics.retrain,
                settings.topics.training,
                settings.topics.labeled,
                settings.topics.models,
                settings.topics.rollout,
                settings.topics.dlq,
            ],
        )
        if missing:
            raise TopicError(
                f"topic(s) {', '.join(missing)} do not exist: run driftline topics create"
            )
        try:  # the trainer owns the registry: its root is made here, not by hand
            settings.registry.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"registry.root: cannot create it: {exc}", path=exc.filename
            ) from None
        store = ExampleStore.from_settings(settings.trainer, settings.monitor.limits.limits())
        feed = LabeledFeed(settings, store).start()
        publisher = KafkaPublisher(settings)
        handler = RequestHandler(
            settings,
            registry=FileSystemRegistry(settings.registry.root),
            store=store,
            feed=feed,
            publisher=publisher,
        )
        rollout = RolloutHandler(registry=handler.registry, publisher=publisher)
        app = create_app(settings, handler, publisher, rollout=rollout)
        run_app(app, override_logging=False)
    except DriftlineError as exc:
        raise _fail(exc) from None
    finally:
        if feed is not None:
            feed.close()
        if store is not None:
            store.close()


def _startup_checks(settings: Settings, *, stage2: bool) -> None:
    """What a monitor part checks before it starts, raising to stop it with a message.

    Stage 2's Kafka security must be honoured whole
    (:func:`~driftline.kafka_auth.faust_credentials`), and the input and summaries topics must
    keep their records as long as the settings need
    (:func:`~driftline.topics.check_retention`): with less, a restart would judge windows on
    incomplete panes and a fresh machine could not rebuild its state, silently, so the part
    stops rather than warns. A broker that cannot be asked is only a warning: the parts wait
    for the broker anyway, and a supervisor restart would not make it answer sooner.
    """
    from driftline.topics import check_retention

    if stage2:
        from driftline.kafka_auth import faust_credentials

        faust_credentials(settings.kafka)
    log = logging.getLogger("driftline.cli")
    try:
        short = check_retention(settings.kafka, settings)
    except TopicError as exc:
        log.warning("cannot check the topics' retention, starting anyway: %s", exc)
        return
    if short:
        raise TopicError(
            "the topics keep their records for less than the settings need; a restart "
            "would judge windows on incomplete panes: " + "; ".join(str(s) for s in short)
        )


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


def _service_settings(config: Path | None) -> Settings:
    """Settings for a long-running part, with its logging configured; exits 2 when invalid."""
    from driftline.logs import configure

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise _fail(exc) from None
    configure(settings.log_level, settings.log_format)
    from driftline.streams.runtime import tune_gc

    tune_gc()
    return settings


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so loops finish their batch and flush."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def _say(text: str) -> None:
    out.print(text, highlight=False)


@app.command()
def demo(
    events: Annotated[
        int, typer.Option(help="Predictions to publish (10 per second of event time).")
    ] = 90_000,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the results.")] = 240.0,
) -> None:
    """Run the whole service end to end on servers it starts itself, and show the results."""
    from driftline.demo import run_demo, summary_rows

    try:
        result = run_demo(events=events, timeout=timeout, say=lambda text: _say(f"- {text}"))
    except (DriftlineError, RuntimeError) as exc:
        err.print(f"error: {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    table = Table(
        "window (UTC)",
        "traffic",
        "events",
        "PSI x3",
        "PSI x1",
        "accuracy",
        "decision",
        title="what driftline wrote to InfluxDB",
        title_justify="left",
    )
    for row in summary_rows(result):
        table.add_row(*row)
    out.print(table)
    for alert in result.alerts:
        reasons = ", ".join(
            f"{r.feature or r.kind} {r.statistic}={r.value:.3g}" for r in alert.reasons[:3]
        )
        _say(
            f"alert {alert.status} {alert.severity} for {alert.window_start:%H:%M}-"
            f"{alert.window_end:%H:%M}: {reasons}"
        )
    for request in result.retrain:
        reasons = ", ".join(f"{r.feature or r.kind} {r.statistic}" for r in request.reasons[:3])
        _say(
            f"retrain request {request.request_id[:12]} ({request.rule}) after "
            f"{request.window_end:%H:%M}: {reasons}"
        )
    _say(
        f"{result.points} points in InfluxDB, {len(result.alerts)} alerts, "
        f"{len(result.retrain)} retrain requests, in {result.seconds:.0f} s"
    )
    if not result.windows:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def replay(
    predictions: Annotated[Path, typer.Argument(help="JSON lines of PredictionEvents.")],
    ground_truth: Annotated[
        Path | None, typer.Option("--ground-truth", "-g", help="JSON lines of GroundTruthEvents.")
    ] = None,
    config: ConfigFile = None,
    reference: Annotated[
        list[Path] | None, typer.Option(help="Reference profile JSON (repeatable).")
    ] = None,
    warmup: Annotated[
        int | None, typer.Option(help="Events that baseline a version without a reference.")
    ] = None,
    lp: Annotated[Path | None, typer.Option(help="Write InfluxDB line protocol here.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write one JSON object per window here.")
    ] = None,
) -> None:
    """Backtest: judge every window of a file of events, as the service would have."""
    from driftline.replay import replay as run_replay
    from driftline.replay_output import report_table, write_json_lines, write_line_protocol
    from driftline.schemas.reference import ReferenceProfile

    try:
        settings = load_settings(config)
        profiles = {}
        for path in reference or []:
            profile = ReferenceProfile.model_validate_json(path.read_bytes())
            profiles[(profile.model, profile.model_version)] = profile
        result = run_replay(
            predictions,
            ground_truth,
            settings=settings,
            references=profiles,
            warmup_events=warmup,
        )
    except DriftlineError as exc:
        raise _fail(exc) from None
    except (OSError, ValueError) as exc:
        err.print(f"error: {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    out.print(report_table(result.reports))
    for (model, version), n in result.baselined.items():
        _say(f"{model} {version}: baselined on its first {n} events (no reference given)")
    if result.rejected:
        first = result.rejected[0]
        _say(
            f"{len(result.rejected)} invalid line(s) skipped; first: {first.path}:"
            f"{first.line}: {first.reason}"
        )
    if lp is not None:
        _say(f"wrote {write_line_protocol(result.reports, lp)} points to {lp}")
    if json_out is not None:
        _say(f"wrote {write_json_lines(result.reports, json_out)} windows to {json_out}")


def main() -> None:
    """Console-script entry point."""
    app()
