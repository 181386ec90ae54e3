"""What every command shares: the consoles, the ``--config`` option, exit codes and errors.

A :class:`~driftline.errors.DriftlineError` reaching a command becomes one redacted line on
stderr and an exit status: 2 for a bad configuration, 1 for anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from driftline.errors import ConfigError, DriftlineError
from driftline.logs import redact

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML configuration file (default: $DRIFTLINE_CONFIG)."),
]
BrokerTimeout = Annotated[float, typer.Option(help="Seconds to wait for the broker.")]
EXIT_CONFIG = 2
EXIT_FAILED = 1


def fail(exc: DriftlineError) -> typer.Exit:
    """Print ``exc`` (secrets redacted) and return the exit that stops the command."""
    message = escape(redact(str(exc)))
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILED)


def say(text: str) -> None:
    """Print one line of plain text (no highlighting) on stdout."""
    out.print(text, highlight=False)
