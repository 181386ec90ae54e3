"""Replay's join of predictions and labels by ``prediction_id``, on disk, bounded by the TTL.

The rules are stage 1's (:mod:`driftline.streams.join`): one entry per prediction id, a
prediction waiting for its label (``P``), a label waiting for its prediction (``L``), or the
two joined (``J``, kept so that repeats are recognised). A prediction whose id is known
already (waiting or joined) is a duplicate, and so is a label whose prediction has its label
already or whose id has a label waiting: the first event of an id wins, in file order.

The newest entries (:data:`FRONT` of them) are held in memory, in a dict, and written to an
embedded RocksDB in a temporary directory in batches as they age, so replay's memory does
not grow with the file: the disk holds what stage 1's store would. A label that comes soon
after its prediction (within :data:`FRONT` predictions) joins it without touching RocksDB,
and a new prediction id is looked up there only when a Bloom filter of the ids written
there (:data:`FILTER_BITS`, fixed) says it may be. Instead of an expiry index,
every entry carries the event time it was added at and counts as absent once it is older than
the predictions' watermark minus the join TTL (stage 1 forgets it then too). A ``W`` entry
marks a warm-up prediction: its label only built the baseline and is not folded.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from collections.abc import Iterable, Sequence
from itertools import islice
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

FRONT = 2**17
"""Join entries held in memory (the newest; about 200 bytes each)."""
FILTER_BITS = 2**26
"""Bits of the Bloom filter of the ids written to RocksDB (8 MiB; two probes per id: about
4 % false positives at 7 million ids, each costing one RocksDB lookup)."""

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
    front
        Entries held in memory (default: :data:`FRONT`).

    Examples
    --------
    >>> with JoinStore(60_000) as store:
    ...     store.write([(b"p1", label_entry(5, 1))])
    ...     found = store.get([b"p1", b"p2"], watermark_ms=10)
    ...     expired = store.get([b"p1"], watermark_ms=60_006)
    >>> [None if entry is None else entry[:1] for entry in found], expired
    ([b'L', None], [None])
    """

    def __init__(
        self, ttl_ms: int, directory: Path | None = None, *, front: int | None = None
    ) -> None:
        self.ttl_ms = ttl_ms
        self.front = FRONT if front is None else front
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
        self._front: dict[bytes, bytes] = {}
        self._on_disk = 0
        self._filter = np.zeros(FILTER_BITS // 8, dtype=np.uint8)

    def get(self, ids: Sequence[bytes], *, watermark_ms: int) -> list[bytes | None]:
        """The live entry of each id (None: none, or one past the TTL at ``watermark_ms``)."""
        if not ids:
            return []
        front = self._front
        found = [front.get(key) for key in ids]
        if self._on_disk:
            missing = [i for i, entry in enumerate(found) if entry is None]
            if missing:
                maybe = self._maybe_on_disk([ids[i] for i in missing])
                rows = [missing[i] for i in np.flatnonzero(maybe).tolist()]
                if rows:
                    stored = cast(list[bytes | None], self._db[[ids[i] for i in rows]])
                    for i, entry in zip(rows, stored, strict=True):
                        found[i] = entry
        cutoff = watermark_ms - self.ttl_ms
        head = _HEAD.unpack_from
        return [None if entry is None or head(entry, 1)[0] < cutoff else entry for entry in found]

    def write(self, entries: Iterable[tuple[bytes, bytes]]) -> None:
        """Put entries (in memory; the oldest go to RocksDB in one write batch)."""
        front = self._front
        front.update(entries)
        if len(front) > self.front:
            self._spill(len(front) - self.front + self.front // 4 + 1)

    def _spill(self, n: int) -> None:
        """Write the ``n`` oldest entries of the front to RocksDB and forget them."""
        front = self._front
        keys = list(islice(front, n))
        batch = WriteBatch(raw_mode=True)
        put = batch.put
        for key in keys:
            put(key, front.pop(key))
        self._db.write(batch)
        self._on_disk += len(keys)
        positions = self._positions(keys)
        np.bitwise_or.at(self._filter, positions >> 3, (1 << (positions & 7)).astype(np.uint8))

    def _positions(self, keys: list[bytes]) -> NDArray[np.uint64]:
        """The two filter bits of each key (both rows of one array)."""
        hashes = np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys)).view(np.uint64)
        mask = np.uint64(FILTER_BITS - 1)
        return np.concatenate((hashes & mask, (hashes >> np.uint64(38)) & mask))

    def _maybe_on_disk(self, keys: list[bytes]) -> NDArray[np.bool_]:
        """Whether each key may have been written to RocksDB (False: certainly not)."""
        positions = self._positions(keys)
        bits: NDArray[np.uint8] = (
            self._filter[positions >> 3] >> (positions & 7).astype(np.uint8)
        ) & 1
        n = len(keys)
        both: NDArray[np.bool_] = (bits[:n] & bits[n:]).astype(bool)
        return both

    def close(self) -> None:
        """Close the database and delete its directory."""
        self._db.close()
        shutil.rmtree(self._path, ignore_errors=True)

    def __enter__(self) -> JoinStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
