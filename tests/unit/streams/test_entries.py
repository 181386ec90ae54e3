"""Join entries' byte format: compact entries round-trip bit for bit, old entries still read,
the dictionary of versions survives a reopen, and a worker keeps compact entries (and sends
no joined example) exactly for the models that make none, with the same partials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.config import Settings
from driftline.detectors.performance import PerformanceSummary
from driftline.schemas.wire import StoredPrediction, decode_stored_predictions
from driftline.streams import entries as entries_module
from driftline.streams.entries import (
    COMPACT,
    JOINED,
    LABEL,
    PENDING,
    CompactCodec,
    Interned,
    decode_waiting,
    is_waiting_prediction,
    waiting_entry,
)
from driftline.streams.store import PartitionStore
from tests.unit.streams.test_partition import (
    PRED,
    T0,
    TRUTH,
    Msg,
    Worker,
    profile,
)

T_2026 = 1_767_225_600_000

_scores = st.one_of(
    st.floats(0.0, 1.0),  # any double: kept raw
    st.integers(0, 10**6).map(lambda m: m / 10**6),  # six digits, as producers round
    st.integers(0, 100).map(lambda m: m / 100),
)
_classes = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=4, unique=True)
_score_maps = st.one_of(
    st.none(),
    st.just({}),
    _classes.flatmap(lambda names: st.lists(_scores, min_size=len(names), max_size=len(names))).map(
        lambda values: dict(zip([f"c{i}" for i in range(len(values))], values, strict=True))
    ),
    _scores.map(lambda p: {"0": 1.0 - p, "1": p}),  # the complement form
)
_predictions = st.one_of(
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


def _event(i: int, version: str, ts: int, value: Any, scores: dict[str, float] | None) -> Any:
    return StoredPrediction(f"p{i}", "m", version, ts, value, scores)


def _same(a: StoredPrediction, b: StoredPrediction) -> bool:
    """Equal field by field, types included (``1 == True`` in Python) and floats bit for bit."""

    def bits(value: Any) -> Any:
        return (type(value), value.hex() if isinstance(value, float) else value)

    scores_a = None if not a.scores else {k: bits(v) for k, v in a.scores.items()}
    scores_b = None if not b.scores else {k: bits(v) for k, v in b.scores.items()}
    return (a.prediction_id, a.model, a.model_version, a.timestamp) == (
        b.prediction_id,
        b.model,
        b.model_version,
        b.timestamp,
    ) and (bits(a.prediction), scores_a) == (bits(b.prediction), scores_b)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["1", "2"]),
            st.integers(-(2**40), 2**40),
            _predictions,
            _score_maps,
            st.integers(0, 2**62),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_compact_entries_give_back_every_field_bit_for_bit(
    rows: list[tuple[str, int, Any, dict[str, float] | None, int]],
) -> None:
    """Encoded a version at a time (as the join does), decoded all together: offsets, times,
    predictions (their types too) and scores (bit for bit, the raw doubles included)."""
    codec = CompactCodec(Interned([]))
    events = [
        _event(i, version, T_2026 + shift, value, scores)
        for i, (version, shift, value, scores, _) in enumerate(rows)
    ]
    offsets = [row[4] for row in rows]
    encoded: list[bytes] = [b""] * len(rows)
    for version in ("1", "2"):
        picked = [i for i, row in enumerate(rows) if row[0] == version]
        if not picked:
            continue
        times = np.array([events[i].timestamp for i in picked], dtype=np.int64)
        entries, _ = codec.encode([events[i] for i in picked], [offsets[i] for i in picked], times)
        assert entries is not None
        for i, entry in zip(picked, entries, strict=True):
            encoded[i] = entry
    assert all(entry[:1] == COMPACT and is_waiting_prediction(entry) for entry in encoded)
    got_offsets, got = codec.decode(encoded, [f"p{i}".encode() for i in range(len(rows))])
    assert got_offsets == offsets
    for want, have in zip(events, got, strict=True):
        assert _same(want, have), (want, have)


def test_a_usual_binary_prediction_is_compact() -> None:
    """The benchmark's events (a class, its two scores rounded to six digits, one input
    offset below 16M): 16 bytes a waiting prediction, against the event's JSON."""
    raw = orjson.dumps(
        {
            "event_id": "e",
            "prediction_id": "0b8e5a3c-7f54-4a1e-9c1d-2f3a4b5c6d7e",
            "model": "bench",
            "model_version": "1",
            "timestamp": T_2026 + 86_400_000,
            "features": {f"f{j}": 50.1234 for j in range(20)},
            "prediction": 1,
            "scores": {"0": 0.123456, "1": 1 - 0.123456},
        }
    )
    (event,) = decode_stored_predictions([raw])
    codec = CompactCodec(Interned([]))
    codec.interned.id_of("bench", "1", ("0", "1"), T_2026)
    (entry,), _ = codec.encode([event], [9_000_000], np.array([T_2026 + 86_400_000]))
    assert entry is not None
    assert len(entry) == 16
    assert len(waiting_entry(PENDING, 9_000_000, raw)) > 20 * len(entry)


