"""The trainer's bounded store of recent joined examples, per model, in an embedded RocksDB.

The trainer reads ``driftline.labeled`` into this store so that a retrain request never needs
a time-range seek into Kafka. Keys (all in one column family):

* ``e`` + model + prediction time + example id → the example (msgpack): ordered by model,
  then time, so a model's oldest examples are the first keys under its prefix and evicting
  them is a seek and a few deletes. An example is identified by its id and prediction time,
  both fixed per prediction, so a repeat of a record lands on the same key and is dropped;
* ``m`` + model → the model's row count and its oldest and newest prediction times, so
  eviction seeks straight past the tombstones of what it already deleted;
* ``o`` + partition → the next offset of that ``driftline.labeled`` partition to apply,
  written in the same RocksDB write batch as the examples of the records it covers: after a
  crash a replay skips exactly what was applied (DESIGN §3).

Bounds hold whatever a producer sends: a model keeps at most ``max_rows`` examples and none
older than ``max_age`` before its newest one (the oldest go first); at most ``max_models``
models are kept; a record that is oversized, undecodable, has too many features or too long
names or strings, is dated beyond ``max_clock_skew`` ahead of the clock, or is already too old
is not stored, and :class:`ApplyResult` counts it under its reason (:data:`REJECT_REASONS`).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple, cast

import msgspec
from rocksdict import DBCompressionType, Options, Rdict, WriteBatch

from driftline.config.settings import TrainerSettings
from driftline.errors import StateStoreError
from driftline.schemas.limits import DEFAULT_LIMITS, Limits
from driftline.trainer.protocol import Example, Examples

__all__ = ["REJECT_REASONS", "ApplyResult", "ExampleStore", "LabeledRecord"]

REJECT_REASONS = (
    "too_large",
    "undecodable",
    "too_many_features",
    "too_long",
    "too_many_models",
    "future",
    "expired",
)
"""Why a record is not stored: bigger than ``max_example_bytes``; not a joined example;
more features than ``max_features``; a name, id or string value over the input limits; a new
model beyond ``max_models``; dated beyond ``max_clock_skew`` ahead of the clock; older than
``max_age`` before the model's newest example."""

_EXAMPLE = b"e"
_META = b"m"
_OFFSET = b"o"
_FORMAT = b"v"
_FORMAT_VERSION = b"1"
_TIME = struct.Struct(">Q")  # prediction times, biased by 2**63 so that keys sort by time
_BIAS = 1 << 63
_TIME_RANGE = 1 << 62
_NEXT = struct.Struct(">q")
_PARTITION = struct.Struct(">i")
_LENGTH = struct.Struct(">H")
_Value = float | int | str | bool


class _Labeled(msgspec.Struct):
    id: str
    label: _Value
    prediction_time: int
    model: str
    model_version: str
    features: dict[str, _Value | None]
    prediction: _Value | None = None
    scores: dict[str, float] | None = None


class _Stored(msgspec.Struct, array_like=True):
    label: _Value
    model_version: str
    features: dict[str, _Value | None]
    prediction: _Value | None
    scores: dict[str, float] | None


class _Meta(msgspec.Struct, array_like=True):
    count: int
    oldest: int
    newest: int


_decode_labeled = msgspec.json.Decoder(_Labeled).decode
_encode = msgspec.msgpack.Encoder().encode
_decode_stored = msgspec.msgpack.Decoder(_Stored).decode
_decode_meta = msgspec.msgpack.Decoder(_Meta).decode


class LabeledRecord(NamedTuple):
    """One message of ``driftline.labeled``: where it was read and its value."""

    partition: int
    offset: int
    value: bytes


@dataclass
class ApplyResult:
    """What :meth:`ExampleStore.apply` did with a batch of records."""

    added: int = 0
    duplicates: int = 0
    replayed: int = 0
    """Records below their partition's applied offset: applied before, skipped."""
    evicted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def _model_prefix(model: str) -> bytes:
    name = model.encode()
    return _EXAMPLE + _LENGTH.pack(len(name)) + name


def _key(prefix: bytes, time_ms: int, example_id: str = "") -> bytes:
    return prefix + _TIME.pack(time_ms + _BIAS) + example_id.encode()


def _time_of(prefix: bytes, key: bytes) -> int:
    return int(_TIME.unpack_from(key, len(prefix))[0]) - _BIAS


