"""Stage 1's durable state for one input partition number, in an embedded RocksDB.

One database per partition number holds everything stage 1 knows about that partition:

* the **applied marks**: the next offset to apply on the predictions and on the ground-truth
  partition;
* the **pane partials**: the cumulative feature and performance summaries per (model,
  version, pane) (see :mod:`driftline.streams.partials`);
* the **join**: predictions waiting for (or already matched with) their label, labels
  waiting for their prediction, each with an event-time index for expiry.

Every batch of input is applied in one RocksDB write batch that also moves the marks, so
after a crash or a restart on the same machine an event is applied exactly once: events
below the marks are skipped (DESIGN §3).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
from rocksdict import BlockBasedOptions, Options, Rdict, WriteBatch

Kind = Literal["features", "performance"]
_KIND_PREFIX: dict[str, bytes] = {"features": b"f\x00", "performance": b"q\x00"}
_PREFIX_KIND = {v: k for k, v in _KIND_PREFIX.items()}
_MARKS = b"m"
_PREDICTION = b"p\x00"
_LABEL = b"l\x00"
_PREDICTION_EXPIRY = b"t\x00"
_LABEL_EXPIRY = b"s\x00"
_HELD = b"h\x00"
_DETECTOR = b"d\x00"
_CONCEPT = b"c\x00"
_TIME = struct.Struct(">q")
_PENDING, _JOINED = b"0", b"1"


@dataclass(frozen=True, slots=True)
class Marks:
    """Next offsets to apply; -1 when nothing was applied yet."""

    predictions: int = -1
    ground_truth: int = -1


def _pane_key(kind: Kind, model: str, version: str, pane_start: int) -> bytes:
    return _KIND_PREFIX[kind] + msgspec.msgpack.encode((model, version, pane_start))


def _held_prefix(model: str, version: str) -> bytes:
    name = msgspec.msgpack.encode((model, version))
    return _HELD + struct.pack(">H", len(name)) + name


def _expiry_key(prefix: bytes, event_ms: int, prediction_id: bytes) -> bytes:
    return prefix + _TIME.pack(event_ms) + prediction_id


class StoreBatch:
    """Changes to apply atomically, marks included."""

    def __init__(self) -> None:
        self._batch = WriteBatch(raw_mode=True)
        self.size = 0

    def put_partial(
        self, kind: Kind, model: str, version: str, pane_start: int, summary: bytes
    ) -> None:
        """Store a pane's cumulative summary."""
        self._batch.put(_pane_key(kind, model, version, pane_start), summary)
        self.size += 1

    def delete_partial(self, kind: Kind, model: str, version: str, pane_start: int) -> None:
        """Forget a pane's summary (pruning)."""
        self._batch.delete(_pane_key(kind, model, version, pane_start))
        self.size += 1

    def put_prediction(
        self, prediction_id: bytes, event_ms: int, raw: bytes, *, joined: bool, new: bool
    ) -> None:
        """Keep a prediction (its original bytes) until its label arrives and the TTL ends."""
        self._batch.put(_PREDICTION + prediction_id, (_JOINED if joined else _PENDING) + raw)
        if new:
            self._batch.put(_expiry_key(_PREDICTION_EXPIRY, event_ms, prediction_id), b"")
        self.size += 1

    def put_label(self, prediction_id: bytes, event_ms: int, raw: bytes) -> None:
        """Keep a label that arrived before its prediction."""
        self._batch.put(_LABEL + prediction_id, raw)
        self._batch.put(_expiry_key(_LABEL_EXPIRY, event_ms, prediction_id), b"")
        self.size += 1

    def delete_label(self, prediction_id: bytes, event_ms: int) -> None:
        """Forget a waiting label (joined or expired)."""
        self._batch.delete(_LABEL + prediction_id)
        self._batch.delete(_expiry_key(_LABEL_EXPIRY, event_ms, prediction_id))
        self.size += 1

    def delete_prediction(self, prediction_id: bytes, event_ms: int) -> None:
        """Forget a prediction (its TTL ended)."""
        self._batch.delete(_PREDICTION + prediction_id)
        self._batch.delete(_expiry_key(_PREDICTION_EXPIRY, event_ms, prediction_id))
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

    def set_marks(self, marks: Marks) -> None:
        """Move the applied marks, in the same atomic write as the data."""
        self._batch.put(_MARKS, msgspec.msgpack.encode((marks.predictions, marks.ground_truth)))


