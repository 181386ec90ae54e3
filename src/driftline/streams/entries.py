"""The byte format of stage 1's join entries, one per prediction id (shadows under a key of
their own): a state byte, then for a waiting event its input offset and its bytes.

:mod:`driftline.streams.store` keeps these values; :mod:`driftline.streams.join` and
:mod:`driftline.streams.shadows` read and write them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

SHADOW = b"\xffs"
"""What a shadow prediction's join key adds to its champion's id: 0xFF never occurs in UTF-8,
so no prediction id (a JSON string) can be a shadow key."""

PENDING = b"P"
"""Join entry state: a prediction waiting for its label; its offset and bytes follow."""
JOINED = b"J"
"""Join entry state: prediction and label met; nothing follows."""
LABEL = b"L"
"""Join entry state: a label waiting for its prediction; its offset and bytes follow."""
_OFFSET = struct.Struct(">q")


def waiting_entry(state: bytes, offset: int, raw: bytes) -> bytes:
    """A :data:`PENDING` or :data:`LABEL` entry: the event's input offset and its bytes.

    >>> split_entry(waiting_entry(PENDING, 42, b"{}"))
    (42, b'{}')
    """
    return state + _OFFSET.pack(offset) + raw


def waiting_entries(state: bytes, offsets: Sequence[int], raws: Sequence[bytes]) -> list[bytes]:
    """:func:`waiting_entry` of each (offset, bytes) pair, in one pass.

    >>> waiting_entries(PENDING, [1, 2], [b"a", b"b"]) == [waiting_entry(PENDING, 1, b"a"),
    ...                                                    waiting_entry(PENDING, 2, b"b")]
    True
    """
    pack = _OFFSET.pack
    return [state + pack(offset) + raw for offset, raw in zip(offsets, raws, strict=True)]


def split_entry(entry: bytes) -> tuple[int, bytes]:
    """(input offset, event bytes) of a waiting entry."""
    return _OFFSET.unpack_from(entry, 1)[0], entry[1 + _OFFSET.size :]


def split_entries(entries: Sequence[bytes]) -> tuple[list[int], list[bytes]]:
    """The input offsets and the event bytes of waiting entries (:func:`split_entry` of each).

    >>> split_entries([waiting_entry(PENDING, 7, b"a"), waiting_entry(LABEL, 9, b"bc")])
    ([7, 9], [b'a', b'bc'])
    """
    unpack, start = _OFFSET.unpack_from, 1 + _OFFSET.size
    return [unpack(entry, 1)[0] for entry in entries], [entry[start:] for entry in entries]


def shadow_entry_key(champion_id: bytes) -> bytes:
    """The join key of the shadow prediction of the champion prediction ``champion_id``.

    >>> shadow_entry_key(b"p1")
    b'p1\\xffs'
    """
    return champion_id + SHADOW


def message_key(join_id: bytes) -> bytes:
    """The input message key of the event under a join id: a shadow's is its champion's id.

    >>> message_key(shadow_entry_key(b"p1")), message_key(b"p2")
    (b'p1', b'p2')
    """
    return join_id[: -len(SHADOW)] if join_id.endswith(SHADOW) else join_id
