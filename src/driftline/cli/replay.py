"""``driftline replay``: backtest a file of events, as the service would have judged it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftline.cli._common import EXIT_FAILED, ConfigFile, err, fail, out, say
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
) -> None:
    """Backtest: judge every window of a file of events, as the service would have."""
    from driftline.replay import replay as run_replay
    from driftline.replay_output import report_table, write_json_lines, write_line_protocol
    from driftline.schemas.reference import ReferenceProfile

    try:
        settings = load_settings(config)
        profiles = {}
        for path in reference or []:
            profile = ReferenceProfile.model_validate_json(path.read_bytes())
            profiles[(profile.model, profile.model_version)] = profile
        result = run_replay(
            predictions,
            ground_truth,
            settings=settings,
            references=profiles,
            warmup_events=warmup,
        )
    except DriftlineError as exc:
        raise fail(exc) from None
    except (OSError, ValueError) as exc:
        err.print(f"error: {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    out.print(report_table(result.reports))
    for (model, version), n in result.baselined.items():
        say(f"{model} {version}: baselined on its first {n} events (no reference given)")
    if result.rejected:
        first = result.rejected[0]
        say(
            f"{len(result.rejected)} invalid line(s) skipped; first: {first.path}:"
            f"{first.line}: {first.reason}"
        )
    if lp is not None:
        say(f"wrote {write_line_protocol(result.reports, lp)} points to {lp}")
    if json_out is not None:
        say(f"wrote {write_json_lines(result.reports, json_out)} windows to {json_out}")
