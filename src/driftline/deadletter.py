"""Dead letters: the one way driftline turns a message it cannot accept into a ``DeadLetter``.

Stage 1 (a bad event), stage 2 (a bad partial) and the InfluxDB writer (a malformed outbox
message) all dead-letter what they consumed the same way: the original key, value and headers
kept as they were, with where the message came from and why it was refused. This module owns
that mapping; the record itself and its Kafka headers live in
:class:`~driftline.schemas.outputs.DeadLetter`, and producing it is each caller's business.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from driftline.schemas.outputs import DeadLetter


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
