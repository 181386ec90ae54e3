"""Where the registry reads and writes files: validated names, paths kept under the root, checked
hashes, and writes that replace a file whole.

Every path is built from the configured root and names that :func:`check_name` accepts, never
from a path found in a record; it is resolved (following symlinks) and refused unless it stays
under the resolved root; the bytes of a serialised model or a reference profile are returned only
when their sha256 equals the one recorded at registration. Someone who can write inside the root
can still replace both a file and its metadata: the root must be writable only by the trainer.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from driftline.errors import (
    ArtifactMismatchError,
    InvalidNameError,
    RegistryError,
    RegistryRootError,
    UnknownVersionError,
    UnsafePathError,
)
from driftline.schemas.model_version import check_name


def safe_name(value: str, what: str) -> str:
    """``value`` if it is a safe path component, else :class:`InvalidNameError`."""
    try:
        return check_name(value, what)
    except ValueError as exc:
        raise InvalidNameError(str(exc)) from None


def existing_root(root: Path) -> Path:
    """The resolved registry root, or :class:`RegistryRootError` when it is not a folder."""
    if not root.exists():
        raise RegistryRootError(f"registry root {root} does not exist", path=root)
    if not root.is_dir():
        raise RegistryRootError(f"registry root {root} is not a folder", path=root)
    return root.resolve(strict=True)


def inside(root: Path, *parts: str) -> Path:
    """``root / parts``, resolved, if it exists and stays under ``root``.

    ``parts`` must have been checked with :func:`safe_name` (or be the registry's own fixed
    file names). A path that does not exist raises :class:`UnknownVersionError`; one that
    resolves outside the root (a symlink pointing elsewhere) :class:`UnsafePathError`.
    """
    resolved_root = root.resolve(strict=True)
    path = resolved_root.joinpath(*parts)
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise UnknownVersionError(f"{path} does not exist", path=path) from None
    except (OSError, RuntimeError) as exc:  # a symlink loop, a permission
        raise UnsafePathError(f"{path} cannot be resolved: {exc}", path=path) from None
    if not resolved.is_relative_to(resolved_root):
        raise UnsafePathError(
            f"{path} resolves to {resolved}, outside the registry root {resolved_root}: refused",
            path=path,
        )
    return resolved


def subfolders(folder: Path, *, folders_only: bool = True) -> list[str]:
    """The sub-folders of ``folder`` (or all its entries) whose names are safe names, so
    never the registry's own ``_…`` files nor temporary ``.…`` ones."""
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise RegistryError(f"cannot list {folder}: {exc.strerror or exc}", path=folder) from None
    return [e.name for e in entries if _is_safe(e.name) and (e.is_dir() or not folders_only)]


def _is_safe(name: str) -> bool:
    try:
        check_name(name)
    except ValueError:
        return False
    return True


def read_checked(path: Path, sha256: str, size: int | None = None) -> bytes:
    """The bytes of ``path`` if their sha256 (and size) equal the recorded ones."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise RegistryError(f"cannot read {path}: {exc.strerror or exc}", path=path) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256 or (size is not None and len(data) != size):
        raise ArtifactMismatchError(
            f"{path} does not match its metadata (sha256 {digest[:12]}…, {len(data)} bytes; "
            f"recorded {sha256[:12]}…{'' if size is None else f', {size} bytes'}): refused",
            path=path,
        )
    return data


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, fsync, ``os.replace``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        raise RegistryError(f"cannot write {path}: {exc.strerror or exc}", path=path) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Make a folder's new entries durable (where the platform allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) across processes and threads.

    ``flock`` locks belong to the open file, so two threads of one process exclude each other
    too, and the kernel releases the lock of a process that dies.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise RegistryError(f"cannot lock {path}: {exc.strerror or exc}", path=path) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
