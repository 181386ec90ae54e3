"""``driftline schemas``: write the JSON Schemas of the public events."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftline.cli._common import fail_line, file_problem, out

app = typer.Typer(help="The JSON Schemas of the public events.", no_args_is_help=True)


@app.command("write")
def schemas_write(
    directory: Annotated[Path, typer.Argument(help="Where to write.")] = Path("schemas"),
) -> None:
    """Regenerate the JSON Schema files from the event models."""
    from driftline.schemas import write_json_schemas

    if directory.exists() and not directory.is_dir():
        raise fail_line(f"DIRECTORY {directory}: is a file, not a directory")
    try:
        written = write_json_schemas(directory)
    except OSError as exc:
        raise fail_line(file_problem(exc)) from None
    for path in written:
        out.print(f"wrote {path}", highlight=False)
