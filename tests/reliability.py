"""The fault suite's report: every scenario's accounting, printed as the table of
``docs/reliability.md`` at the end of the run.

Scenarios may run in pytest-xdist workers, so rows go through a file: the controlling process
names it (``$DRIFTLINE_RELIABILITY_ROWS``, inherited by the workers it starts), every process
appends one JSON line per scenario, and the controlling process prints the table and removes
the file. ``$DRIFTLINE_RELIABILITY_REPORT`` keeps a copy of the rows.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

ROWS_ENV = "DRIFTLINE_RELIABILITY_ROWS"
KEEP_ENV = "DRIFTLINE_RELIABILITY_REPORT"
COLUMNS = (
    ("scenario", "scenario"),
    ("injected", "injected"),
    ("produced", "events produced"),
    ("lost", "lost"),
    ("counted_twice", "counted twice"),
    ("ids_missing", "ids without a joined example"),
    ("first_result_s", "first result after (s)"),
    ("complete_s", "all counted after (s)"),
)


def open_rows() -> Path:
    """Name the rows file for this run (in the controlling process, before workers start)."""
    fd, path = tempfile.mkstemp(prefix="driftline-reliability-", suffix=".jsonl")
    os.close(fd)
    os.environ[ROWS_ENV] = path
    return Path(path)


def record(row: dict[str, Any]) -> None:
    """Append one scenario's row (from any process of the run)."""
    line = orjson.dumps(row) + b"\n"
    for variable in (ROWS_ENV, KEEP_ENV):
        path = os.environ.get(variable)
        if path:
            with Path(path).open("ab") as out:
                out.write(line)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows recorded so far, in the order they were written."""
    try:
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    except FileNotFoundError:
        return []


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table.

    >>> print(table([{"scenario": "s", "produced": 1200, "lost": 0, "complete_s": 1.5}]))
    | scenario | injected | events produced | lost | counted twice | ids without a joined example | first result after (s) | all counted after (s) |
    |---|---|---|---|---|---|---|---|
    | s | - | 1,200 | 0 | - | - | - | 1.5 |
    """  # noqa: E501

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:,}" if isinstance(value, int) else str(value)

    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cell(r.get(k)) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)
