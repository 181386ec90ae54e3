"""``driftline config``: check a configuration file, and show it with secrets masked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from driftline.cli._common import fail, out
from driftline.config import load_settings, masked
from driftline.errors import ConfigError

app = typer.Typer(help="Check and show configuration files.", no_args_is_help=True)


@app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="YAML configuration file.")]) -> None:
    """Validate a configuration file (and DRIFTLINE_ overrides); exit 2 naming every bad field."""
    try:
        settings = load_settings(file)
    except ConfigError as exc:
        raise fail(exc) from None
    models = ", ".join(settings.models) or "none"
    out.print(f"{file}: ok ({len(settings.models)} model(s): {models})", highlight=False)


@app.command("show")
def config_show(file: Annotated[Path, typer.Argument(help="YAML configuration file.")]) -> None:
    """Print the effective configuration, defaults filled in and secrets masked."""
    try:
        settings = load_settings(file)
    except ConfigError as exc:
        raise fail(exc) from None
    out.print_json(json.dumps(masked(settings)))