class PartitionStore:
    """The RocksDB of one input partition number.

    >>> import tempfile
    >>> store = PartitionStore(Path(tempfile.mkdtemp()) / "p0")
    >>> batch = store.batch()
    >>> batch.put_partial("features", "fraud", "3", 60_000, b"summary")
    >>> batch.set_marks(Marks(predictions=42, ground_truth=7))
    >>> store.write(batch)
    >>> store.marks(), store.get_partial("features", "fraud", "3", 60_000)
    (Marks(predictions=42, ground_truth=7), b'summary')
    >>> store.close()
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        # Every prediction and label costs point reads (duplicate? waiting partner?), most of
        # them misses: without bloom filters they slowed from 61k to 36k predictions/s as
        # level-0 files piled up over 1 M predictions; with them ~52k/s (benchmarks/e2e.py).
        table = BlockBasedOptions()
        table.set_bloom_filter(10, False)
        options.set_block_based_table_factory(table)
        self._db = Rdict(str(path), options)

    def batch(self) -> StoreBatch:
        """A new atomic batch of changes."""
        return StoreBatch()

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

    def get_partial(self, kind: Kind, model: str, version: str, pane_start: int) -> bytes | None:
        """A pane's stored summary."""
        value = self._db.get(_pane_key(kind, model, version, pane_start))
        return None if value is None else bytes(value)

    def partials(self) -> Iterator[tuple[Kind, str, str, int, bytes]]:
        """Every stored pane summary: (kind, model, version, pane start, bytes)."""
        for prefix, kind in _PREFIX_KIND.items():
            for key, value in self._scan(prefix):
                model, version, pane_start = msgspec.msgpack.decode(key[len(prefix) :])
                yield kind, model, version, int(pane_start), value  # type: ignore[misc]

    def get_prediction(self, prediction_id: bytes) -> tuple[bool, bytes] | None:
        """(joined, original bytes) of a kept prediction."""
        value = self._db.get(_PREDICTION + prediction_id)
        if value is None:
            return None
        return value[:1] == _JOINED, bytes(value[1:])

    def get_label(self, prediction_id: bytes) -> bytes | None:
        """Original bytes of a label waiting for its prediction."""
        value = self._db.get(_LABEL + prediction_id)
        return None if value is None else bytes(value)

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

    def held_versions(self) -> dict[tuple[str, str], int]:
        """(model, version) to the number of predictions held for it."""
        counts: dict[tuple[str, str], int] = {}
        for key, _ in self._scan(_HELD):
            (size,) = struct.unpack_from(">H", key, len(_HELD))
            start = len(_HELD) + 2
            model, version = msgspec.msgpack.decode(key[start : start + size])
            counts[(model, version)] = counts.get((model, version), 0) + 1
        return counts

    def expired_predictions(self, before_ms: int) -> Iterator[tuple[bytes, int]]:
        """(prediction id, event time) of kept predictions older than ``before_ms``."""
        yield from self._expired(_PREDICTION_EXPIRY, before_ms)

    def expired_labels(self, before_ms: int) -> Iterator[tuple[bytes, int]]:
        """(prediction id, event time) of waiting labels older than ``before_ms``."""
        yield from self._expired(_LABEL_EXPIRY, before_ms)

    def _expired(self, prefix: bytes, before_ms: int) -> Iterator[tuple[bytes, int]]:
        for key, _ in self._scan(prefix):
            (event_ms,) = _TIME.unpack_from(key, len(prefix))
            if event_ms >= before_ms:
                return
            yield key[len(prefix) + _TIME.size :], int(event_ms)

    def _scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        it = self._db.iter()
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

    def close(self) -> None:
        """Release the database (flushes its write-ahead log)."""
        self._db.close()
