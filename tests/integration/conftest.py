"""The fault suite's report: every scenario's accounting, printed as the table of
``docs/reliability.md`` at the end of the run (and written as JSON lines to
``$DRIFTLINE_RELIABILITY_REPORT`` when that is set)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

_ROWS: list[dict[str, Any]] = []
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


@pytest.fixture
def reliability() -> Callable[[dict[str, Any]], None]:
    """Record one scenario's outcome for the report."""

    def record(row: dict[str, Any]) -> None:
        _ROWS.append(row)
        path = os.environ.get("DRIFTLINE_RELIABILITY_REPORT")
        if path:
            with Path(path).open("ab") as out:
                out.write(orjson.dumps(row) + b"\n")

    return record


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""

    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)

    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cell(r.get(k)) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _ROWS:
        terminalreporter.section("reliability (docs/reliability.md)")
        terminalreporter.write_line(table(_ROWS))
