"""``driftline report``: one self-contained HTML page of every model's statistics over time.

From the service's topics (metrics outbox, alerts, models) or a replay's ``--json`` output.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from driftline.cli._common import EXIT_FAILED, BrokerTimeout, ConfigFile, err, fail, say
from driftline.errors import DriftlineError


def _moment(option: str, text: str | None, now: datetime) -> datetime | None:
    """An RFC 3339 time, epoch milliseconds, or a duration before ``now`` (``2h``)."""
    from driftline.config.base import parse_duration
    from driftline.schemas.events import parse_timestamp

    if text is None:
        return None
    try:
        return parse_timestamp(int(text) if text.isdigit() else text)
    except ValueError as first:
        try:
            return now - parse_duration(text)
        except ValueError:
            err.print(
                f"error: {option}: {text!r} is neither a time (RFC 3339 with an offset, or epoch "
                f"milliseconds) nor a duration before now such as 2h ({first})",
                highlight=False,
            )
            raise typer.Exit(EXIT_FAILED) from None


def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path(
        "driftline-report.html"
    ),
    config: ConfigFile = None,
    replay_json: Annotated[
        Path | None,
        typer.Option(
            "--replay",
            help="Draw a `driftline replay --json` file instead of reading the topics.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Windows ending at or after this time: RFC 3339 (2026-01-01T00:00:00Z), "
            "epoch ms, or a duration before now (6h)."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Windows ending at or before this time (as --since).")
    ] = None,
    title: Annotated[str, typer.Option(help="The page's title.")] = "driftline report",
    timeout: BrokerTimeout = 120.0,
) -> None:
    """Write an HTML report (plots over time, opens with no network) of the metrics outbox,
    alerts and model versions on the topics, or of a replay's --json output."""
    from driftline.config import load_settings
    from driftline.report.build import render_html
    from driftline.report.data import read_replay_json
    from driftline.report.source import read_topics

    now = datetime.now(UTC)
    start, end = _moment("--since", since, now), _moment("--until", until, now)
    try:
        if replay_json is not None:
            data = read_replay_json(replay_json, since=start, until=end)
            where = str(replay_json)
        else:
            settings = load_settings(config)
            data = read_topics(
                settings.kafka, settings.topics, since=start, until=end, timeout=timeout
            )
            where = f"topic {settings.topics.metrics!r} on {settings.kafka.bootstrap_servers}"
    except DriftlineError as exc:
        raise fail(exc) from None
    for note in data.notes:
        err.print(f"note: {note}", highlight=False)
    if not data.points:
        span = f"between {since or 'the start'} and {until or 'the end'}"
        err.print(f"error: no metric points {span} in {where}", highlight=False)
        raise typer.Exit(EXIT_FAILED)
    try:
        out.write_text(render_html(data, title=title), encoding="utf-8")
    except OSError as exc:
        err.print(f"error: cannot write {out}: {exc.strerror or exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    say(
        f"wrote {out}: {len(data.models)} model{'s' if len(data.models) != 1 else ''}, "
        f"{len(data.points)} points, {len(data.alerts)} alerts, "
        f"{len(data.versions)} version registrations"
    )
