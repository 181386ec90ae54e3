"""A binary classifier's traffic for benchmarks: prediction events as producers send them, and
the reference profile they are judged against.

Each benchmark draws its own features (their shapes are what it measures); what is shared is
how a score becomes a prediction, its two class scores and the event's JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from driftline.detectors.profile import build_profile
from driftline.schemas.reference import ReferenceProfile

FloatArray = NDArray[np.float64]


def prediction_json(
    *,
    event_id: str,
    prediction_id: str,
    model: str,
    version: str,
    timestamp: int | str,
    features: Mapping[str, Any],
    p: float,
    digits: int | None = None,
    segments: Mapping[str, str] | None = None,
) -> bytes:
    """The JSON of one prediction with P(class ``"1"``) = ``p``: class 1 from 0.5 up.

    ``digits`` rounds the score of class ``"0"`` as ``p`` was rounded, so the two still sum to
    one in the JSON; ``segments`` are added when given.
    """
    event: dict[str, Any] = {
        "event_id": event_id,
        "prediction_id": prediction_id,
        "model": model,
        "model_version": version,
        "timestamp": timestamp,
        "features": features,
        "prediction": int(p >= 0.5),
        "scores": {"0": 1.0 - p if digits is None else round(1.0 - p, digits), "1": p},
    }
    if segments is not None:
        event["segments"] = segments
    return orjson.dumps(event)


def binary_profile(
    model: str,
    version: str,
    features: Mapping[str, FloatArray],
    p: FloatArray,
    *,
    labels: NDArray[np.int64] | None = None,
    bins: int = 100,
) -> ReferenceProfile:
    """The reference profile of numeric ``features`` scored ``p`` = P(class ``"1"``), with the
    prediction :func:`prediction_json` derives from a score, and ``labels`` when given."""
    return build_profile(
        model,
        version,
        "binary",
        features,
        (p >= 0.5).astype(int),
        scores={"0": 1.0 - p, "1": p},
        labels=labels,
        bins=bins,
    )
