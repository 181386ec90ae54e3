"""Logging set-up: text for people, JSON lines for log pipelines (``log_format: json``).

Every line is redacted: the values registered with :func:`hide` (the configuration's secrets,
registered when it is loaded) are replaced by ``**********`` in the message, its extra fields
and any traceback, so a secret that a library quotes in an error never reaches a log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_MASK = "**********"
_hidden: frozenset[str] = frozenset()
_hidden_lock = threading.Lock()


def hide(values: Iterable[str]) -> None:
    """Redact ``values`` from every log line and :func:`redact` call of this process (each
    also as it appears escaped inside a JSON log line)."""
    global _hidden
    forms = set()
    for value in values:
        if value:
            forms.add(value)
            forms.add(orjson.dumps(value).decode()[1:-1])
    with _hidden_lock:
        _hidden = _hidden | forms


def redact(text: str) -> str:
    """``text`` with every hidden value replaced by ``**********``, longest first.

    >>> hide(["s3cr3t-value"])
    >>> redact("auth failed for password s3cr3t-value")
    'auth failed for password **********'
    """
    hidden = _hidden
    if not hidden:
        return text
    for value in sorted(hidden, key=len, reverse=True):
        if value in text:
            text = text.replace(value, _MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """Another formatter's lines, redacted (:func:`redact`)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` fields.

    >>> record = logging.makeLogRecord({"msg": "sent", "levelname": "INFO",
    ...                                 "name": "driftline", "created": 0.0, "panes": 3})
    >>> JsonFormatter().format(record)
    '{"time":"1970-01-01T00:00:00Z","level":"INFO","logger":"driftline","message":"sent","panes":3}'
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once for a driftline process."""
    handler = logging.StreamHandler()
    inner = (
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
