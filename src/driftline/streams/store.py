"""Stage 1's durable state for one input partition number, in an embedded RocksDB.

One database per partition number holds everything stage 1 knows about that partition:

* the **applied marks**: the next offset to apply on the predictions and on the ground-truth
  partition;
* the **pane partials**: the cumulative feature and performance summaries per (model,
  version, pane), and the rollout evidence of a shadow version per (model, challenger,
  pane, champion) (see :mod:`driftline.streams.partials`);
* the **join**, in a column family of its own: one entry per prediction id, in one of three
  states: a prediction waiting for its label (with its input offset and original bytes), a
  label waiting for its prediction (the same of the label), or joined (one byte, kept until
  the TTL so that repeats are recognised). The offsets tell, while a store is rebuilt from
  the inputs, which joined examples the partition's previous owner already sent. One point
  read per event tells whether it is new, a repeat or the partner of a waiter.
  A prediction of a model that makes no joined examples waits as a compact entry instead
  (no event bytes; :mod:`driftline.streams.entries`), whose versions are interned in a small
  dictionary kept in the default family.
  A shadow prediction's entry is keyed by its champion's id and :data:`SHADOW`
  (:func:`shadow_entry_key`), so the champion's label finds it with one more point read.
  The family is only ever read and written by key, never scanned, so its memtable is a hash
  table (RocksDB's hash-linked-list memtable) rather than the default skiplist: a put, a
  miss and a hit of a recent entry each cost a hash and a short bucket walk instead of a
  walk down a skiplist of a few hundred thousand random keys;
* an **expiry index** in event time: one record per applied batch listing the ids it added,
  under the newest event time among them, so expiry scans a few records per batch instead of
  one index entry per event; the predictions held for a version without a profile have
  records of their own per version, so that their index goes with them.

Every batch of input is applied in one RocksDB write batch that also moves the marks, so
after a crash or a restart on the same machine an event is applied exactly once: events
below the marks are skipped (DESIGN §3).

A database is open in one process at a time: RocksDB's ``LOCK`` file, an advisory lock the
kernel releases when its holder exits, kill -9 included. Stage-1 processes of one machine
share ``<state_dir>/ingest/p<number>`` (:mod:`driftline.streams.processes`); when a rebalance
moves a partition number from one to another, the new owner may be assigned it while the old
one still emits its partials and closes the store, so opening waits for the lock (up to
:data:`LOCK_WAIT` seconds) instead of failing. Whoever opens it next resumes from the marks
written with the data, so the handover is exact whatever the previous holder did last.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import msgspec
from rocksdict import (
    BlockBasedOptions,
    Cache,
    ColumnFamily,
    MemtableFactory,
    Options,
    Rdict,
    ReadOptions,
    SliceTransform,
    WriteBatch,
    WriteOptions,
)

from driftline.errors import StateStoreError
from driftline.streams.entries import (
    COMPACT,
    JOINED,
    LABEL,
    split_entry,
)

Kind = Literal["features", "performance", "rollout"]
_KIND_PREFIX: dict[str, bytes] = {
    "features": b"f\x00",
    "performance": b"q\x00",
    "rollout": b"r\x00",
}
_PREFIX_KIND = {v: k for k, v in _KIND_PREFIX.items()}
_MARKS = b"m"
_FORMAT = b"v"
# Not bumped for the rollout partials (issue 16): a store of format 3 written before them
# simply has none, and one written after them holds nothing an older reader misreads (it
# scans only its own prefixes; the shadow entries expire through the usual index).
_FORMAT_VERSION = b"3"
_JOIN_FAMILY = "join"
# Buckets of the join family's hash memtable: about as many as a full memtable holds entries
# of a typical prediction, so that each bucket's list stays short.
_JOIN_BUCKETS = 1 << 18
# The hash memtable buckets keys by a prefix; RocksDB's longest is 128 bytes, which is the
# whole id for any id the event contract expects (ids longer share a bucket per prefix).
_JOIN_PREFIX = 128
_BLOCK_CACHE = 32 << 20
_WAITING_FOR_HELD = b"w\x00"
_PREDICTION_EXPIRY = b"t\x00"
_LABEL_EXPIRY = b"s\x00"
_HELD_LABEL_EXPIRY = b"u\x00"
_HELD = b"h\x00"
_HELD_EXPIRY = b"x\x00"
_DETECTOR = b"d\x00"
_CONCEPT = b"c\x00"
_INTERNED = b"n\x00"
_TIME = struct.Struct(">q")
_SEQUENCE = struct.Struct(">qq")
_ids_encoder = msgspec.msgpack.Encoder()
_ids_decoder = msgspec.msgpack.Decoder(list[bytes])

LOCK_WAIT = 60.0
"""Seconds a store waits for another holder of its database to let go (module docstring)."""


ExpiryKind = Literal["predictions", "labels", "held_labels"]
_EXPIRY_PREFIX: dict[str, bytes] = {
    "predictions": _PREDICTION_EXPIRY,
    "labels": _LABEL_EXPIRY,
    "held_labels": _HELD_LABEL_EXPIRY,
}


@dataclass(frozen=True, slots=True)
class Marks:
    """Next offsets to apply; -1 when nothing was applied yet."""

    predictions: int = -1
    ground_truth: int = -1


def _pane_key(kind: Kind, model: str, version: str, pane_start: int, champion: str) -> bytes:
    if kind == "rollout":  # (challenger, pane, champion): one entry per champion
        return _KIND_PREFIX[kind] + msgspec.msgpack.encode((model, version, pane_start, champion))
    return _KIND_PREFIX[kind] + msgspec.msgpack.encode((model, version, pane_start))


def _held_prefix(model: str, version: str) -> bytes:
    name = msgspec.msgpack.encode((model, version))
    return _HELD + struct.pack(">H", len(name)) + name


class StoreBatch:
    """Changes to apply atomically, marks included."""

    def __init__(self, store: PartitionStore) -> None:
        self._batch = WriteBatch(raw_mode=True)
        # The store, not its join family's handle: a handle keeps the database open (and
        # locked) for as long as it lives, and a batch may outlive a closed store.
        self._store = store
        self.size = 0

    def put_partial(
        self,
        kind: Kind,
        model: str,
        version: str,
        pane_start: int,
        summary: bytes,
        champion: str = "",
    ) -> None:
        """Store a pane's cumulative summary (``champion``: of a rollout partial)."""
        self._batch.put(_pane_key(kind, model, version, pane_start, champion), summary)
        self.size += 1

    def delete_partial(
        self, kind: Kind, model: str, version: str, pane_start: int, champion: str = ""
    ) -> None:
        """Forget a pane's summary (pruning)."""
        self._batch.delete(_pane_key(kind, model, version, pane_start, champion))
        self.size += 1

    def put_entry(self, prediction_id: bytes, value: bytes) -> None:
        """Set a join entry: :data:`PENDING` or :data:`LABEL` followed by the event's bytes,
        or :data:`JOINED`."""
        self._batch.put(prediction_id, value, self._store.join_family)
        self.size += 1

    def put_entries(self, entries: list[tuple[bytes, bytes]]) -> None:
        """Set many join entries (:meth:`put_entry` for each, in one call)."""
        put, join = self._batch.put, self._store.join_family
        for prediction_id, value in entries:
            put(prediction_id, value, join)
        self.size += len(entries)

    def delete_entry(self, prediction_id: bytes) -> None:
        """Forget a join entry (its TTL ended)."""
        self._batch.delete(prediction_id, self._store.join_family)
        self.size += 1

    def put_waiting_for_held(self, prediction_id: bytes, entry: bytes) -> None:
        """Keep the :data:`LABEL` entry of a label whose prediction is held (its version has
        no profile yet)."""
        self._batch.put(_WAITING_FOR_HELD + prediction_id, entry)
        self.size += 1

    def delete_waiting_for_held(self, prediction_id: bytes) -> None:
        """Forget a label kept for a held prediction (joined or expired)."""
        self._batch.delete(_WAITING_FOR_HELD + prediction_id)
        self.size += 1

    def expire_later(
        self, kind: ExpiryKind, newest_ms: int, sequence: tuple[int, int], ids: Sequence[bytes]
    ) -> None:
        """Index the ids a batch added under the newest event time among them; ``sequence``
        (the batch's marks) keeps records of batches with the same time apart."""
        if ids:
            key = _EXPIRY_PREFIX[kind] + _TIME.pack(newest_ms) + _SEQUENCE.pack(*sequence)
            self._batch.put(key, _ids_encoder.encode(list(ids)))
            self.size += 1

    def delete_expiry(self, key: bytes) -> None:
        """Forget an expiry record once its ids are handled."""
        self._batch.delete(key)
        self.size += 1

    def expire_held_later(
        self,
        model: str,
        version: str,
        newest_ms: int,
        sequence: tuple[int, int],
        ids: Sequence[bytes],
    ) -> None:
        """Index the held predictions of a version that a batch added, as
        :meth:`expire_later` does (the batch's newest prediction time, so they expire with
        their join entries), the version in the key."""
        if ids:
            key = (
                _HELD_EXPIRY
                + _TIME.pack(newest_ms)
                + _SEQUENCE.pack(*sequence)
                + msgspec.msgpack.encode((model, version))
            )
            self._batch.put(key, _ids_encoder.encode(list(ids)))
            self.size += 1

    def hold(self, model: str, version: str, prediction_id: bytes) -> None:
        """Remember a kept prediction whose version has no profile yet."""
        self._batch.put(_held_prefix(model, version) + prediction_id, b"")
        self.size += 1

    def release(self, model: str, version: str, prediction_id: bytes) -> None:
        """Forget a held prediction (its profile arrived)."""
        self._batch.delete(_held_prefix(model, version) + prediction_id)
        self.size += 1

    def put_detector(self, model: str, version: str, snapshot: bytes) -> None:
        """Keep a version's concept-drift detector state (its snapshot, as JSON)."""
        self._batch.put(_DETECTOR + msgspec.msgpack.encode((model, version)), snapshot)
        self.size += 1

    def flag_concept(self, model: str, version: str, pane_start: int) -> None:
        """Record that the detector fired on a prediction of this pane."""
        self._batch.put(_CONCEPT + msgspec.msgpack.encode((model, version, pane_start)), b"1")
        self.size += 1

    def put_interned(self, ident: int, record: bytes) -> None:
        """Keep a new entry of the compact entries' dictionary of versions."""
        self._batch.put(_INTERNED + struct.pack(">H", ident), record)
        self.size += 1

    def set_marks(self, marks: Marks) -> None:
        """Move the applied marks, in the same atomic write as the data."""
        self._batch.put(_MARKS, msgspec.msgpack.encode((marks.predictions, marks.ground_truth)))


