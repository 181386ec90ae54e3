"""The ``driftline`` command line: one entry point that starts each part.

This module builds the typer app and registers the commands and groups, each of which lives
in a module of its own (``driftline monitor …`` in :mod:`driftline.cli.monitor`, and so on).
"""

from __future__ import annotations

import typer

from driftline import __version__
from driftline.cli import (
    config,
    demo,
    models,
    monitor,
    reference,
    replay,
    report,
    schemas,
    simulate,
    topics,
    trainer,
)
from driftline.cli._common import out

__all__ = ["app", "main"]

app = typer.Typer(
    name="driftline",
    help="Streaming-native model monitoring on Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print driftline's version."""
    out.print(__version__)


# The order of registration is the order ``driftline --help`` lists them in.
app.command()(demo.demo)
app.command()(replay.replay)
app.command()(report.report)
app.command()(simulate.simulate)
app.add_typer(config.app, name="config")
app.add_typer(monitor.app, name="monitor")
app.add_typer(models.app, name="models")
app.add_typer(trainer.app, name="trainer")
app.add_typer(reference.app, name="reference")
app.add_typer(topics.app, name="topics")
app.add_typer(schemas.app, name="schemas")


def main() -> None:
    """Console-script entry point."""
    app()
