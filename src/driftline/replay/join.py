"""Replay's join of predictions and labels by ``prediction_id``, on disk, bounded by the TTL.

The rules are stage 1's (:mod:`driftline.streams.join`): one entry per prediction id, a
prediction waiting for its label (``P``), a label waiting for its prediction (``L``), or the
two joined (``J``, kept so that repeats are recognised). A prediction whose id is known
already (waiting or joined) is a duplicate, and so is a label whose prediction has its label
already or whose id has a label waiting: the first event of an id wins, in file order.

The entries live in an embedded RocksDB in a temporary directory, so replay's memory does not
grow with the file: the disk holds what stage 1's store would. Instead of an expiry index,
every entry carries the event time it was added at and counts as absent once it is older than
the predictions' watermark minus the join TTL (stage 1 forgets it then too). A ``W`` entry
marks a warm-up prediction: its label only built the baseline and is not folded.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
import orjson
from numpy.typing import NDArray
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

PENDING = b"P"
LABEL = b"L"
JOINED = b"J"
WARMUP = b"W"

_HEAD = struct.Struct("<q")
_PENDING = struct.Struct("<cqqi")
_REST = struct.Struct("<qi")


class Waiting(NamedTuple):
    """A prediction waiting for its label, as the join keeps it (compact: no features)."""

    time_ms: int
    seq: int
    version: int
    prediction: Any
    scores: dict[str, float] | None
    segments: dict[str, str] | None = None


class WaitingLabel(NamedTuple):
    """A label waiting for its prediction."""

    time_ms: int
    label: Any


def pending_entry(waiting: Waiting) -> bytes:
    """The entry of a prediction that waits for its label."""
    payload = [waiting.prediction, waiting.scores]
    if waiting.segments:
        payload.append(waiting.segments)
    return _PENDING.pack(PENDING, waiting.time_ms, waiting.seq, waiting.version) + orjson.dumps(
        payload
    )


def pending_entries(
    times: list[int], seqs: list[int], version: int, payloads: Sequence[tuple[Any, ...]]
) -> list[bytes]:
    """:func:`pending_entry` of many predictions of one version (``payloads``: their
    prediction and scores, and their segments when they have any)."""
    pack, dumps = _PENDING.pack, orjson.dumps
    return [
        pack(PENDING, at, seq, version) + dumps(payload)
        for at, seq, payload in zip(times, seqs, payloads, strict=True)
    ]


def label_entry(time_ms: int, label: object) -> bytes:
    """The entry of a label that waits for its prediction."""
    return LABEL + _HEAD.pack(time_ms) + orjson.dumps(label)


def marked(tag: bytes, time_ms: int) -> bytes:
    """A joined (``J``) or warm-up (``W``) entry, added at ``time_ms``."""
    return tag + _HEAD.pack(time_ms)


def read_pending(entry: bytes) -> Waiting:
    """The prediction a ``P`` entry holds."""
    time_ms, seq, version = _PENDING.unpack_from(entry)[1:]
    prediction, scores, *segments = orjson.loads(entry[_PENDING.size :])
    return Waiting(time_ms, seq, version, prediction, scores, segments[0] if segments else None)


_HEADS = np.dtype([("tag", "S1"), ("time", "<i8"), ("seq", "<i8"), ("version", "<i4")])


def read_pendings(entries: list[bytes]) -> tuple[NDArray[Any], list[tuple[Any, ...]]]:
    """:func:`read_pending` of many ``P`` entries at once: their heads as a record array
    (``time``, ``seq``, ``version``) and their (prediction, scores[, segments])."""
    size = _PENDING.size
    heads = np.frombuffer(b"".join([entry[:size] for entry in entries]), dtype=_HEADS)
    payloads = orjson.loads(b"[" + b",".join([entry[size:] for entry in entries]) + b"]")
    return heads, payloads


def read_label(entry: bytes) -> WaitingLabel:
    """The label an ``L`` entry holds."""
    return WaitingLabel(_HEAD.unpack_from(entry, 1)[0], orjson.loads(entry[9:]))


class JoinStore:
    """The join entries of one replay, in a RocksDB under a temporary directory.

    Parameters
    ----------
    ttl_ms
        The join TTL (``monitor.join_ttl``), in milliseconds of event time.
    directory
        Where the temporary directory is made (default: the system's temporary directory).

    Examples
    --------
    >>> with JoinStore(60_000) as store:
    ...     store.write([(b"p1", label_entry(5, 1))])
    ...     found = store.get([b"p1", b"p2"], watermark_ms=10)
    ...     expired = store.get([b"p1"], watermark_ms=60_006)
    >>> [None if entry is None else entry[:1] for entry in found], expired
    ([b'L', None], [None])
    """

    def __init__(self, ttl_ms: int, directory: Path | None = None) -> None:
        self.ttl_ms = ttl_ms
        self._path = Path(tempfile.mkdtemp(prefix="driftline-replay-", dir=directory))
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        # Small memtables and cache: replay's bound is the memory it holds, not the disk.
        options.set_write_buffer_size(8 * 2**20)
        options.set_max_write_buffer_number(2)
        table = BlockBasedOptions()
        table.set_bloom_filter(10, False)  # most lookups miss: a new id
        # Index and filter blocks grow with the entries: counted in the cache, they are bounded.
        table.set_cache_index_and_filter_blocks(True)
        table.set_block_cache(Cache(8 * 2**20))
        options.set_block_based_table_factory(table)
        options.set_memtable_whole_key_filtering(True)
        options.set_memtable_prefix_bloom_ratio(0.1)
        self._db = Rdict(str(self._path), options)
        # A scratch store, deleted when the replay ends: no write-ahead log.
        unlogged = WriteOptions()
        unlogged.disable_wal = True  # type: ignore[method-assign,assignment]
        self._db.set_write_options(unlogged)

    def get(self, ids: Sequence[bytes], *, watermark_ms: int) -> list[bytes | None]:
        """The live entry of each id (None: none, or one past the TTL at ``watermark_ms``)."""
        if not ids:
            return []
        found = cast(list[bytes | None], self._db[list(ids)])
        cutoff = watermark_ms - self.ttl_ms
        return [
            None if entry is None or _HEAD.unpack_from(entry, 1)[0] < cutoff else entry
            for entry in found
        ]

    def write(self, entries: Iterable[tuple[bytes, bytes]]) -> None:
        """Put entries, in one write batch."""
        batch = WriteBatch(raw_mode=True)
        for key, value in entries:
            batch.put(key, value)
        self._db.write(batch)

    def close(self) -> None:
        """Close the database and delete its directory."""
        self._db.close()
        shutil.rmtree(self._path, ignore_errors=True)

    def __enter__(self) -> JoinStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
