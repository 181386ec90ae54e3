"""The byte format of stage 1's join entries, one per prediction id (shadows under a key of
their own): a state byte, then for a waiting event its input offset and its bytes.

A prediction of a model that makes no joined examples (``retrain.examples`` off) waits as a
:data:`COMPACT` entry instead: only what the performance join, the concept watch and the
rollout pairing read of it (version, event time, prediction, scores, input offset), in a
binary layout (:class:`CompactCodec`) that is much smaller than the event's JSON. Its
(model, version, score classes) are interned per store (:class:`Interned`): a small
dictionary the store keeps under keys of its own, written in the same batch as the entries
that first use it, so it is as durable as they are. Stores written before compact entries
hold only the older states, which read as before.

A model with segments (``ReferenceProfile.segments``) adds to each compact entry one byte per
segment key: the index of the prediction's value among the key's tracked values (their count
for ``other``); the tracked values are part of the interned record, so an entry decodes to
its slices without the profile. Records and entries of models without segments are the bytes
they always were.

:mod:`driftline.streams.store` keeps these values; :mod:`driftline.streams.join` and
:mod:`driftline.streams.shadows` read and write them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec
import numpy as np
from numpy.typing import NDArray

from driftline.detectors.summary import OTHER
from driftline.schemas.wire import StoredPrediction, WirePrediction, decode_stored_predictions

SHADOW = b"\xffs"
"""What a shadow prediction's join key adds to its champion's id: 0xFF never occurs in UTF-8,
so no prediction id (a JSON string) can be a shadow key."""

PENDING = b"P"
"""Join entry state: a prediction waiting for its label; its offset and bytes follow."""
JOINED = b"J"
"""Join entry state: prediction and label met; nothing follows."""
LABEL = b"L"
"""Join entry state: a label waiting for its prediction; its offset and bytes follow."""
COMPACT = b"C"
"""Join entry state: a prediction waiting for its label, kept compact (no event bytes; see
:class:`CompactCodec`)."""
WAITING_PREDICTION = frozenset({PENDING[0], COMPACT[0]})
"""First bytes of the entries of a prediction waiting for its label."""
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


def is_waiting_prediction(entry: bytes | None) -> bool:
    """Whether ``entry`` is a prediction waiting for its label (:data:`PENDING` or
    :data:`COMPACT`).

    >>> is_waiting_prediction(b"C..."), is_waiting_prediction(JOINED), is_waiting_prediction(None)
    (True, False, False)
    """
    return bool(entry) and entry[0] in WAITING_PREDICTION  # type: ignore[index]


# --- compact entries ----------------------------------------------------------------------

_HEAD = struct.Struct(">cHBB")
"""COMPACT, interned id, (offset width << 4 | time width), (complement << 7 | (mantissa
width - 1) << 4 | decimal exponent)."""
_RAW_FLOATS = 15
"""The exponent that says the scores are kept as raw IEEE doubles (no decimal form fits)."""
_MAX_INTERNED = 1 << 16
_record_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(list[Any])
_MAX_TRACKED = 255
"""Tracked values per segment key a compact entry can index in its one byte (and ``other``)."""

Tracked = tuple[tuple[str, tuple[str, ...]], ...]
"""Segment keys, sorted, each with its tracked values (a profile's ``segments``)."""
_encode_value = msgspec.msgpack.Encoder().encode
_decode_values = msgspec.msgpack.Decoder(list[Any]).decode


class Version(NamedTuple):
    """What an interned id stands for: model, version, score classes (in the events' order)
    and the event time the stored times count from; and the segment keys with their tracked
    values (empty for a model without segments)."""

    model: str
    version: str
    classes: tuple[str, ...]
    base_ms: int
    segments: Tracked = ()


class Interned:
    """The store's dictionary of (model, version, score classes), by small id.

    Parameters
    ----------
    records
        The (id, record) pairs the store keeps (:meth:`PartitionStore.interned`).

    >>> interned = Interned([])
    >>> interned.id_of("m", "1", ("0", "1"), 5)
    (0, b'\\x94\\xa1m\\xa11\\x92\\xa10\\xa11\\x05')
    >>> interned.id_of("m", "1", ("0", "1"), 9)  # known: nothing new to keep
    (0, None)
    >>> Interned([(0, interned.record(0))]).version(0)
    Version(model='m', version='1', classes=('0', '1'), base_ms=5, segments=())
    """

    def __init__(self, records: Iterable[tuple[int, bytes]]) -> None:
        self._versions: list[Version | None] = []
        self._ids: dict[tuple[str, str, tuple[str, ...], Tracked], int] = {}
        for ident, record in records:
            model, version, classes, base, *more = _record_decoder.decode(record)
            tracked = tuple((key, tuple(values)) for key, values in (more[0] if more else ()))
            self._set(ident, Version(model, version, tuple(classes), base, tracked))

    def _set(self, ident: int, version: Version) -> None:
        while len(self._versions) <= ident:
            self._versions.append(None)
        self._versions[ident] = version
        self._ids[(version.model, version.version, version.classes, version.segments)] = ident

    def id_of(
        self,
        model: str,
        version: str,
        classes: tuple[str, ...],
        base_ms: int,
        segments: Tracked = (),
    ) -> tuple[int, bytes | None]:
        """The id of (model, version, classes, tracked segments), and the record to keep in
        the store when it is new (``base_ms`` then becomes its base time); id -1 when the
        dictionary is full."""
        ident = self._ids.get((model, version, classes, segments))
        if ident is not None:
            return ident, None
        ident = len(self._versions)
        if ident >= _MAX_INTERNED:
            return -1, None
        self._set(ident, Version(model, version, classes, base_ms, segments))
        return ident, self.record(ident)

    def version(self, ident: int) -> Version:
        """What ``ident`` stands for."""
        found = self._versions[ident]
        assert found is not None, f"interned id {ident} unknown to the store"
        return found

    def record(self, ident: int) -> bytes:
        """The bytes the store keeps for ``ident``."""
        model, version, classes, base, segments = self.version(ident)
        if not segments:
            return _record_encoder.encode((model, version, list(classes), base))
        tracked = [(key, list(values)) for key, values in segments]
        return _record_encoder.encode((model, version, list(classes), base, tracked))


def _width(largest: int, *, signed: bool = False) -> int:
    """Bytes a big-endian integer up to ``largest`` in magnitude takes (two's complement
    when ``signed``), at least 1."""
    return max(1, (int(largest).bit_length() + (8 if signed else 7)) // 8)


def _columns(values: NDArray[np.int64], width: int) -> NDArray[np.uint8]:
    """The low ``width`` bytes of each value, big-endian, as an n-by-width matrix."""
    as_bytes = values.astype(">i8").view(np.uint8).reshape(-1, 8)
    return as_bytes[:, 8 - width :]


def _integers(matrix: NDArray[np.uint8], signed: bool) -> NDArray[np.int64]:
    """Inverse of :func:`_columns` (sign-extended when ``signed``)."""
    rows, width = matrix.shape
    full = np.zeros((rows, 8), dtype=np.uint8)
    if signed:
        full[matrix[:, 0] >= 0x80] = 0xFF
    full[:, 8 - width :] = matrix
    return full.view(">i8").reshape(-1).astype(np.int64)


def _decimal(scores: NDArray[np.float64]) -> tuple[int, NDArray[np.int64]]:
    """(k, mantissas) such that mantissas / 10**k gives back every score exactly, for the
    smallest k below :data:`_RAW_FLOATS`; else (:data:`_RAW_FLOATS`, the raw bits). A
    division of two exact integers is correctly rounded, as is parsing the score's decimal
    text, so a score written with k digits comes back bit for bit."""
    if scores.size and np.isfinite(scores).all() and scores.min() >= 0 and scores.max() <= 1e6:
        for k in range(_RAW_FLOATS):
            scale = 10.0**k
            mantissas = np.rint(scores * scale)
            if mantissas.max() >= 2**53:
                break
            if (mantissas / scale == scores).all():
                return k, mantissas.astype(np.int64)
    return _RAW_FLOATS, scores.astype(np.float64).view(np.int64)


class CompactCodec:
    """Compact join entries of waiting predictions (:data:`COMPACT`), a batch at a time.

    Layout: ``C``, the interned id (2 bytes), one byte of integer widths (offset, time), one
    of the scores' form (a complement flag: the second of two scores is 1 minus the first;
    mantissa width; decimal exponent, or 15 for raw doubles), then big-endian the input
    offset, the event time from the version's base, each score's mantissa, one byte per
    segment key (the index of its slice, when the version's record tracks segments), and last
    the prediction in MessagePack. A usual binary prediction takes 16 to 20 bytes.

    Parameters
    ----------
    interned
        The store's dictionary of versions.

    >>> from driftline.schemas.wire import decode_stored_predictions
    >>> codec = CompactCodec(Interned([]))
    >>> event = decode_stored_predictions([b'{"prediction_id":"p","model":"m","model_version":'
    ...     b'"1","timestamp":1767225600123,"prediction":1,"scores":{"0":0.25,"1":0.75}}'])[0]
    >>> [entry], records = codec.encode([event], [42], np.array([1767225600123]))
    >>> len(entry), len(records)
    (9, 1)
    >>> offsets, predictions = codec.decode([entry], [b"p"])
    >>> offsets, predictions[0] == event
    ([42], True)
    """

    def __init__(self, interned: Interned) -> None:
        self.interned = interned

    def encode(
        self,
        events: Sequence[WirePrediction | StoredPrediction],
        offsets: Sequence[int],
        times: NDArray[np.int64],
        segments: Mapping[str, Sequence[str]] | None = None,
    ) -> tuple[list[bytes] | None, list[tuple[int, bytes]]]:
        """The entries of predictions of one (model, version) at event ``times``, with their
        slices of the tracked ``segments`` (the profile's), and the new dictionary records to
        write in the same batch. Entries None: keep them :data:`PENDING` (the dictionary is
        full, or a key tracks more values than a byte indexes)."""
        tracked: Tracked = tuple(
            (key, tuple(values)) for key, values in sorted((segments or {}).items())
        )
        if any(len(values) >= _MAX_TRACKED for _, values in tracked):
            return None, []
        first = events[0]
        model, version = first.model, first.model_version
        classes = [tuple(event.scores) if event.scores else () for event in events]
        groups: dict[tuple[str, ...], list[int]] = {}
        if classes.count(classes[0]) == len(classes):
            groups[classes[0]] = list(range(len(events)))
        else:
            for row, names in enumerate(classes):
                groups.setdefault(names, []).append(row)
        entries: list[bytes] = [b""] * len(events)
        records: list[tuple[int, bytes]] = []
        for names, rows in groups.items():
            ident, record = self.interned.id_of(model, version, names, int(times[rows[0]]), tracked)
            if ident < 0:
                return None, records
            if record is not None:
                records.append((ident, record))
            group = [events[row] for row in rows]
            encoded = self._encode(ident, names, group, [offsets[row] for row in rows], times[rows])
            for row, entry in zip(rows, encoded, strict=True):
                entries[row] = entry
        return entries, records

    def _encode(
        self,
        ident: int,
        names: tuple[str, ...],
        events: list[WirePrediction | StoredPrediction],
        offsets: list[int],
        times: NDArray[np.int64],
    ) -> list[bytes]:
        base, tracked = self.interned.version(ident)[3:]
        at = np.asarray(offsets, dtype=np.int64)
        since = times.astype(np.int64) - base
        wo, wt = _width(int(at.max())), _width(int(np.abs(since).max()), signed=True)
        columns = [_columns(at, wo), _columns(since, wt)]
        complement, k, ws = 0, 0, 1
        if names:
            scores = np.array([list(event.scores.values()) for event in events])  # type: ignore[union-attr]
            if len(names) == 2 and (1.0 - scores[:, 0] == scores[:, 1]).all():
                complement, scores = 1, scores[:, :1]
            k, mantissas = _decimal(scores)
            ws = 8 if k == _RAW_FLOATS else _width(int(np.abs(mantissas).max()))
            columns.extend(_columns(mantissas[:, j], ws) for j in range(mantissas.shape[1]))
        if tracked:
            columns.append(_slices(tracked, events))
        head = _HEAD.pack(COMPACT, ident, wo << 4 | wt, complement << 7 | (ws - 1) << 4 | k)
        fixed = np.hstack(columns).tobytes()
        width = len(fixed) // len(events)
        return [
            b"%s%s%s" % (head, fixed[i * width : (i + 1) * width], _encode_value(event.prediction))
            for i, event in enumerate(events)
        ]

    def decode(
        self, entries: Sequence[bytes], ids: Sequence[bytes]
    ) -> tuple[list[int], list[StoredPrediction]]:
        """The input offsets and the predictions of compact ``entries`` under join ``ids``
        (a shadow's id is its champion's: the prediction id is only the join's)."""
        groups: dict[bytes, list[int]] = {}
        for row, entry in enumerate(entries):
            groups.setdefault(entry[: _HEAD.size], []).append(row)
        offsets: list[int] = [0] * len(entries)
        predictions: list[StoredPrediction | None] = [None] * len(entries)
        for head, rows in groups.items():
            _, ident, widths, form = _HEAD.unpack(head)
            model, version, names, base, tracked = self.interned.version(ident)
            wo, wt = widths >> 4, widths & 0xF
            complement, ws, k = form >> 7, ((form >> 4) & 0x7) + 1, form & 0xF
            stored = len(names) - complement
            width = wo + wt + stored * ws + len(tracked)
            start = _HEAD.size
            fixed = np.frombuffer(
                b"".join([entries[row][start : start + width] for row in rows]), dtype=np.uint8
            ).reshape(len(rows), width)
            at = _integers(fixed[:, :wo], signed=False).tolist()
            times = (_integers(fixed[:, wo : wo + wt], signed=True) + base).tolist()
            values = _decode_values(
                b"\xdd%s%s"
                % (
                    struct.pack(">I", len(rows)),
                    b"".join([entries[row][start + width :] for row in rows]),
                )
            )
            scores: list[dict[str, float] | None]
            if names:
                first = wo + wt
                mantissas = np.stack(
                    [
                        _integers(fixed[:, first + j * ws : first + (j + 1) * ws], signed=False)
                        for j in range(stored)
                    ],
                    axis=1,
                )
                floats = mantissas.view(np.float64) if k == _RAW_FLOATS else mantissas / 10.0**k
                if complement:
                    floats = np.hstack([floats, 1.0 - floats])
                scores = [dict(zip(names, row, strict=True)) for row in floats.tolist()]
            else:
                scores = [None] * len(rows)
            slices: list[dict[str, str] | None] = [None] * len(rows)
            if tracked:
                named = [(key, (*values, OTHER)) for key, values in tracked]
                indices = fixed[:, width - len(tracked) :].tolist()
                slices = [
                    {key: values[i] for (key, values), i in zip(named, row, strict=True)}
                    for row in indices
                ]
            for row, offset, ts, value, given, tags in zip(
                rows, at, times, values, scores, slices, strict=True
            ):
                offsets[row] = offset
                predictions[row] = StoredPrediction(
                    ids[row].decode(), model, version, ts, value, given, tags
                )
        return offsets, predictions  # type: ignore[return-value]


def _slices(
    tracked: Tracked, events: Sequence[WirePrediction | StoredPrediction]
) -> NDArray[np.uint8]:
    """One byte per segment key per event: its value's index among the key's tracked values,
    their count for any other value or a missing key."""
    column = np.empty((len(events), len(tracked)), dtype=np.uint8)
    tags = [event.segments or {} for event in events]
    for j, (key, values) in enumerate(tracked):
        index = {value: i for i, value in enumerate(values)}
        other = len(values)
        column[:, j] = [index.get(tag.get(key), other) for tag in tags]  # type: ignore[arg-type]
    return column


def decode_waiting(
    codec: CompactCodec,
    entries: Sequence[bytes],
    ids: Sequence[bytes],
    known: Mapping[bytes, WirePrediction],
) -> tuple[list[int], list[bytes], list[WirePrediction | StoredPrediction]]:
    """The input offsets, event bytes (empty for a :data:`COMPACT` entry) and predictions
    of waiting predictions' entries under ``ids``, whichever their form; each form decoded in
    one call, but the whole entries of ``known`` predictions (decoded already)."""
    compact = [row for row, entry in enumerate(entries) if entry[:1] == COMPACT]
    if not compact:
        offsets, raws = split_entries(entries)
        again = iter(
            decode_stored_predictions(
                [raw for pid, raw in zip(ids, raws, strict=True) if pid not in known]
            )
        )
        return offsets, raws, [known.get(pid) or next(again) for pid in ids]
    offsets = [0] * len(entries)
    raws = [b""] * len(entries)
    predictions: list[WirePrediction | StoredPrediction | None] = [None] * len(entries)
    found, decoded = codec.decode([entries[row] for row in compact], [ids[row] for row in compact])
    for row, offset, prediction in zip(compact, found, decoded, strict=True):
        offsets[row], predictions[row] = offset, prediction
    full = [row for row, entry in enumerate(entries) if entry[:1] != COMPACT]
    if full:
        found_offsets, stored = split_entries([entries[row] for row in full])
        for row, offset, raw in zip(full, found_offsets, stored, strict=True):
            offsets[row], raws[row] = offset, raw
        unknown = [raws[row] for row in full if ids[row] not in known]
        again = iter(decode_stored_predictions(unknown))
        for row in full:
            predictions[row] = known.get(ids[row]) or next(again)
    return offsets, raws, predictions  # type: ignore[return-value]