class PartitionStore:
    """The RocksDB of one input partition number.

    >>> import tempfile
    >>> directory = tempfile.TemporaryDirectory()
    >>> store = PartitionStore(Path(directory.name) / "p0")
    >>> batch = store.batch()
    >>> batch.put_partial("features", "fraud", "3", 60_000, b"summary")
    >>> batch.set_marks(Marks(predictions=42, ground_truth=7))
    >>> store.write(batch)
    >>> store.marks(), store.get_partial("features", "fraud", "3", 60_000)
    (Marks(predictions=42, ground_truth=7), b'summary')
    >>> store.close()
    >>> directory.cleanup()
    """

    def __init__(self, path: Path, *, wal: bool = True, lock_wait: float = LOCK_WAIT) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Both families share one block cache, of RocksDB's default size for one.
        cache = Cache(_BLOCK_CACHE)
        options = _options(cache)
        options.create_missing_column_families(True)
        # One writer per store; the hash memtable of the join family requires it.
        options.set_allow_concurrent_memtable_write(False)
        # The families flush together, so the files on disk always hold the marks and the
        # join entries of the same batches: without the write-ahead log (store_wal: false) a
        # crash goes back to the last flush, and a join family flushed ahead of the marks
        # would turn the replayed predictions into duplicates. It also lets the log files go
        # once the join family flushes (the small default family would otherwise pin them).
        options.set_atomic_flush(True)
        self._db = _open(path, options, {_JOIN_FAMILY: _join_options(cache)}, lock_wait)
        self._join_family: ColumnFamily | None = self._db.get_column_family_handle(_JOIN_FAMILY)
        self._join: Rdict | None = self._db.get_column_family(_JOIN_FAMILY)
        if not wal:
            # As Kafka Streams and Flink run RocksDB: the input topics are the changelog. A
            # crash then loses the memtables (the store goes back to its last flush, marks
            # and data together) and the partition is replayed from there; a clean close
            # flushes them. Ingest is faster without the log, for a longer replay after a crash.
            write_options = WriteOptions()
            # A property at run time; rocksdict's stub calls it a method.
            write_options.disable_wal = True  # type: ignore[method-assign,assignment]
            self._db.set_write_options(write_options)
        found = self._db.get(_FORMAT)
        if found is None and self._db.get(_MARKS) is None:
            self._db.put(_FORMAT, _FORMAT_VERSION)
        elif found != _FORMAT_VERSION:
            self.close()
            raise StateStoreError(
                f"the stage-1 store at {path} was written in format "
                f"{(found or b'1').decode()}; this driftline reads {_FORMAT_VERSION.decode()}. "
                "Move it away and the partition is rebuilt from Kafka",
                path=str(path),
            )

    def batch(self) -> StoreBatch:
        """A new atomic batch of changes."""
        return StoreBatch(self)

    @property
    def join_family(self) -> ColumnFamily:
        """The handle of the join column family (for :class:`StoreBatch`)."""
        if self._join_family is None:
            raise self._closed()
        return self._join_family

    def write(self, batch: StoreBatch) -> None:
        """Apply a batch atomically (data and marks together)."""
        self._db.write(batch._batch)

    def marks(self) -> Marks:
        """The applied marks."""
        raw = self._db.get(_MARKS)
        if raw is None:
            return Marks()
        predictions, ground_truth = msgspec.msgpack.decode(raw)
        return Marks(int(predictions), int(ground_truth))

    def get_partial(
        self, kind: Kind, model: str, version: str, pane_start: int, champion: str = ""
    ) -> bytes | None:
        """A pane's stored summary (``champion``: of a rollout partial)."""
        value = self._db.get(_pane_key(kind, model, version, pane_start, champion))
        return None if value is None else bytes(value)

    def partials(self) -> Iterator[tuple[Kind, str, str, int, str, bytes]]:
        """Every stored pane summary: (kind, model, version, pane start, champion, bytes);
        the champion is empty but for rollout partials."""
        for prefix, kind in _PREFIX_KIND.items():
            for key, value in self._scan(prefix):
                model, version, pane_start, *champion = msgspec.msgpack.decode(key[len(prefix) :])
                yield (  # type: ignore[misc]
                    kind,
                    model,
                    version,
                    int(pane_start),
                    champion[0] if champion else "",
                    value,
                )

    def get_entries(self, prediction_ids: Sequence[bytes]) -> list[bytes | None]:
        """The join entries of these ids, in order (None where there is none)."""
        if not prediction_ids:
            return []
        return cast(list[bytes | None], self._joins.get(list(prediction_ids)))

    def get_entry(self, prediction_id: bytes) -> bytes | None:
        """One join entry: its state byte, then the waiting event's bytes, if any."""
        value = self._joins.get(prediction_id)
        return None if value is None else bytes(value)

    @property
    def _joins(self) -> Rdict:
        if self._join is None:
            raise self._closed()
        return self._join

    def _closed(self) -> StateStoreError:
        return StateStoreError(f"the stage-1 store at {self.path} is closed", path=str(self.path))

    def get_prediction(self, prediction_id: bytes) -> tuple[bool, bytes] | None:
        """(joined, original bytes) of a known prediction; the bytes are kept only while it
        waits for its label (empty once joined, and for a compact entry)."""
        value = self.get_entry(prediction_id)
        if value is None or value[:1] == LABEL:
            return None
        if value[:1] == JOINED:
            return True, b""
        if value[:1] == COMPACT:
            return False, b""
        return False, split_entry(value)[1]

    def get_label(self, prediction_id: bytes) -> bytes | None:
        """Original bytes of a label waiting for its prediction."""
        value = self.get_entry(prediction_id)
        if value is None or value[:1] != LABEL:
            value = self.get_waiting_for_held(prediction_id)
        return None if value is None else split_entry(value)[1]

    def get_waiting_for_held(self, prediction_id: bytes) -> bytes | None:
        """The :data:`LABEL` entry of a label whose prediction is held for its profile."""
        value = self._db.get(_WAITING_FOR_HELD + prediction_id)
        return None if value is None else bytes(value)

    def interned(self) -> Iterator[tuple[int, bytes]]:
        """The compact entries' dictionary of versions: (id, record)."""
        for key, value in self._scan(_INTERNED):
            yield struct.unpack_from(">H", key, len(_INTERNED))[0], value

    def get_detector(self, model: str, version: str) -> bytes | None:
        """A version's stored concept-drift detector snapshot."""
        value = self._db.get(_DETECTOR + msgspec.msgpack.encode((model, version)))
        return None if value is None else bytes(value)

    def concept_flagged(self, model: str, version: str, pane_start: int) -> bool:
        """Whether the detector fired on a prediction of this pane."""
        key = _CONCEPT + msgspec.msgpack.encode((model, version, pane_start))
        return self._db.get(key) is not None

    def held(self, model: str, version: str) -> Iterator[bytes]:
        """Ids of the kept predictions of a version that waits for its profile."""
        prefix = _held_prefix(model, version)
        for key, _ in self._scan(prefix):
            yield key[len(prefix) :]

    def is_held(self, model: str, version: str, prediction_id: bytes) -> bool:
        """Whether this prediction is still held for its version's profile."""
        return self._db.get(_held_prefix(model, version) + prediction_id) is not None

    def expired_held(self, before_ms: int) -> Iterator[tuple[bytes, str, str, list[bytes]]]:
        """(record key, model, version, ids) of the held predictions' expiry records whose
        newest event is before ``before_ms``."""
        start = len(_HELD_EXPIRY) + _TIME.size + _SEQUENCE.size
        for key, value in self._scan(_HELD_EXPIRY):
            (event_ms,) = _TIME.unpack_from(key, len(_HELD_EXPIRY))
            if event_ms >= before_ms:
                return
            model, version = msgspec.msgpack.decode(key[start:])
            yield key, model, version, _ids_decoder.decode(value)

    def held_versions(self) -> dict[tuple[str, str], int]:
        """(model, version) to the number of predictions held for it."""
        counts: dict[tuple[str, str], int] = {}
        for key, _ in self._scan(_HELD):
            (size,) = struct.unpack_from(">H", key, len(_HELD))
            start = len(_HELD) + 2
            model, version = msgspec.msgpack.decode(key[start : start + size])
            counts[(model, version)] = counts.get((model, version), 0) + 1
        return counts

    def expired(self, kind: ExpiryKind, before_ms: int) -> Iterator[tuple[bytes, list[bytes]]]:
        """(record key, ids) of the expiry records whose newest event is before ``before_ms``."""
        prefix = _EXPIRY_PREFIX[kind]
        for key, value in self._scan(prefix):
            (event_ms,) = _TIME.unpack_from(key, len(prefix))
            if event_ms >= before_ms:
                return
            yield key, _ids_decoder.decode(value)

    def join_entries(self) -> Iterator[tuple[bytes, bytes]]:
        """Every join entry, (prediction id, entry) in id order. A full scan, which the hash
        memtable makes costly (it sorts a copy of itself): for tests and diagnostics only."""
        options = ReadOptions()
        options.set_total_order_seek(True)  # the family's prefix extractor is for buckets
        return self._scan(b"", self._joins, options)

    def _scan(
        self, prefix: bytes, db: Rdict | None = None, options: ReadOptions | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        it = (self._db if db is None else db).iter(options)
        try:
            it.seek(prefix)
            while it.valid():
                key = bytes(it.key())
                if not key.startswith(prefix):
                    break
                yield key, bytes(it.value())
                it.next()
        finally:
            del it

    def property_sum(self, name: str) -> int:
        """A RocksDB integer property summed over the store's column families."""
        return sum(int(db.property_int_value(name) or 0) for db in (self._db, self._joins))

    def memory(self) -> int:
        """Bytes RocksDB holds in memory for this store: memtables, table readers (index and
        filters) and the shared block cache."""
        tables = self.property_sum("rocksdb.cur-size-all-mem-tables") + self.property_sum(
            "rocksdb.estimate-table-readers-mem"
        )
        return tables + int(self._db.property_int_value("rocksdb.block-cache-usage") or 0)

    def size(self) -> tuple[int, int]:
        """(estimated keys, bytes in live SST files and memtables), from RocksDB's properties."""
        keys = self.property_sum("rocksdb.estimate-num-keys")
        files = self.property_sum("rocksdb.live-sst-files-size")
        memory = self.property_sum("rocksdb.cur-size-all-mem-tables")
        return keys, files + memory

    def close(self) -> None:
        """Release the database (flushes its write-ahead log)."""
        # The family's handles keep the database open (and locked): drop them first.
        self._join = self._join_family = None
        self._db.close()


def _table(options: Options, cache: Cache) -> None:
    # Every prediction and label costs point reads (duplicate? waiting partner?), most of
    # them misses: without bloom filters ingest slowed down as level-0 files piled up over a
    # long run, each miss reading every one of them.
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    table.set_block_cache(cache)
    options.set_block_based_table_factory(table)


def _options(cache: Cache) -> Options:
    """The default family: marks, partials, expiry index, held predictions; scanned by prefix."""
    options = Options(raw_mode=True)
    _table(options, cache)
    # Most reads are misses and hit the memtable: a memtable bloom filter answers a miss
    # without walking the skiplist.
    options.set_memtable_whole_key_filtering(True)
    options.set_memtable_prefix_bloom_ratio(0.1)
    return options


def _join_options(cache: Cache) -> Options:
    """The join family: point reads and writes only (its hash memtable cannot be scanned in
    order cheaply, and nothing scans it)."""
    options = Options(raw_mode=True)
    _table(options, cache)
    options.set_prefix_extractor(SliceTransform.create_max_len_prefix(_JOIN_PREFIX))
    # rocksdict's stub omits the bucket count.
    options.set_memtable_factory(MemtableFactory.hash_link_list(_JOIN_BUCKETS))  # type: ignore[call-arg]
    return options


def _open(path: Path, options: Options, families: dict[str, Options], wait: float) -> Rdict:
    """Open the database, waiting up to ``wait`` seconds while another holder has it locked."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return Rdict(str(path), options, column_families=families)
        except Exception as exc:  # rocksdict raises the bare Exception for RocksDB's errors
            if "LOCK" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise StateStoreError(
                    f"the store {path} is still locked by another process after {wait:g} s "
                    f"(another stage-1 process on this machine, or another monitor sharing "
                    f"monitor.state_dir): {exc}",
                    path=str(path),
                ) from None
            time.sleep(0.05)  # polling the lock: RocksDB offers no blocking open
