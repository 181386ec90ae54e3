"""The joined examples stage 1 sends to ``driftline.labeled``, one per prediction and label.

A joined example is the label's fields followed by every field of the original prediction
event, keyed by the prediction id and identified by a stable id, so a replay sends the same
bytes again and consumers drop the repeat. This module owns that record; which pairs get one
is the partition worker's business.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import NamedTuple

import orjson

from driftline.schemas.wire import WireGroundTruth


class Labeled(NamedTuple):
    """A joined example for ``driftline.labeled`` (key = prediction id); a named tuple, the
    cheapest record to make once per label."""

    key: bytes
    value: bytes


def labeled_record(
    prediction_id: str, prediction: bytes, truth: WireGroundTruth, at_ms: int, labelled_ms: int
) -> Labeled:
    """The joined example: the label's fields, then every field of the original prediction
    event, spliced from its bytes (it was validated on arrival, and the contract's fields
    never clash with the label's), so nothing is decoded or encoded twice.

    >>> from driftline.schemas.wire import decode_ground_truth
    >>> truth = decode_ground_truth(b'{"event_id":"t","prediction_id":"p","timestamp":9,"label":1}')
    >>> record = labeled_record("p", b' {"prediction_id":"p","features":{"x":1}}', truth, 5, 9)
    >>> orjson.loads(record.value)["features"], orjson.loads(record.value)["label_time"]
    ({'x': 1}, 9)
    >>> from driftline.schemas.ids import stable_id
    >>> orjson.loads(record.value)["id"] == stable_id("labeled", "p")
    True
    """
    # stable_id("labeled", prediction_id), hashing the same canonical bytes without the
    # general path's tuple and options (the doctest above holds them equal).
    record_id = blake2b(b'["labeled",%s]' % orjson.dumps(prediction_id), digest_size=16)
    head = b'{"id":"%s","label":%s,"label_event_id":%s,"label_time":%d,"prediction_time":%d,' % (
        record_id.hexdigest().encode(),
        orjson.dumps(truth.label),
        orjson.dumps(truth.event_id),
        labelled_ms,
        at_ms,
    )
    if prediction[:1] != b"{":
        prediction = prediction.strip()
    return Labeled(prediction_id.encode(), head + memoryview(prediction)[1:])
