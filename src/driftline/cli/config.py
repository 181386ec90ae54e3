"""``driftline config``: check a configuration file, and show it with secrets masked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from driftline.cli._common import err, fail, out
from driftline.config import Settings, load_settings, masked, unknown_variables
from driftline.errors import ConfigError

app = typer.Typer(help="Check and show configuration files.", no_args_is_help=True)

ConfigArgument = Annotated[Path, typer.Argument(help="YAML configuration file.")]


@app.command("check")
def config_check(file: ConfigArgument) -> None:
    """Validate a configuration file (and DRIFTLINE_ overrides); exit 2 naming every bad field."""
    settings = _load(file)
    models = ", ".join(settings.models) or "none"
    out.print(f"{file}: ok ({len(settings.models)} model(s): {models})", highlight=False)


@app.command("show")
def config_show(file: ConfigArgument) -> None:
    """Print the effective configuration, defaults filled in and secrets masked."""
    settings = _load(file)
    out.print_json(json.dumps(masked(settings)))


def _load(file: Path) -> Settings:
    """The settings of ``file``; a bad one is printed, every bad field named, and exits 2.

    A ``DRIFTLINE_…`` variable that names no setting is a warning line on stderr first."""
    for warning in unknown_variables():
        err.print(f"warning: {warning}", highlight=False, markup=False)
    try:
        return load_settings(file)
    except ConfigError as exc:
        raise fail(exc) from None
