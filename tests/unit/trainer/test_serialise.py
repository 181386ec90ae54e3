"""Serialised models: a round trip predicts the same; tampered or foreign bytes are refused."""

from __future__ import annotations

import hashlib
import pickle

import orjson
import pytest

from driftline.errors import ModelFormatError
from driftline.trainer.builtin import RiverTrainer
from driftline.trainer.serialise import FORMAT, MAGIC, dumps, load, read_header
from tests.unit.trainer.sea_helpers import sea_examples


@pytest.fixture(scope="module")
def data() -> bytes:
    return dumps(RiverTrainer("binary").fit(sea_examples(500, seed=1)))


def test_a_round_trip_predicts_and_scores_the_same() -> None:
    examples = sea_examples(700, seed=1)
    model = RiverTrainer("binary").fit(examples.oldest(500))
    rows = examples.newest(200).features
    loaded = load(dumps(model))
    assert loaded.predict(rows) == model.predict(rows)
    assert loaded.predict_scores(rows) == model.predict_scores(rows)
    assert loaded.params() == model.params()


def test_the_header_names_the_format_and_the_payloads_hash(data: bytes) -> None:
    header = read_header(data)
    payload = data[data.index(b"\n") + 1 :]
    assert header.format == FORMAT == "pickle-5"
    assert header.sha256 == hashlib.sha256(payload).hexdigest()
    assert header.length == len(payload)
    assert load(data, expected_sha256=header.sha256).params()["task"] == "binary"


def _with_header(data: bytes, **changes: object) -> bytes:
    end = data.index(b"\n")
    header = {**orjson.loads(data[len(MAGIC) : end]), **changes}
    return MAGIC + orjson.dumps(header) + data[end:]


def test_tampered_truncated_or_foreign_bytes_are_refused_before_unpickling(data: bytes) -> None:
    flipped = bytearray(data)
    flipped[-10] ^= 0x01
    cases = {
        bytes(flipped): "does not match the SHA-256 in its header",
        data[:-1]: "its header says",
        data[len(MAGIC) :]: "magic bytes are missing",
        pickle.dumps(object()): "magic bytes are missing",
        MAGIC + b"{not json\n" + b"x": "header is not valid",
        MAGIC + b"x" * 5000: "header line is missing or too long",
        _with_header(data, format="pickle-4"): "is in format 'pickle-4'",
    }
    for bad, message in cases.items():
        with pytest.raises(ModelFormatError, match=message):
            load(bad)


def test_a_hash_other_than_the_registrys_is_refused(data: bytes) -> None:
    with pytest.raises(ModelFormatError, match="the registry recorded"):
        load(data, expected_sha256="0" * 64)


def test_a_payload_that_is_not_a_fitted_model_is_refused() -> None:
    payload = pickle.dumps({"not": "a model"}, protocol=5)
    header = {
        "format": FORMAT,
        "driftline": "x",
        "sha256": hashlib.sha256(payload).hexdigest(),
        "length": len(payload),
    }
    with pytest.raises(ModelFormatError, match="holds a dict, not a fitted model"):
        load(MAGIC + orjson.dumps(header) + b"\n" + payload)
