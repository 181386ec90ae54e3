"""A model's task read from its traffic, for a version that no configuration or profile names.

The offline replay and stage 1's warm-up baseline both meet model versions that arrive with
neither a reference profile nor a configured task; this module owns how their predictions
tell one: scores or labels that are not numbers mean classes, many distinct numbers mean
regression.
"""

from __future__ import annotations

from collections.abc import Sequence

from driftline.schemas.events import Task
from driftline.schemas.wire import WirePrediction


def infer_task(events: Sequence[WirePrediction]) -> Task:
    """A model's task from its traffic: scores or non-numeric predictions mean classes.

    >>> from driftline.schemas.wire import decode_prediction
    >>> def event(prediction: str) -> WirePrediction:
    ...     return decode_prediction(b'{"event_id":"e","prediction_id":"p","model":"m",'
    ...         b'"model_version":"1","timestamp":5,"features":{},"prediction":%s}'
    ...         % prediction.encode())
    >>> infer_task([event("0"), event("1")]), infer_task([event('"a"'), event('"b"'), event('"c"')])
    ('binary', 'multiclass')
    >>> infer_task([event("0.25"), event("1.5")])
    'regression'
    """
    sample = events[:1000]
    classes = {c for e in sample if e.scores for c in e.scores}
    if classes:
        return "binary" if len(classes) <= 2 else "multiclass"
    values = [e.prediction for e in sample]
    if all(isinstance(v, float) and not float(v).is_integer() for v in values[:50]):
        return "regression"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        distinct = set(values)
        if len(distinct) > 20:
            return "regression"
        return "binary" if len(distinct) <= 2 else "multiclass"
    return "binary" if len({str(v) for v in values}) <= 2 else "multiclass"
