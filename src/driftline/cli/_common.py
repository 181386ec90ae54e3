"""What every command shares: the consoles, the ``--config`` option, exit codes and errors.

A :class:`~driftline.errors.DriftlineError` reaching a command becomes one redacted line on
stderr and an exit status: 2 for a bad configuration, 1 for anything else. A file a command
reads or writes that cannot be used is one line too, naming the option and the path
(:func:`file_problem`, :func:`read_profile`, :func:`output_file`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from driftline.errors import ConfigError, DriftlineError
from driftline.logs import redact

if TYPE_CHECKING:
    from driftline.schemas.reference import ReferenceProfile

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


def file_problem(exc: OSError) -> str:
    """``exc`` as ``<path>: <what is wrong>``, without errno numbers, for one error line."""
    what = (exc.strerror or str(exc)).lower()
    if exc.filename is None:
        return what
    return f"{exc.filename}: {what}"


def fail_line(text: str) -> typer.Exit:
    """Print ``error: text`` on stderr and return the exit (status 1) that stops the command."""
    err.print(f"error: {text}", highlight=False, markup=False)
    return typer.Exit(EXIT_FAILED)


def read_profile(path: Path, option: str) -> ReferenceProfile:
    """The reference profile in ``path``; one error line naming ``option`` and ``path`` (and
    exit 1) when it is missing, not JSON, or JSON that is no profile."""
    from pydantic import ValidationError

    from driftline.schemas.reference import ReferenceProfile

    try:
        body = path.read_bytes()
    except OSError as exc:
        raise fail_line(f"{option} {path}: {file_problem(exc).removeprefix(f'{path}: ')}") from None
    try:
        return ReferenceProfile.model_validate_json(body)
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
        first = problems[0]
        if first["type"] == "json_invalid":
            why = f"not valid JSON ({first['ctx']['error']})"
        else:
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
            why = (
                f"not a reference profile ({where}: {first['msg']}{more}); "
                "driftline reference build writes one"
            )
        raise fail_line(f"{option} {path}: {why}") from None


def output_file(path: Path | None, option: str) -> None:
    """Make ``path`` ready to be written before a command does its work: its missing parent
    directories are created; a path that is a directory, or whose directory cannot be made or
    written to, is one error line naming ``option`` and ``path`` (exit 1)."""
    import os

    if path is None:
        return
    if path.is_dir():
        raise fail_line(f"{option} {path}: is a directory; give a file name inside it")
    blocking = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise fail_line(f"{option} {path}: {blocking} is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = file_problem(exc)
        raise fail_line(f"{option} {path}: cannot create its directory: {why}") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise fail_line(f"{option} {path}: not writable")
