"""Whether and when a failed InfluxDB write is tried again.

Owns two decisions that every writer to InfluxDB needs, kept apart from any one writer's loop:

* :func:`translate_write_error` turns what influxdb-client raises into driftline's errors, where
  the vendor error enters: :class:`~driftline.errors.InfluxUnavailableError` (unreachable,
  timed out, 5xx, 429, 401/403/404: the same data may succeed later, ``retry_after`` carrying
  the server's ``Retry-After`` in seconds) or :class:`~driftline.errors.InfluxRejectedError`
  (400, 413, 422: InfluxDB refused the data itself, so writing it again cannot help);
* :class:`Backoff` is the wait before each retry: exponential, capped, jittered, and never
  shorter than the server's ``Retry-After``.

Pure: no client, no clock, no sleeping; the caller sleeps and supplies the random generator.
"""

from __future__ import annotations

import http.client
import random
from dataclasses import dataclass

import urllib3.exceptions
from influxdb_client.client.exceptions import InfluxDBError

from driftline.errors import InfluxRejectedError, InfluxUnavailableError, InfluxWriteError

__all__ = ["Backoff", "translate_write_error"]

_REJECTED_STATUSES = frozenset({400, 413, 422})
_REASON_CHARS = 500  # of InfluxDB's answer, kept in a dead letter's reason


# --- errors --------------------------------------------------------------------------------


def _retry_after(value: object) -> float | None:
    try:
        seconds = float(str(value))
    except ValueError:  # an HTTP date: rare enough to fall back to our own back-off
        return None
    return seconds if seconds >= 0 else None


def _answer(exc: InfluxDBError) -> str:
    message = exc.message
    if isinstance(message, bytes):
        message = message.decode("utf-8", errors="replace")
    return str(message).strip()[:_REASON_CHARS] or "no message"


def translate_write_error(exc: BaseException, url: str) -> InfluxWriteError | None:
    """The driftline error for an exception raised by an influxdb-client write, or None.

    None means ``exc`` is not a failed write (a bug, say) and must propagate as it is.

    >>> from influxdb_client.rest import ApiException
    >>> translate_write_error(ApiException(status=503, reason="Service Unavailable"), "http://i")
    InfluxUnavailableError('write to http://i failed: HTTP 503: Service Unavailable')
    >>> type(translate_write_error(ConnectionRefusedError(111, "refused"), "http://i")).__name__
    'InfluxUnavailableError'
    """
    if isinstance(exc, InfluxDBError):
        status = getattr(exc, "status", None)
        if status is None and exc.response is not None:
            status = getattr(exc.response, "status", None)
        if status is None:
            return InfluxUnavailableError(_answer(exc), url=url)
        status = int(status)
        answer = _answer(exc) if exc.response is not None else str(getattr(exc, "reason", ""))
        message = f"HTTP {status}: {answer}"
        if status in _REJECTED_STATUSES:
            return InfluxRejectedError(message, url=url, status=status)
        if status in (401, 403, 404):
            message += " (check the token, org and bucket settings)"
        return InfluxUnavailableError(
            message, url=url, status=status, retry_after=_retry_after(exc.retry_after)
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | http.client.HTTPException):
        return InfluxUnavailableError(f"{type(exc).__name__}: {exc}", url=url)
    return None


# --- back-off ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with jitter: retry ``n`` waits up to ``base * 2**(n-1)``, capped.

    Each wait is drawn uniformly from the top ``jitter`` share of that ceiling, so writers
    that failed together do not retry together.

    >>> backoff = Backoff(base=0.5, cap=4.0, jitter=0.0)
    >>> [backoff.delay(n, random.Random(0)) for n in range(1, 6)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    >>> backoff.delay(1, random.Random(0), at_least=3.0)  # the server's Retry-After
    3.0
    """

    base: float = 0.5
    cap: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"base must be positive seconds, got {self.base}")
        if not self.cap >= self.base:
            raise ValueError(f"cap must be at least base ({self.base}), got {self.cap}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry number ``attempt`` (1 for the first retry)."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        return min(self.cap, self.base * 2.0 ** min(attempt - 1, 64))

    def delay(self, attempt: int, rng: random.Random, *, at_least: float = 0.0) -> float:
        """The wait before retry ``attempt``: jittered, at least ``at_least``, at most the cap."""
        top = self.ceiling(attempt)
        drawn = top * (1.0 - self.jitter * rng.random())
        return min(self.cap, max(drawn, at_least))
