"""``driftline replay``: backtest a file of events, as the service would have judged it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftline.cli._common import (
    ConfigFile,
    fail,
    fail_line,
    file_problem,
    out,
    output_file,
    read_profile,
    say,
)
from driftline.config import load_settings
from driftline.errors import DriftlineError


def replay(
    predictions: Annotated[Path, typer.Argument(help="JSON lines of PredictionEvents.")],
    ground_truth: Annotated[
        Path | None, typer.Option("--ground-truth", "-g", help="JSON lines of GroundTruthEvents.")
    ] = None,
    config: ConfigFile = None,
    reference: Annotated[
        list[Path] | None, typer.Option(help="Reference profile JSON (repeatable).")
    ] = None,
    warmup: Annotated[
        int | None, typer.Option(help="Events that baseline a version without a reference.")
    ] = None,
    lp: Annotated[Path | None, typer.Option(help="Write InfluxDB line protocol here.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write one JSON object per window here.")
    ] = None,
    label_wait: Annotated[
        str | None,
        typer.Option(
            help="How long (event time, e.g. 2d) a window waits for labels before it is "
            "judged; a later label restates it. Default: monitor.join_ttl."
        ),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Where the join's temporary store goes (default: the system's)."),
    ] = None,
) -> None:
    """Backtest: judge every window of a file of events, as the service would have.

    ``--lp`` and ``--json`` are checked before the replay starts: their missing directories
    are created, and a path that is a directory stops the command at once."""
    from driftline.config.base import parse_duration
    from driftline.replay import replay as run_replay
    from driftline.replay_output import (
        replay_summary,
        report_table,
        write_json_lines,
        write_line_protocol,
    )

    try:
        wait = None if label_wait is None else parse_duration(label_wait)
    except ValueError as exc:
        raise fail_line(f"--label-wait: {exc}") from None
    output_file(lp, "--lp")
    output_file(json_out, "--json")
    for name, given in (("PREDICTIONS", predictions), ("--ground-truth", ground_truth)):
        if given is not None and not given.is_file():
            why = "is a directory" if given.is_dir() else "does not exist"
            raise fail_line(f"{name} {given}: {why}")
    if workdir is not None and not workdir.is_dir():
        why = "is a file, not a directory" if workdir.exists() else "does not exist"
        raise fail_line(f"--workdir {workdir}: {why}")
    try:
        settings = load_settings(config)
    except DriftlineError as exc:
        raise fail(exc) from None
    profiles = {}
    for path in reference or []:
        profile = read_profile(path, "--reference")
        profiles[(profile.model, profile.model_version)] = profile
    try:
        result = run_replay(
            predictions,
            ground_truth,
            settings=settings,
            references=profiles,
            warmup_events=warmup,
            label_wait=wait,
            workdir=workdir,
        )
    except DriftlineError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail_line(file_problem(exc)) from None
    except ValueError as exc:
        raise fail_line(str(exc)) from None
    out.print(report_table(result.reports))
    for (model, version), n in result.baselined.items():
        say(f"{model} {version}: baselined on its first {n} events (no reference given)")
    for line in replay_summary(result):
        say(line)
    if lp is not None:
        say(f"wrote {write_line_protocol(result.reports, lp)} points to {lp}")
    if json_out is not None:
        say(f"wrote {write_json_lines(result.reports, json_out)} windows to {json_out}")
