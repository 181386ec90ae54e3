"""Batch decoding gives every message exactly the verdict of decoding it alone."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.errors import DecodeError
from driftline.schemas.wire import (
    StoredPrediction,
    WireGroundTruth,
    WirePrediction,
    decode_ground_truth,
    decode_ground_truths,
    decode_prediction,
    decode_predictions,
    decode_stored_prediction,
    decode_stored_predictions,
)
from tests.unit.schemas.test_contract import (
    ACCEPTED_GROUND_TRUTH,
    ACCEPTED_PREDICTIONS,
    GROUND_TRUTH,
    PREDICTION,
    REJECTED_GROUND_TRUTH,
    REJECTED_PREDICTIONS,
)
from tests.unit.schemas.test_wire import json_values, mutated

Event: TypeAlias = WirePrediction | WireGroundTruth
Verdict: TypeAlias = Event | DecodeError
Message: TypeAlias = tuple[bytes, bytes | None]
DecodeOne: TypeAlias = Callable[[bytes, bytes | None], Event]
DecodeMany: TypeAlias = Callable[[Sequence[bytes], Sequence[bytes | None]], list[Any]]

KINDS: dict[str, tuple[DecodeOne, DecodeMany]] = {
    "prediction": (decode_prediction, decode_predictions),
    "ground truth": (decode_ground_truth, decode_ground_truths),
}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()


def single(decode_one: DecodeOne, value: bytes, key: bytes | None) -> Verdict:
    """The verdict of decoding one message alone: the event, or the DecodeError raised."""
    try:
        return decode_one(value, key)
    except DecodeError as exc:
        return exc


def assert_single_verdicts(
    decode_one: DecodeOne, messages: Sequence[Message], results: Sequence[object]
) -> None:
    """Each batch result is the same event, or a DecodeError with the same reason/kind/path."""
    assert len(results) == len(messages)
    for i, ((value, key), got) in enumerate(zip(messages, results, strict=True)):
        expected = single(decode_one, value, key)
        where = f"message {i} of {len(messages)}: {value[:80]!r} key={key!r}"
        if isinstance(expected, DecodeError):
            assert isinstance(got, DecodeError), f"{where} decoded to {got!r}"
            assert (got.reason, got.kind, got.path) == (
                expected.reason,
                expected.kind,
                expected.path,
            ), where
        else:
            assert not isinstance(got, DecodeError), f"{where} rejected: {got}"
            assert type(got) is type(expected), where
            assert got == expected, where


def decode_batch(kind: str, messages: Sequence[Message]) -> list[Any]:
    _, decode_many = KINDS[kind]
    return decode_many([v for v, _ in messages], [k for _, k in messages])


# --- strategies -------------------------------------------------------------------------------

feature_values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
outcomes = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.booleans()
)
timestamps = st.integers(min_value=0, max_value=253_402_300_799_999) | st.sampled_from(
    ["2026-11-22T10:00:00Z", "2026-11-22T11:00:00.123456+01:00", "9999-12-31T23:59:59Z"]
)
ids = st.text(min_size=1, max_size=8)


@st.composite
def valid_prediction(draw: st.DrawFn) -> dict[str, Any]:
    """A prediction event the contract accepts, with random content."""
    event: dict[str, Any] = {
        "event_id": draw(ids),
        "prediction_id": draw(ids),
        "model": draw(st.sampled_from(["fraud", "modèle", "m"])),
        "model_version": draw(st.sampled_from(["1", "3", "v2.0"])),
        "timestamp": draw(timestamps),
        "features": draw(st.dictionaries(st.text(max_size=6), feature_values, max_size=6)),
        "prediction": draw(outcomes),
    }
    if draw(st.booleans()):
        event["scores"] = draw(
            st.none() | st.dictionaries(st.text(max_size=3), st.floats(0.0, 1.0), max_size=3)
        )
    if draw(st.booleans()):
        event["segments"] = draw(
            st.none() | st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2)
        )
    return event


@st.composite
def valid_ground_truth(draw: st.DrawFn) -> dict[str, Any]:
    """A ground-truth event the contract accepts, with random content."""
    event: dict[str, Any] = {
        "event_id": draw(ids),
        "prediction_id": draw(ids),
        "timestamp": draw(timestamps),
        "label": draw(outcomes),
    }
    if draw(st.booleans()):
        event["model"] = draw(st.none() | ids)
    return event


VALID: dict[str, Callable[[], st.SearchStrategy[dict[str, Any]]]] = {
    "prediction": valid_prediction,
    "ground truth": valid_ground_truth,
}
REJECTED = {"prediction": REJECTED_PREDICTIONS, "ground truth": REJECTED_GROUND_TRUTH}
ACCEPTED = {"prediction": ACCEPTED_PREDICTIONS, "ground truth": ACCEPTED_GROUND_TRUTH}


def framing_values(a: bytes, b: bytes) -> dict[str, bytes]:
    """Values that try to break ``b"[" + b",".join(values) + b"]"`` (a, b: valid events)."""
    return {
        "two objects": a + b"," + b,
        "two objects, spaced": a + b" , " + b,
        "closing bracket": b"]",
        "opening bracket": b"[",
        "comma": b",",
        "object then bracket": b'{"a":1}]',
        "bracket then brace": b"[{",
        "event then bracket": a + b"]",
        "bracket then event": b"[" + a,
        "event in an array": b"[" + a + b"]",
        "trailing comma": a + b",",
        "leading comma": b"," + a,
        "null": b"null",
        "number": b"1",
        "string": b'"x"',
        "empty": b"",
        "space": b" ",
        "newline": b"\n",
        "valid with whitespace": b" " + a + b"\n",
        "open object": b"{",
        "close object": b"}",
    }


@st.composite
def messages(draw: st.DrawFn, kind: str) -> Message:
    """One Kafka message: a value (valid or broken in one of many ways) and a key."""
    base = draw(VALID[kind]())
    own = base["prediction_id"].encode()
    shape = draw(
        st.sampled_from(
            [
                "valid",
                "valid",
                "valid",
                "mutated",
                "rejected",
                "unknown field",
                "missing field",
                "wrong type",
                "not utf-8",
                "framing",
                "bytes",
                "json",
            ]
        )
    )
    value: bytes
    if shape == "valid":
        value = _dumps(base)
    elif shape == "mutated":
        value = draw(mutated(base))
    elif shape == "rejected":
        value = draw(st.sampled_from(list(REJECTED[kind].values())))
    elif shape == "unknown field":
        value = _dumps({**base, draw(st.sampled_from(["extra", "Features", "scores "])): 1})
    elif shape == "missing field":
        field = draw(st.sampled_from(sorted(base)))
        value = _dumps({k: v for k, v in base.items() if k != field})
    elif shape == "wrong type":
        field = draw(st.sampled_from(["event_id", "prediction_id", "timestamp"]))
        value = _dumps({**base, field: draw(st.sampled_from([None, 1.5, [], {}, True, ""]))})
    elif shape == "not utf-8":
        value = _dumps(base).replace(b'"prediction_id": "', b'"prediction_id": "\xff', 1)
    elif shape == "framing":
        other = _dumps(draw(VALID[kind]()))
        value = draw(st.sampled_from(list(framing_values(_dumps(base), other).values())))
    elif shape == "bytes":
        value = draw(st.binary(max_size=40))
    else:
        value = _dumps(draw(json_values))
    key = draw(st.sampled_from([None, None, own, own, b"other", b""]))
    return value, key


@st.composite
def batches(draw: st.DrawFn, kind: str) -> list[Message]:
    """0..60 messages; often all valid, so the one-array path is taken, else mixed."""
    n = draw(st.integers(min_value=0, max_value=60))
    if draw(st.booleans()):
        valid = [_dumps(e) for e in draw(st.lists(VALID[kind](), min_size=n, max_size=n))]
        keys = draw(st.sampled_from(["none", "own", "mixed"]))
        batch: list[Message] = []
        for value in valid:
            own = json.loads(value)["prediction_id"].encode()
            key = {"none": None, "own": own}.get(keys, draw(st.sampled_from([None, own])))
            batch.append((value, key))
        # A few broken messages at random places (or none at all).
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            batch.insert(draw(st.integers(0, len(batch))), draw(messages(kind)))
        return batch
    return draw(st.lists(messages(kind), min_size=n, max_size=n))


# --- the property -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_of_a_batch_gets_its_single_message_verdict(
    kind: str, data: st.DataObject
) -> None:
    """decode_predictions/decode_ground_truths equal decode_prediction/_ground_truth per message."""
    batch = data.draw(batches(kind), label="batch")
    decode_one, _ = KINDS[kind]
    assert_single_verdicts(decode_one, batch, decode_batch(kind, batch))


# --- framing ----------------------------------------------------------------------------------


def event(kind: str, i: int) -> bytes:
    """Valid event number ``i`` (prediction_id ``p{i}``) of the kind."""
    if kind == "prediction":
        return _dumps(
            {**PREDICTION, "event_id": f"e{i}", "prediction_id": f"p{i}", "features": {"i": i}}
        )
    return _dumps({**GROUND_TRUTH, "event_id": f"e{i}", "prediction_id": f"p{i}", "label": i})


def assert_valid_ones_are_their_own(kind: str, batch: list[Message], results: list[Any]) -> None:
    """Every valid event of the batch came back as itself: its own event_id and prediction_id."""
    decode_one, _ = KINDS[kind]
    for (value, key), got in zip(batch, results, strict=True):
        expected = single(decode_one, value, key)
        if not isinstance(expected, DecodeError):
            assert isinstance(got, WirePrediction | WireGroundTruth)
            assert (got.event_id, got.prediction_id) == (expected.event_id, expected.prediction_id)
            assert key is None or key == got.prediction_id.encode()


FRAMING = framing_values(event("prediction", 100), event("prediction", 101))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "unkeyed"])
@pytest.mark.parametrize("position", [0, 4, 10])
@pytest.mark.parametrize("name", FRAMING)
def test_framing_values_get_their_own_verdict_and_shift_nothing(
    kind: str, keyed: bool, position: int, name: str
) -> None:
    """A value that breaks the comma-join framing is judged alone; its neighbours are intact."""
    bad = framing_values(event(kind, 100), event(kind, 101))[name]
    batch: list[Message] = [
        (event(kind, i), f"p{i}".encode() if keyed else None) for i in range(10)
    ]
    batch.insert(position, (bad, None))
    results = decode_batch(kind, batch)
    decode_one, _ = KINDS[kind]
    assert_single_verdicts(decode_one, batch, results)
    assert_valid_ones_are_their_own(kind, batch, results)
    ids = [r.prediction_id for r in results if not isinstance(r, DecodeError)]
    assert [i for i in ids if i not in {"p100"}] == [f"p{i}" for i in range(10)]


COMBINATIONS = {
    "two events then empty": [b"AB", b""],
    "empty then two events": [b"", b"AB"],
    "two events, gap, empty": [b"AB", b"0", b""],
    "empty, gap, two events": [b"", b"0", b"AB"],
    "two events then whitespace": [b"AB", b" "],
    "two events then trailing comma": [b"AB", b"A,"],
    "leading comma then two events": [b",A", b"AB"],
    "two events twice, two empties": [b"AB", b"", b"AB", b""],
    "bracket pair around events": [b"[", b"A", b"]"],
    "open array then close array": [b"[{", b'{"a":1}]'],
    "comma value then two events": [b",", b"AB"],
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", COMBINATIONS)
def test_combined_framing_attacks_never_shift_other_messages(kind: str, name: str) -> None:
    """Values adding and removing array elements together still get single verdicts."""
    a, b = event(kind, 100), event(kind, 101)
    spelled = {b"AB": a + b"," + b, b"A": a, b"A,": a + b",", b",A": b"," + a}
    batch: list[Message] = []
    serial = 0
    for piece in [b"0", b"0", b"0", *COMBINATIONS[name], b"0", b"0", b"0", b"0"]:
        if piece == b"0":
            batch.append((event(kind, serial), None))
            serial += 1
        else:
            batch.append((spelled.get(piece, piece), None))
    results = decode_batch(kind, batch)
    decode_one, _ = KINDS[kind]
    assert_single_verdicts(decode_one, batch, results)
    assert_valid_ones_are_their_own(kind, batch, results)


@pytest.mark.parametrize("kind", KINDS)
def test_one_key_mismatch_in_a_large_batch_rejects_only_that_message(kind: str) -> None:
    """A batch that decodes but has one wrong key rejects that message alone (key_mismatch)."""
    batch: list[Message] = [(event(kind, i), f"p{i}".encode()) for i in range(40)]
    batch[17] = (batch[17][0], b"p18")
    results = decode_batch(kind, batch)
    assert_single_verdicts(KINDS[kind][0], batch, results)
    assert [i for i, r in enumerate(results) if isinstance(r, DecodeError)] == [17]
    assert results[17].kind == "key_mismatch"
    assert results[17].path == "$.prediction_id"


def test_empty_batch_decodes_to_an_empty_list() -> None:
    """No messages give no results, for both kinds."""
    assert decode_predictions([], []) == []
    assert decode_ground_truths([], []) == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_an_event_split_across_two_values_is_not_glued_back_together(
    kind: str, keyed: bool
) -> None:
    """Halves of one event in two values are each malformed, even with a compensating value."""
    whole = event(kind, 100)
    cut = whole.index(b', "timestamp"')
    head, tail = whole[:cut], whole[cut + 1 :]  # the join's comma restores the one removed
    pair = event(kind, 101) + b"," + event(kind, 102)
    batch: list[Message] = [(event(kind, i), None) for i in range(3)]
    # With keys, the attacker keys each value by the id the glued batch assigns to it.
    batch += [(head, b"p100" if keyed else None), (tail, b"p101" if keyed else None)]
    batch += [(pair, b"p102" if keyed else None)]
    batch += [(event(kind, i), None) for i in range(3, 6)]
    results = decode_batch(kind, batch)
    assert_single_verdicts(KINDS[kind][0], batch, results)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_a_string_left_open_in_one_value_is_not_closed_by_the_next(kind: str, keyed: bool) -> None:
    """Two values that each look like one object but share a string stay two bad messages."""
    whole = event(kind, 100)
    rest = whole[whole.index(b'"prediction_id"') :]
    opened = b'{"event_id": "x}'  # starts with "{", ends with "}", its string is still open
    closing = b'{", ' + rest  # the glued string is 'x},{' and the event goes on from here
    pair = event(kind, 101) + b"," + event(kind, 102)
    batch: list[Message] = [(event(kind, i), None) for i in range(3)]
    batch += [(opened, b"p100" if keyed else None), (closing, None)]
    batch += [(pair, b"p101" if keyed else None)]
    batch += [(event(kind, i), None) for i in range(3, 6)]
    # The attack works on a bare array decode: the glued array has the batch's length.
    assert len(json.loads(b"[" + b",".join(value for value, _ in batch) + b"]")) == len(batch)
    results = decode_batch(kind, batch)
    assert_single_verdicts(KINDS[kind][0], batch, results)
    assert all(isinstance(results[i], DecodeError) for i in (3, 4, 5))


# --- stored predictions -----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        valid_prediction().map(_dumps) | st.sampled_from(list(ACCEPTED_PREDICTIONS.values())),
        max_size=30,
    )
)
def test_decode_stored_predictions_equals_decoding_each(values: list[bytes]) -> None:
    """decode_stored_predictions of accepted events equals decode_stored_prediction of each."""
    for value in values:
        decode_prediction(value)  # raises unless the contract accepts it
    stored = decode_stored_predictions(values)
    assert stored == [decode_stored_prediction(v) for v in values]
    assert all(type(s) is StoredPrediction for s in stored)


def test_decode_stored_predictions_of_nothing_is_an_empty_list() -> None:
    """An empty sequence of stored values decodes to []."""
    assert decode_stored_predictions([]) == []
    assert decode_stored_predictions(()) == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_contract_example_keeps_its_verdict_in_one_batch(kind: str) -> None:
    """All accepted and rejected contract examples decoded together match decoding alone."""
    values = [*ACCEPTED[kind].values(), *REJECTED[kind].values()] * 2
    batch: list[Message] = [(v, None) for v in values]
    results = decode_batch(kind, batch)
    assert_single_verdicts(KINDS[kind][0], batch, results)
    accepted = len(ACCEPTED[kind])
    assert all(not isinstance(r, DecodeError) for r in results[:accepted])
