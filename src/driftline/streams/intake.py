"""What stage 1 takes of one input topic's messages in a batch: new ones, decoded, as columns.

For the predictions or the ground-truth partition of a batch, :func:`take` skips the messages
the store applied before (offsets below its mark), decodes the rest in one call, and returns
the valid events as :class:`Columns` (event, bytes, id, offset), each invalid one becoming a
dead letter with its reason. An event dated further ahead of the wall clock than
``monitor.max_clock_skew`` is one of them (:func:`ahead_of_clock`, checked per batch): folded,
it would move its partition's watermark so far that every event after it came too late.
:func:`event_times` reads either timestamp form as epoch milliseconds, column by column.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Generic, NamedTuple, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from driftline.config import format_duration
from driftline.deadletter import RawMessage, from_message
from driftline.errors import DecodeError
from driftline.schemas import reasons
from driftline.schemas.events import EPOCH
from driftline.schemas.wire import WireGroundTruth, WirePrediction, event_time_ms
from driftline.streams.entries import shadow_entry_key
from driftline.streams.result import ApplyResult

E = TypeVar("E", WirePrediction, WireGroundTruth)
_INTS = {int}


class Columns(NamedTuple, Generic[E]):
    """Accepted events of one input topic in a batch, as columns."""

    events: list[E]
    values: list[bytes]
    ids: list[bytes]
    offsets: list[int]


def take(
    messages: list[RawMessage],
    mark: int,
    restore_until: int,
    decode: Callable[[list[bytes], list[bytes | None]], list[E | DecodeError]],
    failed_at_ms: int,
    result: ApplyResult,
    *,
    max_skew_ms: int,
) -> tuple[Columns[E], int]:
    """The messages of one input topic at or after ``mark``, decoded, as columns (event,
    bytes, id, offset), and the mark after them; each message that failed to decode, or is
    dated more than ``max_skew_ms`` after ``failed_at_ms`` (the wall clock), becomes a dead
    letter instead (none below ``restore_until``: see :func:`_reject`)."""
    fresh, offsets, mark = _fresh(messages, mark, result)
    values = [message.value() or b"" for message in fresh]
    keys = [message.key() for message in fresh]
    decoded = decode(values, keys)
    ahead_of_clock(decoded, failed_at_ms, max_skew_ms)
    return _accept(fresh, offsets, values, keys, decoded, restore_until, failed_at_ms, result), mark


def ahead_of_clock(decoded: list[E | DecodeError], now_ms: int, max_skew_ms: int) -> int:
    """Replace each event dated after ``now_ms + max_skew_ms`` by the
    :class:`~driftline.errors.DecodeError` that dead-letters it; returns how many.

    One NumPy comparison of the batch's event times with the bound; only the events beyond
    it are visited one by one.

    >>> from driftline.schemas.wire import decode_ground_truth
    >>> now = 1_767_225_600_000
    >>> batch = [decode_ground_truth(b'{"event_id":"t","prediction_id":"p","timestamp":%d,'
    ...                              b'"label":1}' % ts) for ts in (now, now + 3_600_000)]
    >>> ahead_of_clock(batch, now, 300_000), batch[1].kind, batch[1].reason
    (1, 'clock_skew', 'event time 2026-01-01T01:00:00.000Z is 1h ahead of the wall clock \
(2026-01-01T00:00:00.000Z); monitor.max_clock_skew allows 5m')
    """
    rows: Sequence[int]
    if DecodeError in set(map(type, decoded)):
        rows = [i for i, event in enumerate(decoded) if not isinstance(event, DecodeError)]
        stamps = [cast(E, decoded[i]).timestamp for i in rows]
    else:
        rows = range(len(decoded))
        stamps = [event.timestamp for event in cast(list[E], decoded)]
    if not stamps:
        return 0
    limit = now_ms + max_skew_ms
    times = event_times(stamps)
    if int(times.max()) <= limit:
        return 0  # the usual case
    ahead = np.flatnonzero(times > limit).tolist()
    for position in ahead:
        decoded[rows[position]] = _too_far_ahead(int(times[position]), now_ms, max_skew_ms)
    return len(ahead)


def _too_far_ahead(event_ms: int, now_ms: int, max_skew_ms: int) -> DecodeError:
    ahead = format_duration(timedelta(milliseconds=event_ms - now_ms))
    allowed = format_duration(timedelta(milliseconds=max_skew_ms))
    return DecodeError(
        f"event time {_iso(event_ms)} is {ahead} ahead of the wall clock ({_iso(now_ms)}); "
        f"monitor.max_clock_skew allows {allowed}",
        kind=reasons.CLOCK_SKEW,
        path="$.timestamp",
    )


def _iso(ms: int) -> str:
    return (
        (EPOCH + timedelta(milliseconds=ms))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _fresh(
    messages: list[RawMessage], mark: int, result: ApplyResult
) -> tuple[list[RawMessage], list[int], int]:
    """The messages of one input partition at or after ``mark`` (the store applied those
    before it), their offsets, and the mark after them."""
    offsets = [message.offset() or 0 for message in messages]
    if not offsets:
        return messages, offsets, mark
    if offsets[0] >= mark and all(map(operator.lt, offsets, offsets[1:])):
        return messages, offsets, offsets[-1] + 1  # the usual case: all new, in order
    kept, kept_offsets = [], []
    for message, offset in zip(messages, offsets, strict=True):
        if offset < mark:
            result.skipped += 1
            continue
        mark = offset + 1
        kept.append(message)
        kept_offsets.append(offset)
    return kept, kept_offsets, mark


def _accept(
    messages: list[RawMessage],
    offsets: list[int],
    values: list[bytes],
    keys: list[bytes | None],
    decoded: list[E | DecodeError],
    restore_until: int,
    failed_at_ms: int,
    result: ApplyResult,
) -> Columns[E]:
    """The decoded events as columns; failures become dead letters."""
    if DecodeError not in set(map(type, decoded)):
        events = cast(list[E], decoded)
        if None not in keys:
            return Columns(events, values, cast(list[bytes], keys), offsets)
        ids = [
            key if key is not None else event.key.encode()
            for key, event in zip(keys, events, strict=True)
        ]
        return Columns(events, values, ids, offsets)
    kept: Columns[E] = Columns([], [], [], [])
    for message, raw, key, offset, event in zip(
        messages, values, keys, offsets, decoded, strict=True
    ):
        if isinstance(event, DecodeError):
            _reject(message, offset, event, restore_until, failed_at_ms, result)
            continue
        kept.events.append(event)
        kept.values.append(raw)
        kept.ids.append(key if key is not None else event.key.encode())
        kept.offsets.append(offset)
    return kept


def _reject(
    message: RawMessage,
    offset: int,
    exc: DecodeError,
    restore_until: int,
    failed_at_ms: int,
    result: ApplyResult,
) -> None:
    """A dead letter for an event that failed to decode (none while rebuilding: the
    previous owner of the partition dead-lettered it already)."""
    if offset < restore_until:
        result.restored += 1
        return
    result.dead_letters.append(
        from_message(
            message, reason=exc.reason, kind=exc.kind, path=exc.path, failed_at=failed_at_ms
        )
    )


_ROLE = operator.attrgetter("role")


def split_shadows(
    predictions: Columns[WirePrediction],
) -> tuple[Columns[WirePrediction], Columns[WirePrediction]]:
    """The batch's predictions as (the others, the shadows), in order, each shadow under its
    join key: its message key (its champion's id, checked against ``shadow_of`` when it was
    decoded) and :data:`~driftline.streams.store.SHADOW`. In the join a shadow is then a
    prediction of its own version, never a duplicate of its champion, and the champion's
    label finds it by its champion's id (:mod:`driftline.streams.shadows`). A batch without
    shadows comes back as it is, with empty shadows.
    """
    events = predictions.events
    if "shadow" not in map(_ROLE, events):
        return predictions, Columns([], [], [], [])
    others: Columns[WirePrediction] = Columns([], [], [], [])
    shadows: Columns[WirePrediction] = Columns([], [], [], [])
    for event, raw, pid, offset in zip(*predictions, strict=True):
        kept, key = (shadows, shadow_entry_key(pid)) if event.role == "shadow" else (others, pid)
        kept.events.append(event)
        kept.values.append(raw)
        kept.ids.append(key)
        kept.offsets.append(offset)
    return others, shadows


def event_times(stamps: list[datetime | int]) -> NDArray[np.int64]:
    """Epoch milliseconds of either timestamp form, as an array.

    >>> from datetime import UTC, datetime
    >>> event_times([5, datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)]).tolist()
    [5, 1000]
    """
    if set(map(type, stamps)) <= _INTS:
        return np.array(stamps, dtype=np.int64)
    return np.array([_ms(ts) for ts in stamps], dtype=np.int64)


def _ms(ts: datetime | int) -> int:
    return ts if type(ts) is int else event_time_ms(ts)
