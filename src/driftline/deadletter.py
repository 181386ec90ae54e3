"""Dead letters: the one way driftline turns a message it cannot accept into a ``DeadLetter``.

Stage 1 (a bad event), stage 2 (a bad partial) and the InfluxDB writer (a malformed outbox
message) all dead-letter what they consumed the same way: the original key, value and headers
kept as they were, with where the message came from and why it was refused. This module owns
that mapping, and :func:`fit`, which cuts a dead letter too large for the DLQ topic down to
a size that can be produced (never dropping it); the record itself and its Kafka headers live
in :class:`~driftline.schemas.outputs.DeadLetter`, and producing it is each caller's business.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from driftline.schemas.outputs import DLQ_HEADER_ORIGINAL_KEY_SHA256, DeadLetter

MAX_REASON = 1000
"""Characters of a reason kept in a dead letter (an exception's text can be any length)."""
_FRAMING = 512
"""Bytes allowed for a record's framing besides its key, value and headers."""
_SMALLEST = 1024
"""The least room :func:`fit` assumes: a DLQ that cannot take this much takes nothing."""


class RawMessage(Protocol):
    """What driftline reads of a consumed Kafka message (``confluent_kafka.Message`` fits)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes | bytearray | memoryview | None]] | None,
    reason: str,
    kind: str,
    path: str | None = None,
    failed_at: datetime | int,
) -> DeadLetter:
    """The dead letter of one message; a header without a value keeps its name, empty.

    >>> letter = dead_letter(topic="driftline.predictions", partition=2, offset=41,
    ...                      key=b"p-1", value=b"{}", headers=[("trace", None)],
    ...                      reason="Object missing required field `model`",
    ...                      kind="invalid_event", path="$", failed_at=1_764_000_000_000)
    >>> letter.source_offset, letter.original_headers
    (41, (('trace', b''),))
    """
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "\u2026"
    return DeadLetter(
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        reason=reason,
        kind=kind,
        path=path,
        key=key,
        value=value,
        original_headers=tuple(
            (name, b"" if data is None else bytes(data)) for name, data in headers or ()
        ),
        failed_at=failed_at,
    )


def from_message(
    message: RawMessage,
    *,
    reason: str,
    kind: str,
    path: str | None = None,
    failed_at: datetime | int,
) -> DeadLetter:
    """The dead letter of a message consumed with confluent-kafka."""
    return dead_letter(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        headers=message.headers(),
        reason=reason,
        kind=kind,
        path=path,
        failed_at=failed_at,
    )


def size(letter: DeadLetter) -> int:
    """Bytes of a dead letter's key, value and headers as produced (framing aside)."""
    headers = sum(len(name) + len(data) for name, data in letter.kafka_headers())
    return len(letter.key or b"") + len(letter.value or b"") + headers


def fit(letter: DeadLetter, max_bytes: int) -> DeadLetter:
    """The dead letter as it is if it fits in ``max_bytes``, else cut to fit: the value cut
    short, then the original headers left out, then the key cut short, each cut recorded
    (length and SHA-256 of what was there) in ``driftline.original.*`` headers.

    >>> letter = dead_letter(topic="t", partition=0, offset=7, key=b"k", value=b"x" * 5000,
    ...                      headers=[("trace", b"t")], reason="bad", kind="invalid_event",
    ...                      failed_at=0)
    >>> fit(letter, 10_000) is letter
    True
    >>> cut = fit(letter, 2000)
    >>> len(cut.value) < 2000, cut.original_length, cut.original_headers, size(cut) + 512 <= 2000
    (True, 5000, (('trace', b't'),), True)
    """
    room = max(max_bytes, _SMALLEST) - _FRAMING
    if size(letter) <= room:
        return letter
    # The lengths and hashes of what is cut take room too: reserve it first.
    over = size(letter) + 2 * (len(DLQ_HEADER_ORIGINAL_KEY_SHA256) + 64 + 40) - room
    changes: dict[str, object] = {}
    value, key = letter.value or b"", letter.key or b""
    if value:
        keep = max(len(value) - over, 0)
        changes.update(
            value=value[:keep],
            original_length=len(value),
            original_sha256=hashlib.sha256(value).hexdigest(),
        )
        over -= len(value) - keep
    if over > 0 and letter.original_headers:
        changes.update(original_headers=(), original_headers_dropped=len(letter.original_headers))
        over -= sum(len(name) + len(data) for name, data in letter.original_headers)
    if over > 0 and key:
        keep = max(len(key) - over, 0)
        changes.update(
            key=key[:keep],
            original_key_length=len(key),
            original_key_sha256=hashlib.sha256(key).hexdigest(),
        )
    return letter.model_copy(update=changes)
