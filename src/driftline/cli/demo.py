"""``driftline demo``: the whole service end to end on servers it starts itself, and its results."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from driftline.cli._common import EXIT_FAILED, err, out, say
from driftline.errors import DriftlineError


def demo(
    events: Annotated[
        int, typer.Option(help="Predictions to publish (10 per second of event time).")
    ] = 90_000,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the results.")] = 240.0,
) -> None:
    """Run the whole service end to end on servers it starts itself, and show the results."""
    from driftline.demo import run_demo, summary_rows

    try:
        result = run_demo(events=events, timeout=timeout, say=lambda text: say(f"- {text}"))
    except (DriftlineError, RuntimeError) as exc:
        err.print(f"error: {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    table = Table(
        "window (UTC)",
        "traffic",
        "events",
        "PSI x3",
        "PSI x1",
        "accuracy",
        "decision",
        title="what driftline wrote to InfluxDB",
        title_justify="left",
    )
    for row in summary_rows(result):
        table.add_row(*row)
    out.print(table)
    for alert in result.alerts:
        reasons = ", ".join(
            f"{r.feature or r.kind} {r.statistic}={r.value:.3g}" for r in alert.reasons[:3]
        )
        say(
            f"alert {alert.status} {alert.severity} for {alert.window_start:%H:%M}-"
            f"{alert.window_end:%H:%M}: {reasons}"
        )
    for request in result.retrain:
        reasons = ", ".join(f"{r.feature or r.kind} {r.statistic}" for r in request.reasons[:3])
        say(
            f"retrain request {request.request_id[:12]} ({request.rule}) after "
            f"{request.window_end:%H:%M}: {reasons}"
        )
    say(
        f"{result.points} points in InfluxDB, {len(result.alerts)} alerts, "
        f"{len(result.retrain)} retrain requests, in {result.seconds:.0f} s"
    )
    if not result.windows:
        raise typer.Exit(EXIT_FAILED)
