"""``driftline reference``: build a model version's reference profile, and publish it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftline.cli._common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    ConfigFile,
    err,
    fail,
    fail_line,
    file_problem,
    output_file,
    read_profile,
    say,
)
from driftline.config import load_settings
from driftline.errors import DriftlineError

app = typer.Typer(help="Build and publish reference profiles.", no_args_is_help=True)


@app.command("build")
def reference_build(
    data: Annotated[
        Path,
        typer.Argument(
            help="CSV, JSONL or Parquet: features + prediction [+ score_<class>] [+ label]."
        ),
    ],
    model: Annotated[str, typer.Option(help="Model name.")],
    version: Annotated[str, typer.Option(help="Model version.")],
    task: Annotated[str, typer.Option(help="binary | multiclass | regression")],
    output: Annotated[
        Path | None, typer.Option("--out", help="Where to write the profile JSON.")
    ] = None,
    bins: Annotated[int, typer.Option(help="Fine quantile bins per numeric feature.")] = 100,
    top_k: Annotated[int, typer.Option(help="Categories kept per categorical feature.")] = 50,
    prediction: Annotated[str, typer.Option(help="The prediction column.")] = "prediction",
    label: Annotated[str, typer.Option(help="The label column, if any.")] = "label",
    calibrate: Annotated[
        bool,
        typer.Option(help="Compute calibrated drift thresholds (drift.thresholds: calibrated)."),
    ] = True,
    segment: Annotated[
        list[str] | None,
        typer.Option(
            help="A column that is a segment key (models.<m>.segments.keys), not a feature: "
            "the profile records its most frequent values. Repeat for several."
        ),
    ] = None,
    segment_top_k: Annotated[
        int, typer.Option(help="Values recorded per segment key (segments.top_k).")
    ] = 10,
) -> None:
    """Build a model version's reference profile from a dataset and write it as JSON."""
    from driftline.datasets import load_dataset

    if task not in ("binary", "multiclass", "regression"):
        err.print(f"error: --task must be binary, multiclass or regression, got {task!r}")
        raise typer.Exit(EXIT_CONFIG)
    target = output or Path(f"{model}-{version}.reference.json")
    output_file(target, "--out")
    try:
        dataset = load_dataset(data, prediction=prediction, label=label)
        missing = sorted(set(segment or ()) - set(dataset.features))
        if missing:
            err.print(f"error: --segment names no column of {data}: {missing}", highlight=False)
            raise typer.Exit(EXIT_FAILED)
        segments = {key: dataset.features.pop(key) for key in segment or ()}
        segment_values = {
            k: [None if v is None else str(v) for v in c] for k, c in segments.items()
        }
        profile = dataset.profile(
            model,
            version,
            task,  # type: ignore[arg-type]
            bins=bins,
            top_k=top_k,
            calibrate=calibrate,
            segments=segment_values or None,
            segment_top_k=segment_top_k,
        )
    except DriftlineError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail_line(file_problem(exc)) from None
    except ValueError as exc:
        raise fail_line(str(exc)) from None
    target.write_text(profile.model_dump_json(indent=2) + "\n", encoding="utf-8")
    say(
        f"wrote {target}: {profile.n_rows} rows, {len(profile.features)} features, "
        f"hash {profile.content_hash[:12]}"
    )


@app.command("publish")
def reference_publish(
    profile_file: Annotated[Path, typer.Argument(help="Profile JSON from `reference build`.")],
    config: ConfigFile = None,
) -> None:
    """Register a model version's profile on the compacted models topic."""
    from driftline.schemas.outputs import ModelVersionRegistered, utc_now
    from driftline.streams.registry import publish_profile
    from driftline.topics import check_broker

    try:
        settings = load_settings(config)
    except DriftlineError as exc:
        raise fail(exc) from None
    profile = read_profile(profile_file, "PROFILE_FILE")
    try:
        check_broker(settings.kafka)
        record = ModelVersionRegistered(
            model=profile.model,
            model_version=profile.model_version,
            registered_at=utc_now(),
            source="cli",
            reference=profile,
        )
        publish_profile(settings.kafka, settings.topics, record)
    except DriftlineError as exc:
        raise fail(exc) from None
    say(f"registered {profile.model} {profile.model_version} on {settings.topics.models}")
