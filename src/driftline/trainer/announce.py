"""The models-topic record of a registry version: its reference profile, lineage and location."""

from __future__ import annotations

from typing import Literal

from driftline.schemas.outputs import ModelVersionRegistered
from driftline.trainer.registry import Registry


def version_record(
    registry: Registry,
    model: str,
    version: str,
    *,
    source: Literal["trainer", "registry"] = "registry",
) -> ModelVersionRegistered | None:
    """The :class:`ModelVersionRegistered` that tells the monitor about a registry version,
    or None when the registry stores no reference profile for it.

    ``registered_at`` is the version's registration time, so announcing a version again (a
    retried promotion) publishes the same record. The profile is read through the registry's
    checks (:meth:`Registry.reference`), so a tampered one raises instead.

    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> from pathlib import Path
    >>> from driftline.schemas.model_version import TrainingSummary
    >>> from driftline.trainer.registry import FileSystemRegistry, Registration
    >>> at = datetime(2026, 12, 1, tzinfo=UTC)
    >>> data = TrainingSummary(first_event_time=at, last_event_time=at, rows=1, content_hash="h")
    >>> folder = tempfile.TemporaryDirectory()
    >>> registry = FileSystemRegistry(Path(folder.name))
    >>> v = registry.register(Registration("m", None, data, {}, "pickle"), b"bytes").version
    >>> version_record(registry, "m", v) is None  # registered without a reference profile
    True
    >>> folder.cleanup()
    """
    reference = registry.reference(model, version)
    if reference is None:
        return None
    metadata = registry.metadata(model, version)
    return ModelVersionRegistered(
        model=model,
        model_version=version,
        registered_at=metadata.created_at,
        source=source,
        parent_version=metadata.parent_version,
        artifact_uri=registry.location(model, version),
        reference=reference,
    )