def test_old_whole_entries_read_beside_compact_ones() -> None:
    """A store written before compact entries holds whole ones: they decode as before (their
    bytes kept for the joined example), in any mix with compact ones."""
    raws = [
        b'{"prediction_id":"p%d","model":"m","model_version":"1","timestamp":%d,'
        b'"prediction":%d,"scores":{"1":0.%d}}' % (i, T_2026 + i, i % 2, i)
        for i in range(4)
    ]
    stored = decode_stored_predictions(raws)
    codec = CompactCodec(Interned([]))
    compact, _ = codec.encode(stored[2:], [12, 13], np.array([T_2026 + 2, T_2026 + 3]))
    assert compact is not None
    whole = [waiting_entry(PENDING, 10, raws[0]), waiting_entry(PENDING, 11, raws[1])]
    ids = [b"p0", b"p1", b"p2", b"p3"]
    offsets, kept, predictions = decode_waiting(codec, [*whole, *compact], ids, {})
    assert offsets == [10, 11, 12, 13]
    assert kept == [raws[0], raws[1], b"", b""]  # a compact entry keeps no bytes
    assert all(_same(a, b) for a, b in zip(predictions, stored, strict=True))  # type: ignore[arg-type]
    only_old = decode_waiting(codec, whole, ids[:2], {})
    assert only_old == ([10, 11], raws[:2], stored[:2])
    assert not any(map(is_waiting_prediction, [JOINED, waiting_entry(LABEL, 1, b"{}"), None]))


def test_the_dictionary_of_versions_is_kept_in_the_store_with_the_entries(tmp_path: Path) -> None:
    """Interned in the batch that writes the entries: a reopened store decodes them; an id
    handed out by a batch never written is handed out again."""
    stored = decode_stored_predictions(
        [
            b'{"prediction_id":"p","model":"m","model_version":"%s","timestamp":5,'
            b'"prediction":"yes","scores":{"yes":0.5,"no":0.5}}' % v
            for v in (b"1", b"2")
        ]
    )
    store = PartitionStore(tmp_path / "db")
    codec = CompactCodec(Interned(store.interned()))
    entries, records = codec.encode(stored[:1], [3], np.array([5]))
    assert entries is not None
    assert [ident for ident, _ in records] == [0]
    batch = store.batch()
    for ident, record in records:
        batch.put_interned(ident, record)
    batch.put_entry(b"p", entries[0])
    store.write(batch)
    codec.encode(stored[1:], [4], np.array([5]))  # id 1: its batch is never written
    store.close()
    store = PartitionStore(tmp_path / "db")
    again = CompactCodec(Interned(store.interned()))
    entry = store.get_entry(b"p")
    assert entry is not None
    assert again.decode([entry], [b"p"]) == ([3], [stored[0]])
    assert store.get_prediction(b"p") == (False, b"")
    assert again.interned.id_of("m", "2", ("yes", "no"), 5)[0] == 1
    store.close()


