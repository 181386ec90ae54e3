"""The ``driftline`` command line: one entry point that starts each part."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from driftline import __version__
from driftline.config import load_settings, masked
from driftline.errors import ConfigError, DriftlineError

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
app.add_typer(config_app, name="config")
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
    err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
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
    """Create every topic with its partitions and policy; safe to run again."""
    from driftline.topics import create_topics

    try:
        settings = load_settings(config)
        outcomes = create_topics(settings.kafka, settings.topics, timeout=timeout)
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


def main() -> None:
    """Console-script entry point."""
    app()
