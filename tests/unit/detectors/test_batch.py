"""Column batches: from events and from columns alike, and rejected where they cannot be built."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.detectors.batch import ColumnBatch, columns_from_events
from driftline.detectors.summary import PaneSummary
from driftline.schemas import decode_prediction
from tests.unit.detectors.summary_helpers import PROFILE, batch_of, event_bytes


def test_columns_from_events_agree_with_columns_from_arrays() -> None:
    rng = np.random.default_rng(5)
    rows = []
    messages = []
    for i in range(300):
        amount = float(rng.lognormal(3, 1)) if i % 9 else None
        country = str(rng.choice(["FR", "DE", "IT", "ES", "PT"]))
        p = float(rng.uniform())
        features = {"amount": amount, "age": int(rng.integers(10, 99)), "country": country}
        scores = {"0": 1.0 - p, "1": p}
        rows.append({**features, "prediction": int(p > 0.5), "scores": scores, "t": i})
        messages.append(event_bytes(i, features, int(p > 0.5), scores=scores, timestamp=i))
    events = [decode_prediction(m) for m in messages]
    from_events = PaneSummary(PROFILE).fold(columns_from_events(events, PROFILE))
    assert from_events == PaneSummary(PROFILE).fold(batch_of(rows))
    assert from_events.to_bytes() == PaneSummary(PROFILE).fold(batch_of(rows)).to_bytes()


def test_batch_columns_of_unequal_length_are_rejected() -> None:
    with pytest.raises(ValueError, match="'amount' has 2 values"):
        ColumnBatch.from_columns(PROFILE, {"amount": [1.0, 2.0]}, [1], event_time_ms=[0])


def test_scores_outside_zero_to_one_are_rejected_at_the_batch_edge() -> None:
    with pytest.raises(ValueError, match=r"scores\['1'\] must be probabilities"):
        ColumnBatch.from_columns(PROFILE, {}, [1], scores={"1": [1.5]}, event_time_ms=[0])
