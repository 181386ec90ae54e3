"""SEA traffic as the trainer sees it: joined examples, and ``driftline.labeled`` records."""

from __future__ import annotations

import orjson

from driftline.testing.synthetic import SyntheticEvent, sea_events
from driftline.trainer.examples import LabeledRecord
from driftline.trainer.protocol import Example, Examples


def example(event: SyntheticEvent) -> Example:
    """The joined example of one synthetic prediction and its label."""
    p = event.prediction
    return Example(
        id=p["prediction_id"],
        time_ms=p["timestamp"],
        features=p["features"],
        label=event.ground_truth["label"],
        model_version=p["model_version"],
        prediction=p["prediction"],
        scores=p["scores"],
    )


def sea_examples(n: int, **options: object) -> Examples:
    """``n`` SEA examples (see :func:`~driftline.testing.synthetic.sea_events`)."""
    return Examples(tuple(example(e) for e in sea_events(n, **options)))  # type: ignore[arg-type]


def labeled_value(event: SyntheticEvent) -> bytes:
    """The record stage 1 would send to ``driftline.labeled`` for this pair."""
    truth = event.ground_truth
    return orjson.dumps(
        {
            "id": "l-" + event.prediction["prediction_id"],
            "label": truth["label"],
            "label_event_id": truth["event_id"],
            "label_time": truth["timestamp"],
            "prediction_time": event.prediction["timestamp"],
            **event.prediction,
        }
    )


def labeled_records(n: int, *, partitions: int = 3, **options: object) -> list[LabeledRecord]:
    """``n`` SEA records spread round-robin over ``partitions``, offsets counting per one."""
    records = []
    for i, event in enumerate(sea_events(n, **options)):  # type: ignore[arg-type]
        records.append(LabeledRecord(i % partitions, i // partitions, labeled_value(event)))
    return records
