"""The model registry: every trained version's serialised model, metadata and status.

:class:`Registry` is the protocol the trainer, the command line and serving code use;
:class:`FileSystemRegistry` is the default store, one folder per version::

    <root>/<model>/<version>/model.bin        the serialised model (opaque bytes)
    <root>/<model>/<version>/metadata.json    ModelVersionMetadata
    <root>/<model>/<version>/reference.json   its ReferenceProfile, when one was given
    <root>/<model>/_champion                  the champion's version, for people and tools
    <root>/<model>/_lock                      serialises registrations and status changes

Versions are numbered by the registry. Reads go through :mod:`driftline.trainer.guard`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import JsonValue, ValidationError

from driftline.errors import (
    RegistryError,
    StatusChangeError,
)
from driftline.schemas.model_version import (
    Action,
    Actor,
    Artifact,
    FeatureKind,
    HoldoutMetrics,
    ModelVersionMetadata,
    RolloutMetadata,
    Status,
    StatusChange,
    TrainingSummary,
)
from driftline.schemas.outputs import Reason, utc_now
from driftline.schemas.reference import ReferenceProfile
from driftline.trainer import guard
from driftline.trainer.environment import code_version, current_environment
from driftline.trainer.registry_read import (
    CHAMPION_FILE,
    METADATA_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    RegistryReader,
    first_problem,
)
from driftline.trainer.versions import next_version, version_key

LOCK_FILE = "_lock"


@dataclass(frozen=True)
class Registration:
    """What the trainer hands the registry for a new version, before it has a number."""

    model: str
    parent_version: str | None
    training_data: TrainingSummary
    features: Mapping[str, FeatureKind]
    format: str
    request_id: str | None = None
    reasons: tuple[Reason, ...] = ()
    parameters: Mapping[str, JsonValue] = field(default_factory=dict)
    metrics: HoldoutMetrics | None = None


class Registry(Protocol):
    """Where trained model versions live; another store (MLflow's, say) implements this too."""

    def register(
        self,
        registration: Registration,
        artifact: bytes,
        *,
        reference: ReferenceProfile | None = None,
        by: Actor = "trainer",
        reason: str | None = None,
    ) -> ModelVersionMetadata:
        """Store a new version with status ``candidate``; the registry picks its number."""
        ...

    def metadata(self, model: str, version: str) -> ModelVersionMetadata:
        """A version's metadata."""
        ...

    def artifact(self, model: str, version: str) -> bytes:
        """A version's serialised model, checked against its recorded sha256."""
        ...

    def reference(self, model: str, version: str) -> ReferenceProfile | None:
        """A version's reference profile, checked, or None when none was stored."""
        ...

    def location(self, model: str, version: str) -> str:
        """Where a version's model is, as a URI (for ``ModelVersionRegistered.artifact_uri``)."""
        ...

    def models(self) -> list[str]:
        """Every model with a folder in the registry, sorted."""
        ...

    def versions(self, model: str) -> list[ModelVersionMetadata]:
        """A model's complete versions, oldest number first."""
        ...

    def champion(self, model: str) -> ModelVersionMetadata | None:
        """The version serving now, or None."""
        ...

    def set_status(
        self, model: str, version: str, status: Status, *, by: Actor, reason: str
    ) -> ModelVersionMetadata:
        """Mark a version ``rejected`` or ``retired``."""
        ...

    def challenge(
        self, model: str, version: str, rollout: RolloutMetadata, *, by: Actor, reason: str
    ) -> ModelVersionMetadata:
        """Make a candidate the ``challenger`` (in rollout beside the champion)."""
        ...

    def challenger(self, model: str) -> ModelVersionMetadata | None:
        """The version in rollout now, or None."""
        ...

    def promote(self, model: str, version: str, *, by: Actor, reason: str) -> ModelVersionMetadata:
        """Make a candidate or the challenger the champion; the old champion is retired."""
        ...

    def rollback(self, model: str, version: str, *, by: Actor, reason: str) -> ModelVersionMetadata:
        """Bring a retired or rejected version back as champion; the old one is retired."""
        ...


class FileSystemRegistry(RegistryReader):
    """The default :class:`Registry`: a folder per model version under ``root``.

    Safe with several processes: registrations and status changes of one model hold a lock
    file, a version folder is created with an exclusive ``mkdir``, and every metadata file is
    replaced whole (temporary file, ``os.replace``), written before the ``_champion`` pointer.

    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 12, 1, tzinfo=UTC)
    >>> data = TrainingSummary(first_event_time=at, last_event_time=at, rows=100, content_hash="h")
    >>> folder = tempfile.TemporaryDirectory()
    >>> registry = FileSystemRegistry(Path(folder.name))
    >>> first = registry.register(
    ...     Registration("fraud", None, data, {"amount": "numeric"}, "pickle"), b"model one")
    >>> registry.promote("fraud", first.version, by="person", reason="first model").status
    'champion'
    >>> second = registry.register(
    ...     Registration("fraud", "1", data, {"amount": "numeric"}, "pickle"), b"model two")
    >>> second.version, registry.artifact("fraud", "2")
    ('2', b'model two')
    >>> _ = registry.promote("fraud", "2", by="trainer", reason="won on the holdout")
    >>> registry.champion("fraud").version, registry.metadata("fraud", "1").status
    ('2', 'retired')
    >>> folder.cleanup()
    """

    def __init__(self, root: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.root = Path(root)
        self._clock = clock

    # --- writing ---------------------------------------------------------------------------

    def register(
        self,
        registration: Registration,
        artifact: bytes,
        *,
        reference: ReferenceProfile | None = None,
        by: Actor = "trainer",
        reason: str | None = None,
    ) -> ModelVersionMetadata:
        """Store a new version with status ``candidate``, numbered by
        :func:`~driftline.trainer.versions.next_version`.

        A reference profile is stored stamped with the new version's name (its model must be
        the registration's).
        """
        model = guard.safe_name(registration.model, "model")
        if registration.parent_version is not None:
            guard.safe_name(registration.parent_version, "parent version")
        if reference is not None and reference.model != model:
            raise RegistryError(
                f"the reference profile is of model {reference.model!r}, not {model!r}"
            )
        draft = self._draft(registration, model, artifact, by, reason)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            root = guard.existing_root(self.root)
            (root / model).mkdir(exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"cannot create {self.root / model}: {exc.strerror or exc}", path=self.root
            ) from None
        folder = guard.inside(root, model)
        with guard.locked(folder / LOCK_FILE):
            version = self._new_folder(folder, registration.parent_version)
            target = guard.inside(root, model, version)
            guard.write_atomically(target / MODEL_FILE, artifact)
            reference_sha = None
            if reference is not None:
                stamped = reference.model_copy(update={"model_version": version})
                body = stamped.model_dump_json(indent=2).encode()
                guard.write_atomically(target / REFERENCE_FILE, body)
                reference_sha = hashlib.sha256(body).hexdigest()
            metadata = draft.model_copy(
                update={"version": version, "reference_sha256": reference_sha}
            )
            self._write(target, metadata)
        return metadata

    def _draft(
        self, registration: Registration, model: str, artifact: bytes, by: Actor, reason: str | None
    ) -> ModelVersionMetadata:
        """The new version's metadata but for its name, checked before any folder is made."""
        why = reason or (
            f"retrain request {registration.request_id}"
            if registration.request_id
            else "registered"
        )
        now = self._clock()
        try:
            return ModelVersionMetadata(
                model=model,
                version="0",
                created_at=now,
                parent_version=registration.parent_version,
                request_id=registration.request_id,
                reasons=registration.reasons,
                training_data=registration.training_data,
                features=dict(registration.features),
                parameters=dict(registration.parameters),
                metrics=registration.metrics,
                status="candidate",
                artifact=Artifact(
                    format=registration.format,
                    sha256=hashlib.sha256(artifact).hexdigest(),
                    size=len(artifact),
                ),
                code_version=code_version(),
                environment=current_environment(),
                history=(
                    StatusChange(at=now, by=by, action="register", status="candidate", reason=why),
                ),
            )
        except ValidationError as exc:
            raise RegistryError(
                f"cannot register a version of {model!r}: {first_problem(exc)}"
            ) from None

    def _new_folder(self, folder: Path, parent: str | None) -> str:
        """Create the next version's folder exclusively (``mkdir`` fails if it exists)."""
        for _ in range(1000):
            taken = set(guard.subfolders(folder, folders_only=False))
            version = next_version(taken, parent)
            try:
                os.mkdir(folder / version)
            except FileExistsError:
                continue
            except OSError as exc:
                raise RegistryError(
                    f"cannot create {folder / version}: {exc.strerror or exc}", path=folder
                ) from None
            guard.sync_folder(folder)
            return version
        raise RegistryError(f"cannot allocate a version folder in {folder}", path=folder)

    def set_status(
        self, model: str, version: str, status: Status, *, by: Actor, reason: str
    ) -> ModelVersionMetadata:
        """Mark a version ``rejected`` or ``retired`` (a champion so marked leaves no champion).

        ``champion`` comes only through :meth:`promote` or :meth:`rollback`, and no version
        goes back to ``candidate``.
        """
        if status not in ("rejected", "retired"):
            raise StatusChangeError(
                f"cannot set status {status!r} directly: use promote or rollback for champion; "
                "no version goes back to candidate"
            )
        with self._locked(model, by) as root:
            current = self._read(root, model, version)
            if current.status == status:
                return current
            changed = self._changed(current, status, by, "set_status", reason)
            self._write(guard.inside(root, model, version), changed)
            if current.status == "champion":
                self._point(root, model, None)
            return changed

    def promote(self, model: str, version: str, *, by: Actor, reason: str) -> ModelVersionMetadata:
        """Make a candidate the champion; the old champion becomes ``retired``.

        Promoting the champion again changes nothing (a retried promotion is harmless).
        """
        with self._locked(model, by) as root:
            current = self._read(root, model, version)
            if current.status == "champion":
                return current
            if current.status not in ("candidate", "challenger"):
                raise StatusChangeError(
                    f"version {version!r} of {model!r} is {current.status}: only a candidate "
                    "or the challenger can be promoted; use rollback to bring it back as champion"
                )
            return self._crown(root, current, by, "promote", reason)

    def challenge(
        self, model: str, version: str, rollout: RolloutMetadata, *, by: Actor, reason: str
    ) -> ModelVersionMetadata:
        """Make a candidate the ``challenger``: in rollout beside the champion, with its mode
        recorded in the metadata. A model has at most one challenger: an earlier one is
        ``rejected`` (superseded). Challenging the challenger again changes nothing."""
        with self._locked(model, by) as root:
            current = self._read(root, model, version)
            if current.status == "challenger":
                return current
            if current.status != "candidate":
                raise StatusChangeError(
                    f"version {version!r} of {model!r} is {current.status}: only a candidate "
                    "can become the challenger"
                )
            self._verify(root, current)
            for old in self._complete(root, model):
                if old.status == "challenger":
                    superseded = self._changed(
                        old, "rejected", by, "set_status", f"superseded by challenger {version}"
                    )
                    self._write(guard.inside(root, model, old.version), superseded)
            changed = self._changed(current, "challenger", by, "challenge", reason)
            changed = changed.model_copy(update={"rollout": rollout})
            self._write(guard.inside(root, model, version), changed)
            return changed

    def rollback(self, model: str, version: str, *, by: Actor, reason: str) -> ModelVersionMetadata:
        """Bring a ``retired`` or ``rejected`` version back as champion; the old one retires.

        Rolling back the ``challenger`` ends its rollout instead: it becomes ``rejected`` and
        the champion stays.
        """
        with self._locked(model, by) as root:
            current = self._read(root, model, version)
            if current.status == "champion":
                return current
            if current.status == "challenger":
                changed = self._changed(current, "rejected", by, "rollback", reason)
                self._write(guard.inside(root, model, version), changed)
                return changed
            if current.status not in ("retired", "rejected"):
                raise StatusChangeError(
                    f"version {version!r} of {model!r} is a {current.status}: only a retired or "
                    "rejected version can be rolled back to; use promote for a candidate"
                )
            return self._crown(root, current, by, "rollback", reason)

    def _crown(
        self, root: Path, new: ModelVersionMetadata, by: Actor, action: Action, reason: str
    ) -> ModelVersionMetadata:
        """New champion's metadata first, then the pointer, then the old one's retirement: a
        crash between them leaves two champions, which :meth:`_repair` settles to the newer.
        A version whose files no longer match their hashes is refused before anything changes."""
        self._verify(root, new)
        old = self._champion(root, new.model)
        crowned = self._changed(new, "champion", by, action, reason)
        self._write(guard.inside(root, new.model, new.version), crowned)
        self._point(root, new.model, new.version)
        if old is not None and old.version != new.version:
            retired = self._changed(
                old, "retired", by, action, f"superseded by version {new.version}: {reason}"
            )
            self._write(guard.inside(root, old.model, old.version), retired)
        return crowned

    def _verify(self, root: Path, metadata: ModelVersionMetadata) -> None:
        folder = (metadata.model, metadata.version)
        path = guard.inside(root, *folder, MODEL_FILE)
        guard.read_checked(path, metadata.artifact.sha256, metadata.artifact.size)
        if metadata.reference_sha256 is not None:
            guard.read_checked(
                guard.inside(root, *folder, REFERENCE_FILE), metadata.reference_sha256
            )

    @contextlib.contextmanager
    def _locked(self, model: str, by: Actor) -> Iterator[Path]:
        root = self._model_root(model)
        with guard.locked(guard.inside(root, model) / LOCK_FILE):
            self._repair(root, model, by)
            yield root

    def _repair(self, root: Path, model: str, by: Actor) -> None:
        """Settle what an interrupted promotion left: the most recently crowned version is the
        champion, any other marked champion is retired, and the pointer names the champion."""
        champions = [m for m in self._complete(root, model) if m.status == "champion"]
        champions.sort(key=lambda m: (m.history[-1].at, version_key(m.version)))
        for stale in champions[:-1]:
            fixed = self._changed(
                stale,
                "retired",
                by,
                "repair",
                f"superseded by version {champions[-1].version} (an interrupted promotion)",
            )
            self._write(guard.inside(root, model, stale.version), fixed)
        winner = champions[-1].version if champions else None
        if self._pointer(root, model) != winner:
            self._point(root, model, winner)

    def _changed(
        self, current: ModelVersionMetadata, status: Status, by: Actor, action: Action, reason: str
    ) -> ModelVersionMetadata:
        change = StatusChange(
            at=self._clock(),
            by=by,
            action=action,
            status=status,
            previous=current.status,
            reason=reason,
        )
        return current.model_copy(update={"status": status, "history": (*current.history, change)})

    def _write(self, folder: Path, metadata: ModelVersionMetadata) -> None:
        body = metadata.model_dump_json(indent=2).encode() + b"\n"
        guard.write_atomically(folder / METADATA_FILE, body)

    def _point(self, root: Path, model: str, version: str | None) -> None:
        pointer = guard.inside(root, model) / CHAMPION_FILE
        if version is None:
            with contextlib.suppress(FileNotFoundError):
                pointer.unlink()
        else:
            guard.write_atomically(pointer, version.encode() + b"\n")