class ExampleStore:
    """The trainer's examples, per model, bounded, in a RocksDB at ``path``.

    Examples
    --------
    >>> import tempfile, orjson
    >>> directory = tempfile.TemporaryDirectory()
    >>> store = ExampleStore(Path(directory.name) / "examples", max_rows=2)
    >>> def record(offset, t):
    ...     value = {"id": f"x{t}", "label": 1, "prediction_time": t, "model": "sea",
    ...              "model_version": "1", "features": {"x1": 0.5}, "prediction": 0}
    ...     return LabeledRecord(0, offset, orjson.dumps(value))
    >>> result = store.apply([record(0, 10), record(1, 20), record(2, 30)], now_ms=40)
    >>> result.added, result.evicted, store.examples("sea").times, store.offsets()
    (2, 1, (20, 30), {0: 3})
    >>> store.apply([record(2, 30)], now_ms=40).replayed
    1
    >>> store.close(); directory.cleanup()
    """

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = 100_000,
        max_age: timedelta = timedelta(days=7),
        max_models: int = 100,
        max_example_bytes: int = 65_536,
        max_features: int = 1000,
        max_clock_skew: timedelta = timedelta(minutes=5),
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.path = path
        self._max_rows = max_rows
        self._max_age_ms = int(max_age.total_seconds() * 1000)
        self._max_models = max_models
        self._max_bytes = max_example_bytes
        self._max_features = max_features
        self._skew_ms = int(max_clock_skew.total_seconds() * 1000)
        self._limits = limits
        path.parent.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.set_compression_type(DBCompressionType.zstd())
        self._db = Rdict(str(path), options)
        found = self._db.get(_FORMAT)
        if found is None:
            self._db.put(_FORMAT, _FORMAT_VERSION)
        elif found != _FORMAT_VERSION:
            self._db.close()
            raise StateStoreError(
                f"the trainer's example store at {path} was written in format "
                f"{found.decode(errors='replace')}; this driftline reads "
                f"{_FORMAT_VERSION.decode()}. Move it away and it is refilled from Kafka",
                path=str(path),
            )
        self._metas: dict[str, _Meta] = {
            key[len(_META) :].decode(): _decode_meta(value) for key, value in self._scan(_META)
        }

    @classmethod
    def from_settings(
        cls, settings: TrainerSettings, limits: Limits = DEFAULT_LIMITS
    ) -> ExampleStore:
        """The store the ``trainer:`` settings describe (at ``store_dir/examples``)."""
        return cls(
            settings.store_dir / "examples",
            max_rows=settings.max_examples_per_model,
            max_age=settings.max_example_age,
            max_models=settings.max_models,
            max_example_bytes=settings.max_example_bytes,
            max_features=settings.max_features,
            max_clock_skew=settings.max_clock_skew,
            limits=limits,
        )

    # -- writing ----------------------------------------------------------------------------

    def _check(self, record: LabeledRecord, now_ms: int) -> _Labeled | str:
        if len(record.value) > self._max_bytes:
            return "too_large"
        try:
            example = _decode_labeled(record.value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return "undecodable"
        if len(example.features) > self._max_features:
            return "too_many_features"
        limits = self._limits
        if (
            len(example.id) > limits.max_id_length
            or len(example.model) > limits.max_name_length
            or len(example.model_version) > limits.max_name_length
            or not example.model
            or any(len(name) > limits.max_feature_name_length for name in example.features)
            or any(
                isinstance(value, str) and len(value) > limits.max_string_length
                for value in (*example.features.values(), example.label, example.prediction)
            )
            or (example.scores is not None and len(example.scores) > limits.max_classes)
        ):
            return "too_long"
        if not -_TIME_RANGE < example.prediction_time < _TIME_RANGE:
            return "undecodable"
        if example.prediction_time > now_ms + self._skew_ms:
            return "future"
        return example

    def apply(self, records: Sequence[LabeledRecord], *, now_ms: int) -> ApplyResult:
        """Store a batch of ``driftline.labeled`` records and their partitions' next offsets,
        in one atomic write; ``now_ms`` is the wall clock (for the clock-skew bound)."""
        result = ApplyResult()
        offsets = self.offsets()
        moved: dict[int, int] = {}
        fresh: dict[str, dict[bytes, bytes]] = {}
        new_models = 0
        for record in records:
            if record.offset < offsets.get(record.partition, 0):
                result.replayed += 1
                continue
            offsets[record.partition] = moved[record.partition] = record.offset + 1
            checked = self._check(record, now_ms)
            if isinstance(checked, str):
                result.rejected[checked] += 1
                continue
            rows = fresh.get(checked.model)
            if rows is None:
                if checked.model not in self._metas:
                    if len(self._metas) + new_models >= self._max_models:
                        result.rejected["too_many_models"] += 1
                        continue
                    new_models += 1
                rows = fresh[checked.model] = {}
            key = _key(_model_prefix(checked.model), checked.prediction_time, checked.id)
            if key in rows:
                result.duplicates += 1
                continue
            rows[key] = _encode(
                _Stored(
                    checked.label,
                    checked.model_version,
                    checked.features,
                    checked.prediction,
                    checked.scores,
                )
            )
        batch = WriteBatch(raw_mode=True)
        metas: dict[str, _Meta | None] = {}
        for model, rows in fresh.items():
            metas[model] = self._add(batch, model, rows, result)
        for partition, offset in moved.items():
            batch.put(_OFFSET + _PARTITION.pack(partition), _NEXT.pack(offset))
        self._db.write(batch)
        for model, meta in metas.items():
            if meta is None:
                self._metas.pop(model, None)
            else:
                self._metas[model] = meta
        return result

    def _add(
        self, batch: WriteBatch, model: str, rows: dict[bytes, bytes], result: ApplyResult
    ) -> _Meta | None:
        prefix = _model_prefix(model)
        keys = sorted(rows)
        # A list of keys is one multi-get (rocksdict's stub types the list too narrowly).
        found_values = cast("list[bytes | None]", self._db.get(keys))  # type: ignore[arg-type]
        for key, found in zip(keys, found_values, strict=True):
            if found is not None:
                del rows[key]
                result.duplicates += 1
        meta = self._metas.get(model, _Meta(0, 0, -(2**62)))
        newest = max([meta.newest, *(_time_of(prefix, key) for key in rows)])
        cutoff = newest - self._max_age_ms
        new = sorted(rows)
        total = meta.count + len(new)
        it = self._db.iter()
        try:
            it.seek(_key(prefix, meta.oldest) if meta.count else prefix)
            i = 0
            while True:
                old = bytes(it.key()) if it.valid() and bytes(it.key()).startswith(prefix) else None
                take_old = old is not None and (i >= len(new) or old < new[i])
                head = old if take_old else (new[i] if i < len(new) else None)
                if head is None or (total <= self._max_rows and _time_of(prefix, head) >= cutoff):
                    break
                if take_old:
                    batch.delete(head)
                    result.evicted += 1
                    it.next()
                else:
                    i += 1
                    if _time_of(prefix, head) < cutoff:
                        result.rejected["expired"] += 1
                    else:
                        result.evicted += 1
                total -= 1
        finally:
            del it
        for key in new[i:]:
            batch.put(key, rows[key])
        result.added += len(new) - i
        meta_key = _META + model.encode()
        if total == 0:
            batch.delete(meta_key)
            return None
        updated = _Meta(total, _time_of(prefix, head), newest) if head is not None else meta
        batch.put(meta_key, _encode(updated))
        return updated

    # -- reading ----------------------------------------------------------------------------

    def offsets(self) -> dict[int, int]:
        """The next offset to apply of each ``driftline.labeled`` partition seen."""
        return {
            int(_PARTITION.unpack_from(key, len(_OFFSET))[0]): int(_NEXT.unpack(value)[0])
            for key, value in self._scan(_OFFSET)
        }

    def models(self) -> list[str]:
        """The models with stored examples, sorted."""
        return sorted(self._metas)

    def count(self, model: str) -> int:
        """The number of ``model``'s stored examples."""
        meta = self._metas.get(model)
        return 0 if meta is None else meta.count

    def examples(
        self, model: str, *, since_ms: int | None = None, limit: int | None = None
    ) -> Examples:
        """``model``'s examples in time order: those predicted at or after ``since_ms``, and
        of them only the newest ``limit``."""
        prefix = _model_prefix(model)
        meta = self._metas.get(model)
        if meta is None or limit == 0:
            return Examples(())
        since = meta.oldest if since_ms is None else min(max(since_ms, meta.oldest), _TIME_RANGE)
        start = _key(prefix, since)
        rows: list[Example] = []
        it = self._db.iter()
        try:
            if limit is None:
                it.seek(start)
                while it.valid() and bytes(it.key()).startswith(prefix):
                    rows.append(_example(prefix, bytes(it.key()), bytes(it.value())))
                    it.next()
            else:
                it.seek_for_prev(prefix + b"\xff" * 9)
                while it.valid() and len(rows) < limit:
                    key = bytes(it.key())
                    if not key.startswith(prefix) or key < start:
                        break
                    rows.append(_example(prefix, key, bytes(it.value())))
                    it.prev()
                rows.reverse()
        finally:
            del it
        return Examples(tuple(rows))

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

    def disk_bytes(self) -> int:
        """Bytes of the store's live SST files, after flushing and compacting it (for the
        benchmark that states what an example costs)."""
        self._db.flush()
        self._db.compact_range(None, None)
        return int(self._db.property_int_value("rocksdb.live-sst-files-size") or 0)

    def close(self) -> None:
        """Release the database."""
        self._db.close()


def _example(prefix: bytes, key: bytes, value: bytes) -> Example:
    stored = _decode_stored(value)
    return Example(
        id=key[len(prefix) + _TIME.size :].decode(),
        time_ms=_time_of(prefix, key),
        features=stored.features,
        label=stored.label,
        model_version=stored.model_version,
        prediction=stored.prediction,
        scores=stored.scores,
    )
