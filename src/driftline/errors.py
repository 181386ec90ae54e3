"""Every error driftline raises, rooted in one class.

Vendor errors (confluent-kafka, pydantic, influxdb-client) are translated where they enter the
package, so callers catch :class:`DriftlineError` or one of its branches and never a vendor type.
Each error carries the context a person needs to act on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class DriftlineError(Exception):
    """Root of every error driftline raises."""


# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One invalid setting: where it is (dotted path), what is wrong, and what was given."""

    location: str
    message: str
    given: str | None = None

    def __str__(self) -> str:
        suffix = f" (given: {self.given})" if self.given is not None else ""
        return f"{self.location}: {self.message}{suffix}"


class ConfigError(DriftlineError):
    """The configuration is invalid; :attr:`problems` names every offending field."""

    def __init__(self, problems: Sequence[ConfigProblem], source: str | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration{where}:\n{lines}")


# --- events --------------------------------------------------------------------------------


class DecodeError(DriftlineError):
    """Bytes that are not a valid event; :attr:`reason` says why, in one line.

    ``kind`` is a short machine-readable class of the problem (``malformed_json``,
    ``invalid_event``, ``key_mismatch``), ``path`` the JSON path of the offending field where
    one is known.
    """

    def __init__(self, reason: str, *, kind: str = "invalid_event", path: str | None = None):
        self.reason = reason
        self.kind = kind
        self.path = path
        super().__init__(reason)


class InvalidEventError(DriftlineError):
    """An event built in Python (for example through the producer SDK) breaks the contract."""

    def __init__(self, message: str, *, fields: Sequence[str] = ()) -> None:
        self.fields = tuple(fields)
        super().__init__(message)


# --- statistics and offline work -----------------------------------------------------------


class StatisticsError(DriftlineError, ValueError):
    """Inputs a statistic or a decision cannot be computed from (shapes, ranges, types)."""


class SummaryMismatchError(StatisticsError):
    """Summaries that count against different references or settings cannot be merged."""


class DecisionInputError(StatisticsError):
    """The decision policy was given inconsistent windows, results or parameters."""


class CalibrationError(StatisticsError):
    """A null distribution cannot be drawn or read as asked."""


class DatasetError(DriftlineError):
    """A dataset file cannot be read, or lacks a column it needs; :attr:`path` says which."""

    def __init__(self, message: str, *, path: object | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if path is not None else message)


class ReplayError(DriftlineError):
    """A replay cannot run: no reference and too little traffic to baseline, and the like."""


class ReportError(DriftlineError):
    """A report cannot be built: an input file that is not a replay's output, nothing to
    show in the range asked for."""


# --- Kafka ---------------------------------------------------------------------------------


class KafkaError(DriftlineError):
    """A Kafka operation failed; wraps the librdkafka error where there is one."""


@dataclass(frozen=True)
class FailedDelivery:
    """One message the broker did not acknowledge."""

    topic: str
    key: bytes | None
    error: str


class DeliveryError(KafkaError):
    """Messages were not acknowledged by the broker; :attr:`failures` lists them.

    ``undelivered`` counts messages still queued when a flush timed out: they may yet be
    delivered, or not, and the caller must decide whether to resend.
    """

    def __init__(self, failures: Sequence[FailedDelivery], undelivered: int = 0) -> None:
        self.failures = tuple(failures)
        self.undelivered = undelivered
        parts = []
        if self.failures:
            first = self.failures[0]
            parts.append(
                f"{len(self.failures)} message(s) failed delivery "
                f"(first: topic {first.topic!r}: {first.error})"
            )
        if undelivered:
            parts.append(f"{undelivered} message(s) still undelivered when flush timed out")
        super().__init__("; ".join(parts) or "delivery failed")


class TopicError(KafkaError):
    """Topics are missing, or exist with a layout driftline cannot work with."""


class IngestProcessError(DriftlineError):
    """One of stage 1's processes exited on its own, or did not stop cleanly when asked."""


# --- state ---------------------------------------------------------------------------------


class StateStoreError(DriftlineError):
    """A local state store cannot be used as it is (written by another format, say)."""

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(message)


# --- training ------------------------------------------------------------------------------


class TrainingError(DriftlineError):
    """Training a candidate model could not go ahead, or its result cannot be used."""


class TrainerLoadError(TrainingError):
    """A configured trainer's import path does not resolve to a trainer; ``field`` names the
    setting (``models.<name>.training.trainer``)."""

    def __init__(self, message: str, *, field: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class NotEnoughExamplesError(TrainingError):
    """Too few examples to train on and hold out; ``needed`` and ``found`` say how many."""

    def __init__(self, message: str, *, needed: int, found: int) -> None:
        self.needed = needed
        self.found = found
        super().__init__(message)


class ModelFormatError(TrainingError):
    """Bytes given as a serialised model are not one: wrong header, format or hash."""


class TrainingTimeoutError(TrainingError):
    """A training ran longer than ``trainer.timeout`` and was stopped."""


# --- model registry ------------------------------------------------------------------------


class RegistryError(DriftlineError):
    """The model registry cannot do what was asked; :attr:`path` names the file or folder
    concerned, where there is one."""

    def __init__(self, message: str, *, path: object | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(message)


class RegistryRootError(RegistryError):
    """The registry's root folder (``registry.root``) is missing or not a folder."""


class InvalidNameError(RegistryError, ValueError):
    """A model or version name that is not a safe path component (no separators, no ``..``)."""


class UnknownVersionError(RegistryError, LookupError):
    """The registry holds no such model, or no such version of it."""


class UnsafePathError(RegistryError):
    """A registry file resolves outside the registry's root (a symlink that escapes it)."""


class ArtifactMismatchError(RegistryError):
    """A stored file's bytes do not match the sha256 its metadata recorded: it was altered
    after registration, and is refused."""


class StatusChangeError(RegistryError):
    """A status change the registry does not allow (promoting a rejected version, say)."""


# --- sinks -------------------------------------------------------------------------------


class InfluxWriteError(DriftlineError):
    """A write to InfluxDB failed; ``status`` is the HTTP status when InfluxDB answered."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.retry_after = retry_after
        self.message = message
        super().__init__(f"write to {url} failed: {message}")


class InfluxUnavailableError(InfluxWriteError):
    """InfluxDB could not take the write now (unreachable, timed out, 5xx, 429, 401/403/404):
    the same data may succeed later. ``retry_after`` is the server's hint in seconds."""


class InfluxRejectedError(InfluxWriteError):
    """InfluxDB refused the data itself (400, 413, 422): writing it again cannot succeed."""


# --- test servers --------------------------------------------------------------------------


class ServerStartError(DriftlineError):
    """A server that driftline starts itself (tests, demo) did not come up; carries its log."""

    def __init__(self, name: str, reason: str, log_tail: str = "") -> None:
        self.name = name
        self.reason = reason
        self.log_tail = log_tail
        tail = f"\n--- last lines of its log ---\n{log_tail}" if log_tail else ""
        super().__init__(f"{name} did not start: {reason}{tail}")
