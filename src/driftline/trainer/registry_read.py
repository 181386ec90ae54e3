"""The reading half of the file-system model registry: metadata, models, references, status.

:class:`RegistryReader` is the base of :class:`~driftline.trainer.registry.FileSystemRegistry`
(which adds the writing half): every read goes through :mod:`driftline.trainer.guard`, so
names are checked, paths stay under the root and files are checked against their hashes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from pydantic import ValidationError

from driftline.errors import RegistryError, RegistryRootError, UnknownVersionError
from driftline.schemas.model_version import ModelVersionMetadata
from driftline.schemas.reference import ReferenceProfile
from driftline.trainer import guard
from driftline.trainer.versions import version_key

MODEL_FILE = "model.bin"
METADATA_FILE = "metadata.json"
REFERENCE_FILE = "reference.json"
CHAMPION_FILE = "_champion"


class RegistryReader:
    """What a registry folder holds, read and checked (the writing half is the subclass's)."""

    root: Path

    def metadata(self, model: str, version: str) -> ModelVersionMetadata:
        """A version's metadata; :class:`UnknownVersionError` naming what is missing."""
        return self._read(self._model_root(model), model, version)

    def artifact(self, model: str, version: str) -> bytes:
        """A version's serialised model; :class:`ArtifactMismatchError` if it was altered."""
        root = self._model_root(model)
        metadata = self._read(root, model, version)
        path = guard.inside(root, model, version, MODEL_FILE)
        return guard.read_checked(path, metadata.artifact.sha256, metadata.artifact.size)

    def reference(self, model: str, version: str) -> ReferenceProfile | None:
        """A version's reference profile (checked like the model), or None."""
        root = self._model_root(model)
        metadata = self._read(root, model, version)
        if metadata.reference_sha256 is None:
            return None
        path = guard.inside(root, model, version, REFERENCE_FILE)
        body = guard.read_checked(path, metadata.reference_sha256)
        try:
            return ReferenceProfile.model_validate_json(body)
        except ValidationError as exc:
            raise RegistryError(
                f"{path} is not a reference profile: {first_problem(exc)}", path=path
            ) from None

    def location(self, model: str, version: str) -> str:
        """The file URI of a version's serialised model."""
        root = self._model_root(model)
        self._read(root, model, version)
        return guard.inside(root, model, version, MODEL_FILE).as_uri()

    def models(self) -> list[str]:
        """Every model with a folder under the root, sorted."""
        root = guard.existing_root(self.root)
        return sorted(name for name in guard.subfolders(root))

    def versions(self, model: str) -> list[ModelVersionMetadata]:
        """A model's complete versions (metadata written), by version number."""
        return self._complete(self._model_root(model), model)

    def champion(self, model: str) -> ModelVersionMetadata | None:
        """The champion, or None (also when the registry holds nothing of ``model`` yet).

        Read from the versions' metadata, not the ``_champion`` pointer, so a promotion
        interrupted between its writes still answers the version most recently crowned.
        """
        guard.safe_name(model, "model")
        try:
            root = self._model_root(model)
        except (RegistryRootError, UnknownVersionError):
            return None
        return self._champion(root, model)

    def challenger(self, model: str) -> ModelVersionMetadata | None:
        """The version in rollout (status ``challenger``), or None."""
        guard.safe_name(model, "model")
        try:
            root = self._model_root(model)
        except (RegistryRootError, UnknownVersionError):
            return None
        found = [m for m in self._complete(root, model) if m.status == "challenger"]
        return found[-1] if found else None

    def _champion(self, root: Path, model: str) -> ModelVersionMetadata | None:
        champions = [m for m in self._complete(root, model) if m.status == "champion"]
        if not champions:
            return None
        return max(champions, key=lambda m: (m.history[-1].at, version_key(m.version)))

    def _pointer(self, root: Path, model: str) -> str | None:
        try:
            path = guard.inside(root, model, CHAMPION_FILE)
        except UnknownVersionError:
            return None
        try:
            text = path.read_text(encoding="utf-8").strip()
            return guard.safe_name(text, f"the version in {path}")
        except (OSError, UnicodeDecodeError, RegistryError):
            return None  # damaged: the next change of the model rewrites it

    def _model_root(self, model: str) -> Path:
        """The resolved root, after checking that ``model`` is a name it holds."""
        guard.safe_name(model, "model")
        root = guard.existing_root(self.root)
        try:
            guard.inside(root, model)
        except UnknownVersionError:
            raise UnknownVersionError(
                f"the registry at {self.root} holds no model {model!r}", path=root / model
            ) from None
        return root

    def _read(self, root: Path, model: str, version: str) -> ModelVersionMetadata:
        guard.safe_name(version, "version")
        try:
            guard.inside(root, model, version)
        except UnknownVersionError:
            raise UnknownVersionError(
                f"model {model!r} has no version {version!r} in the registry at {self.root}",
                path=root / model / version,
            ) from None
        try:
            path = guard.inside(root, model, version, METADATA_FILE)
        except UnknownVersionError:
            raise UnknownVersionError(
                f"version {version!r} of {model!r} is incomplete (no {METADATA_FILE}): its "
                "registration did not finish",
                path=root / model / version,
            ) from None
        try:
            metadata = ModelVersionMetadata.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise RegistryError(
                f"{path} is not valid metadata: {first_problem(exc)}", path=path
            ) from None
        if (metadata.model, metadata.version) != (model, version):
            raise RegistryError(
                f"{path} describes {metadata.model!r} version {metadata.version!r}, "
                f"not {model!r} version {version!r}: refused",
                path=path,
            )
        return metadata

    def _complete(self, root: Path, model: str) -> list[ModelVersionMetadata]:
        found = []
        for name in guard.subfolders(guard.inside(root, model)):
            with contextlib.suppress(UnknownVersionError):
                found.append(self._read(root, model, name))
        return sorted(found, key=lambda m: version_key(m.version))


def first_problem(exc: ValidationError) -> str:
    """The first thing pydantic found wrong, on one line: ``field.path: message``."""
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or '(top)'}: {first['msg']}"
