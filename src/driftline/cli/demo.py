"""``driftline demo``: the whole loop end to end on servers it starts itself, drawn live."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from driftline.cli._common import EXIT_FAILED, err, out
from driftline.errors import DriftlineError

if TYPE_CHECKING:
    from driftline.demo import DemoState

ROWS = 8  # windows on screen: the newest, enough to see a phase change go by


def _fmt(value: float | None, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


PHASES = {
    "calm": "calm",
    "covariate shift": "x3 shift",
    "concept change": "concept",
    "promoted": "promoted",
}


def render(state: DemoState, rows: int | None = ROWS) -> Group:
    """The view: per model the serving version and progress, then its newest ``rows``
    windows (all of them when None)."""
    status = state.status
    head = Text()
    head.append("driftline demo", style="bold")
    head.append(f"  {state.seconds:.0f} s  {state.step}")
    if status is not None:
        head.append(
            f"\nsea: serving version {status.version or '-'}, {status.sent:,} predictions,"
            f" stream: {status.phase}"
        )
    if not state.metrics_server:
        head.append("\n(no metrics server: no InfluxDB writer)", style="yellow")
    table = Table(
        "end",
        "v",
        "phase",
        "events",
        "drift",
        "accuracy",
        "estimate",
        "labels",
        "alert",
        title="sea, per window (end, event time UTC)",
        title_justify="left",
        caption="drift: drifting features; accuracy: realised from the outcomes; estimate:"
        " label-free; labels: label coverage; v: the version served",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    keys = sorted(state.windows, key=lambda k: (k[1], k[0]))
    for key in keys if rows is None else keys[-rows:]:
        w = state.windows[key]
        alert = "firing" if w.firing else "-"
        if w.retrain:
            alert = "retrain"
        table.add_row(
            time.strftime("%H:%M", time.gmtime(w.end_ms / 1000)),
            w.version,
            PHASES.get(state.phase_of(w.end_ms), "?"),
            f"{w.events:.0f}",
            ",".join(sorted(w.drifted)) or "-",
            _fmt(w.accuracy),
            _fmt(w.estimate),
            _fmt(w.coverage, "{:.0%}"),
            alert,
            style="red" if w.firing else None,
        )
    return Group(head, table)


def demo(
    short: Annotated[
        bool, typer.Option(help="The short stream: every phase, fewer windows (about a minute).")
    ] = False,
    keep: Annotated[
        bool, typer.Option(help="Keep the working directory (logs, state, registry).")
    ] = False,
    workdir: Annotated[
        Path | None, typer.Option(help="Work here (kept) instead of a temporary directory.")
    ] = None,
    metrics_server: Annotated[
        bool, typer.Option(help="Start VictoriaMetrics (when installed) for the InfluxDB writer.")
    ] = True,
    report: Annotated[
        Path, typer.Option(help="Where to write the HTML report (when `driftline report` exists).")
    ] = Path("driftline-demo-report.html"),
    timeout: Annotated[float, typer.Option(help="Seconds the whole demo may take.")] = 240.0,
) -> None:
    """Run the whole loop on servers it starts itself (broker, metrics server, monitor,
    trainer, a simulated serving service) and show it live: calm, a covariate shift, a
    concept change, retraining, promotion, recovery."""
    from driftline.demo import DemoOptions, run_demo

    options = DemoOptions(
        short=short,
        metrics_server=metrics_server,
        timeout=timeout,
        workdir=workdir,
        keep=keep,
        report=report,
    )
    state = None
    with Live(console=out, refresh_per_second=4, transient=True) as live:

        def update(now: DemoState) -> None:
            nonlocal state
            state = now
            live.update(render(now))

        try:
            state = run_demo(
                options, say=lambda text: live.console.print(f"- {text}"), update=update
            )
        except KeyboardInterrupt:
            err.print("interrupted: every process stopped")
            raise typer.Exit(130) from None
        except (DriftlineError, RuntimeError) as exc:
            err.print(f"error: {exc}", highlight=False)
            raise typer.Exit(EXIT_FAILED) from None
    if state is not None:
        out.print(render(state, rows=None))
        _summary(state)


def _summary(state: DemoState) -> None:
    firing = sum(1 for a in state.alerts.values() if a.status == "firing")
    resolved = sum(1 for a in state.alerts.values() if a.status == "resolved")
    promoted = [o.candidate_version for o in state.outcomes.values() if o.promoted]
    out.print(
        f"- {firing} alerts fired, {resolved} resolved, {len(state.requests)} retrain request(s),"
        f" promoted: {', '.join(v for v in promoted if v) or 'none'}",
        highlight=False,
    )
    during = state.accuracy("1", "concept change")
    served = state.status.version if state.status else None
    after = state.accuracy(served, "promoted") if served else None
    before = state.accuracy("1", "calm")
    out.print(
        f"- accuracy: calm (v1) {_fmt(before)}, concept change (v1) {_fmt(during)},"
        f" after promotion (v{served}) {_fmt(after)}; {state.seconds:.0f} s",
        highlight=False,
    )
