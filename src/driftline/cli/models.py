"""``driftline models``: the model registry's versions listed, shown, promoted and rolled back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from driftline.cli._common import BrokerTimeout, ConfigFile, err, fail, out, say
from driftline.config import Settings, load_settings
from driftline.errors import DriftlineError

if TYPE_CHECKING:
    from driftline.schemas.model_version import ModelVersionMetadata
    from driftline.trainer.registry import FileSystemRegistry


app = typer.Typer(
    help="The model registry: list, show, promote and roll back versions.", no_args_is_help=True
)

ModelName = Annotated[str, typer.Argument(help="Model name.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why: recorded in the audit trail.")]


def _registry(config: Path | None) -> tuple[Settings, FileSystemRegistry]:
    from driftline.trainer.registry import FileSystemRegistry

    settings = load_settings(config)
    return settings, FileSystemRegistry(settings.registry.root)


@app.command("list")
def models_list(
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    config: ConfigFile = None,
) -> None:
    """List every version in the registry: status, lineage, rows and holdout metrics."""
    try:
        settings, registry = _registry(config)
        names = [model] if model is not None else registry.models()
        rows = [m for name in names for m in registry.versions(name)]
    except DriftlineError as exc:
        raise fail(exc) from None
    if not rows:
        say(f"the registry at {settings.registry.root} holds no versions")
        return
    table = Table("model", "version", "status", "created (UTC)", "parent", "rows", "holdout")
    for m in rows:
        metrics = "-"
        if m.metrics is not None:
            candidate, champion = (
                "-" if value is None else f"{value:.4g}"
                for value in (m.metrics.candidate, m.metrics.champion)
            )
            metrics = f"{m.metrics.metric} {candidate} vs {champion} (n={m.metrics.n})"
        table.add_row(
            escape(m.model),
            escape(m.version),
            _status_text(m),
            f"{m.created_at:%Y-%m-%d %H:%M}",
            escape(m.parent_version or "-"),
            str(m.training_data.rows),
            metrics,
        )
    out.print(table)


def _status_text(m: ModelVersionMetadata) -> str:
    """The status, with the rollout mode of a challenger (``challenger (canary 10%)``)."""
    if m.status != "challenger" or m.rollout is None:
        return m.status
    if m.rollout.mode == "canary":
        return f"challenger (canary {m.rollout.canary_share:.0%})"
    return f"challenger ({m.rollout.mode})"


@app.command("show")
def models_show(
    model: ModelName,
    version: Annotated[str, typer.Argument(help="Version.")],
    config: ConfigFile = None,
) -> None:
    """Print a version's metadata: lineage, training data, metrics, status and audit trail."""
    try:
        _, registry = _registry(config)
        metadata = registry.metadata(model, version)
    except DriftlineError as exc:
        raise fail(exc) from None
    out.print_json(metadata.model_dump_json())


@app.command("promote")
def models_promote(
    model: ModelName,
    version: Annotated[str, typer.Argument(help="The candidate to make champion.")],
    reason: ReasonOption,
    config: ConfigFile = None,
    timeout: BrokerTimeout = 30.0,
) -> None:
    """Make a candidate the champion (the old champion retires) and publish its reference."""
    _crown(model, version, reason, config, timeout, rollback=False)


@app.command("rollback")
def models_rollback(
    model: ModelName,
    version: Annotated[str, typer.Argument(help="A retired or rejected version.")],
    reason: ReasonOption,
    config: ConfigFile = None,
    timeout: BrokerTimeout = 30.0,
) -> None:
    """Bring a retired or rejected version back as champion and publish its reference."""
    _crown(model, version, reason, config, timeout, rollback=True)


def _crown(
    model: str, version: str, reason: str, config: Path | None, timeout: float, *, rollback: bool
) -> None:
    """Change the champion as a person, then publish the version's reference profile (if the
    registry holds one) so the monitor judges its traffic against it. Running it again after
    a failed publication publishes again and changes nothing else."""
    from driftline.streams.registry import publish_profile
    from driftline.trainer.announce import version_record

    try:
        settings, registry = _registry(config)
        before = registry.champion(model)
        change = registry.rollback if rollback else registry.promote
        changed = change(model, version, by="person", reason=reason)
    except DriftlineError as exc:
        raise fail(exc) from None
    if changed.status == "rejected":  # a challenger rolled back: its rollout ends
        say(f"{model} {version} was the challenger: rejected, its rollout ends")
        return  # the champion is unchanged: nothing to publish; followers poll the registry
    was = (
        f" (version {before.version} retired)"
        if before is not None and before.version != version
        else ""
    )
    say(f"{model} {version} is the champion{was}")
    try:
        record = version_record(registry, model, version, source="registry")
        if record is None:
            say("no reference profile stored with this version: nothing published")
            return
        publish_profile(settings.kafka, settings.topics, record, timeout=timeout)
    except DriftlineError as exc:
        err.print(
            "the registry changed, but its reference was not published: run the command "
            "again to publish it",
            highlight=False,
        )
        raise fail(exc) from None
    say(f"published its reference profile on {settings.topics.models}")