def test_a_full_dictionary_leaves_new_versions_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the dictionary's size a new version cannot be interned: the join keeps its
    predictions whole (encode says None) rather than fail."""
    monkeypatch.setattr(entries_module, "_MAX_INTERNED", 1)
    codec = CompactCodec(Interned([]))
    one, two = decode_stored_predictions(
        [
            b'{"prediction_id":"p","model":"m","model_version":"%s","timestamp":5,'
            b'"prediction":1}' % v
            for v in (b"1", b"2")
        ]
    )
    assert codec.encode([one], [1], np.array([5]))[0] is not None
    assert codec.encode([two], [1], np.array([5])) == (None, [])


_tags = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "region": st.sampled_from(["eu", "us", "apac", "za", "other"]),
            "channel": st.sampled_from(["web", "app"]),
            "tier": st.text(max_size=3),
        },
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(_tags, _score_maps), min_size=1, max_size=30))
def test_compact_entries_give_back_the_slices_of_the_tracked_segments(
    rows: list[tuple[dict[str, str] | None, dict[str, float] | None]],
) -> None:
    """One byte per tracked key: each entry decodes to its slices (a tracked value, else
    ``other``), also through a dictionary reopened from its records; a version tracked with
    other segments is interned apart."""
    tracked = {"region": ["eu", "us", "apac"], "channel": ["web"]}
    events = [
        StoredPrediction(f"p{i}", "m", "1", T_2026 + i, i % 2, scores, tags)
        for i, (tags, scores) in enumerate(rows)
    ]
    times = np.array([event.timestamp for event in events], dtype=np.int64)
    codec = CompactCodec(Interned([]))
    entries, records = codec.encode(events, list(range(len(rows))), times, tracked)
    assert entries is not None
    ids = [f"p{i}".encode() for i in range(len(rows))]
    want = [
        {
            key: (tags or {}).get(key) if (tags or {}).get(key) in values else "other"
            for key, values in tracked.items()
        }
        for tags, _ in rows
    ]
    for decoder in (codec, CompactCodec(Interned(records))):
        offsets, got = decoder.decode(entries, ids)
        assert offsets == list(range(len(rows)))
        assert [event.segments for event in got] == want
        assert all(_same(a, b) for a, b in zip(events, got, strict=True))
    plain, more = codec.encode(events, list(range(len(rows))), times)
    assert plain is not None
    assert more  # interned apart: no segments, another id
    assert [len(a) - len(b) for a, b in zip(entries, plain, strict=True)] == [2] * len(rows)
    assert [event.segments for event in codec.decode(plain, ids)[1]] == [None] * len(rows)


def test_records_and_entries_without_segments_are_the_bytes_they_were() -> None:
    """A record of a version without segments is the four-field record older stores hold,
    and a four-field record reads as a version without segments."""
    interned = Interned([])
    _, record = interned.id_of("m", "1", ("0", "1"), 5)
    assert record == b"\x94\xa1m\xa11\x92\xa10\xa11\x05"
    assert Interned([(0, record)]).version(0).segments == ()
    _, tracked = interned.id_of("m", "1", ("0", "1"), 5, (("region", ("eu",)),))
    assert tracked is not None
    assert tracked[:1] == b"\x95"


def test_a_key_tracking_more_values_than_a_byte_indexes_leaves_entries_whole() -> None:
    (event,) = decode_stored_predictions(
        [b'{"prediction_id":"p","model":"m","model_version":"1","timestamp":5,"prediction":1}']
    )
    codec = CompactCodec(Interned([]))
    many = {"k": [str(i) for i in range(255)]}
    assert codec.encode([event], [1], np.array([5]), many) == (None, [])


def _settings(examples: bool | None) -> Settings:
    return Settings(
        monitor={"max_clock_skew": "36500d"},
        models={
            "m": {
                "task": "binary",
                "pane": "1m",
                "windows": [{"size": "10m"}],
                "allowed_lateness": "1m",
                "retrain": {"examples": examples},
            }
        },
    )


def _events(n: int) -> tuple[list[Msg], list[Msg]]:
    rng = np.random.default_rng(3)
    scores = rng.uniform(size=n)
    predictions = [
        Msg(
            PRED,
            i,
            orjson.dumps(
                {
                    "event_id": f"e{i}",
                    "prediction_id": f"p{i}",
                    "model": "m",
                    "model_version": "1",
                    "timestamp": T0 + i * 700,
                    "features": {"x": float(rng.normal())},
                    "prediction": int(scores[i] > 0.5),
                    **({"segments": {"region": "abcd"[i % 4]}} if i % 5 else {}),
                    # Raw doubles and rounded ones, some the complement of the other.
                    "scores": {"0": float(1 - scores[i]), "1": float(scores[i])}
                    if i % 3
                    else {"1": round(float(scores[i]), 4)},
                }
            ),
            f"p{i}".encode(),
        )
        for i in range(n)
    ]
    labels = [
        Msg(
            TRUTH,
            j,
            orjson.dumps(
                {
                    "event_id": f"t{i}",
                    "prediction_id": f"p{i}",
                    "timestamp": T0 + i * 700 + 30_000,
                    "label": int(rng.uniform() < scores[i]),
                }
            ),
            f"p{i}".encode(),
        )
        for j, i in enumerate(range(0, n, 2))  # half the predictions labelled
    ]
    return predictions, labels


@pytest.mark.parametrize("segmented", [False, True])
@pytest.mark.parametrize("examples", [False, True])
def test_a_worker_keeps_compact_entries_exactly_when_no_example_is_made(
    tmp_path: Path, examples: bool, segmented: bool
) -> None:
    """With examples off, waiting predictions are compact and nothing goes to the labeled
    topic; on, they are whole and every pair makes its example; the partials (features and
    performance, bit for bit, the performance slices of a profile with segments included)
    are the same either way, whichever came first, and after a reopen the late labels still
    join the compact entries."""
    tracked = {"region": ["a", "b"]} if segmented else {}
    reference = {("m", "1"): profile().model_copy(update={"segments": tracked})}
    predictions, labels = _events(300)

    def run(path: Path, settings: Settings) -> tuple[dict[Any, Any], list[Any], list[bytes]]:
        store = PartitionStore(path)
        w = Worker(0, store, lambda m, v: reference.get((m, v)), settings)
        labeled = []
        # Some labels before their predictions, most after; a reopen in between.
        labeled += w.apply(labels[:20], T0).labeled
        labeled += w.apply(predictions[:150], T0).labeled
        w.store.close()
        w = Worker(0, PartitionStore(path), lambda m, v: reference.get((m, v)), settings)
        labeled += w.apply(predictions[150:], T0).labeled
        waiting = [entry for _, entry in w.store.join_entries() if is_waiting_prediction(entry)]
        labeled += w.apply(labels[20:], T0).labeled
        partials = {(p.kind, p.pane_start_ms): p.summary for p in w.drain()}
        w.store.close()
        return partials, labeled, waiting

    partials, labeled, waiting = run(tmp_path / "a", _settings(examples))
    reference_partials, reference_labeled, _ = run(tmp_path / "b", _settings(True))
    assert partials == reference_partials
    assert {kind for kind, _ in partials} == {"features", "performance"}
    assert len(waiting) == 300 - 20  # the 20 labelled first joined at once
    assert {entry[:1] for entry in waiting} == ({PENDING} if examples else {COMPACT})
    slices: dict[tuple[str, str], int] = {}
    for (kind, _), raw in partials.items():
        if kind == "performance":
            for key, part in PerformanceSummary.from_bytes(raw).segments.items():
                slices[key] = slices.get(key, 0) + part.n
    if segmented:  # the even predictions are labelled: region a, c (other) or none (other)
        labelled = range(0, 300, 2)
        assert slices == {
            ("region", "a"): sum(1 for i in labelled if i % 4 == 0 and i % 5),
            ("region", "other"): sum(1 for i in labelled if i % 4 == 2 or i % 5 == 0),
        }
    else:
        assert slices == {}
    if examples:
        assert [r.value for r in labeled] == [r.value for r in reference_labeled]
        assert len(labeled) == 150
    else:
        assert labeled == []
        assert max(map(len, waiting)) < 25


def test_the_default_follows_the_trainer() -> None:
    """``retrain.examples`` unset: on for a configured model the trainer retrains, off for
    one whose policy is never and for models nobody configured; set, it wins."""
    assert _settings(None).examples("m")
    assert not _settings(None).examples("other")
    assert not _settings(False).examples("m")
    never = Settings(models={"m": {"task": "binary", "retrain": {"policy": "never"}}})
    assert not never.examples("m")
